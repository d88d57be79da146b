/** The package as users consume it: by name, from plain ESM, and its CLI. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from './_prepare.js';
import { fixtureAgent, makeVatWorld } from './_vats.js';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../', import.meta.url));

test('plain ESM JavaScript imports the seed API from the package root', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-esm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { stdout } = await run(process.execPath, [join(repo, 'test/fixtures/plain-esm/seed.mjs'), dir], { env: {} });
  const outcome = JSON.parse(stdout) as { status: string; result: string; audit: { decision: { seq: number } } };
  t.is(outcome.status, 'succeeded');
  t.is(outcome.result, 'plain esm');
  t.is(typeof outcome.audit.decision.seq, 'number');
});

test('a runtime that is never shut down lets the process exit, with every record durable', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-exit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { stdout } = await run(process.execPath, [join(repo, 'test/fixtures/plain-esm/no-shutdown.mjs'), dir], { env: {}, timeout: 60_000 });
  t.is((JSON.parse(stdout) as { result: string }).result, 'no shutdown');
  const shown = await run(process.execPath, [join(repo, 'dist/src/cli.js'), 'audit', 'show', '--store', join(dir, 'store'), '--json']);
  const records = shown.stdout.trim().split('\n').map(line => JSON.parse(line) as Record<string, unknown>);
  t.like(records.at(-1), { type: 'agent.registered', agentId: 'registered-last' });
});

test('the ztaas CLI prints the audit log and refuses unknown commands', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await run(process.execPath, [join(repo, 'test/fixtures/plain-esm/seed.mjs'), dir], { env: {} });
  const cli = join(repo, 'dist/src/cli.js');
  const { stdout } = await run(process.execPath, [cli, 'audit', 'show', '--store', join(dir, 'store'), '--json', '--type', 'request']);
  const records = stdout.trim().split('\n').map(line => JSON.parse(line) as Record<string, unknown>);
  t.is(records.length, 1);
  t.like(records[0], { type: 'request', decision: 'allow', agentId: 'my-agent', capabilityId: 'read-file-cap' });
  const missing = await run(process.execPath, [cli, 'audit', 'show', '--store', join(dir, 'nowhere')]).catch((err: { code: number; stderr: string }) => err);
  t.is((missing as { code: number }).code, 1);
  t.regex((missing as { stderr: string }).stderr, /ZT_NOT_FOUND/);
  const unknown = await run(process.execPath, [cli, 'frobnicate']).catch((err: { code: number }) => err);
  t.is((unknown as { code: number }).code, 2);
});

test('an agent\'s console goes to the audit trail', async t => {
  const world = makeVatWorld();
  world.kernel.registerAgent('chatty');
  const outcome = await (await world.launch('chatty', fixtureAgent('chatty'))).result;
  t.is(outcome.value, 'done');
  await world.kernel.flush();
  const lines = world.sink.records.filter(r => r.type === 'agent.console').map(r => [r.level, r.text]);
  t.deepEqual(lines, [
    ['log', 'hello audit'],
    ['error', 'something odd [object Object]'],
  ]);
});
