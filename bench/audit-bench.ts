/**
 * Audit log figures, all measured in one run so that ratios are meaningful
 * on a shared, noisy machine:
 *
 * - the raw cost of SHA-256 (one leaf) and of a 4 KiB write + fdatasync;
 * - durable appends per second with group commit: the log alone on records
 *   already encoded, and from kernel records (encoded, then appended) in
 *   process and through the audit vat, with many appends outstanding;
 * - append latency (p50, p99) under that load, and with one append at a time;
 * - the cost of a signed checkpoint in every durable commit group (what the
 *   audit vat now does before it acknowledges an append), against the same
 *   log without it, in this run: throughput under load and one append at a
 *   time;
 * - full-log verification speed (`verifyStore`, records per second);
 * - proof generation time at 1M records (inclusion and consistency).
 *
 * `runAuditBench()` returns the figures; `node dist/bench/audit-bench.js`
 * prints them. Sizes scale with AUDIT_BENCH_SCALE (default 1).
 */
import '../src/init.js';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeAuditLog } from '../src/audit/audit-log.js';
import type { AuditLog } from '../src/audit/audit-log.js';
import { makeInProcessAuditSink, startAuditVat } from '../src/audit/audit-client.js';
import type { AuditSink } from '../src/audit/audit-client.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { openFileStore } from '../src/audit/file-store.js';
import { CHECKPOINTS_FILE, checkpointName, makeCheckpointer } from '../src/audit/checkpointer.js';
import { makeMerkleHasher } from '../src/audit/merkle.js';
import { loadOrCreateSigningKey, makeNodeFileStorePowers, nodeEd25519Verify, nodeSha256 } from '../src/audit/node-powers.js';
import { verifyStore } from '../src/audit/verify-node.js';

export interface BenchFigure {
  name: string;
  value: number;
  unit: string;
}

const scale = Number(process.env.AUDIT_BENCH_SCALE ?? 1);
const APPENDS = Math.max(1000, Math.round(200_000 * scale));
const CHUNK = 1000;
const DEPTH = 4;
const WINDOW = CHUNK * DEPTH;
const PROOF_TREE = Math.max(10_000, Math.round(1_000_000 * scale));

/** A decision record as the kernel writes it (about 400 bytes canonical). */
const decision = (i: number): Record<string, unknown> => ({
  type: 'request',
  time: 1_700_000_000_000 + i,
  requestId: `req-${i.toString(16).padStart(8, '0')}-4a6f-9c1e-2b7d5e0f8a31`,
  via: 'vat',
  agentId: 'bench-agent',
  capabilityId: 'read-reports',
  actionType: 'READ',
  target: `/data/reports/q${i % 4}.txt`,
  args: {},
  decision: 'allow',
  rules: ['read-data'],
  policyHash: 'sha256:9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8',
  uses: i,
});

const quantile = (sorted: Float64Array, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

const tempFolder = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

/** SHA-256 of a 400-byte leaf, as the log hashes it (0x00 prefix). */
const rawSha256 = (): BenchFigure[] => {
  const hasher = makeMerkleHasher(nodeSha256);
  const data = new TextEncoder().encode(canonicalJson(decision(1)));
  const n = 200_000;
  for (let i = 0; i < 10_000; i += 1) hasher.hashLeaf(data);
  const start = performance.now();
  for (let i = 0; i < n; i += 1) hasher.hashLeaf(data);
  const us = ((performance.now() - start) * 1000) / n;
  return [
    { name: 'raw SHA-256 of one leaf (400 B)', value: us, unit: 'µs' },
    { name: 'raw SHA-256 leaves per second, one core', value: 1e6 / us, unit: '/s' },
  ];
};

/** One 4 KiB write + fdatasync on the same file system as the stores. */
const rawFdatasync = (): BenchFigure[] => {
  const dir = tempFolder('ztaas-fsync-');
  const fd = openSync(join(dir, 'f'), 'w');
  const block = new Uint8Array(4096).fill(0x61);
  const samples: number[] = [];
  try {
    for (let i = 0; i < 220; i += 1) {
      const start = performance.now();
      writeSync(fd, block);
      fdatasyncSync(fd);
      if (i >= 20) samples.push((performance.now() - start) * 1000);
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  const sorted = Float64Array.from(samples).sort();
  return [
    { name: 'raw 4 KiB write + fdatasync, p50', value: quantile(sorted, 0.5), unit: 'µs' },
    { name: 'raw 4 KiB write + fdatasync, p99', value: quantile(sorted, 0.99), unit: 'µs' },
  ];
};

/**
 * `total` appends issued in chunks of `CHUNK` (each chunk is one turn, so
 * one batch to the log) with up to `DEPTH` chunks outstanding: the kernel
 * keeps encoding new records while earlier batches are hashed and synced,
 * as it does when many agents act at once. Returns throughput and the
 * latency of every append from its call to its durable confirmation.
 */
const loadTest = async (sink: AuditSink, total: number) => {
  const latencies = new Float64Array(total);
  const outstanding: Array<Promise<unknown>> = [];
  const start = performance.now();
  for (let n = 0; n < total; n += CHUNK) {
    const count = Math.min(CHUNK, total - n);
    const issued = performance.now();
    const pending: Array<Promise<void>> = [];
    for (let k = 0; k < count; k += 1) {
      const i = n + k;
      pending.push(
        sink.append(decision(i)).then(() => {
          latencies[i] = (performance.now() - issued) * 1000;
        }),
      );
    }
    outstanding.push(Promise.all(pending));
    if (outstanding.length >= DEPTH) await outstanding.shift();
    // End the turn so this chunk leaves as one batch.
    await Promise.resolve();
  }
  await Promise.all(outstanding);
  const seconds = (performance.now() - start) / 1000;
  latencies.sort();
  return { perSecond: total / seconds, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
};

/** One append at a time: the latency of a lone decision record (one fdatasync each). */
const serialLatency = async (sink: AuditSink, count: number) => {
  const samples = new Float64Array(count);
  for (let i = 0; i < count; i += 1) {
    const start = performance.now();
    await sink.append(decision(i));
    samples[i] = (performance.now() - start) * 1000;
  }
  samples.sort();
  return { p50: quantile(samples, 0.5), p99: quantile(samples, 0.99) };
};

const openLog = async (dir: string, durability: 'durable' | 'relaxed' = 'durable'): Promise<AuditLog> =>
  makeAuditLog({ store: await openFileStore(makeNodeFileStorePowers(), { dir, durability }), sha256: nodeSha256 });

/**
 * The log alone: records already canonical (as the kernel hands them over),
 * joined per chunk, appended with the same pipelining; each append is a
 * scan, a splice, two hashes and its share of one write + fdatasync. This
 * is the audit vat's own capacity, without the kernel's encoding.
 */
const appendsLogAlone = async (): Promise<BenchFigure[]> => {
  const dir = tempFolder('ztaas-audit-bench-');
  try {
    const log = await openLog(dir);
    const chunks: string[] = [];
    for (let n = 0; n < APPENDS; n += CHUNK) {
      const texts: string[] = [];
      for (let k = 0; k < Math.min(CHUNK, APPENDS - n); k += 1) texts.push(canonicalJson(decision(n + k)));
      chunks.push(texts.join('\n'));
    }
    const outstanding: Array<Promise<unknown>> = [];
    const start = performance.now();
    for (const joined of chunks) {
      outstanding.push(log.appendJoined(joined));
      if (outstanding.length >= DEPTH) await outstanding.shift();
    }
    await Promise.all(outstanding);
    const seconds = (performance.now() - start) / 1000;
    await log.close();
    return [{ name: 'durable appends/s, group commit, the log alone (records already encoded)', value: APPENDS / seconds, unit: '/s' }];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

const appendsInProcess = async (): Promise<BenchFigure[]> => {
  const dir = tempFolder('ztaas-audit-bench-');
  try {
    const sink = makeInProcessAuditSink(await openLog(dir));
    const load = await loadTest(sink, APPENDS);
    const serial = await serialLatency(sink, 300);
    await sink.close();
    return [
      { name: 'durable appends/s, group commit, kernel records encoded and appended, in process', value: load.perSecond, unit: '/s' },
      { name: `append latency under load (${WINDOW} outstanding), in process, p99`, value: load.p99 / 1000, unit: 'ms' },
      { name: 'append latency, one at a time, in process, p50', value: serial.p50, unit: 'µs' },
      { name: 'append latency, one at a time, in process, p99', value: serial.p99, unit: 'µs' },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

const appendsThroughVat = async (): Promise<BenchFigure[]> => {
  const dir = tempFolder('ztaas-audit-bench-');
  try {
    const sink = startAuditVat({ dir, timeoutMs: 60_000, checkpointIntervalMs: 0 });
    await sink.ready();
    const load = await loadTest(sink, APPENDS);
    const serial = await serialLatency(sink, 300);
    await sink.close();
    // Relaxed mode, one at a time: the latency a mediated call waits for.
    const relaxedDir = tempFolder('ztaas-audit-bench-');
    const relaxedSink = startAuditVat({ dir: relaxedDir, durability: 'relaxed', timeoutMs: 60_000, checkpointIntervalMs: 0 });
    await relaxedSink.ready();
    const relaxed = await serialLatency(relaxedSink, 1000);
    await relaxedSink.close();
    rmSync(relaxedDir, { recursive: true, force: true });
    const start = performance.now();
    const report = await verifyStore(dir);
    const seconds = (performance.now() - start) / 1000;
    return [
      { name: 'durable appends/s, group commit, kernel records encoded and appended through the audit vat', value: load.perSecond, unit: '/s' },
      { name: `append latency under load (${WINDOW} outstanding), vat, p50`, value: load.p50 / 1000, unit: 'ms' },
      { name: `append latency under load (${WINDOW} outstanding), vat, p99`, value: load.p99 / 1000, unit: 'ms' },
      { name: 'append latency, one at a time, vat, p50', value: serial.p50, unit: 'µs' },
      { name: 'append latency, one at a time, vat, p99', value: serial.p99, unit: 'µs' },
      { name: 'append latency, one at a time, vat, relaxed mode, p50', value: relaxed.p50, unit: 'µs' },
      { name: 'append latency, one at a time, vat, relaxed mode, p99', value: relaxed.p99, unit: 'µs' },
      { name: `full verification (${report.size} records, signatures included)`, value: report.size / seconds, unit: 'records/s' },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

/**
 * The same log, records already encoded, with and without a signed
 * checkpoint covering every commit group before the append counts (sign,
 * write and fdatasync of the checkpoint file, coalesced while one is in
 * flight). Runs alternate so both see the same machine.
 */
const checkpointCost = async (): Promise<BenchFigure[]> => {
  const texts = Array.from({ length: CHUNK }, (_, i) => canonicalJson(decision(i))).join('\n');
  const one = canonicalJson(decision(1));
  const run = async (signed: boolean) => {
    const dir = tempFolder('ztaas-audit-bench-');
    try {
      const log = await openLog(dir);
      const checkpointer = signed
        ? await makeCheckpointer({
            log,
            store: await openFileStore(makeNodeFileStorePowers(), { dir, fileName: CHECKPOINTS_FILE }),
            signer: await loadOrCreateSigningKey(dir, pub => checkpointName(nodeSha256, pub)),
            sha256: nodeSha256,
            verify: nodeEd25519Verify,
            origin: 'bench',
          })
        : undefined;
      const append = async (joined: string) => {
        const ref = await log.appendJoined(joined);
        if (checkpointer) await checkpointer.cover(ref.first + ref.leafHashes.length / 64);
      };
      const total = Math.max(CHUNK * 20, Math.round(APPENDS / 2));
      const outstanding: Array<Promise<unknown>> = [];
      let start = performance.now();
      for (let n = 0; n < total; n += CHUNK) {
        outstanding.push(append(texts));
        if (outstanding.length >= DEPTH) await outstanding.shift();
      }
      await Promise.all(outstanding);
      const perSecond = total / ((performance.now() - start) / 1000);
      const samples = new Float64Array(300);
      for (let i = 0; i < samples.length; i += 1) {
        start = performance.now();
        await append(one);
        samples[i] = (performance.now() - start) * 1000;
      }
      samples.sort();
      await checkpointer?.close();
      await log.close();
      return { perSecond, p50: quantile(samples, 0.5), p99: quantile(samples, 0.99) };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const plain = [await run(false)];
  const signed = [await run(true)];
  plain.push(await run(false));
  signed.push(await run(true));
  const best = (xs: typeof plain) => ({
    perSecond: Math.max(...xs.map(x => x.perSecond)),
    p50: Math.min(...xs.map(x => x.p50)),
    p99: Math.min(...xs.map(x => x.p99)),
  });
  const [p, c] = [best(plain), best(signed)];
  return [
    { name: 'durable appends/s, the log alone, no checkpoint per commit group', value: p.perSecond, unit: '/s' },
    { name: 'durable appends/s, the log alone, a signed checkpoint per commit group', value: c.perSecond, unit: '/s' },
    { name: 'one append at a time, no checkpoint per commit group, p50', value: p.p50, unit: 'µs' },
    { name: 'one append at a time, a signed checkpoint per commit group, p50', value: c.p50, unit: 'µs' },
    { name: 'one append at a time, no checkpoint per commit group, p99', value: p.p99, unit: 'µs' },
    { name: 'one append at a time, a signed checkpoint per commit group, p99', value: c.p99, unit: 'µs' },
  ];
};

/** Builds a log of PROOF_TREE records, then times proofs against its full size. */
const proofsAtScale = async (): Promise<BenchFigure[]> => {
  const dir = tempFolder('ztaas-audit-bench-');
  try {
    const log = await openLog(dir, 'relaxed');
    const texts = Array.from({ length: 10_000 }, (_, i) => canonicalJson(decision(i)));
    for (let n = 0; n < PROOF_TREE; n += texts.length) {
      await log.appendTexts(texts.slice(0, Math.min(texts.length, PROOF_TREE - n)));
    }
    await log.sync();
    const size = log.size();
    const count = 1000;
    let seed = 12345;
    const next = () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed;
    };
    let start = performance.now();
    for (let i = 0; i < count; i += 1) log.inclusionProof(next() % size, size);
    const inclusionUs = ((performance.now() - start) * 1000) / count;
    start = performance.now();
    for (let i = 0; i < count; i += 1) log.consistencyProof(1 + (next() % size), size);
    const consistencyUs = ((performance.now() - start) * 1000) / count;
    await log.close();
    start = performance.now();
    const reopened = await openLog(dir, 'relaxed');
    const reopenSeconds = (performance.now() - start) / 1000;
    await reopened.close();
    return [
      { name: `inclusion proof at ${size} records`, value: inclusionUs, unit: 'µs' },
      { name: `consistency proof at ${size} records`, value: consistencyUs, unit: 'µs' },
      { name: `reopen (re-hash and check) ${size} records`, value: size / reopenSeconds, unit: 'records/s' },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

export const runAuditBench = async (): Promise<BenchFigure[]> => [
  ...rawSha256(),
  ...rawFdatasync(),
  ...(await appendsLogAlone()),
  ...(await checkpointCost()),
  ...(await appendsInProcess()),
  ...(await appendsThroughVat()),
  ...(await proofsAtScale()),
];
harden(runAuditBench);

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await runAuditBench();
  const width = Math.max(...figures.map(f => f.name.length));
  for (const f of figures) {
    const value = f.value >= 100 ? f.value.toFixed(0) : f.value.toFixed(2);
    console.log(`${f.name.padEnd(width)}  ${value} ${f.unit}`);
  }
}
