import { test } from './_prepare.js';
import { execFile } from 'node:child_process';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';
import type { ExecutionContext } from 'ava';
import { makeAuditLog } from '../src/audit/audit-log.js';
import {
  makeInProcessAuditSink,
  startAuditVat,
  type AuditSink,
} from '../src/audit/audit-client.js';
import { startAuditProcess, type AuditConnection, type AuditProcessOptions } from '../src/audit/audit-vat-node-powers.js';
import { openFileStore, RECORDS_FILE } from '../src/audit/file-store.js';
import { AUDIT_APPEND } from '../src/audit/audit-vat-protocol.js';
import { makeNodeFileStorePowers, nodeSha256 } from '../src/audit/node-powers.js';
import { tempDir } from './_audit-fs.js';
import { verifyStore } from '../src/audit/verify-node.js';

const UNAVAILABLE = { message: /^ZT_AUDIT_UNAVAILABLE\b/ };

// The same suite runs against every sink implementation.
const sinks: Array<[string, (t: ExecutionContext, dir: string) => Promise<AuditSink>]> = [
  [
    'in-process',
    async (_t, dir) =>
      makeInProcessAuditSink(
        await makeAuditLog({
          store: await openFileStore(makeNodeFileStorePowers(), { dir }),
          sha256: nodeSha256,
        }),
      ),
  ],
  ['audit vat', async (_t, dir) => startAuditVat({ dir, timeoutMs: 10_000 })],
];

for (const [name, makeSink] of sinks) {
  test(`${name}: append, read back, size, root, close, reopen`, async t => {
    const dir = await tempDir(t);
    const sink = await makeSink(t, dir);
    const ref = await sink.append({ kind: 'decision', allow: true });
    t.is(ref.seq, 0);
    t.regex(ref.leafHash, /^[0-9a-f]{64}$/);
    t.deepEqual(await sink.read(0, 10), [{ kind: 'decision', allow: true, seq: 0 }]);
    t.is(await sink.size(), 1);
    const root = await sink.rootHash();
    t.is(root, ref.leafHash, 'the root of a one-leaf tree is the leaf hash');
    await sink.close();
    await t.throwsAsync(sink.append({ late: true }), UNAVAILABLE);
    t.is(await readFile(join(dir, RECORDS_FILE), 'utf8'), '{"allow":true,"kind":"decision","seq":0}\n');

    const again = await makeSink(t, dir);
    t.is(await again.size(), 1);
    t.is(await again.rootHash(), root);
    t.is((await again.append({ n: 2 })).seq, 1);
    await again.close();
  });

  test(`${name}: appends of one turn go in one batch with consecutive seqs`, async t => {
    const dir = await tempDir(t);
    const sink = await makeSink(t, dir);
    const refs = await Promise.all(Array.from({ length: 25 }, (_, i) => sink.append({ i })));
    t.deepEqual(
      refs.map(r => r.seq),
      Array.from({ length: 25 }, (_, i) => i),
    );
    t.is(await sink.size(), 25);
    await sink.close();
  });

  test(`${name}: a malformed record fails only its own append`, async t => {
    const dir = await tempDir(t);
    const sink = await makeSink(t, dir);
    const good = sink.append({ ok: 1 });
    const bad = sink.append({ n: NaN });
    const reserved = sink.append({ seq: 99 });
    const good2 = sink.append({ ok: 2 });
    await t.throwsAsync(bad, { message: /^ZT_AUDIT_NOT_CANONICAL\b/ });
    await t.throwsAsync(reserved, { message: /^ZT_BAD_ARGUMENT\b/ });
    t.deepEqual(
      [(await good).seq, (await good2).seq],
      [0, 1],
    );
    await sink.close();
  });

  test(`${name}: a record changed after append is recorded as it was`, async t => {
    const dir = await tempDir(t);
    const sink = await makeSink(t, dir);
    const record: Record<string, unknown> = { target: 'a.txt' };
    const p = sink.append(record);
    record.target = '/etc/passwd';
    await p;
    t.deepEqual(await sink.read(0, 1), [{ target: 'a.txt', seq: 0 }]);
    await sink.close();
  });
}

test('audit vat: proofs and checkpoints cross CapTP', async t => {
  const dir = await tempDir(t);
  const sink = startAuditVat({ dir, timeoutMs: 10_000 });
  await sink.ready();
  await Promise.all([sink.append({ a: 1 }), sink.append({ a: 2 }), sink.append({ a: 3 })]);
  t.is((await sink.inclusionProof(0, 3)).length, 2);
  t.is((await sink.consistencyProof(1, 3)).length, 2);
  const cp = await sink.checkpoint();
  t.is(cp.size, 3);
  t.is(cp.rootHash, await sink.rootHash());
  await t.throwsAsync(sink.inclusionProof(3, 3), { message: /^ZT_BAD_ARGUMENT\b/ });
  await sink.close();
});

// Failure: the audit vat dies (crash, OOM, kill). An append in flight and
// every append after must be refused, never reported as recorded.
test('audit vat: after its process is killed, appends reject with ZT_AUDIT_UNAVAILABLE', async t => {
  const dir = await tempDir(t);
  let vat: AuditConnection | undefined;
  const sink = startAuditVat({
    dir,
    timeoutMs: 10_000,
    startVat: options => (vat = startAuditProcess(options)),
  });
  await sink.append({ before: true });
  await vat!.terminate();
  await t.throwsAsync(sink.append({ after: true }), UNAVAILABLE);
  await t.throwsAsync(sink.append({ later: true }), UNAVAILABLE);
  await t.throwsAsync(sink.size(), UNAVAILABLE);
  await sink.close();
  t.is(await readFile(join(dir, RECORDS_FILE), 'utf8'), '{"before":true,"seq":0}\n');
});

test('audit vat: an append in flight when its process dies rejects', async t => {
  const dir = await tempDir(t);
  let vat: AuditConnection | undefined;
  const sink = startAuditVat({
    dir,
    timeoutMs: 10_000,
    startVat: options => (vat = startAuditProcess(options)),
  });
  await sink.ready();
  const inFlight = sink.append({ doomed: true });
  void vat!.terminate();
  await t.throwsAsync(inFlight, UNAVAILABLE);
});

// Failure: the audit vat hangs (a stuck disk, a deadlock). The kernel must
// not wait forever nor proceed: the append is refused after `appendStallMs`
// (the recorder denies requests long before, after `auditTimeoutMs`), and
// the vat is not trusted again.
test('audit vat: no confirmation within appendStallMs rejects and kills the vat', async t => {
  const dir = await tempDir(t);
  let terminated = 0;
  const silent: AuditConnection = {
    send: () => {},
    on: () => {},
    terminate: async () => {
      terminated += 1;
    },
    unref: () => {},
    pid: undefined,
  };
  const sink = startAuditVat({ dir, timeoutMs: 50, appendStallMs: 50, startVat: () => silent });
  const started = Date.now();
  await t.throwsAsync(sink.append({ a: 1 }), { message: /^ZT_AUDIT_UNAVAILABLE: .*within 50 ms/ });
  t.true(Date.now() - started >= 45);
  t.is(terminated, 1);
  await t.throwsAsync(sink.append({ a: 2 }), UNAVAILABLE);
});

// Attack/failure: the store was tampered with while the runtime was down.
// The vat must refuse to open it, and the kernel must learn why at once.
test('audit vat: a corrupt store fails ready() with ZT_AUDIT_CORRUPT and appends with ZT_AUDIT_UNAVAILABLE', async t => {
  const dir = await tempDir(t);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, RECORDS_FILE), '{"a":1,"seq":0}\n{"a":2,"seq":5}\n');
  const sink = startAuditVat({ dir, timeoutMs: 10_000 });
  await t.throwsAsync(sink.ready(), { message: /^ZT_AUDIT_CORRUPT\b/ });
  await t.throwsAsync(sink.append({ a: 3 }), UNAVAILABLE);
  await sink.close();
});

test('audit vat: records travel in append frames of their own, never through CapTP', async t => {
  const dir = await tempDir(t);
  const sent: Array<Record<string, unknown>> = [];
  const sink = startAuditVat({
    dir,
    timeoutMs: 10_000,
    startVat: options => {
      const vat = startAuditProcess(options);
      return { ...vat, pid: vat.pid, send: message => (sent.push(message), vat.send(message)) };
    },
  });
  await sink.ready();
  t.is((await sink.append({ marker: 'needle-7' })).seq, 0);
  t.is(await sink.size(), 1);
  await sink.close();
  t.true(sent.some(m => String(m.type).startsWith('CTP_')));
  const carrying = sent.filter(m => JSON.stringify(m).includes('needle-7'));
  t.deepEqual(carrying.map(m => m.type), [AUDIT_APPEND]);
});

test('audit vat: a process of its own, with no flags, arguments or environment from the host', async t => {
  const dir = await tempDir(t);
  let seen: { pid: number | undefined; options: AuditProcessOptions } | undefined;
  let cmdline: string[] = [];
  let environ = '';
  const sink = startAuditVat({
    dir,
    timeoutMs: 10_000,
    startVat: options => {
      const vat = startAuditProcess(options);
      seen = { pid: vat.pid, options };
      return vat;
    },
  });
  await sink.append({ a: 1 });
  const pid = seen?.pid;
  t.true(typeof pid === 'number' && pid !== process.pid);
  cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
  await sink.close();
  t.is(cmdline[0], process.execPath);
  t.deepEqual(cmdline.slice(1, 2), ['--max-old-space-size=512']);
  t.regex(cmdline[2] ?? '', /audit-main\.bundle\.mjs$/);
  t.deepEqual(JSON.parse(cmdline[3] ?? 'null'), { dir, durability: 'durable', checkpointIntervalMs: 60_000 });
  t.is(cmdline.length, 4);
  t.is(environ, '');
});

// Failure: a vat started without explicit options inherits the host's
// Node flags; a host run as `node --input-type=module -e …` then cannot
// start its audit vat at all (the flag is refused outside --eval), and
// every action would be denied.
test('audit vat: a host started with --input-type=module -e starts the vat and appends', async t => {
  const dir = await tempDir(t);
  const url = (path: string) => JSON.stringify(new URL(path, import.meta.url).href);
  const script = `
    await import(${url('../src/init.js')});
    const { startAuditVat } = await import(${url('../src/audit/audit-client.js')});
    const sink = startAuditVat({ dir: ${JSON.stringify(dir)}, timeoutMs: 20000 });
    const ref = await sink.append({ from: 'eval' });
    await sink.close();
    process.stdout.write(JSON.stringify(ref));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    env: {},
    timeout: 60_000,
  });
  t.is((JSON.parse(stdout) as { seq: number }).seq, 0);
  t.is(await readFile(join(dir, RECORDS_FILE), 'utf8'), '{"from":"eval","seq":0}\n');
});

test('startAuditVat refuses bad options with ZT_BAD_ARGUMENT', t => {
  t.throws(() => startAuditVat({ dir: '' }), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => startAuditVat({ dir: '/tmp/x', timeoutMs: 0 }), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => startAuditVat({ dir: '/tmp/x', durability: 'maybe' as 'durable' }), {
    message: /^ZT_BAD_ARGUMENT\b/,
  });
});

/** Pids of live processes whose command line names `text`. */
const processesNaming = (text: string): number[] => {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
};

// Failure: the kernel's process is killed (SIGKILL: nothing of it runs
// again). The audit vat, a process of its own, sees its wire end, signs a
// last checkpoint over everything durable and exits: the log does not end
// unsigned, and nothing of the runtime stays behind.
test('audit vat: when the kernel process is killed, the vat signs a last checkpoint and exits', async t => {
  const dir = await tempDir(t);
  const url = (path: string) => JSON.stringify(new URL(path, import.meta.url).href);
  const script = `
    await import(${url('../src/init.js')});
    const { startAuditVat } = await import(${url('../src/audit/audit-client.js')});
    const sink = startAuditVat({ dir: ${JSON.stringify(dir)}, timeoutMs: 20000, checkpointIntervalMs: 0 });
    for (let i = 0; i < 5; i += 1) await sink.append({ n: i });
    process.kill(process.pid, 'SIGKILL');
  `;
  const err = await t.throwsAsync(promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { env: {}, timeout: 60_000 }));
  t.is((err as { signal?: unknown }).signal, 'SIGKILL');
  const deadline = Date.now() + 20_000;
  let checkpoints = '';
  while (Date.now() < deadline) {
    checkpoints = await readFile(join(dir, 'checkpoints.jsonl'), 'utf8').catch(() => '');
    if (checkpoints !== '' && processesNaming(JSON.stringify(dir).slice(1, -1)).length === 0) break;
    await new Promise(resolve => setTimeout(resolve, 50));
  }
  const last = JSON.parse(checkpoints.trim().split('\n').pop() ?? 'null') as { note?: string } | null;
  t.is(last?.note?.split('\n')[1], '5');
  t.deepEqual(processesNaming(JSON.stringify(dir).slice(1, -1)), []);
  t.is((await verifyStore(dir)).size, 5);
});
