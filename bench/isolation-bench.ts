/**
 * Isolation figures, worker and process vats measured in the same run so
 * the ratios mean something on a shared machine:
 * - cold start: vat started → its first CapTP answer (lockdown done, channel up);
 * - call round trip: kernel → vat → kernel CapTP call (`probe`, which answers
 *   after the vat's current macrotask).
 * Goals: process cold start ≤ 2× worker; round trip ≤ 1.5× worker.
 * Runnable alone: `node dist/bench/isolation-bench.js`.
 */
import '../src/init.js';
import { makeCapTP } from '@endo/captp';
import { E, Far } from '@endo/far';
import { makeNodeVatHostPowers } from '../src/node-powers.js';
import { makeProcessVatStarter } from '../src/isolation/process-vat-node-powers.js';
import type { WorkerLike } from '../src/vat-host.js';

type Kind = 'worker' | 'process';

const stats = (samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), mean: sorted.reduce((s, x) => s + x, 0) / sorted.length };
};

const connect = (worker: WorkerLike) => {
  const captp = makeCapTP('bench-kernel', m => worker.postMessage(m), Far('KernelFacet', { log: () => undefined }), { onReject: () => undefined });
  worker.on('message', m => captp.dispatch(m as Record<string, unknown>));
  return { root: captp.getBootstrap() as Promise<{ probe(): Promise<unknown> }>, close: async () => {
    captp.abort();
    await worker.terminate();
  } };
};

export const runIsolationBench = async (opts: { coldRuns?: number; roundTrips?: number } = {}) => {
  const coldRuns = opts.coldRuns ?? 10;
  const roundTrips = opts.roundTrips ?? 1000;
  const workers = makeNodeVatHostPowers();
  const processes = makeProcessVatStarter();
  const start = (kind: Kind): WorkerLike => (kind === 'worker' ? workers.startAgentWorker({ memoryMb: 64 }) : processes.start({ memoryMb: 64 }));

  const cold: Record<Kind, number[]> = { worker: [], process: [] };
  for (let i = 0; i < coldRuns + 1; i += 1) {
    for (const kind of ['worker', 'process'] as const) {
      const t0 = performance.now();
      const vat = connect(start(kind));
      await E(vat.root).probe();
      const ms = performance.now() - t0;
      await vat.close();
      if (i > 0) cold[kind].push(ms); // the first run warms the file cache
    }
  }
  const trip: Record<Kind, number[]> = { worker: [], process: [] };
  for (const kind of ['worker', 'process'] as const) {
    const vat = connect(start(kind));
    for (let i = 0; i < roundTrips + 100; i += 1) {
      const t0 = performance.now();
      await E(vat.root).probe();
      if (i >= 100) trip[kind].push((performance.now() - t0) * 1000);
    }
    await vat.close();
  }
  const results = {
    'worker vat cold start (ms)': stats(cold.worker),
    'process vat cold start (ms)': stats(cold.process),
    'worker vat call round trip (µs)': stats(trip.worker),
    'process vat call round trip (µs)': stats(trip.process),
  };
  const ratios = {
    'process / worker cold start (p50)': results['process vat cold start (ms)'].p50 / results['worker vat cold start (ms)'].p50,
    'process / worker round trip (p50)': results['process vat call round trip (µs)'].p50 / results['worker vat call round trip (µs)'].p50,
  };
  return { results, ratios, goals: { 'process / worker cold start (p50)': 2, 'process / worker round trip (p50)': 1.5 } };
};
harden(runIsolationBench);

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(process.argv[1], 'file:///').href;
if (isMain) {
  const { results, ratios, goals } = await runIsolationBench();
  for (const [name, s] of Object.entries(results)) console.log(`${name.padEnd(36)} p50 ${s.p50.toFixed(1).padStart(8)}  p99 ${s.p99.toFixed(1).padStart(8)}  n ${s.n}`);
  for (const [name, r] of Object.entries(ratios)) console.log(`${name.padEnd(36)} ${r.toFixed(2)}×  (goal ≤ ${goals[name as keyof typeof goals]}×)`);
}
