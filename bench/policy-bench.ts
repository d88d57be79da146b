/**
 * Policy decision benchmark: decisions per second and p50/p99 latency of
 * the ZT-AAS policy engine (in-process, under SES lockdown) for generated
 * policies of 10, 100 and 1,000 rules, against the same decisions through
 * `@cedar-policy/cedar-wasm` (stateful, pre-parsed policy set) in a plain
 * child process in the same run, since cedar-wasm fails under lockdown.
 * Both engines must reach the same decision on every request; the bench
 * fails otherwise.
 *
 * Latencies are per decision, timed one by one with `performance.now()`,
 * minus the timer's own median cost (measured the same way in both
 * processes). Goal: p50 ≤ 1 µs at 100 rules and ≥ 50× faster than
 * cedar-wasm. Runnable alone: `node dist/bench/policy-bench.js`.
 */
import '../src/init.js';
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { canonicalJson } from '../src/audit/canonical.js';
import { sha256Hex } from '../src/node-powers.js';
import { makePolicy, type DecisionRequest, type PolicyRule } from '../src/policy.js';

interface GeneratedRequest {
  readonly agent: string;
  readonly action: 'READ' | 'WRITE';
  readonly path: string;
}

/** mulberry32: a small deterministic PRNG, so both engines and every run see the same workload. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
};

const AGENTS = 20;

/** Rule i: a permit for /data/d<i>/** (every tenth rule a forbid on the previous tree's secret/), for one agent or all, READ or WRITE. */
const generate = (n: number) => {
  const rules: PolicyRule[] = [];
  const cedarPolicies: string[] = [];
  for (let i = 0; i < n; i += 1) {
    const forbid = i % 10 === 9;
    const dir = forbid ? `/data/d${i - 1}/secret` : `/data/d${i}`;
    const agent = i % 3 === 0 ? undefined : `agent-${i % AGENTS}`;
    const action = i % 2 === 0 ? 'READ' : 'WRITE';
    rules.push({ id: `r${i}`, effect: forbid ? 'forbid' : 'permit', ...(agent ? { agents: [agent] } : {}), actions: [action], targets: [`${dir}/**`] });
    cedarPolicies.push(
      `@id("r${i}")\n${forbid ? 'forbid' : 'permit'}(principal${agent ? ` == Agent::"${agent}"` : ''}, action == Action::"${action}", resource) when { context.path == "${dir}" || context.path like "${dir}/*" };`,
    );
  }
  const random = prng(n);
  const requests: GeneratedRequest[] = [];
  for (let k = 0; k < 1000; k += 1) {
    const i = Math.floor(random() * n);
    const roll = random();
    const path = roll < 0.6 ? `/data/d${i}/f${k}.txt` : roll < 0.8 ? `/data/d${i - (i % 10 === 9 ? 1 : 0)}/secret/k${k}` : `/elsewhere/x${k}`;
    requests.push({ agent: `agent-${Math.floor(random() * AGENTS)}`, action: random() < 0.5 ? 'READ' : 'WRITE', path });
  }
  return { document: { version: 1 as const, rules }, cedar: cedarPolicies.join('\n'), requests };
};

const percentile = (sorted: readonly number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

const timerOverheadUs = () => {
  const samples: number[] = [];
  for (let i = 0; i < 20_000; i += 1) {
    const start = performance.now();
    samples.push((performance.now() - start) * 1000);
  }
  return percentile([...samples].sort((a, b) => a - b), 0.5);
};

const summarize = (samples: number[], overheadUs: number) => {
  const sorted = samples.map(s => Math.max(0, s - overheadUs)).sort((a, b) => a - b);
  return { p50Us: percentile(sorted, 0.5), p99Us: percentile(sorted, 0.99) };
};

const runCedar = (jobs: unknown[]): Promise<Array<{ decisions: boolean[]; samples: number[]; perSecond: number }>> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(new URL('./cedar-child.js', import.meta.url))], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.on('error', reject);
    child.on('close', code => {
      clearTimeout(timer);
      if (code !== 0) reject(Error(`cedar child exited with ${code}: ${err.slice(0, 500)}`));
      else resolve(JSON.parse(out) as Array<{ decisions: boolean[]; samples: number[]; perSecond: number }>);
    });
    child.stdin.end(JSON.stringify(jobs));
  });

export interface PolicyBenchRow {
  readonly name: string;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly perSecond: number;
}

export const runPolicyBench = async (opts: { sizes?: readonly number[]; samples?: number } = {}): Promise<PolicyBenchRow[]> => {
  const sizes = opts.sizes ?? [10, 100, 1000];
  const sampleCount = opts.samples ?? Number(process.env.BENCH_POLICY_SAMPLES ?? 200_000);
  const workloads = sizes.map(generate);
  const overhead = timerOverheadUs();

  const ours = workloads.map((w, wi) => {
    const policy = makePolicy(w.document, sha256Hex, canonicalJson);
    const requests: DecisionRequest[] = w.requests.map(r => harden({ agentId: r.agent, actionType: r.action, target: r.path }));
    const decisions = requests.map(r => policy.decide(r).allowed);
    for (let i = 0; i < 50_000; i += 1) policy.decide(requests[i % requests.length] as DecisionRequest);
    const samples: number[] = [];
    for (let i = 0; i < sampleCount; i += 1) {
      const req = requests[i % requests.length] as DecisionRequest;
      const start = performance.now();
      policy.decide(req);
      samples.push((performance.now() - start) * 1000);
    }
    const rounds = 200;
    const start = performance.now();
    for (let i = 0; i < requests.length * rounds; i += 1) policy.decide(requests[i % requests.length] as DecisionRequest);
    const perSecond = (requests.length * rounds) / ((performance.now() - start) / 1000);
    return { size: sizes[wi] as number, decisions, ...summarize(samples, overhead), perSecond };
  });

  const cedarResults = await runCedar(
    workloads.map((w, i) => ({ name: `bench-${sizes[i]}`, policies: w.cedar, requests: w.requests, samples: Math.min(sampleCount, 20_000), throughputRounds: 5 })),
  );

  const rows: PolicyBenchRow[] = [];
  ours.forEach((o, i) => {
    const c = cedarResults[i] as { decisions: boolean[]; samples: number[]; perSecond: number };
    const disagreements = o.decisions.filter((d, k) => d !== c.decisions[k]).length;
    if (disagreements > 0) throw Error(`the engines disagree on ${disagreements} of ${o.decisions.length} decisions at ${o.size} rules`);
    const cs = summarize(c.samples, overhead);
    rows.push({ name: `policy decision, ${o.size} rules (ZT-AAS, in-process, lockdown)`, p50Us: o.p50Us, p99Us: o.p99Us, perSecond: o.perSecond });
    rows.push({ name: `policy decision, ${o.size} rules (cedar-wasm, child process)`, p50Us: cs.p50Us, p99Us: cs.p99Us, perSecond: c.perSecond });
  });
  return harden(rows);
};
harden(runPolicyBench);

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const rows = await runPolicyBench();
  const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  console.log(`policy bench — node ${process.version}; same 1,000 requests per size; both engines agree on every decision\n`);
  console.log(`${'figure'.padEnd(62)}  ${'p50 µs'.padStart(8)}  ${'p99 µs'.padStart(8)}  ${'decisions/s'.padStart(12)}`);
  for (const r of rows) console.log(`${r.name.padEnd(62)}  ${fmt(r.p50Us).padStart(8)}  ${fmt(r.p99Us).padStart(8)}  ${Math.round(r.perSecond).toLocaleString('en-US').padStart(12)}`);
  console.log('\nratios (cedar-wasm / ZT-AAS, same run):');
  for (let i = 0; i + 1 < rows.length; i += 2) {
    const ours = rows[i] as PolicyBenchRow;
    const theirs = rows[i + 1] as PolicyBenchRow;
    console.log(`  ${ours.name.split(' (')[0]}: throughput ${(ours.perSecond / theirs.perSecond).toFixed(0)}×, p50 ${ours.p50Us > 0 ? `${(theirs.p50Us / ours.p50Us).toFixed(0)}×` : '(below timer resolution)'}`);
  }
}
