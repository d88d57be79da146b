/**
 * One glob syntax everywhere (src/glob.ts): `*`, `?` and `**`. Syntax other
 * dialects read as operators (braces, classes, escapes, extglobs, negation)
 * is refused wherever a pattern enters (policy targets and conditions,
 * delegations, capability targets and argument rules, effector settings),
 * never taken literally.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from './_prepare.js';
import { makeTempDir, makeTestKernel } from './_kernel.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { policyCommand } from '../src/cli/policy.js';
import { codeOf } from '../src/errors.js';
import { compileArgPattern } from '../src/effectors/settings.js';
import { loadPolicyText, makePolicy, type PolicyProblem } from '../src/policy.js';
import { ActionType, Capability } from '../src/types.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const problemsOf = (err: unknown) => (err as { details: { problems: PolicyProblem[] } }).details.problems;

const BRACES = `version: 1
rules:
  - id: read-data
    effect: permit
    actions: [READ]
    targets: ['/data/**']
  - id: no-secrets
    effect: forbid
    actions: [READ]
    targets: ['/data/{secrets,keys}/**']
`;

test('a forbid written with braces is refused at load with its line and column, not read literally', t => {
  // Attack (on the operator's intent): the brace forbid, read literally,
  // matches no real path, so `/data/secrets/id_rsa` would be allowed.
  const err = t.throws(() => loadPolicyText(BRACES, sha, canonicalJson));
  t.is(codeOf(err), 'ZT_POLICY_INVALID');
  const problems = problemsOf(err);
  t.is(problems.length, 1);
  t.like(problems[0], { pointer: '/rules/1/targets/0', line: 10, column: 15 });
  t.regex(problems[0]?.message ?? '', /braces \(\{a,b\}\) are not supported/);
});

test('every place a policy holds a glob refuses unsupported syntax, located', t => {
  const text = `version: 1
rules:
  - id: classes
    effect: forbid
    targets: ['/data/[sk]*/**']
  - id: host-braces
    effect: forbid
    targets: ['https://{api,www}.example.com/**']
  - id: host-star
    effect: forbid
    targets: ['https://api.*.example.com/**']
  - id: arg-paths
    effect: permit
    actions: [TOOL]
    targets: ['fs/read_file']
    when:
      args:
        path: { paths: ['/data/!(private)/**'] }
      url: { paths: ['/v1/\\\\*'] }
delegations:
  - id: share
    from: [a]
    to: [b]
    targets: ['/shared/{x,y}']
`;
  const err = t.throws(() => loadPolicyText(text, sha, canonicalJson));
  t.is(codeOf(err), 'ZT_POLICY_INVALID');
  const got = problemsOf(err).map(p => `${p.line}:${p.column} ${p.pointer}`);
  t.deepEqual(got, [
    '5:15 /rules/0/targets/0',
    '8:15 /rules/1/targets/0',
    '11:15 /rules/2/targets/0',
    '18:25 /rules/3/when/args/path/paths/0',
    '19:22 /rules/3/when/url/paths/0',
  ]);
  // Delegations are compiled with the policy; their problems are located too.
  const deleg = t.throws(() => loadPolicyText(text.replace(/rules:[\s\S]*delegations:/, "rules:\n  - { id: ok, effect: permit, targets: ['/shared/**'] }\ndelegations:"), sha, canonicalJson));
  t.is(codeOf(deleg), 'ZT_POLICY_INVALID');
  t.like(problemsOf(deleg)[0], { pointer: '/delegations/0/targets/0', line: 8, column: 15 });
  t.regex(problemsOf(deleg)[0]?.message ?? '', /braces/);
});

test('capability targets and argument rules with unsupported glob syntax are refused at issue (ZT_BAD_ARGUMENT)', t => {
  const { kernel } = makeTestKernel({ policy: { version: 1, rules: [{ id: 'all', effect: 'permit' }] } });
  kernel.registerAgent('a');
  const issue = (target: string, actionType: ActionType = ActionType.READ) => () => kernel.issueCapability(new Capability({ id: `c${Math.random()}`.replace('.', ''), actionType, target, holder: 'a' }));
  t.is(codeOf(t.throws(issue('/data/{secrets,keys}/**'))), 'ZT_BAD_ARGUMENT');
  t.is(codeOf(t.throws(issue('/data/[ab].txt'))), 'ZT_BAD_ARGUMENT', 'an exact path is checked too');
  t.is(codeOf(t.throws(issue('https://{a,b}.example.com/**', ActionType.NETWORK))), 'ZT_BAD_ARGUMENT');
  t.is(codeOf(t.throws(issue('https://example.com/{a,b}/**', ActionType.NETWORK))), 'ZT_BAD_ARGUMENT');
  t.notThrows(issue('/data/report (1).txt'));
  const argRule = (pattern: string) => () => new Capability({ id: 'x', actionType: ActionType.TOOL, target: 'fs/read_file', holder: 'a', constraints: { args: { label: { pattern } } } });
  t.is(codeOf(t.throws(argRule('report-{a,b}'))), 'ZT_BAD_ARGUMENT');
  t.is(codeOf(t.throws(argRule('!secret'))), 'ZT_BAD_ARGUMENT');
  t.notThrows(argRule('report-*'));
  t.is(codeOf(t.throws(() => compileArgPattern({ glob: '/data/[a-z]/**' }, 'args[0]'))), 'ZT_BAD_ARGUMENT', 'effector settings use the same matcher');
});

test('policy check reports the brace forbid as an error with file:line:column', async t => {
  const { dir, cleanup } = makeTempDir('ztaas-globs-');
  t.teardown(cleanup);
  const path = join(dir, 'braces.yaml');
  await writeFile(path, BRACES);
  let out = '';
  const status = await policyCommand('check', [path], { out: s => (out += s), err: s => (out += s), readText: p => readFile(p, 'utf8') });
  t.is(status, 1);
  t.regex(out, /braces\.yaml:10:15: error: \/rules\/1\/targets\/0: invalid path pattern: unsupported glob syntax: braces/);
});

test('a policy document (not text) with a brace target is refused whole', t => {
  const err = t.throws(() => makePolicy({ version: 1, rules: [{ id: 'f', effect: 'forbid', targets: ['/data/{a,b}/**'] }] }, sha, canonicalJson));
  t.is(codeOf(err), 'ZT_POLICY_INVALID');
});
