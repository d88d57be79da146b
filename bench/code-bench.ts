/**
 * Code mode (#15): `runCode` latency for a trivial program (`return input +
 * 1;`), from the call to its answer (parse, admission, a vat, the run, the
 * `agent.finished` record):
 * - cold: a runtime without a pool, a vat started for every run, at the
 *   default level (`process`) and at `worker` (named), alternating run by
 *   run;
 * - warm: a runtime with `vatPoolSize` 2 and `isolation: 'worker'`, each run
 *   taking a started (and prewarmed) spare; the pool is given time to
 *   refill between runs, as an idle host would; alternating with
 *   `launchAgent` of the same program as an agent folder from the same
 *   pool (what code mode adds to a warm launch).
 * Goal: warm p50 ≤ 10 ms. Runnable alone: `node dist/bench/code-bench.js`
 * (`CODE_BENCH_N` runs per figure, default 40).
 */
import '../src/init.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SandboxRuntime } from '../src/index.js';

export const CODE_WARM_GOAL_MS = 10;
const SOURCE = 'return input + 1;';

const stats = (samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), mean: sorted.reduce((s, x) => s + x, 0) / sorted.length };
};
export type CodeBenchStats = ReturnType<typeof stats>;

export interface CodeBenchResult {
  /** Milliseconds, call → answer. */
  readonly coldProcess: CodeBenchStats;
  readonly coldWorker: CodeBenchStats;
  readonly warm: CodeBenchStats;
  /** `launchAgent` of the same program as an agent folder, from the same pool, alternating with the warm runs: what code mode adds. */
  readonly warmLaunch: CodeBenchStats;
  /** How many warm runs took a pooled vat (`agent.launched` says `warm: true`). */
  readonly warmFromPool: number;
  readonly goalMs: number;
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

const timedRun = async (sandbox: SandboxRuntime, input: number) => {
  const start = performance.now();
  const result = await sandbox.runCode({ agentId: 'coder', source: SOURCE, input });
  const took = performance.now() - start;
  if (!result.ok || result.value !== input + 1) throw Error(`runCode failed: ${JSON.stringify(result.error ?? result.value)}`);
  return { took, result };
};

export const runCodeBench = async ({ count = 40, warmup = 3, refillMs = 300 } = {}): Promise<CodeBenchResult> => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-code-bench-'));
  try {
    // Cold: a vat started per run, at both levels, alternating.
    const cold = {
      process: new SandboxRuntime({ storeDir: join(dir, 'cold-process'), durability: 'relaxed' }),
      worker: new SandboxRuntime({ storeDir: join(dir, 'cold-worker'), durability: 'relaxed', isolation: 'worker' }),
    };
    const coldSamples = { process: [] as number[], worker: [] as number[] };
    try {
      for (const sandbox of Object.values(cold)) sandbox.registerAgent('coder');
      for (let i = 0; i < count + warmup; i += 1) {
        for (const kind of ['process', 'worker'] as const) {
          const { took } = await timedRun(cold[kind], i);
          if (i >= warmup) coldSamples[kind].push(took);
        }
      }
    } finally {
      await Promise.all(Object.values(cold).map(s => s.shutdown()));
    }

    // Warm: a pooled worker vat per run.
    const pooled = new SandboxRuntime({ storeDir: join(dir, 'warm'), durability: 'relaxed', isolation: 'worker', vatPoolSize: 2 });
    const warmSamples: number[] = [];
    const launchSamples: number[] = [];
    const agentDir = join(dir, 'agent');
    mkdirSync(agentDir);
    writeFileSync(join(agentDir, 'index.js'), 'export default async function main({ input }) { return input + 1; }\n');
    const launchedSeqs: number[] = [];
    let warmFromPool = 0;
    try {
      pooled.registerAgent('coder');
      for (let i = 0; i < count + warmup; i += 1) {
        await sleep(refillMs); // let the pool refill (and its spares prewarm), as between two model turns
        const { took, result } = await timedRun(pooled, i);
        if (i >= warmup) {
          warmSamples.push(took);
          if (result.audit.launched) launchedSeqs.push(result.audit.launched.seq);
        }
        await sleep(refillMs);
        const start = performance.now();
        const outcome = await (await pooled.launchAgent({ agentId: 'coder', module: agentDir, input: i })).result;
        if (!outcome.ok) throw Error(`launchAgent failed: ${outcome.error?.code}`);
        if (i >= warmup) launchSamples.push(performance.now() - start);
      }
      await pooled.audit.flush();
      const records = await pooled.audit.read(0, await pooled.audit.size());
      const seqs = new Set(launchedSeqs);
      warmFromPool = records.filter(r => seqs.has(r.seq as number) && r.type === 'agent.launched' && r.warm === true).length;
    } finally {
      await pooled.shutdown();
    }
    return { coldProcess: stats(coldSamples.process), coldWorker: stats(coldSamples.worker), warm: stats(warmSamples), warmLaunch: stats(launchSamples), warmFromPool, goalMs: CODE_WARM_GOAL_MS };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const count = Number(process.env.CODE_BENCH_N ?? 40);
  const r = await runCodeBench({ count });
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  for (const [name, s] of [
    ['runCode cold, process (the default), a vat per run', r.coldProcess],
    ['runCode cold, worker (named), a vat per run', r.coldWorker],
    ['runCode warm, worker, pooled vat (vatPoolSize 2)', r.warm],
    ['launchAgent warm, the same program as a folder, same pool', r.warmLaunch],
  ] as const) {
    console.log(`${name.padEnd(58)} p50 ${ms(s.p50).padStart(9)}  p99 ${ms(s.p99).padStart(9)}  n ${s.n}  p50/goal ${(s.p50 / r.goalMs).toFixed(2)}×`);
  }
  console.log(`warm runs that took a pooled vat: ${r.warmFromPool}/${r.warm.n}; goal warm p50 ≤ ${r.goalMs} ms: ${r.warm.p50 <= r.goalMs ? 'met' : 'NOT MET'}`);
}
