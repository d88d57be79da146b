import { createHash } from 'node:crypto';
import { test } from './_prepare.js';
import { makeTestKernel } from './_kernel.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { codeOf } from '../src/errors.js';
import {
  CAPABILITY_CEILING_POLICY,
  lintPolicy,
  makePolicy,
  makePolicyValidator,
  regrantCheck,
  validatePolicyDocument,
  type PolicyProblem,
} from '../src/policy.js';
import { ActionType, Capability } from '../src/types.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const load = (doc: unknown) => makePolicy(doc, sha, canonicalJson);
const problemsOf = (err: unknown) => (err as { details: { problems: PolicyProblem[] } }).details.problems;

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
  t.deepEqual(p.decide({ agentId: 'a', actionType: 'READ', target: '/data/x' }), { allowed: true, rules: ['read-data'], policyHash: p.hash });
  t.deepEqual(p.decide({ agentId: 'a', actionType: 'READ', target: '/data/secrets/k' }), {
    allowed: false,
    code: 'ZT_POLICY_DENIED',
    rules: ['no-secrets'],
    policyHash: p.hash,
  });
  t.deepEqual(p.decide({ agentId: 'a', actionType: 'WRITE', target: '/data/x' }).rules, []);
  t.false(p.decide({ agentId: 'other', actionType: 'WRITE', target: '/out/a.txt' }).allowed);
  t.true(p.decide({ agentId: 'writer', actionType: 'WRITE', target: '/out/a.txt' }).allowed);
});

test('the policy hash is the content hash of the canonical document, and the document is a private hardened copy', t => {
  const mine = JSON.parse(JSON.stringify(doc)) as { rules: Array<{ targets?: string[] }> };
  const p = load(mine);
  t.is(p.hash, `sha256:${sha(canonicalJson(doc))}`);
  t.is(load({ rules: doc.rules, version: 1 }).hash, p.hash, 'key order does not change the hash');
  t.not(load(CAPABILITY_CEILING_POLICY).hash, p.hash);
  t.true(Object.isFrozen(p.document) && Object.isFrozen(p.document.rules[0]));
  // The caller mutating its object afterwards changes nothing that is enforced.
  (mine.rules[0] as { targets: string[] }).targets = ['/**'];
  t.false(p.decide({ agentId: 'a', actionType: 'READ', target: '/etc/passwd' }).allowed);
  t.is(p.hash, `sha256:${sha(canonicalJson(doc))}`);
});

test('the capability-ceiling policy permits whatever a capability grants', t => {
  const p = load(CAPABILITY_CEILING_POLICY);
  for (const actionType of Object.values(ActionType)) {
    const target = actionType === 'NETWORK' ? 'https://example.com/' : actionType === 'TOOL' ? 's/t' : '/x';
    t.deepEqual(p.decide({ agentId: 'a', actionType, target }).rules, ['default:capability-grants']);
    t.true(p.decideGrant({ holder: 'a', actionType, target }).allowed);
  }
  t.deepEqual([...p.rateWindows], []);
  t.false(p.needsContext);
});

test('an invalid policy is rejected whole with every problem located (ZT_POLICY_INVALID)', t => {
  const err = t.throws(() =>
    validatePolicyDocument({
      version: 2,
      rules: [
        { id: 'ok', effect: 'permit' },
        { id: 'ok', effect: 'allow', actions: ['FLY'], targets: ['relative'] },
        'not a rule',
        { id: 'kinds', effect: 'permit', actions: ['READ'], targets: ['https://example.com/**', '/a/../b'], when: { args: { q: { pattern: '(' } }, time: { notBefore: 'tomorrow' } } },
      ],
      extra: true,
    }),
  );
  t.regex(err?.message ?? '', /^ZT_POLICY_INVALID\b/);
  t.is(codeOf(err), 'ZT_POLICY_INVALID');
  t.deepEqual(
    problemsOf(err).map(p => `${p.pointer}: ${p.message}`),
    [
      '/extra: unknown property',
      '/rules/1/actions/0: must be one of "READ", "WRITE", "EXECUTE", "NETWORK", "TOOL"',
      '/rules/1/effect: must be one of "permit", "forbid"',
      '/rules/1/id: duplicate rule id "ok" (first at /rules/0)',
      '/rules/1/targets/0: invalid tool pattern: a tool pattern is "server/tool" (with * wildcards)',
      '/rules/2: must be of type object',
      "/rules/3/targets/0: a url pattern fits none of the rule's actions (READ); url patterns apply to NETWORK",
      '/rules/3/targets/1: invalid path pattern: pattern must not contain . or .. segments',
      '/rules/3/when/args/q/pattern: is not a valid RE2 regular expression: missing closing ): `(`',
      '/rules/3/when/time/notBefore: must be an ISO 8601 date-time with a zone (e.g. 2025-01-31T17:00:00Z) or epoch milliseconds',
      '/version: must be 1',
    ],
  );
});

test('values that are not plain JSON data are rejected, never crash validation', t => {
  const v = makePolicyValidator();
  const cyclic: Record<string, unknown> = { version: 1, rules: [] };
  cyclic.self = cyclic;
  const getter = { version: 1, get rules() { throw Error('boom'); } };
  let deep: unknown = {};
  for (let i = 0; i < 10_000; i += 1) deep = { all: [deep] };
  const cases: unknown[] = [undefined, null, 42, 'text', [], cyclic, getter, { version: 1, rules: [{ id: 'x', effect: 'permit', when: deep }] }, { version: NaN, rules: [] }, Object.create({ version: 1, rules: [] }), new Map()];
  for (const c of cases) {
    const err = t.throws(() => v.validate(c));
    t.is(codeOf(err), 'ZT_POLICY_INVALID');
    t.true(problemsOf(err).length > 0);
  }
});

test('issue-time checks and re-checking live grants after a policy change', t => {
  const p = load(doc);
  t.true(p.decideGrant({ holder: 'a', actionType: 'READ', target: '/data/reports/*.txt' }).allowed);
  t.deepEqual(p.decideGrant({ holder: 'a', actionType: 'READ', target: '/data/secrets/**' }).rules, ['no-secrets']);
  t.is(p.decideGrant({ holder: 'a', actionType: 'READ', target: 'relative' }).code, 'ZT_POLICY_ERROR');
  const stricter = load({ version: 1, rules: [{ id: 'reports-only', effect: 'permit', actions: ['READ'], targets: ['/data/reports/**'] }] });
  const refused = regrantCheck(stricter, [
    { id: 'c1', holder: 'a', actionType: 'READ', target: '/data/reports/q3.txt' },
    { id: 'c2', holder: 'a', actionType: 'READ', target: '/data/raw/*.csv' },
    { id: 'c3', holder: 'w', actionType: 'WRITE', target: '/out/a.txt' },
  ]);
  t.deepEqual(refused.map(r => r.id), ['c2', 'c3']);
  t.is(refused[0]?.decision.policyHash, stricter.hash);
});

test('the engine reports what the kernel must supply: rate windows, argument names, whether context is needed', t => {
  const p = load({
    version: 1,
    rules: [
      { id: 'a', effect: 'permit', actions: ['NETWORK'], when: { rate: { max: 10, windowMs: 60_000 }, args: { method: { in: ['GET'] } } } },
      { id: 'b', effect: 'permit', actions: ['NETWORK'], when: { any: [{ rate: { max: 100, windowMs: 3_600_000 } }, { rate: { max: 1, windowMs: 1_000 } }], args: { body: { maxLength: 10 } } } },
    ],
  });
  t.deepEqual([...p.rateWindows], [1_000, 60_000, 3_600_000]);
  t.deepEqual([...p.argNames], ['body', 'method']);
  t.true(p.needsContext);
});

test('limits in a capability only narrow the policy: a generous capability still stops at the policy limit', async t => {
  // The kernel checks the capability's own limits and the policy's; either can deny.
  const p = load({ version: 1, rules: [{ id: 'ten', effect: 'permit', actions: ['READ'], targets: ['/data/**'], when: { maxUses: 10 } }] });
  const ctx = (uses: number) => ({ time: 0, agentLabels: [], agentTaints: [], capability: { id: 'c', uses, bytes: 0, issuedAt: 0 }, rates: {} });
  t.true(p.decide({ agentId: 'a', actionType: 'READ', target: '/data/x', context: ctx(9) }).allowed);
  t.is(p.decide({ agentId: 'a', actionType: 'READ', target: '/data/x', context: ctx(10) }).code, 'ZT_EXHAUSTED');
  // Through the kernel: a capability with maxUses 1000 is granted, and the policy still decides every use.
  const { kernel } = makeTestKernel({ policy: { version: 1, rules: [{ id: 'data', effect: 'permit', actions: ['READ'], targets: ['/data/**'] }] } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'wide', actionType: ActionType.READ, target: '/**', holder: 'a', constraints: { maxUses: 1000 } }));
  const { ActionRequest } = await import('../src/types.js');
  const outcome = await kernel.execute(new ActionRequest({ capabilityId: 'wide', agentId: 'a', actionType: ActionType.READ, target: '/etc/hostname' }), 'api');
  t.is(outcome.error?.code, 'ZT_POLICY_DENIED');
});

test('attack: loading a malformed policy at run time to drop the policy in force', t => {
  // An operator (or whoever can reach loadPolicy) submits a broken or
  // permissive-by-accident document; it must be rejected whole and the
  // running policy must keep deciding.
  const { kernel } = makeTestKernel({ policy: doc });
  const before = kernel.getPolicyHash();
  const err = t.throws(() => kernel.setPolicy({ version: 1, rules: [{ id: 'all', effect: 'permit' }, { id: 'x', effect: 'forbid', targets: ['/a/../b'] }] }));
  t.is(codeOf(err), 'ZT_POLICY_INVALID');
  t.is(kernel.getPolicyHash(), before);
  kernel.registerAgent('a');
  t.throws(() => kernel.issueCapability(new Capability({ id: 'etc', actionType: ActionType.READ, target: '/etc/passwd', holder: 'a' })), { message: /^ZT_POLICY_DENIED\b/ });
});

test('lint: broad grants, never-matching rules, shadowed permits, taints and risky patterns', t => {
  const warnings = lintPolicy(
    validatePolicyDocument({
      version: 1,
      taints: [{ name: 'unused', actions: ['READ'] }],
      rules: [
        { id: 'everything', effect: 'permit' },
        { id: 'write-anywhere', effect: 'permit', actions: ['WRITE'], targets: ['/**'] },
        { id: 'any-com', effect: 'permit', actions: ['NETWORK'], targets: ['https://*.com/**'] },
        { id: 'read-etc', effect: 'permit', actions: ['READ'], targets: ['/etc/**'] },
        { id: 'no-etc', effect: 'forbid', targets: ['/etc/**'] },
        { id: 'never', effect: 'permit', actions: ['READ'], targets: ['/x/**'], when: { time: { hoursUtc: [9, 9] } } },
        { id: 'half', effect: 'permit', actions: ['READ', 'NETWORK'], targets: ['/y/**'] },
        { id: 'redos', effect: 'permit', actions: ['TOOL'], targets: ['s/t'], when: { args: { q: { pattern: '(a+)+' } } } },
        { id: 'ghost', effect: 'forbid', actions: ['NETWORK'], when: { taints: { anyOf: ['undeclared'] } } },
      ],
    }),
  ).map(w => `${w.pointer}: ${w.message}`);
  const expectSome = (re: RegExp) => t.true(warnings.some(w => re.test(w)), `${re} in\n${warnings.join('\n')}`);
  expectSome(/^\/rules\/0: permits every action on every target for every agent$/);
  expectSome(/^\/rules\/1\/targets: permits WRITE anywhere/);
  expectSome(/^\/rules\/2\/targets\/0: permits NETWORK to every host under \.com/);
  expectSome(/^\/rules\/3: is shadowed by forbid "no-etc"/);
  expectSome(/^\/rules\/5\/when: can never match/);
  expectSome(/^\/rules\/6\/actions: never applies to NETWORK/);
  expectSome(/^\/rules\/7\/when\/args\/q\/pattern: nested quantifiers/);
  expectSome(/^\/rules\/8\/when: taint "undeclared" is never declared/);
  expectSome(/^\/taints\/0: taint "unused" is declared but no rule tests it/);
  t.false(warnings.some(w => w.startsWith('/rules/4')), 'the forbid itself is not flagged');
});
