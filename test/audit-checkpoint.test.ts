import { test } from './_prepare.js';
import { fc } from '@fast-check/ava';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { makeAuditLog } from '../src/audit/audit-log.js';
import { startAuditVat } from '../src/audit/audit-client.js';
import {
  checkpointText,
  openCheckpoint,
  parseVerifierKey,
  signCheckpoint,
} from '../src/audit/checkpoint.js';
import { CHECKPOINTS_FILE, checkpointName } from '../src/audit/checkpointer.js';
import { openFileStore, RECORDS_FILE } from '../src/audit/file-store.js';
import {
  CHECKPOINT_KEY_FILE,
  loadOrCreateSigningKey,
  makeNodeFileStorePowers,
  nodeEd25519Verify,
  nodeSha256,
} from '../src/audit/node-powers.js';
import { fromHex } from '../src/audit/merkle.js';
import { verifyStore } from '../src/audit/verify-node.js';
import { tempDir } from './_audit-fs.js';
import { makeSignedStore as makeSharedSignedStore } from './_audit-store.js';

const CORRUPT = { message: /^ZT_AUDIT_CORRUPT\b/ };

/** A store of `n` records with a signed checkpoint after each size in `at` (and one on close). */
const makeSignedStore = async (dir: string, n: number, at: number[]) => {
  const signed = await makeSharedSignedStore(dir, n, {
    at,
    record: i => ({ kind: 'decision', target: `file-${i}.txt`, allow: i % 2 === 0 }),
  });
  return { records: signed.records.toString('utf8') };
};

test('checkpoints are C2SP signed notes with the right key ID', async t => {
  const dir = await tempDir(t);
  const signer = await loadOrCreateSigningKey(dir, pub => checkpointName(nodeSha256, pub));
  t.is((await stat(join(dir, CHECKPOINT_KEY_FILE))).mode & 0o777, 0o600, 'private key is 0600');
  const root = new Uint8Array(32).fill(7);
  const body = { origin: signer.name, size: 42, rootHash: root };
  const note = signCheckpoint(nodeSha256, signer, body);
  const lines = note.split('\n');
  t.is(lines[0], signer.name);
  t.is(lines[1], '42');
  t.is(lines[2], Buffer.from(root).toString('base64'));
  t.is(lines[3], '');
  t.is(lines[5], '');
  const m = /^\u2014 (\S+) (\S+)$/u.exec(lines[4]!);
  t.truthy(m);
  t.is(m![1], signer.name);
  const blob = Buffer.from(m![2]!, 'base64');
  t.is(blob.length, 4 + 64);
  const keyId = createHash('sha256')
    .update(signer.name)
    .update(Uint8Array.of(0x0a, 0x01))
    .update(signer.publicKey)
    .digest()
    .subarray(0, 4);
  t.deepEqual([...blob.subarray(0, 4)], [...keyId]);
  t.is(note.slice(0, note.indexOf('\n\n') + 1), checkpointText(body));

  const key = parseVerifierKey(nodeSha256, signer.vkey)!;
  t.is(key.name, signer.name);
  const opened = openCheckpoint(nodeSha256, nodeEd25519Verify, key, note);
  t.is(opened?.size, 42);
  // Tampering with the size, the root or the signature is rejected.
  t.is(openCheckpoint(nodeSha256, nodeEd25519Verify, key, note.replace('\n42\n', '\n43\n')), undefined);
  const otherRoot = Buffer.from(new Uint8Array(32).fill(8)).toString('base64');
  t.is(openCheckpoint(nodeSha256, nodeEd25519Verify, key, note.replace(lines[2]!, otherRoot)), undefined);
  const flipped = Buffer.from(blob);
  flipped[10]! ^= 1;
  t.is(
    openCheckpoint(nodeSha256, nodeEd25519Verify, key, note.replace(m![2]!, flipped.toString('base64'))),
    undefined,
  );
  // Another key of the same name does not verify it.
  const other = await loadOrCreateSigningKey(await tempDir(t), () => signer.name);
  t.is(openCheckpoint(nodeSha256, nodeEd25519Verify, parseVerifierKey(nodeSha256, other.vkey)!, note), undefined);
  t.is(parseVerifierKey(nodeSha256, signer.vkey.replace(/\+[0-9a-f]{8}\+/, '+00000000+')), undefined);
});

test('the same key is reused on reopen; a world-readable key is refused', async t => {
  const dir = await tempDir(t);
  const a = await loadOrCreateSigningKey(dir, pub => checkpointName(nodeSha256, pub));
  const b = await loadOrCreateSigningKey(dir, pub => checkpointName(nodeSha256, pub));
  t.is(a.vkey, b.vkey);
  const { chmod } = await import('node:fs/promises');
  await chmod(join(dir, CHECKPOINT_KEY_FILE), 0o644);
  await t.throwsAsync(
    loadOrCreateSigningKey(dir, pub => checkpointName(nodeSha256, pub)),
    { message: /^ZT_AUDIT_UNAVAILABLE\b/ },
  );
});

test('verifyStore accepts an untouched store and reports its tree', async t => {
  const dir = await tempDir(t);
  await makeSignedStore(dir, 10, [3, 7]);
  const report = await verifyStore(dir);
  t.is(report.size, 10);
  t.is(report.checkpoints, 3, 'two on demand and one on close');
  const log = await makeAuditLog({
    store: await openFileStore(makeNodeFileStorePowers(), { dir }),
    sha256: nodeSha256,
  });
  t.is(report.rootHash, log.rootHash());
  await log.close();
});

// Attack: change one character of a recorded target so that the record is
// still valid, canonical JSON with the right seq. Only the signed Merkle
// root can tell; verify must name the record that was changed.
test('an edit that keeps the record canonical is caught by the checkpoint root', async t => {
  const dir = await tempDir(t);
  const { records } = await makeSignedStore(dir, 10, [3, 7]);
  await writeFile(join(dir, RECORDS_FILE), records.replace('file-5.txt', 'file-X.txt'));
  const err = await t.throwsAsync(verifyStore(dir), CORRUPT);
  // The checkpoint line lists the leaves its signature vouches for: the
  // edited record itself is named, not the first of the range.
  t.regex(err!.message, /record 5 differs from the record the checkpoint at size 7 vouches for/);
  t.is((err as { details?: { index?: number } }).details?.index, 5);
});

// Attack: delete the record of an embarrassing decision.
test('deleting a record is caught at its index', async t => {
  const dir = await tempDir(t);
  const { records } = await makeSignedStore(dir, 10, [10]);
  const lines = records.split('\n');
  lines.splice(4, 1);
  await writeFile(join(dir, RECORDS_FILE), lines.join('\n'));
  const err = await t.throwsAsync(verifyStore(dir), CORRUPT);
  t.regex(err!.message, /record 4 is out of sequence/);
});

// Attack: cut the tail of the log, with all records after some point.
test('truncating covered records is caught as missing records', async t => {
  const dir = await tempDir(t);
  const { records } = await makeSignedStore(dir, 10, []);
  await writeFile(join(dir, RECORDS_FILE), records.split('\n').slice(0, 6).join('\n') + '\n');
  const err = await t.throwsAsync(verifyStore(dir), CORRUPT);
  t.regex(err!.message, /records from index 6 are missing/);
});

// Attack: swap two records so a denial seems to come before a request.
test('reordering records is caught at the first moved index', async t => {
  const dir = await tempDir(t);
  const { records } = await makeSignedStore(dir, 10, [10]);
  const lines = records.split('\n');
  [lines[2], lines[6]] = [lines[6]!, lines[2]!];
  await writeFile(join(dir, RECORDS_FILE), lines.join('\n'));
  const err = await t.throwsAsync(verifyStore(dir), CORRUPT);
  t.regex(err!.message, /record 2 is out of sequence/);
});

// Attack: forge a checkpoint that vouches for a rewritten history.
test('a tampered checkpoint fails verification', async t => {
  const dir = await tempDir(t);
  await makeSignedStore(dir, 4, [2]);
  const path = join(dir, CHECKPOINTS_FILE);
  const text = await readFile(path, 'utf8');
  await writeFile(path, text.replace('\\n2\\n', '\\n1\\n'));
  const err = await t.throwsAsync(verifyStore(dir), CORRUPT);
  t.regex(err!.message, /checkpoint 0 has a bad signature/);
});

test('property: any single-byte change to the records file is detected', async t => {
  const dir = await tempDir(t);
  const { records } = await makeSignedStore(dir, 12, [5]);
  const original = Buffer.from(records);
  const path = join(dir, RECORDS_FILE);
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: original.length - 1 }),
      fc.integer({ min: 1, max: 255 }),
      async (pos, xor) => {
        const damaged = Buffer.from(original);
        damaged[pos]! ^= xor;
        await writeFile(path, damaged);
        await t.throwsAsync(verifyStore(dir), CORRUPT, `byte ${pos} ^ ${xor}`);
      },
    ),
    { numRuns: 150 },
  );
  await writeFile(path, original);
  t.is((await verifyStore(dir)).size, 12);
});

// Attack: rewrite history while the runtime is down, then restart it. The
// vat must refuse to append after a history its own checkpoint contradicts.
test('the audit vat refuses to start on records that contradict its last checkpoint', async t => {
  const dir = await tempDir(t);
  const sink = startAuditVat({ dir, timeoutMs: 10_000, checkpointIntervalMs: 0 });
  for (let i = 0; i < 5; i += 1) await sink.append({ target: `file-${i}.txt` });
  const cp = await sink.checkpoint();
  t.is(cp.size, 5);
  t.true(typeof cp.note === 'string' && cp.note.includes('\n5\n'));
  t.is(cp.note!.split('\n')[2], Buffer.from(fromHex(cp.rootHash)!).toString('base64'));
  await sink.close();
  t.is((await verifyStore(dir)).size, 5);

  const records = await readFile(join(dir, RECORDS_FILE), 'utf8');
  await writeFile(join(dir, RECORDS_FILE), records.replace('file-1.txt', 'file-9.txt'));
  const again = startAuditVat({ dir, timeoutMs: 10_000 });
  await t.throwsAsync(again.ready(), { message: /^ZT_AUDIT_CORRUPT: records before index 5 differ/ });
  await t.throwsAsync(again.append({ x: 1 }), { message: /^ZT_AUDIT_UNAVAILABLE\b/ });
  await again.close();
});

test('the audit vat checkpoints on its interval', async t => {
  const dir = await tempDir(t);
  const sink = startAuditVat({ dir, timeoutMs: 10_000, checkpointIntervalMs: 30 });
  await sink.append({ a: 1 });
  await new Promise(resolve => setTimeout(resolve, 200));
  const text = await readFile(join(dir, CHECKPOINTS_FILE), 'utf8');
  t.true(text.split('\n').length >= 2, 'at least one checkpoint without being asked');
  await sink.close();
  const report = await verifyStore(dir);
  t.is(report.size, 1);
});
