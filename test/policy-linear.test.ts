/**
 * Policy and settings regular expressions run in linear time (RE2), or are
 * refused when loaded. Every test here runs in the locked-down realm the
 * product ships with (test/_prepare.ts), as the kernel does.
 */
import { createHash } from 'node:crypto';
import { test } from './_prepare.js';
import { makeTestKernel } from './_kernel.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { codeOf } from '../src/errors.js';
import { compileArgPattern } from '../src/effectors/settings.js';
import { makeMcpToolEffectors } from '../src/effectors/mcp.js';
import { makeNodeMcpPowers } from '../src/effectors/mcp-node-powers.js';
import { validateExecuteGrant } from '../src/effectors/process.js';
import { loadPolicyText, type PolicyProblem } from '../src/policy.js';
import { compileRegex, tryCompileRegex } from '../src/regex.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const problemsOf = (err: unknown) => (err as { details: { problems: PolicyProblem[] } }).details.problems;

test('the realm is locked down, and RE2 compiles and matches in it', t => {
  t.true(Object.isFrozen(RegExp.prototype) && Object.isFrozen(Array.prototype), 'lockdown() has run');
  const re = compileRegex('(a+)+b');
  t.true(re.fullMatch('aaab'));
  t.false(re.fullMatch('aaabc'), 'the whole text must match');
  t.true(re.search('xxaab!'), 'search finds a part');
  t.true(compileRegex('a|ab').fullMatch('ab'), 'alternation is anchored as a whole');
});

test('catastrophic backtracking: (a+)+b over a long run of a is decided by the real kernel', async t => {
  // Attack: a policy written with a nested quantifier; the agent sends
  // `aaaa…c`. A backtracking engine takes time exponential in the length
  // (29 characters blocked the kernel for 26 s); RE2 answers at once.
  const policy = {
    version: 1,
    rules: [
      {
        id: 'tagged-echo',
        effect: 'permit',
        actions: ['TOOL'],
        targets: ['fx/echo'],
        when: { args: { arguments: { fields: { text: { pattern: '(a+)+b' } } } } },
      },
    ],
  };
  const calls: unknown[] = [];
  const { kernel } = makeTestKernel({
    policy,
    effectors: {
      TOOL: async ctx => {
        calls.push(ctx.args);
        return { content: [], isError: false };
      },
    },
  });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'echo', actionType: ActionType.TOOL, target: 'fx/echo', holder: 'a' }));
  const call = (text: string) =>
    kernel.execute(new ActionRequest({ capabilityId: 'echo', agentId: 'a', actionType: ActionType.TOOL, target: 'fx/echo', args: { arguments: { text } } }), 'api');
  const hostile = await call(`${'a'.repeat(4000)}c`);
  t.false(hostile.ok);
  t.is(hostile.error?.code, 'ZT_ARGUMENT_DENIED');
  const short = await call(`${'a'.repeat(28)}c`);
  t.is(short.error?.code, 'ZT_ARGUMENT_DENIED');
  const fine = await call('aaab');
  t.true(fine.ok);
  t.is(calls.length, 1, 'only the matching call reached the effector');
});

const withPattern = (pattern: string) => `version: 1
rules:
  - id: guarded
    effect: permit
    actions: [TOOL]
    targets: ['fs/read_file']
    when:
      args:
        q: { pattern: '${pattern}' }
`;

for (const [name, pattern, reason] of [
  ['lookbehind', '(?<=secret)x', /lookbehind/],
  ['negative lookbehind', '(?<!a)b', /lookbehind/],
  ['lookahead', '(?=.*admin).*', /lookahead/],
  ['backreference', '(a)\\1', /backreference/],
  ['named backreference', '(?<n>a)\\k<n>', /backreference/],
] as const) {
  test(`a ${name} is refused at load with ZT_POLICY_INVALID, line and column`, t => {
    const err = t.throws(() => loadPolicyText(withPattern(pattern), sha, canonicalJson));
    t.is(codeOf(err), 'ZT_POLICY_INVALID');
    const [problem] = problemsOf(err);
    t.is(problem?.pointer, '/rules/0/when/args/q/pattern');
    t.is(problem?.line, 9);
    t.is(problem?.column, 23, 'the column of the quoted pattern');
    t.regex(problem?.message ?? '', reason);
    t.regex(problem?.message ?? '', /RE2/);
  });
}

test('RE2 syntax that JavaScript spells differently is refused, never reinterpreted', t => {
  const attempt = tryCompileRegex('\\u0041');
  t.true('problem' in attempt);
  t.true(compileRegex('\\x{41}').fullMatch('A'));
  t.true(compileRegex('\\p{L}+').fullMatch('héllo'));
});

test('effector settings: {regex} argument patterns and argvRegex run on RE2, lookaround refused', t => {
  const nested = compileArgPattern({ regex: '(a+)+b' }, 'args[0]');
  t.false(nested.matches(`${'a'.repeat(10_000)}c`));
  t.true(nested.matches('aab'));
  t.is(codeOf(t.throws(() => compileArgPattern({ regex: '(?<=x)y' }, 'args[0]'))), 'ZT_BAD_ARGUMENT');
  t.is(codeOf(t.throws(() => validateExecuteGrant('/bin/echo', { effect: { argvRegex: '(a)\\1' } }))), 'ZT_BAD_ARGUMENT');
  t.notThrows(() => validateExecuteGrant('/bin/echo', { effect: { argvRegex: '(a+)+b' } }));
});

test('MCP input schemas: a narrowing `pattern` RE2 refuses is refused at grant', t => {
  const tool = makeMcpToolEffectors({ servers: { fx: { command: '/nonexistent/never-started' } }, powers: makeNodeMcpPowers() });
  t.teardown(tool.close);
  const narrowing = (pattern: string) => ({ effect: { inputSchema: { type: 'object', properties: { text: { type: 'string', pattern } } } } });
  t.notThrows(() => tool.validateGrant('fx/echo', narrowing('^(a+)+b$')));
  t.is(codeOf(t.throws(() => tool.validateGrant('fx/echo', narrowing('(?<!x)y')))), 'ZT_BAD_ARGUMENT');
});
