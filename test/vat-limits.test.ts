/**
 * Per-vat budgets through the operator's API: defaults, per-launch
 * settings, and bad values refused with a code before any vat starts. The
 * host realm stays ordinary (the kernel runs in its own vat).
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SandboxRuntime } from '../src/index.js';

const fixtureAgent = (name: string) => fileURLToPath(new URL(`../../test/fixtures/agents/${name}`, import.meta.url));

test('launchAgent limits: an unknown name or a value that is not a positive integer is refused with ZT_BAD_ARGUMENT; a good one is recorded', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ztaas-limits-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('a');
  for (const limits of [{ callsInFlight: 0 }, { auditBytes: -1 }, { callsPerSecond: 1.5 }, { messageBytes: '9' }, { callsInFlite: 4 }, { queuedBytes: 10, messageBytes: 100 }, 'many']) {
    await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), input: 1, limits: limits as never }), { code: 'ZT_BAD_ARGUMENT' } as never, JSON.stringify(limits));
  }
  const handle = await sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), input: 1, limits: { callsInFlight: 8, auditBytes: 65_536 } });
  t.is((await handle.result).status, 'completed');
  await sandbox.audit.flush();
  const size = await sandbox.audit.size();
  const records = (await sandbox.audit.read(0, size)) as Array<Record<string, unknown>>;
  const launched = records.find(r => r.type === 'agent.launched') as { limits: Record<string, number> };
  t.like(launched.limits, { callsInFlight: 8, auditBytes: 65_536, effectsInFlight: 8, callsPerSecond: 2_000, captpQuestions: 200_000 });
});

test('runtime limits: a bad budget refuses the runtime (ZT_BAD_ARGUMENT)', t => {
  t.throws(() => new SandboxRuntime({ limits: { callsInFlight: 0 } }), { code: 'ZT_BAD_ARGUMENT' } as never);
  t.throws(() => new SandboxRuntime({ limits: { nonsense: 1 } as never }), { code: 'ZT_BAD_ARGUMENT' } as never);
});
