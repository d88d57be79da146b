/**
 * `npm run bench`: ZT-AAS performance figures, all measured in one run so
 * that ratios are meaningful on a shared, noisy machine. Targets live here,
 * never in tests. Results are printed as a table and written to
 * bench/results.json; BENCHMARKS.md records the latest figures.
 */
import '../src/init.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { makeCapTP } from '@endo/captp';
import { E, Far } from '@endo/far';
import { startAuditVat } from '../src/audit/audit-client.js';
import type { Effector } from '../src/effectors/types.js';
import { resolveFailureModes } from '../src/failure-modes.js';
import { admit, makeKernel } from '../src/kernel.js';
import { makeMembrane } from '../src/membrane.js';
import { makeNodeKernelPowers, makeNodeVatHostPowers } from '../src/node-powers.js';
import { makeSandbox } from '../src/sandbox.js';
import { makeNodeSandboxPowers } from '../src/sandbox-node-powers.js';
import { ActionRequest, ActionType, Capability, SandboxRuntime } from '../src/index.js';
import { runEffectorsBench } from './effectors-bench.js';
import { runPolicyBench } from './policy-bench.js';
import { runMatcherBench } from './matcher-bench.js';
import { runAuditBench } from './audit-bench.js';
import { runIsolationBench } from './isolation-bench.js';
import { runFloodBench } from './flood-bench.js';
import { runCodeBench } from './code-bench.js';
import { gatewayRows, type GatewayBenchResult } from './gateway-report.js';

const here = (file: string) => new URL(file, import.meta.url);
const results: Record<string, unknown> = {};
const rows: string[][] = [];

const stats = (samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), mean: sorted.reduce((s, x) => s + x, 0) / sorted.length };
};
const fmt = (x: number, unit = 'µs') => `${x >= 100 ? x.toFixed(0) : x.toFixed(1)} ${unit}`;
const report = (name: string, s: ReturnType<typeof stats>, goal = '') => {
  results[name] = s;
  rows.push([name, fmt(s.p50), fmt(s.p99), String(s.n), goal]);
};

const waitMessage = (w: Worker) => new Promise<unknown>(resolve => w.once('message', resolve));

// 1. Raw worker postMessage round trip.
const rawRoundTrip = async (count: number) => {
  const w = new Worker(here('./echo-worker.js'), { env: {} });
  const samples: number[] = [];
  for (let i = 0; i < count + 200; i += 1) {
    const start = performance.now();
    w.postMessage(i);
    await waitMessage(w);
    if (i >= 200) samples.push((performance.now() - start) * 1000);
  }
  await w.terminate();
  return stats(samples);
};

// A bench vat connected over CapTP, with the kernel exporting `kernelRoot`.
const startBenchVat = async (kernelRoot: unknown) => {
  const w = new Worker(here('./vat-bench.js'), { env: {} });
  const { dispatch, getBootstrap, abort } = makeCapTP('bench-kernel', m => w.postMessage(m), kernelRoot);
  w.on('message', m => dispatch(m as Record<string, unknown>));
  const root = getBootstrap();
  await E(root).ping();
  return {
    root,
    close: async () => {
      abort();
      await w.terminate();
    },
  };
};

// 2. CapTP round trip: the vat calls a trivial kernel object.
const captpRoundTrip = async (count: number) => {
  const target = Far('Noop', { noop: () => 0 });
  const vat = await startBenchVat(Far('KernelRoot', {}));
  await E(vat.root).timeCalls(target, 'noop', [], 200);
  const samples = (await E(vat.root).timeCalls(target, 'noop', [], count)) as number[];
  await vat.close();
  return stats(samples);
};

// 3. Mediated no-op capability call: membrane + checks + policy + durable audit, from a vat.
const mediatedCall = async (count: number, durability: 'durable' | 'relaxed') => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-bench-'));
  const audit = startAuditVat({ dir, durability, timeoutMs: 10_000 });
  await audit.ready();
  const noop: Effector = async () => 'ok';
  const kernel = makeKernel({
    powers: makeNodeKernelPowers(),
    audit,
    policy: {
      version: 1,
      rules: [
        { id: 'read-bench', effect: 'permit', actions: ['READ'], targets: ['/bench/**'] },
        { id: 'no-secrets', effect: 'forbid', targets: ['/bench/secrets/**'] },
      ],
    },
    effectors: { READ: noop },
    failureModes: resolveFailureModes({ auditTimeoutMs: 10_000 }),
    maxBytes: 1 << 20,
    durability,
  });
  kernel.registerAgent('bench');
  kernel.issueCapability(new Capability({ id: 'noop', actionType: ActionType.READ, target: '/bench/noop', holder: 'bench' }));
  const membrane = makeMembrane({ kernel, agentId: 'bench', capabilityIds: ['noop'] });
  const vat = await startBenchVat(Far('KernelRoot', {}));
  await E(vat.root).timeCalls(membrane.caps.noop, 'invoke', ['read', []], 100);
  const samples = (await E(vat.root).timeCalls(membrane.caps.noop, 'invoke', ['read', []], count)) as number[];
  await vat.close();
  await audit.close();
  rmSync(dir, { recursive: true, force: true });
  return stats(samples);
};

// 3b. The kernel path alone (checks + policy + in-memory audit), no transport.
const kernelPathOnly = async (count: number) => {
  let seq = 0;
  const kernel = makeKernel({
    powers: makeNodeKernelPowers(),
    audit: { append: async () => ({ seq: seq++, leafHash: '' }) },
    policy: { version: 1, rules: [{ id: 'read-bench', effect: 'permit', actions: ['READ'], targets: ['/bench/**'] }] },
    effectors: { READ: async () => 'ok' },
    failureModes: resolveFailureModes(),
    maxBytes: 1 << 20,
  });
  kernel.registerAgent('bench');
  kernel.issueCapability(new Capability({ id: 'noop', actionType: ActionType.READ, target: '/bench/noop', holder: 'bench' }));
  const request = new ActionRequest({ capabilityId: 'noop', agentId: 'bench', actionType: ActionType.READ, target: '/bench/noop' });
  const samples: number[] = [];
  for (let i = 0; i < count + 1000; i += 1) {
    const start = performance.now();
    await kernel.execute(request, 'api');
    if (i >= 1000) samples.push((performance.now() - start) * 1000);
  }
  return stats(samples);
};

// 3c. Capability check on the hot path: the ordered checks + policy, no transport, no audit.
const capabilityCheck = (count: number) => {
  const kernel = makeKernel({
    powers: makeNodeKernelPowers(),
    audit: { append: async () => ({ seq: 0, leafHash: '' }) },
    policy: { version: 1, rules: [{ id: 'read-bench', effect: 'permit', actions: ['READ'], targets: ['/bench/**'] }] },
    effectors: {},
    failureModes: resolveFailureModes(),
    maxBytes: 1 << 20,
  });
  kernel.registerAgent('bench');
  kernel.issueCapability(new Capability({ id: 'noop', actionType: ActionType.READ, target: '/bench/**', holder: 'bench', constraints: { maxUses: 1e9, rate: { max: 1e9, windowMs: 1000 } } }));
  // Admitted once, as the kernel does where a request enters it: what follows is the check alone.
  const request = admit(new ActionRequest({ capabilityId: 'noop', agentId: 'bench', actionType: ActionType.READ, target: '/bench/a/b.txt' }));
  const batch = 1000;
  const samples: number[] = [];
  for (let round = 0; round < count / batch + 20; round += 1) {
    const start = performance.now();
    for (let i = 0; i < batch; i += 1) {
      if (!kernel.evaluate(request).allowed) throw Error('bench request denied');
    }
    if (round >= 20) samples.push(((performance.now() - start) * 1000) / batch);
  }
  return stats(samples);
};

// 3d. Revocation latency: revoke called → the pending call's outcome is delivered.
const revocationLatency = async (count: number) => {
  const kernel = makeKernel({
    powers: makeNodeKernelPowers(),
    audit: { append: async () => ({ seq: 0, leafHash: '' }) },
    policy: { version: 1, rules: [{ id: 'all', effect: 'permit' }] },
    effectors: {
      READ: ({ signal }) =>
        new Promise((_, reject) => {
          signal.addEventListener('abort', () => reject(signal.reason));
        }),
    },
    failureModes: resolveFailureModes(),
    maxBytes: 1 << 20,
  });
  kernel.registerAgent('bench');
  const samples: number[] = [];
  for (let i = 0; i < count + 50; i += 1) {
    const id = `slow-${i}`;
    kernel.issueCapability(new Capability({ id, actionType: ActionType.READ, target: '/slow', holder: 'bench' }));
    const pending = kernel.execute(new ActionRequest({ capabilityId: id, agentId: 'bench', actionType: ActionType.READ, target: '/slow' }), 'api');
    while ((kernel.agentActivity('bench')?.inFlight ?? 0) < 1) await new Promise(resolve => setImmediate(resolve));
    const start = performance.now();
    kernel.revokeCapability(id);
    const outcome = await pending;
    const took = (performance.now() - start) * 1000;
    if (outcome.error?.code !== 'ZT_REVOKED') throw Error(`unexpected ${outcome.error?.code}`);
    if (i >= 50) samples.push(took);
  }
  return stats(samples);
};

// 3e. The host → kernel-vat hop: the same seed-API READ through
// `SandboxRuntime` (host realm → kernel vat → back) and through the runtime
// it wraps (`makeSandbox`, called in this process), in alternating blocks
// so both see the same machine while neither's background work (its audit
// vat's syncs) lands in the other's samples. The hop is the median over
// block pairs of the difference of their medians: a burst of load from
// elsewhere on the machine moves one pair, not the figure. Also the bare
// hop: a call the kernel answers at once (`audit.flush()` with nothing
// pending).
const kernelVatHop = async (count: number) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-bench-'));
  const target = join(dir, 'data.txt');
  writeFileSync(target, 'x'.repeat(64));
  const viaVat = new SandboxRuntime({ storeDir: join(dir, 'vat-store'), durability: 'relaxed' });
  const inProcess = makeSandbox(makeNodeSandboxPowers(), { storeDir: join(dir, 'in-process-store'), durability: 'relaxed' });
  for (const s of [viaVat, inProcess]) {
    s.registerAgent('hop');
    s.issueCapability(new Capability({ id: 'read', actionType: ActionType.READ, target, holder: 'hop' }));
  }
  const request = new ActionRequest({ capabilityId: 'read', agentId: 'hop', actionType: ActionType.READ, target });
  const through = (run: () => Promise<{ ok: boolean }>) => async () => {
    const start = performance.now();
    const outcome = await run();
    if (!outcome.ok) throw Error('the hop benchmark read failed');
    return (performance.now() - start) * 1000;
  };
  const echo = new Worker(here('./echo-worker.js'), { env: {} });
  let echoed = 0;
  const rawRound = async () => {
    const start = performance.now();
    echo.postMessage(echoed);
    echoed += 1;
    await waitMessage(echo);
    return (performance.now() - start) * 1000;
  };
  const vat = through(() => viaVat.executeAction(request));
  const direct = through(() => inProcess.execute(request));
  const vatSamples: number[] = [];
  const directSamples: number[] = [];
  const differences: number[] = [];
  const rawSamples: number[] = [];
  const BLOCK = 100;
  const block = async (run: () => Promise<number>) => {
    const samples: number[] = [];
    for (let i = 0; i < BLOCK; i += 1) samples.push(await run());
    return samples;
  };
  await block(vat);
  await block(direct);
  await block(rawRound);
  for (let done = 0; done < count; done += BLOCK) {
    const v = await block(vat);
    const d = await block(direct);
    rawSamples.push(...(await block(rawRound)));
    vatSamples.push(...v);
    directSamples.push(...d);
    differences.push(stats(v).p50 - stats(d).p50);
  }
  const bare: number[] = [];
  for (let i = 0; i < count + 200; i += 1) {
    const start = performance.now();
    await viaVat.audit.flush();
    if (i >= 200) bare.push((performance.now() - start) * 1000);
  }
  await viaVat.shutdown();
  await inProcess.shutdown();
  await echo.terminate();
  rmSync(dir, { recursive: true, force: true });
  return { viaVat: stats(vatSamples), inProcess: stats(directSamples), hop: stats(differences), bare: stats(bare), raw: stats(rawSamples) };
};

// 3f. A new runtime in a running host: constructor (kernel vat started) to the first outcome.
const runtimeStart = async (count: number) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-bench-'));
  const target = join(dir, 'data.txt');
  writeFileSync(target, 'x');
  const samples: number[] = [];
  for (let i = 0; i < count + 1; i += 1) {
    const start = performance.now();
    const sandbox = new SandboxRuntime({ storeDir: join(dir, `store-${i}`), durability: 'relaxed' });
    sandbox.registerAgent('first');
    sandbox.issueCapability(new Capability({ id: 'read', actionType: ActionType.READ, target, holder: 'first' }));
    const outcome = await sandbox.executeAction(new ActionRequest({ capabilityId: 'read', agentId: 'first', actionType: ActionType.READ, target }));
    if (!outcome.ok) throw Error('the first read failed');
    if (i >= 1) samples.push((performance.now() - start) * 1000);
    await sandbox.shutdown();
  }
  rmSync(dir, { recursive: true, force: true });
  return stats(samples);
};

// 4b. Warm start: launch from a pool of started vats.
const warmStart = async (count: number) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-bench-'));
  const agentDir = join(dir, 'agent');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(agentDir);
  writeFileSync(join(agentDir, 'index.js'), 'export default async function main({ input }) { return input; }\n');
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store'), durability: 'relaxed', vatPoolSize: 2, isolation: 'worker' });
  sandbox.registerAgent('warm');
  const samples: number[] = [];
  for (let i = 0; i < count + 2; i += 1) {
    await new Promise(resolve => setTimeout(resolve, 400)); // let the pool refill
    const start = performance.now();
    const handle = await sandbox.launchAgent({ agentId: 'warm', module: agentDir, input: i });
    const outcome = await handle.result;
    if (!outcome.ok) throw Error(`warm start run failed: ${outcome.error?.code}`);
    if (i >= 2) samples.push((performance.now() - start) * 1000);
  }
  await sandbox.shutdown();
  rmSync(dir, { recursive: true, force: true });
  return stats(samples);
};

// 4. Vat cold start: launch an agent vat and get its first answer, at the
// default level (`process`) and at `worker` (named), alternating launch by
// launch in one runtime each. Then the agent's mediated call round trip at
// each level: a run of 300 READs minus a run of none, per call.
const coldStart = async (count: number) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-bench-'));
  const agentDir = join(dir, 'agent');
  const readerDir = join(dir, 'reader');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(agentDir);
  mkdirSync(readerDir);
  writeFileSync(join(agentDir, 'index.js'), 'export default async function main({ input }) { return input; }\n');
  writeFileSync(
    join(readerDir, 'index.js'),
    'export default async function main({ caps, input }) { for (let i = 0; i < input; i += 1) await E(caps.data).read(); return input; }\n',
  );
  const target = join(dir, 'data.txt');
  writeFileSync(target, 'x'.repeat(64));
  const kinds = ['process', 'worker'] as const;
  const runtimes = Object.fromEntries(
    kinds.map(kind => {
      const sandbox = new SandboxRuntime({ storeDir: join(dir, `store-${kind}`), durability: 'relaxed', isolation: kind });
      sandbox.registerAgent('cold');
      sandbox.issueCapability(new Capability({ id: 'data', actionType: ActionType.READ, target, holder: 'cold' }));
      return [kind, sandbox];
    }),
  ) as Record<(typeof kinds)[number], SandboxRuntime>;
  const run = async (kind: (typeof kinds)[number], module: string, input: number) => {
    const start = performance.now();
    const handle = await runtimes[kind].launchAgent({ agentId: 'cold', module, input, capabilities: ['data'] });
    const outcome = await handle.result;
    if (!outcome.ok) throw Error(`${kind} run failed: ${outcome.error?.code}`);
    return (performance.now() - start) * 1000;
  };
  const launch = { process: [] as number[], worker: [] as number[] };
  const call = { process: [] as number[], worker: [] as number[] };
  const CALLS = 300;
  for (let i = 0; i < count + 2; i += 1) {
    for (const kind of kinds) {
      const took = await run(kind, agentDir, i);
      if (i >= 2) launch[kind].push(took);
    }
  }
  for (let i = 0; i < 6; i += 1) {
    for (const kind of kinds) {
      const none = await run(kind, readerDir, 0);
      const many = await run(kind, readerDir, CALLS);
      if (i >= 1) call[kind].push((many - none) / CALLS);
    }
  }
  for (const kind of kinds) await runtimes[kind].shutdown();
  rmSync(dir, { recursive: true, force: true });
  return {
    process: stats(launch.process),
    worker: stats(launch.worker),
    processCall: stats(call.process),
    workerCall: stats(call.worker),
  };
};

// 5. Memory per idle agent vat (locked down, CapTP connected, no agent yet).
const memoryPerVat = async (count: number) => {
  const powers = makeNodeVatHostPowers();
  (globalThis as { gc?: () => void }).gc?.();
  const before = process.memoryUsage().rss;
  const vats = [];
  for (let i = 0; i < count; i += 1) {
    const w = powers.startAgentWorker({ memoryMb: 128 }) as unknown as Worker;
    const captp = makeCapTP(`mem-${i}`, m => w.postMessage(m), Far('K', { log: () => undefined }));
    w.on('message', m => captp.dispatch(m as Record<string, unknown>));
    await E(captp.getBootstrap()).probe();
    vats.push({ w, captp });
  }
  await new Promise(resolve => setTimeout(resolve, 500));
  const after = process.memoryUsage().rss;
  for (const { w, captp } of vats) {
    captp.abort();
    await w.terminate();
  }
  return (after - before) / count / (1024 * 1024);
};

// 6. The MCP gateway: its MCP clients are plain host programs, so the
// bench runs in a child process that is not locked down, and answers with
// one line of JSON. A failure is reported in the table and by the exit
// code; the other figures are still printed and written.
const gatewayBench = () =>
  new Promise<GatewayBenchResult>((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(here('./gateway-bench.js')), '--json'], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGTERM'), 600_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      let parsed: (GatewayBenchResult & { error?: undefined }) | { error: string } | undefined;
      try {
        parsed = JSON.parse(out.trim().split('\n').pop() ?? '') as typeof parsed;
      } catch {
        parsed = undefined;
      }
      if (code === 0 && parsed !== undefined && parsed.error === undefined) resolve(parsed);
      else reject(Error(parsed?.error ?? `gateway-bench exited with ${signal ?? String(code)}: ${out.slice(-2000)}`));
    });
  });

const main = async () => {
  const N = Number(process.env.BENCH_N ?? 2000);
  console.log(`ZT-AAS bench — node ${process.version}, ${N} samples per latency figure\n`);
  const raw = await rawRoundTrip(N);
  report('raw worker postMessage round trip', raw);
  const captp = await captpRoundTrip(N);
  report('CapTP round trip (vat → kernel no-op)', captp);
  const kernelOnly = await kernelPathOnly(N * 5);
  report('kernel path only (checks + policy + audit call, no transport)', kernelOnly);
  const mediatedRelaxed = await mediatedCall(N, 'relaxed');
  report('mediated no-op call from a vat, audit relaxed', mediatedRelaxed, 'p50 ≤ 2× raw');
  const mediatedDurable = await mediatedCall(Math.min(N, 500), 'durable');
  report('mediated no-op call from a vat, audit durable (fsync)', mediatedDurable);
  const check = capabilityCheck(N * 50);
  report('capability check (ordered checks + policy, no transport)', check, '< 1 µs');
  const revocation = await revocationLatency(Math.min(N, 1000));
  report('revocation latency (revoke → pending call rejected)', revocation, 'p99 ≤ 1 ms');
  const hop = await kernelVatHop(Math.min(N, 2000));
  report('raw worker postMessage round trip, interleaved with the hop blocks', hop.raw, '(baseline)');
  report('seed-API READ, in-process runtime (no kernel vat)', hop.inProcess);
  report('seed-API READ, host → kernel vat (SandboxRuntime)', hop.viaVat, 'hop ≤ 1 raw RT');
  rows.push(['host → kernel-vat hop (median of block-pair p50 differences)', fmt(hop.hop.p50), '', String(hop.hop.n), `≤ ${fmt(hop.raw.p50)} (1 raw RT, interleaved)`]);
  report('host → kernel vat → host, a call answered at once', hop.bare);
  results['host → kernel-vat hop (µs)'] = hop.hop.p50;
  const startup = await runtimeStart(10);
  rows.push(['new runtime → first outcome (kernel vat start)', fmt(startup.p50 / 1000, 'ms'), fmt(startup.p99 / 1000, 'ms'), String(startup.n), '']);
  results['new runtime to first outcome (µs)'] = startup;
  const cold = await coldStart(15);
  rows.push(['vat cold start to first answer, process (the default)', fmt(cold.process.p50 / 1000, 'ms'), fmt(cold.process.p99 / 1000, 'ms'), String(cold.process.n), '']);
  rows.push(['vat cold start to first answer, worker (named)', fmt(cold.worker.p50 / 1000, 'ms'), fmt(cold.worker.p99 / 1000, 'ms'), String(cold.worker.n), '≤ 150 ms']);
  report('agent READ round trip, process vat (the default), per call', cold.processCall);
  report('agent READ round trip, worker vat (named), per call', cold.workerCall);
  results['vat cold start, process (µs)'] = cold.process;
  results['vat cold start, worker (µs)'] = cold.worker;
  const warm = await warmStart(10);
  rows.push(['vat warm start (pool) to first answer', fmt(warm.p50 / 1000, 'ms'), fmt(warm.p99 / 1000, 'ms'), String(warm.n), '≤ 10 ms']);
  results['vat warm start (µs)'] = warm;
  // Code mode (#15): runCode of a trivial program, cold (a vat per run) and warm (a pooled worker vat).
  const code = await runCodeBench({ count: 40 });
  const msRow = (name: string, s: { p50: number; p99: number; n: number }, goal = '') => rows.push([name, fmt(s.p50, 'ms'), fmt(s.p99, 'ms'), String(s.n), goal]);
  msRow('runCode cold, process (the default), a vat per run', code.coldProcess, `${(code.coldProcess.p50 / code.goalMs).toFixed(1)}× the warm goal`);
  msRow('runCode cold, worker (named), a vat per run', code.coldWorker, `${(code.coldWorker.p50 / code.goalMs).toFixed(1)}× the warm goal`);
  msRow(`runCode warm, pooled worker vat (${code.warmFromPool}/${code.warm.n} from the pool)`, code.warm, `≤ ${code.goalMs} ms: ${(code.warm.p50 / code.goalMs).toFixed(2)}× (${code.warm.p50 <= code.goalMs ? 'met' : 'NOT MET'})`);
  msRow('launchAgent warm, the same program, same pool (interleaved)', code.warmLaunch);
  results['code mode: runCode (ms)'] = code;
  const mem = await memoryPerVat(8);
  rows.push(['memory per idle vat (RSS delta)', `${mem.toFixed(1)} MB`, '', '8', '≤ 15 MB']);
  results['memory per idle vat (MB)'] = mem;

  for (const row of await runPolicyBench({ samples: 50_000 })) {
    results[`policy: ${row.name}`] = row;
    rows.push([`policy: ${row.name}`, fmt(row.p50Us), fmt(row.p99Us), `${Math.round(row.perSecond)}/s`, row.name.includes('100 rules') && !row.name.includes('cedar') ? 'p50 ≤ 1 µs' : '']);
  }
  for (const row of runMatcherBench()) {
    results[`matchers: ${row.name}`] = row;
    rows.push([`matchers: ${row.name}`, fmt(row.p50Us), Number.isNaN(row.p99Us) ? '' : fmt(row.p99Us), '', '']);
  }
  for (const row of await runAuditBench()) {
    results[`audit: ${row.name}`] = row;
    rows.push([`audit: ${row.name}`, `${row.value >= 100 ? Math.round(row.value) : row.value.toFixed(2)} ${row.unit}`, '', '', row.name.includes('durable appends') ? '≥ 100,000/s' : '']);
  }
  const isolation = await runIsolationBench();
  for (const [name, st] of Object.entries(isolation.results)) {
    results[`isolation: ${name}`] = st;
    const unit = name.includes('(ms)') ? 'ms' : 'µs';
    rows.push([`isolation: ${name.replace(/ \((ms|µs)\)$/, '')}`, fmt(st.p50, unit), fmt(st.p99, unit), String(st.n), '']);
  }
  for (const [name, ratio] of Object.entries(isolation.ratios)) {
    results[`isolation: ${name}`] = ratio;
    rows.push([`isolation: ${name}`, `${ratio.toFixed(2)}×`, '', '', `≤ ${isolation.goals[name as keyof typeof isolation.goals]}×`]);
  }
  // One hostile vat flooding the kernel: what the others' latency becomes (same run, with and without it).
  const flood = await runFloodBench();
  for (const [who, st] of [
    ['bystander call, quiet', flood.quiet.bystander],
    ['bystander call, flooded', flood.flooded.bystander],
    ['operator execute, quiet', flood.quiet.operator],
    ['operator execute, flooded', flood.flooded.operator],
  ] as const) {
    results[`flood: ${who}`] = st;
    rows.push([`flood: ${who}`, fmt(st.p50), fmt(st.p99), String(st.n), '']);
  }
  for (const [name, ratio] of Object.entries(flood.ratios)) {
    results[`flood: ${name}`] = ratio;
    rows.push([`flood: ${name}`, `${ratio.toFixed(2)}×`, '', '', name.includes('p50') ? '≤ 3×' : '']);
  }
  for (const phase of ['quiet', 'flooded'] as const) {
    const d = flood[phase].loopDelayMs;
    results[`flood: kernel event-loop delay, ${phase} (ms)`] = d;
    rows.push([`flood: kernel event-loop delay, ${phase} (max ${d.max.toFixed(0)} ms)`, fmt(d.p50, 'ms'), fmt(d.p99, 'ms'), '', '']);
  }
  results['flood: deadline fired late (ms)'] = flood.deadlineFiredLateMs;
  rows.push(['flood: flooder deadline fired late by', fmt(flood.deadlineFiredLateMs, 'ms'), '', '', `${flood.flooderCode}`]);
  results['flood: end durable late (ms)'] = flood.deadlineRecordedLateMs;
  rows.push(['flood: flooder end durable late by', fmt(flood.deadlineRecordedLateMs, 'ms'), '', '', '']);
  for (const row of await runEffectorsBench()) {
    results[`effectors: ${row.name}`] = row;
    rows.push([`effectors: ${row.name}`, fmt(row.p50Us), fmt(row.p99Us), '', '']);
  }

  rows.push(['— MCP gateway (node dist/bench/gateway-bench.js, a plain child process) —', '', '', '', '']);
  let gatewayFailed: string | undefined;
  try {
    const gateway = await gatewayBench();
    for (const row of gatewayRows(gateway)) rows.push(row);
    results['MCP gateway'] = gateway;
    rows.push([`gateway: goal get-sum through the gateway ≤ ${gateway.goal.ratio}× direct (durable)`, gateway.goal.met ? 'met' : 'NOT MET', '', '', `${gateway.goal.durable.toFixed(2)}× (relaxed ${gateway.goal.relaxed.toFixed(2)}×)`]);
  } catch (err) {
    gatewayFailed = String((err as Error)?.message ?? err);
    results['MCP gateway'] = { error: gatewayFailed };
    rows.push(['gateway: FAILED (see below)', '', '', '', '']);
  }

  const ratios = {
    'captp / raw (p50)': captp.p50 / raw.p50,
    'mediated relaxed / raw (p50)': mediatedRelaxed.p50 / raw.p50,
    'mediated relaxed / captp (p50)': mediatedRelaxed.p50 / captp.p50,
    'mediated durable / raw (p50)': mediatedDurable.p50 / raw.p50,
    'host → kernel-vat hop / interleaved raw (p50)': hop.hop.p50 / hop.raw.p50,
    'bare kernel-vat call / raw (p50)': hop.bare.p50 / raw.p50,
    'launch, process (default) / worker (p50)': cold.process.p50 / cold.worker.p50,
    'agent READ round trip, process (default) / worker (p50)': cold.processCall.p50 / cold.workerCall.p50,
  };
  results.ratios = ratios;

  const widths = [0, 1, 2, 3, 4].map(i => Math.max(...[['figure', 'p50', 'p99', 'n', 'goal'], ...rows].map(r => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (c ?? '').padEnd(widths[i] ?? 0)).join('  ');
  console.log(line(['figure', 'p50', 'p99', 'n', 'goal']));
  for (const r of rows) console.log(line(r));
  console.log('\nratios (same run):');
  for (const [k, v] of Object.entries(ratios)) console.log(`  ${k}: ${v.toFixed(2)}×`);
  writeFileSync(fileURLToPath(new URL('../../bench/results.json', import.meta.url)), `${JSON.stringify({ node: process.version, date: new Date().toISOString(), results }, null, 2)}\n`);
  if (gatewayFailed !== undefined) {
    console.error(`\nMCP gateway bench FAILED: ${gatewayFailed}`);
    process.exitCode = 1;
  }
};

await main();
