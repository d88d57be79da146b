import { createHash } from 'node:crypto';
import { test } from './_prepare.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { CAPABILITY_CEILING_POLICY, makePolicy, validatePolicyDocument } from '../src/policy.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const load = (doc: unknown) => makePolicy(doc, sha, canonicalJson);

const doc = {
  version: 1,
  rules: [
    { id: 'read-data', effect: 'permit', actions: ['READ'], targets: ['/data/**'] },
    { id: 'no-secrets', effect: 'forbid', targets: ['/data/secrets/**'] },
    { id: 'writer-out', effect: 'permit', agents: ['writer'], actions: ['WRITE'], targets: ['/out/*.txt'] },
  ],
};

test('default deny, permit, and forbid wins', t => {
  const p = load(doc);
  t.deepEqual(p.decide({ agentId: 'a', actionType: 'READ', target: '/data/x' }), {
    allowed: true,
    rules: ['read-data'],
    policyHash: p.hash,
  });
  const forbidden = p.decide({ agentId: 'a', actionType: 'READ', target: '/data/secrets/k' });
  t.false(forbidden.allowed);
  t.is(forbidden.code, 'ZT_POLICY_DENIED');
  t.deepEqual(forbidden.rules, ['no-secrets']);
  const unmatched = p.decide({ agentId: 'a', actionType: 'WRITE', target: '/data/x' });
  t.false(unmatched.allowed);
  t.deepEqual(unmatched.rules, []);
  t.false(p.decide({ agentId: 'other', actionType: 'WRITE', target: '/out/a.txt' }).allowed);
  t.true(p.decide({ agentId: 'writer', actionType: 'WRITE', target: '/out/a.txt' }).allowed);
});

test('the policy hash is the content hash of the canonical document', t => {
  const p = load(doc);
  t.is(p.hash, `sha256:${sha(canonicalJson(doc))}`);
  const reordered = load({ rules: doc.rules, version: 1 });
  t.is(reordered.hash, p.hash);
  t.not(load(CAPABILITY_CEILING_POLICY).hash, p.hash);
});

test('issue-time check: never-permitted and fully forbidden grants are denied', t => {
  const p = load(doc);
  t.true(p.decideGrant({ holder: 'a', actionType: 'READ', target: '/data/reports/*.txt' }).allowed);
  t.true(p.decideGrant({ holder: 'a', actionType: 'READ', target: '/data/x.txt' }).allowed);
  const outside = p.decideGrant({ holder: 'a', actionType: 'READ', target: '/etc/passwd' });
  t.false(outside.allowed);
  t.is(outside.code, 'ZT_POLICY_DENIED');
  const covered = p.decideGrant({ holder: 'a', actionType: 'READ', target: '/data/secrets/**' });
  t.false(covered.allowed);
  t.deepEqual(covered.rules, ['no-secrets']);
});

test('an invalid policy is rejected whole with every problem located', t => {
  const err = t.throws(() =>
    validatePolicyDocument({
      version: 2,
      rules: [
        { id: 'ok', effect: 'permit' },
        { id: 'ok', effect: 'allow', actions: ['FLY'], targets: ['relative'] },
        'not a rule',
      ],
      extra: true,
    }),
  );
  t.regex(err?.message ?? '', /^ZT_BAD_ARGUMENT\b/);
  const problems = (err as unknown as { details: { problems: string[] } }).details.problems;
  t.deepEqual(problems, [
    '/extra: unknown property',
    '/version: must be 1',
    '/rules/1/id: duplicate rule id "ok"',
    '/rules/1/effect: must be "permit" or "forbid"',
    '/rules/1/actions/0: must be an action type',
    '/rules/1/targets/0: pattern must be an absolute path',
    '/rules/2: must be an object',
  ]);
});
