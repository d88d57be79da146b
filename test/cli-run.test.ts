/**
 * `ztaas run`: an agent module from the shell, with grants named on the
 * command line and a policy file; its result, a short audit summary, and an
 * exit code by outcome. Runs the real CLI as a process.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseGrants } from '../src/cli/run.js';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(repo, 'dist/src/cli.js');
const BENIGN = join(repo, 'examples/agents/benign');

const ztaas = async (...args: string[]) => {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
};

const workspace = (t: { teardown(fn: () => void): void }) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-run-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'data'));
  mkdirSync(join(dir, 'out'));
  writeFileSync(join(dir, 'data', 'q3.txt'), 'revenue grew in every region this quarter\n');
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1\nrules:\n  - { id: read-reports, effect: permit, actions: [READ], targets: ['${dir}/data/**'] }\n  - { id: write-summaries, effect: permit, actions: [WRITE], targets: ['${dir}/out/**'] }\n`,
  );
  return dir;
};

test('grants on the command line: [name=]kind:target, names defaulted and numbered, mistakes named', t => {
  t.deepEqual(parseGrants(['read:/a/**', 'read:/b', 'out=write:/o.txt']), [
    { name: 'read', actionType: 'READ', target: '/a/**' },
    { name: 'read2', actionType: 'READ', target: '/b' },
    { name: 'out', actionType: 'WRITE', target: '/o.txt' },
  ]);
  for (const bad of ['raed:/x', 'read', 'x=read:/a', '1x=read:/a']) {
    const err = bad === 'x=read:/a' ? undefined : t.throws(() => parseGrants([bad]));
    if (err) t.is((err as { code?: string }).code, 'ZT_BAD_ARGUMENT', bad);
  }
  t.is((t.throws(() => parseGrants(['a=read:/x', 'a=write:/y'])) as { code?: string }).code, 'ZT_BAD_ARGUMENT', 'a name given twice');
});

test.serial('ztaas run: the benign agent reads its report and writes its summary under the policy; exit 0 and the audit summary', async t => {
  const dir = workspace(t);
  const r = await ztaas('run', BENIGN, '--policy', join(dir, 'policy.yaml'), '--grant', `report=read:${dir}/data/q3.txt`, '--grant', `summary=write:${dir}/out/summary.txt`, '--input', '{"title":"Q3"}', '--store', join(dir, 'store'), '--json');
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { outcome: { ok: boolean; value: { words: number; summary: string } }; audit: { requests: number; denied: unknown[]; rootHash: string } };
  t.true(out.outcome.ok);
  t.deepEqual(out.outcome.value, { words: 7, summary: 'Q3: 7 words' });
  t.is(readFileSync(join(dir, 'out', 'summary.txt'), 'utf8'), 'Q3: 7 words\n');
  t.is(out.audit.requests, 2);
  t.deepEqual(out.audit.denied, []);
  t.regex(out.audit.rootHash, /^[0-9a-f]{64}$/);
});

test.serial('ztaas run: a grant the policy would never permit is refused at issue; a run that fails exits 1 with its code and denials listed', async t => {
  const dir = workspace(t);
  // The summary would go outside /out: the policy never permits that grant, so it is not issued.
  const refused = await ztaas('run', BENIGN, '--policy', join(dir, 'policy.yaml'), '--grant', `report=read:${dir}/data/q3.txt`, '--grant', `summary=write:${dir}/data/summary.txt`, '--store', join(dir, 'store'), '--isolation', 'worker');
  t.is(refused.code, 1);
  t.regex(refused.stderr, /ZT_POLICY_DENIED: the policy would never permit WRITE/);
  // The report does not exist: the agent's read fails, the run fails.
  const failed = await ztaas('run', BENIGN, '--policy', join(dir, 'policy.yaml'), '--grant', `report=read:${dir}/data/q4.txt`, '--grant', `summary=write:${dir}/out/summary.txt`, '--input', '{"title":"Q4"}', '--store', join(dir, 'store'), '--isolation', 'worker');
  t.is(failed.code, 1);
  t.regex(failed.stdout, /^failed: ZT_AGENT_REJECTED/m);
  t.regex(failed.stdout, /1 request, 0 denied/);
  const bad = await ztaas('run', BENIGN, '--grant', 'raed:/x');
  t.is(bad.code, 1);
  t.regex(bad.stderr, /ZT_BAD_ARGUMENT: --grant "raed:\/x": unknown kind/);
});

test('ztaas run: an invalid policy file is refused with every problem listed at its line and column', async t => {
  const dir = workspace(t);
  writeFileSync(join(dir, 'bad.yaml'), 'version: 1\nrules:\n  - { id: x, effect: permt }\n');
  const r = await ztaas('run', BENIGN, '--policy', join(dir, 'bad.yaml'), '--store', join(dir, 'store'));
  t.is(r.code, 1);
  t.regex(r.stderr, /ZT_POLICY_INVALID/);
  t.regex(r.stderr, /^ {2}- 3:\d+ \/rules\/0\/effect: must be one of/m);
});

test.serial('ztaas run --code FILE: a TypeScript file runs as submitted code under the same grants and policy; its console, result, denials and exit 0', async t => {
  const dir = workspace(t);
  writeFileSync(join(dir, 'data', 'secret.txt'), 'not for the code\n');
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1\nrules:\n  - { id: read-reports, effect: permit, actions: [READ], targets: ['${dir}/data/**'] }\n  - { id: no-secrets, effect: forbid, targets: ['${dir}/data/secret*'] }\n`,
  );
  writeFileSync(
    join(dir, 'summarise.ts'),
    [
      'const text: string = await E(caps.reports).read({ path: input.report });',
      'let refused: string = "no";',
      'try { await E(caps.reports).read({ path: input.secret }); } catch (err) { refused = String((err as Error).message).slice(0, 16); }',
      'console.log("words:", text.trim().split(/\\s+/).length);',
      'return { words: text.trim().split(/\\s+/).length, refused };',
      '',
    ].join('\n'),
  );
  const args = ['run', '--code', join(dir, 'summarise.ts'), '--policy', join(dir, 'policy.yaml'), '--grant', `reports=read:${dir}/data/*.txt`, '--input', JSON.stringify({ report: `${dir}/data/q3.txt`, secret: `${dir}/data/secret.txt` }), '--store', join(dir, 'store'), '--isolation', 'worker'];
  const r = await ztaas(...args);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^console\.log: words: 7$/m);
  t.regex(r.stdout, /"refused": "ZT_POLICY_DENIED"/);
  t.regex(r.stdout, /^run cli-agent#\d+: 2 requests, 1 denied/m);
  t.regex(r.stdout, /denied #\d+ READ .*secret\.txt: ZT_POLICY_DENIED \(rule: no-secrets\)/);
  const json = await ztaas(...args, '--json');
  t.is(json.code, 0, json.stderr);
  const out = JSON.parse(json.stdout) as { runId: string; outcome: { ok: boolean; mode: string; value: unknown; console: unknown[]; runId: string }; audit: { requests: number } };
  t.like(out.outcome, { ok: true, mode: 'script', value: { words: 7, refused: 'ZT_POLICY_DENIED' }, console: [{ level: 'log', text: 'words: 7' }] });
  t.is(out.runId, out.outcome.runId);
  t.is(out.audit.requests, 2);
});

test.serial('ztaas run --code FILE: a syntax error prints ZT_CODE_SYNTAX with its line and column, exit 1, nothing run; a throw exits 1 with its position', async t => {
  const dir = workspace(t);
  writeFileSync(join(dir, 'broken.js'), 'const x = 1;\nconst y = (;\nreturn x;\n');
  const broken = await ztaas('run', '--code', join(dir, 'broken.js'), '--store', join(dir, 'store'), '--isolation', 'worker');
  t.is(broken.code, 1);
  t.regex(broken.stdout, /^failed: ZT_CODE_SYNTAX: .*\(line 2, column 12\)$/m);
  t.regex(broken.stdout, /^run \(refused before it started\): 0 requests/m);
  t.false((/^failed: .*$/m.exec(broken.stdout)?.[0] ?? '').includes(dir), 'the error names no host path');
  // TypeScript by the extension: a type annotation in a .js file is a syntax error, in a .ts file it is erased.
  writeFileSync(join(dir, 'typed.js'), 'const n: number = 1;\nreturn n;\n');
  writeFileSync(join(dir, 'typed.ts'), 'const n: number = 1;\nreturn n;\n');
  const asJs = await ztaas('run', '--code', join(dir, 'typed.js'), '--store', join(dir, 'store'), '--isolation', 'worker');
  t.is(asJs.code, 1);
  t.regex(asJs.stdout, /^failed: ZT_CODE_SYNTAX: .*\(line 1, column \d+\)$/m);
  const asTs = await ztaas('run', '--code', join(dir, 'typed.ts'), '--store', join(dir, 'store'), '--isolation', 'worker');
  t.is(asTs.code, 0, asTs.stdout + asTs.stderr);
  t.regex(asTs.stdout, /^result: 1$/m);
  writeFileSync(join(dir, 'throws.js'), 'await null;\nthrow new Error("no report today");\n');
  const threw = await ztaas('run', '--code', join(dir, 'throws.js'), '--store', join(dir, 'store'), '--isolation', 'worker');
  t.is(threw.code, 1);
  t.regex(threw.stdout, /^failed: ZT_AGENT_REJECTED: no report today \(line 2, column \d+\)$/m);
  const both = await ztaas('run', BENIGN, '--code', join(dir, 'throws.js'));
  t.is(both.code, 1);
  t.regex(both.stderr, /ZT_BAD_ARGUMENT: ztaas run takes an agent module or --code FILE, not both/);
  const missing = await ztaas('run', '--code', join(dir, 'nowhere.js'));
  t.is(missing.code, 1);
  t.regex(missing.stderr, /ZT_BAD_ARGUMENT: --code .*cannot read the file \(ENOENT\)/);
});
