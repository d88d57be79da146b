/**
 * Flood figures: what one hostile vat costs everyone else, measured in the
 * same run with and without it.
 *
 * - another agent's call latency: a bystander vat times sequential reads
 *   through its own capability (timed in its start realm: agents have no
 *   clock);
 * - the operator's `execute` latency, timed in the kernel's thread;
 * - the flooder's deadline: how late after it the kernel ended the run,
 *   and how late the end was durable in the audit log.
 *
 * The flooder is the test-only compromised shell (dist/test/
 * _compromised-worker-main.js), replaying one captured call raw on the
 * wire: 30,000 at once, then 200 every 10 ms, until its deadline.
 * The kernel writes to the real audit vat (durable). Goal: both ratios
 * within a small factor. Runnable alone: `node dist/bench/flood-bench.js`.
 */
import '../src/init.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { loadAgentBundle } from '../src/agent-modules.js';
import { startAuditVat } from '../src/audit/audit-client.js';
import { makeReadEffector } from '../src/effectors/files.js';
import { makeNodeFileEffectorPowers } from '../src/effectors/files-node-powers.js';
import { resolveFailureModes } from '../src/failure-modes.js';
import { makeKernel } from '../src/kernel.js';
import { makeNodeKernelPowers, makeNodeModulePowers } from '../src/node-powers.js';
import { CAPABILITY_CEILING_POLICY } from '../src/policy.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';
import { DEFAULT_VAT_LIMITS, makeVatHost } from '../src/vat-host.js';
import { compromisedVatPowers, replayFlood } from '../test/_compromised.js';

const stats = (samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), mean: sorted.reduce((s, x) => s + x, 0) / sorted.length };
};

const TIMED_READS = (cap: string, count: number) => `
  const samples = [];
  for (let i = 0; i < ${count}; i += 1) {
    const start = performance.now();
    await h.E(h.caps['${cap}']).invoke('read', []);
    samples.push((performance.now() - start) * 1000);
  }
  return { status: 'returned', value: samples };
`;

export const runFloodBench = async (opts: { reads?: number; operatorCalls?: number; deadlineMs?: number } = {}) => {
  const reads = opts.reads ?? 300;
  const operatorCalls = opts.operatorCalls ?? 300;
  const deadlineMs = opts.deadlineMs ?? 6_000;
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-flood-'));
  const file = join(dir, 'data.txt');
  writeFileSync(file, 'data');
  const audit = startAuditVat({ dir: join(dir, 'audit'), durability: 'durable', timeoutMs: 10_000 });
  await audit.ready();
  const kernel = makeKernel({
    powers: makeNodeKernelPowers(),
    audit,
    policy: CAPABILITY_CEILING_POLICY,
    effectors: { READ: makeReadEffector(makeNodeFileEffectorPowers()) },
    failureModes: resolveFailureModes({}),
    maxBytes: 1024 * 1024,
  });
  const vats = makeVatHost({ kernel, powers: compromisedVatPowers(), failureModes: resolveFailureModes({}) });
  const bundle = await loadAgentBundle(makeNodeModulePowers(), new URL('../../test/fixtures/agents/echo/', import.meta.url).pathname.replace(/\/$/, ''));
  let n = 0;
  const grant = (agentId: string) => {
    kernel.registerAgent(agentId);
    kernel.issueCapability(new Capability({ id: `${agentId}-file`, actionType: ActionType.READ, target: file, holder: agentId }));
    return `${agentId}-file`;
  };
  const launch = (agentId: string, cap: string, attack: string, limits = {}) =>
    vats.launch({ agentId, bundle, capabilityIds: [cap], input: harden({ attack }), limits: { ...DEFAULT_VAT_LIMITS, ...limits } });

  /** Bystander call latencies (µs), operator execute latencies (µs), and the kernel thread's event-loop delay (ms). */
  const measure = async () => {
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    n += 1;
    const cap = grant(`bystander-${n}`);
    const op = grant(`operator-${n}`);
    const bystander = launch(`bystander-${n}`, cap, TIMED_READS(cap, reads));
    const request = new ActionRequest({ capabilityId: op, agentId: `operator-${n}`, actionType: ActionType.READ, target: file });
    const operator: number[] = [];
    for (let i = 0; i < operatorCalls; i += 1) {
      const start = performance.now();
      const outcome = await kernel.execute(request, 'api');
      if (!outcome.ok) throw Error(`operator call failed: ${outcome.error?.code}`);
      operator.push((performance.now() - start) * 1000);
    }
    const outcome = await bystander.result;
    loop.disable();
    if (!outcome.ok) throw Error(`bystander failed: ${outcome.error?.code}`);
    const loopDelayMs = { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 };
    return { bystander: stats(outcome.value as number[]), operator: stats(operator), loopDelayMs };
  };

  const quiet = await measure();
  const floodCap = grant('flooder');
  const launchedAt = performance.now();
  const flooder = launch('flooder', floodCap, replayFlood(`E(caps['${floodCap}']).invoke('read', [])`, 30_000, 200), { deadlineMs });
  // When the kernel ended the run (its deadline timer fired), watched from launch on.
  const fired = (async () => {
    while (vats.isRunning('flooder')) await new Promise(resolve => setTimeout(resolve, 2));
    return performance.now() - launchedAt - deadlineMs;
  })();
  // Let the burst land before measuring.
  await new Promise(resolve => setTimeout(resolve, 300));
  const flooded = await measure();
  const firedLateMs = await fired;
  const ended = await flooder.result;
  const lateMs = performance.now() - launchedAt - deadlineMs;
  await kernel.flush().catch(() => undefined);
  await vats.terminateAll('bench done');
  await kernel.shutdown();
  await audit.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    quiet,
    flooded,
    flooderCode: ended.error?.code,
    deadlineFiredLateMs: firedLateMs,
    deadlineRecordedLateMs: lateMs,
    ratios: {
      'bystander call, flooded / quiet (p50)': flooded.bystander.p50 / quiet.bystander.p50,
      'bystander call, flooded / quiet (p99)': flooded.bystander.p99 / quiet.bystander.p99,
      'operator execute, flooded / quiet (p50)': flooded.operator.p50 / quiet.operator.p50,
      'operator execute, flooded / quiet (p99)': flooded.operator.p99 / quiet.operator.p99,
    },
  };
};

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await runFloodBench();
  console.log(JSON.stringify(r, null, 2));
  process.exit(0);
}
