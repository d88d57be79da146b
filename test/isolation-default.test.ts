/**
 * The default isolation level: an agent whose launch names no level runs in
 * a sandboxed process; where the machine cannot establish one, the launch
 * fails closed, saying what to install, and only an operator who names
 * `worker` gets a worker vat.
 */
import { test } from './_prepare.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { harden } from '../src/harden.js';
import { makeSandbox } from '../src/sandbox.js';
import { makeNodeSandboxPowers } from '../src/sandbox-node-powers.js';
import type { IsolationProbe, LevelReport } from '../src/isolation/process-vat.js';

const fixtureAgent = (name: string) => fileURLToPath(new URL(`../../test/fixtures/agents/${name}`, import.meta.url));

const level = (available: boolean): LevelReport =>
  available
    ? { available, missing: [], fixes: [], details: {} }
    : { available, missing: ['bwrap (Debian package bubblewrap)'], fixes: ['install bubblewrap (`apt-get install bubblewrap`)'], details: {} };

/** A machine without bubblewrap, as the probe would report it. */
const noBubblewrap: IsolationProbe = harden({ platform: 'linux', arch: 'x64', node: process.version, worker: level(true), process: level(false), 'process-weak': level(true) });

const sandboxOn = async (t: { teardown(fn: () => Promise<void> | void): void }, probe: IsolationProbe | undefined, options: { isolation?: 'worker' | 'process' } = {}) => {
  const dir = await mkdtemp(join(tmpdir(), 'ztaas-isolation-default-'));
  const node = makeNodeSandboxPowers();
  const sandbox = makeSandbox(probe ? harden({ ...node, probeIsolation: async () => probe }) : node, { storeDir: join(dir, 'store'), ...options });
  t.teardown(async () => {
    await sandbox.shutdown();
    await rm(dir, { recursive: true, force: true });
  });
  sandbox.registerAgent('a');
  return sandbox;
};

type Sandbox = ReturnType<typeof makeSandbox>;
const recordsOf = async (sandbox: Sandbox): Promise<Array<Record<string, unknown>>> => {
  await sandbox.flush();
  return (await sandbox.auditRead(0, await sandbox.auditSize())) as Array<Record<string, unknown>>;
};

test('a launch that names no level runs in a process vat, and the record says so', async t => {
  const sandbox = await sandboxOn(t, undefined);
  const run = await sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), input: 7 });
  const outcome = await run.result;
  t.deepEqual(outcome.value, { echoed: 7 });
  const records = await recordsOf(sandbox);
  t.deepEqual(
    records.filter(r => r.type === 'agent.launched').map(r => r.isolation),
    ['process'],
  );
});

test('without bubblewrap, a launch that names no level fails closed with ZT_ISOLATION_UNAVAILABLE saying what to install, and is recorded', async t => {
  const sandbox = await sandboxOn(t, noBubblewrap);
  const err = await t.throwsAsync(() => sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('echo') }), { code: 'ZT_ISOLATION_UNAVAILABLE' });
  t.regex(String(err?.message), /isolation level process cannot be established.*missing bwrap.*apt-get install bubblewrap/);
  const records = await recordsOf(sandbox);
  const failed = records.filter(r => r.type === 'agent.launch-failed');
  t.is(failed.length, 1);
  t.like(failed[0], { agentId: 'a', isolation: 'process', code: 'ZT_ISOLATION_UNAVAILABLE' });
  t.false(records.some(r => r.type === 'agent.launched'));
});

test('an operator who names worker, for the runtime or for one launch, gets a worker vat on the same machine', async t => {
  const named = await sandboxOn(t, noBubblewrap, { isolation: 'worker' });
  t.deepEqual((await (await named.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), input: 1 })).result).value, { echoed: 1 });
  const perLaunch = await sandboxOn(t, noBubblewrap);
  t.deepEqual((await (await perLaunch.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), input: 2, isolation: 'worker' })).result).value, { echoed: 2 });
  for (const sandbox of [named, perLaunch]) {
    const records = await recordsOf(sandbox);
    t.deepEqual(records.filter(r => r.type === 'agent.launched').map(r => r.isolation), ['worker']);
  }
});

test('an isolation option that is not a level is refused with ZT_BAD_ARGUMENT', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ztaas-isolation-default-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const isolation of ['container', '', 1, null]) {
    t.throws(() => makeSandbox(makeNodeSandboxPowers(), { storeDir: join(dir, 'store'), isolation } as never), { code: 'ZT_BAD_ARGUMENT', message: /isolation must be one of worker, process, process-weak/ });
  }
});
