/**
 * The log is tamper-evident from its first record. Before, checkpoints came
 * every 60 s and at shutdown, so a store killed before its first one had no
 * signed head: deleting the log restarted it at seq 0, a flipped byte
 * verified, and a line appended by someone else was adopted on reopen and
 * signed into the next checkpoint. Now the vat signs a checkpoint of the
 * empty log before its key is put in place and acknowledges an append only
 * once a checkpoint covers it; reopening checks before it changes anything
 * and quarantines what no checkpoint covers.
 *
 * Every test goes through the real audit vat (a worker) and the real store,
 * and kills the worker instead of closing it, so no shutdown checkpoint is
 * ever made: the interval timer is off (checkpointIntervalMs 0).
 */
import { test } from './_prepare.js';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { startAuditVat } from '../src/audit/audit-client.js';
import { startAuditProcess, type AuditConnection } from '../src/audit/audit-vat-node-powers.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { CHECKPOINTS_FILE } from '../src/audit/checkpointer.js';
import { RECORDS_FILE } from '../src/audit/file-store.js';
import { CHECKPOINT_KEY_FILE, CHECKPOINT_VKEY_FILE } from '../src/audit/node-powers.js';
import { verifyStore } from '../src/audit/verify-node.js';
import { tempDir } from './_audit-fs.js';
import { sampleRecord } from './_audit-store.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const execFileP = promisify(execFile);

const cli = async (...args: string[]) => {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, 'audit', ...args], { env: {}, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: String(e.stdout ?? ''), stderr: String(e.stderr ?? '') };
  }
};

/** `<store>/audit` for a fresh store folder. */
const auditFolder = async (t: ExecutionContext) => join(await tempDir(t), 'audit');

/**
 * Appends `n` records through a real vat (in batches of `batch`, each its
 * own commit group), then kills the vat's process: no close, no final checkpoint.
 */
const writeThenKill = async (dir: string, n: number, batch = n) => {
  let vat: AuditConnection | undefined;
  const sink = startAuditVat({
    dir,
    timeoutMs: 20_000,
    checkpointIntervalMs: 0,
    startVat: options => (vat = startAuditProcess(options)),
  });
  await sink.ready();
  for (let i = 0; i < n; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, k) => sink.append(sampleRecord(i + k))));
  }
  await vat!.terminate();
  await sink.close().catch(() => undefined);
};

/** Every file of the folder, name → SHA-256 of its bytes. */
const snapshot = async (dir: string) => {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    out[name] = createHash('sha256').update(await readFile(join(dir, name))).digest('hex');
  }
  return out;
};

/** Opens the store in a real vat; resolves with how `ready()` ended. */
const reopen = async (dir: string) => {
  const sink = startAuditVat({ dir, timeoutMs: 20_000, checkpointIntervalMs: 0 });
  try {
    await sink.ready();
    return { sink, error: undefined };
  } catch (err) {
    await sink.close().catch(() => undefined);
    return { sink: undefined, error: err as Error & { code?: string } };
  }
};

const lines = async (dir: string) =>
  (await readFile(join(dir, RECORDS_FILE), 'utf8'))
    .split('\n')
    .slice(0, -1)
    .map(l => JSON.parse(l) as Record<string, unknown>);

// Attack: flip one character of a decision record (keeping it canonical)
// in a store whose runtime died before its first interval checkpoint.
// Before: no checkpoint existed, so the edit verified. Now the commit group
// was signed before it was acknowledged, and verify names the edited record.
test('unsigned window: an edit in a log killed before any interval checkpoint is detected at the edited record', async t => {
  const dir = await auditFolder(t);
  await writeThenKill(dir, 50, 10);
  const text = await readFile(join(dir, RECORDS_FILE), 'utf8');
  t.true(text.includes('/data/alice/f-42.txt'));
  await writeFile(join(dir, RECORDS_FILE), text.replace('/data/alice/f-42.txt', '/data/alice/f-XX.txt'));
  const err = await t.throwsAsync(verifyStore(dir), { code: 'ZT_AUDIT_CORRUPT' });
  t.is((err as { details?: { index?: number } }).details?.index, 42);
  const out = await cli('verify', '--store', join(dir, '..'));
  t.is(out.code, 1);
  t.regex(out.stderr, /FAILED, first bad record: 42\b/);

  // Reopening refuses, and changes nothing on the way.
  const before = await snapshot(dir);
  const { error } = await reopen(dir);
  t.regex(String(error?.message), /^ZT_AUDIT_CORRUPT\b/);
  t.deepEqual(await snapshot(dir), before, 'every file byte for byte as it was');
});

// Attack: the same edit, with a torn half-line after it (what a crash
// mid-write leaves). Before, recovery cut the torn tail before the check
// refused the store, destroying evidence. Now the refused reopen leaves it.
test('unsigned window: a refused reopen leaves every file byte for byte, a torn tail included', async t => {
  const dir = await auditFolder(t);
  await writeThenKill(dir, 20, 5);
  const text = await readFile(join(dir, RECORDS_FILE), 'utf8');
  await writeFile(join(dir, RECORDS_FILE), `${text.replace('/data/carol/f-8.txt', '/data/carol/f-0.txt')}{"torn":`);
  await appendFile(join(dir, CHECKPOINTS_FILE), '{"leaves":"","no');
  const before = await snapshot(dir);
  const { error } = await reopen(dir);
  t.regex(String(error?.message), /^ZT_AUDIT_CORRUPT\b/);
  t.deepEqual(await snapshot(dir), before);
});

// Attack: delete the log of a runtime that died before its first interval
// checkpoint. Before: the vat silently started again at seq 0. Now the key
// in the folder has signed (the empty log's checkpoint, then every commit
// group), so its log cannot be missing.
test('unsigned window: a deleted log is refused with ZT_AUDIT_LOG_MISSING when its key is presented', async t => {
  const dir = await auditFolder(t);
  await writeThenKill(dir, 12, 4);
  const vkey = (await readFile(join(dir, CHECKPOINT_VKEY_FILE), 'utf8')).trim();
  const vkeyFile = join(dir, '..', 'pinned.vkey');
  await writeFile(vkeyFile, `${vkey}\n`);

  // The records alone.
  await rm(join(dir, RECORDS_FILE));
  let before = await snapshot(dir);
  let opened = await reopen(dir);
  t.is(opened.error?.message.split(':')[0], 'ZT_AUDIT_LOG_MISSING');
  t.deepEqual(await snapshot(dir), before, 'no file created or changed');
  await t.throwsAsync(verifyStore(dir), { code: 'ZT_AUDIT_LOG_MISSING' });
  const out = await cli('verify', '--store', join(dir, '..'));
  t.is(out.code, 1);
  t.regex(out.stderr, /FAILED, the log was deleted or replaced/);

  // The records and the checkpoints.
  await rm(join(dir, CHECKPOINTS_FILE));
  before = await snapshot(dir);
  opened = await reopen(dir);
  t.is(opened.error?.message.split(':')[0], 'ZT_AUDIT_LOG_MISSING');
  t.deepEqual(await snapshot(dir), before);
  await t.throwsAsync(verifyStore(dir), { code: 'ZT_AUDIT_LOG_MISSING' });

  // Everything: only a key kept elsewhere can tell, and it does.
  await rm(dir, { recursive: true });
  const pinned = await cli('verify', '--store', join(dir, '..'), '--vkey', vkeyFile);
  t.is(pinned.code, 1);
  t.regex(pinned.stderr, /ZT_AUDIT_LOG_MISSING|the log was deleted or replaced/);
  // A new log started in its place is not the log that key signed.
  const fresh = await reopen(dir);
  t.truthy(fresh.sink);
  await fresh.sink!.append({ replacement: true });
  await fresh.sink!.close();
  await t.throwsAsync(verifyStore(dir, { vkey }), { code: 'ZT_AUDIT_LOG_MISSING' });
});

// Attack: append a well-formed record with the next seq to a closed log.
// Before: reopening adopted it and signed it into the next checkpoint. Now
// it is quarantined — moved to its own file, reported with
// ZT_AUDIT_UNSIGNED_TAIL in the log — and never signed.
test('unsigned window: a line appended by someone else is quarantined and reported, not adopted', async t => {
  const dir = await auditFolder(t);
  await writeThenKill(dir, 7);
  const forged = canonicalJson({ ...sampleRecord(7), decision: 'allow', seq: 7 });
  await appendFile(join(dir, RECORDS_FILE), `${forged}\n`);
  const err = await t.throwsAsync(verifyStore(dir), { code: 'ZT_AUDIT_UNSIGNED_TAIL' });
  t.is((err as { details?: { index?: number } }).details?.index, 7);

  const { sink } = await reopen(dir);
  t.truthy(sink);
  await sink!.append({ type: 'after', n: 1 });
  await sink!.close();
  const records = await lines(dir);
  t.false(records.some(r => canonicalJson(r) === forged), 'the foreign line is not in the log');
  const report = records.find(r => r.type === 'audit.unsigned-tail');
  t.like(report, { seq: 7, code: 'ZT_AUDIT_UNSIGNED_TAIL', fromSeq: 7, records: 1 });
  const file = String(report?.file);
  t.regex(file, /^records\.unsigned-7-\d+\.jsonl$/);
  t.is(await readFile(join(dir, file), 'utf8'), `${forged}\n`, 'kept, byte for byte, for the operator');
  const verified = await verifyStore(dir);
  t.is(verified.size, records.length);
});

// Failure (crash): the vat was killed between the records' fdatasync and
// their checkpoint's. Those records were never acknowledged; they are
// quarantined like any unsigned tail, and a torn line goes with them.
test('unsigned window: an unacknowledged torn tail is quarantined with its bytes, and the log resumes after the signed prefix', async t => {
  const dir = await auditFolder(t);
  await writeThenKill(dir, 9, 3);
  await appendFile(join(dir, RECORDS_FILE), '{"type":"request","seq":9,"tor');
  const { sink } = await reopen(dir);
  t.truthy(sink);
  const ref = await sink!.append({ type: 'after' });
  await sink!.close();
  t.is(ref.seq, 10, 'after the quarantine record at 9');
  const records = await lines(dir);
  t.like(records[9], { type: 'audit.unsigned-tail', records: 0, bytes: 30 });
  t.is((await verifyStore(dir)).size, 11);
});

// Failure (item 9): a kill while the first key was being created left the
// whole private key in a temporary file. Now the key is put in place only
// after the empty log is signed, and leftovers are removed on the next open.
test('unsigned window: a temporary key file left by a kill is removed on the next open', async t => {
  const dir = await auditFolder(t);
  await writeThenKill(dir, 1);
  const pem = await readFile(join(dir, CHECKPOINT_KEY_FILE));
  const leftover = join(dir, `${CHECKPOINT_KEY_FILE}.4242.1700000000000.tmp`);
  await writeFile(leftover, pem, { mode: 0o600 });
  const { sink } = await reopen(dir);
  t.truthy(sink);
  await sink!.close();
  t.false(existsSync(leftover));
});
