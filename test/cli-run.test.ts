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
