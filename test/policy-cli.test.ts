/**
 * `ztaas policy check | explain | schema`, run in-process through
 * `policyCommand` with captured output.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { test } from './_prepare.js';
import { codeOf } from '../src/errors.js';
import { POLICY_USAGE, policyCommand } from '../src/cli/policy.js';

const file = (name: string) => fileURLToPath(new URL(`../../test/fixtures/policy/${name}`, import.meta.url));

const run = async (sub: string | undefined, args: string[]) => {
  let out = '';
  let err = '';
  const status = await policyCommand(sub, args, {
    out: s => {
      out += s;
    },
    err: s => {
      err += s;
    },
    readText: path => readFile(path, 'utf8'),
  });
  return { status, out, err };
};

test('usage names every subcommand; an unknown subcommand exits 2', async t => {
  for (const sub of ['check', 'explain', 'schema']) t.true(POLICY_USAGE.includes(`ztaas policy ${sub}`));
  t.is((await run('frobnicate', [])).status, 2);
  t.is((await run(undefined, [])).status, 2);
});

test('check: a valid policy passes with its hash and no warnings', async t => {
  const { status, out } = await run('check', [file('example.yaml')]);
  t.is(status, 0);
  t.regex(out, /example\.yaml: valid policy, 5 rules, sha256:[0-9a-f]{64}, 0 warnings/);
});

test('check: an invalid policy lists every problem with file:line:column and exits 1', async t => {
  const { status, out } = await run('check', [file('invalid.yaml')]);
  t.is(status, 1);
  const lines = out.trim().split('\n');
  t.is(lines.length, 7);
  t.regex(lines[0] ?? '', /invalid\.yaml:7:15: error: \/rules\/1\/actions\/0: must be one of/);
  t.true(lines.some(l => /invalid\.yaml:1:10: error: \/version: must be 1$/.test(l)));
  t.regex(lines[6] ?? '', /invalid policy, 6 problems; nothing of it would be loaded/);
});

test('check: warnings for broad grants, shadowed permits and rules that never match, located in a JSON file; --strict fails on them', async t => {
  const { status, out } = await run('check', [file('broad.json')]);
  t.is(status, 0);
  t.regex(out, /broad\.json:4:\d+: warning: \/rules\/0\/targets: permits WRITE anywhere in the file system/);
  t.regex(out, /broad\.json:5:\d+: warning: \/rules\/1\/targets\/0: permits NETWORK to every host under \.com/);
  t.regex(out, /broad\.json:6:\d+: warning: \/rules\/2: is shadowed by forbid "no-etc"/);
  t.regex(out, /broad\.json:8:\d+: warning: \/rules\/4\/when: can never match/);
  t.is((await run('check', [file('broad.json'), '--strict'])).status, 1);
  const json = JSON.parse((await run('check', [file('broad.json'), '--json'])).out) as { valid: boolean; warnings: unknown[] };
  t.true(json.valid);
  t.is(json.warnings.length, 4);
});

test('check: a missing file and bad arguments fail with codes', async t => {
  await t.throwsAsync(run('check', [file('nope.yaml')]), { message: /^ZT_NOT_FOUND\b/ });
  await t.throwsAsync(run('check', []), { message: /^ZT_BAD_ARGUMENT\b/ });
});

test('explain: the decision, its deciding rules, and each rule\'s part', async t => {
  const { status, out } = await run('explain', [file('example.yaml'), '--agent', 'bot', '--action', 'NETWORK', '--target', 'https://api.example.com/v1/x', '--args', '{"method":"GET"}', '--taint', 'secrets', '--rate', '60000=1']);
  t.is(status, 0);
  t.regex(out, /^decision: DENY \(ZT_POLICY_DENIED\)  rules: no-exfiltration$/m);
  t.regex(out, /^policy: sha256:[0-9a-f]{64}$/m);
  t.regex(out, /permit call-api\s+matches/);
  t.regex(out, /forbid no-exfiltration\s+matches/);
  t.regex(out, /permit read-data\s+not for this action type/);
  const limited = await run('explain', [file('example.yaml'), '--agent', 'bot', '--action', 'NETWORK', '--target', 'https://api.example.com/v1/x', '--args', '{"method":"GET"}', '--rate', '60000=10']);
  t.regex(limited.out, /^decision: DENY \(ZT_RATE_LIMITED\)  rules: call-api$/m);
  t.regex(limited.out, /condition fails at \/rules\/3\/when\/rate \(ZT_RATE_LIMITED\)/);
  const noContext = await run('explain', [file('example.yaml'), '--agent', 'bot', '--action', 'READ', '--target', '/data/../data/x.csv']);
  t.regex(noContext.out, /^decision: DENY \(ZT_POLICY_ERROR\)  rules: read-data$/m);
  t.regex(noContext.out, /request: agent bot, READ \/data\/x\.csv \(no context/);
  const taints = await run('explain', [file('example.yaml'), '--agent', 'bot', '--action', 'READ', '--target', '/data/secrets/k', '--label', 'analyst', '--json']);
  const parsed = JSON.parse(taints.out) as { decision: { allowed: boolean }; taints: string[] };
  t.true(parsed.decision.allowed);
  t.deepEqual(parsed.taints, ['secrets']);
});

test('explain --grant: the issue-time decision', async t => {
  const ok = await run('explain', [file('example.yaml'), '--grant', '--agent', 'a', '--action', 'READ', '--target', '/data/**', '--label', 'analyst']);
  t.regex(ok.out, /^issue-time decision: GRANTABLE  rules: read-data$/m);
  const refused = await run('explain', [file('example.yaml'), '--grant', '--agent', 'a', '--action', 'WRITE', '--target', '/etc/**']);
  t.regex(refused.out, /^issue-time decision: REFUSED \(ZT_POLICY_DENIED\)$/m);
});

test('explain: an invalid policy or request fails with its code', async t => {
  const err = await t.throwsAsync(run('explain', [file('invalid.yaml'), '--agent', 'a', '--action', 'READ', '--target', '/x']));
  t.is(codeOf(err), 'ZT_POLICY_INVALID');
  await t.throwsAsync(run('explain', [file('example.yaml'), '--agent', 'a', '--action', 'FLY', '--target', '/x']), { message: /^ZT_BAD_ARGUMENT\b/ });
  await t.throwsAsync(run('explain', [file('example.yaml'), '--agent', 'a', '--action', 'READ', '--target', 'relative']), { message: /^ZT_BAD_ARGUMENT\b/ });
  await t.throwsAsync(run('explain', [file('example.yaml'), '--agent', 'a', '--action', 'READ', '--target', '/x', '--args', '[1]']), { message: /^ZT_BAD_ARGUMENT\b/ });
});

test('schema prints the published JSON Schema', async t => {
  const { status, out } = await run('schema', []);
  t.is(status, 0);
  const published = JSON.parse(await readFile(fileURLToPath(new URL('../../docs/policy.schema.json', import.meta.url)), 'utf8')) as unknown;
  t.deepEqual(JSON.parse(out), published);
});
