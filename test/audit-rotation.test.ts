/**
 * Checkpoint key rotation and verification against published checkpoints:
 * the audit vat rotates its key, records the rotation, hands over with a
 * checkpoint signed by both keys; verification follows the chain from the
 * first key; a crash mid-rotation is finished or abandoned on restart; and
 * every forgery a stolen retired key allows is detected.
 */
import { test } from './_prepare.js';
import { execFile } from 'node:child_process';
import { appendFile, copyFile, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startAuditVat } from '../src/audit/audit-client.js';
import type { AuditVatSink } from '../src/audit/audit-client.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { openCheckpoint, parseVerifierKey, peekCheckpoint, signCheckpoint } from '../src/audit/checkpoint.js';
import { CHECKPOINTS_FILE, checkpointName } from '../src/audit/checkpointer.js';
import { RECORDS_FILE } from '../src/audit/file-store.js';
import { KEY_CHAIN_FILE, ROTATION_EXTENSION } from '../src/audit/keychain.js';
import { fromHex } from '../src/audit/merkle.js';
import {
  CHECKPOINT_KEY_FILE,
  createNextSigningKey,
  loadOrCreateSigningKey,
  NEXT_CHECKPOINT_KEY_FILE,
  nodeEd25519Verify,
  nodeSha256,
} from '../src/audit/node-powers.js';
import { verifyStore } from '../src/audit/verify-node.js';
import { SandboxRuntime } from '../src/index.js';
import { tempDir } from './_audit-fs.js';
import { sampleRecord } from './_audit-store.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const execFileP = promisify(execFile);
const CORRUPT = { code: 'ZT_AUDIT_CORRUPT' } as const;
const LOG_MISSING = { code: 'ZT_AUDIT_LOG_MISSING' } as const;

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

const nameOf = (pub: Uint8Array) => checkpointName(nodeSha256, pub);

const appendSome = async (sink: AuditVatSink, from: number, count: number) => {
  await Promise.all(Array.from({ length: count }, (_, i) => sink.append(sampleRecord(from + i))));
};

const lines = async (path: string) =>
  (await readFile(path, 'utf8'))
    .split('\n')
    .slice(0, -1)
    .map(l => JSON.parse(l) as Record<string, unknown>);

/** Temp folder laid out as `<store>/audit` so the CLI can be pointed at it. */
const auditFolder = async (t: Parameters<typeof tempDir>[0]) => join(await tempDir(t), 'audit');

/** The verifier key the store publishes now. */
const currentVkey = async (dir: string) => (await readFile(join(dir, 'checkpoint-key.vkey'), 'utf8')).trim();

/** A closed store of `n` records under its first key. */
const storeOf = async (dir: string, n: number) => {
  const sink = startAuditVat({ dir, checkpointIntervalMs: 0 });
  await sink.ready();
  await appendSome(sink, 0, n);
  await sink.close();
  return currentVkey(dir);
};

/** A store with 50 records under the first key, a rotation, and 50 more under the second. */
const rotatedStore = async (dir: string) => {
  const sink = startAuditVat({ dir, checkpointIntervalMs: 0 });
  await sink.ready();
  await appendSome(sink, 0, 50);
  const first = await sink.checkpoint();
  const firstVkey = await currentVkey(dir);
  const rotation = await sink.rotateKey();
  await appendSome(sink, 50, 50);
  await sink.close();
  return { firstVkey, rotation, first };
};

test('a rotation is recorded, handed over with both signatures, and verified from the first key', async t => {
  const dir = await auditFolder(t);
  const { firstVkey, rotation } = await rotatedStore(dir);
  t.not(rotation.key, firstVkey);

  // The log records the rotation before the handover's tree head.
  const records = await lines(join(dir, RECORDS_FILE));
  const recorded = records.filter(r => r.type === 'audit.key-rotation');
  t.is(recorded.length, 1);
  t.like(recorded[0], { previousKey: firstVkey, key: rotation.key });
  t.true((recorded[0]!.seq as number) < rotation.size);

  // The chain: the first key, then a handover signed by both keys.
  const chain = await lines(join(dir, KEY_CHAIN_FILE));
  t.is(chain.length, 2);
  t.is(chain[0]!.vkey, firstVkey);
  const handover = chain[1]!.handover as string;
  const oldKey = parseVerifierKey(nodeSha256, firstVkey)!;
  const newKey = parseVerifierKey(nodeSha256, rotation.key)!;
  t.truthy(openCheckpoint(nodeSha256, nodeEd25519Verify, oldKey, handover), 'signed by the old key');
  t.truthy(openCheckpoint(nodeSha256, nodeEd25519Verify, newKey, handover), 'signed by the new key');
  t.deepEqual(peekCheckpoint(handover)!.extensions, [`${ROTATION_EXTENSION} ${rotation.key}`]);
  t.is(peekCheckpoint(handover)!.origin, oldKey.name, 'the origin stays the first key name');

  // Later checkpoints are signed by the new key only.
  const notes = (await lines(join(dir, CHECKPOINTS_FILE))).map(l => l.note as string);
  const last = notes[notes.length - 1]!;
  t.truthy(openCheckpoint(nodeSha256, nodeEd25519Verify, newKey, last));
  t.falsy(openCheckpoint(nodeSha256, nodeEd25519Verify, oldKey, last));
  t.is(peekCheckpoint(last)!.size, 101, '100 records and the rotation record');

  const report = await verifyStore(dir, { vkey: firstVkey });
  t.like(report, { size: 101, rotations: 1 });

  // Any key of the chain can anchor the check (the newest one held is best);
  // a key that is not in the chain cannot.
  t.like(await verifyStore(dir, { vkey: rotation.key }), { size: 101, rotations: 1 });
  const strangerDir = await tempDir(t);
  const stranger = await loadOrCreateSigningKey(strangerDir, nameOf);
  await t.throwsAsync(verifyStore(dir, { vkey: stranger.vkey }), {
    ...LOG_MISSING,
    message: /does not contain the trusted verifier key/,
  });

  // The CLI follows the chain too.
  const store = join(dir, '..');
  t.is((await cli('key', '--store', store)).stdout, `${rotation.key}\n`);
  t.is((await cli('key', '--store', store, '--chain')).stdout, `${firstVkey}\n${rotation.key}\n`);
  const verify = await cli('verify', '--store', store);
  t.is(verify.code, 0, verify.stderr);
  t.regex(verify.stdout, /^OK: 101 records, .*1 key rotations/);
  const early = await cli('checkpoint', '--store', store, '--size', '50');
  t.is(early.code, 0, early.stderr);
  t.truthy(openCheckpoint(nodeSha256, nodeEd25519Verify, oldKey, early.stdout), 'old checkpoints stay verifiable');
});

test('forgeries with a stolen retired key are detected', async t => {
  const saved = join(await tempDir(t), 'retired.pem');
  // The thief copies the first key before it is retired.
  const dir2 = await auditFolder(t);
  const sink = startAuditVat({ dir: dir2, checkpointIntervalMs: 0 });
  await sink.ready();
  await appendSome(sink, 0, 40);
  await sink.checkpoint();
  await copyFile(join(dir2, CHECKPOINT_KEY_FILE), saved);
  const firstVkey2 = await currentVkey(dir2);
  const rotation2 = await sink.rotateKey();
  await appendSome(sink, 40, 20);
  await sink.close();
  t.is(rotation2.size, 41);
  t.like(await verifyStore(dir2, { vkey: firstVkey2 }), { rotations: 1 });

  // The thief's signer: the retired key, loaded from its copy.
  const thiefDir = await tempDir(t);
  await copyFile(saved, join(thiefDir, CHECKPOINT_KEY_FILE));
  const thief = await loadOrCreateSigningKey(thiefDir, nameOf);
  t.is(thief.vkey, firstVkey2);
  const origin = thief.name;
  const checkpoints = await readFile(join(dir2, CHECKPOINTS_FILE), 'utf8');
  const chainText = await readFile(join(dir2, KEY_CHAIN_FILE), 'utf8');

  // 1. A checkpoint beyond the handover signed by the retired key.
  const report = await verifyStore(dir2, { vkey: firstVkey2 });
  const late = signCheckpoint(nodeSha256, thief, { origin, size: report.size, rootHash: fromHex(report.rootHash)! });
  await appendFile(join(dir2, CHECKPOINTS_FILE), `${canonicalJson({ note: late })}\n`);
  await t.throwsAsync(verifyStore(dir2, { vkey: firstVkey2 }), { ...CORRUPT, message: /checkpoint \d+ has a bad signature/ });
  await writeFile(join(dir2, CHECKPOINTS_FILE), checkpoints);

  // 2. A handover signed by the retired key alone, to a key of the thief's.
  const thiefNext = await createNextSigningKey(thiefDir, nameOf);
  const forgedHandover = signCheckpoint(
    nodeSha256,
    [thief],
    { origin, size: rotation2.size, rootHash: fromHex(rotation2.rootHash)! },
    [`${ROTATION_EXTENSION} ${thiefNext.vkey}`],
  );
  const chainLines = chainText.split('\n');
  await writeFile(join(dir2, KEY_CHAIN_FILE), `${chainLines[0]}\n${canonicalJson({ handover: forgedHandover })}\n`);
  await t.throwsAsync(verifyStore(dir2, { vkey: firstVkey2 }), { ...CORRUPT, message: /not signed by both keys/ });

  // 3. A rotation to a key of the thief's, signed by both (the thief holds
  //    both), but never recorded in the log.
  const bothSigned = signCheckpoint(
    nodeSha256,
    [thief, thiefNext],
    { origin, size: rotation2.size, rootHash: fromHex(rotation2.rootHash)! },
    [`${ROTATION_EXTENSION} ${thiefNext.vkey}`],
  );
  await writeFile(join(dir2, KEY_CHAIN_FILE), `${chainLines[0]}\n${canonicalJson({ handover: bothSigned })}\n`);
  // (Only the checkpoints the forged chain can explain are kept.)
  await writeFile(join(dir2, CHECKPOINTS_FILE), `${checkpoints.split('\n')[0]}\n`);
  await t.throwsAsync(verifyStore(dir2, { vkey: firstVkey2 }), {
    ...CORRUPT,
    message: /key rotation 1 is not recorded in the log before its handover/,
  });
  await writeFile(join(dir2, KEY_CHAIN_FILE), chainText);
  await writeFile(join(dir2, CHECKPOINTS_FILE), checkpoints);

  // 4. The chain cut back to the retired key, a record rewritten, a
  //    checkpoint re-signed with the retired key. Anchored in the retired
  //    key, this passes: whoever holds a key can forge a history from it,
  //    which is why the anchor must be the newest key held. Anchored in the
  //    successor, it is refused.
  {
    const records = (await readFile(join(dir2, RECORDS_FILE), 'utf8')).split('\n');
    const forged = records.slice(0, 40);
    const edited = JSON.parse(forged[7]!) as Record<string, unknown>;
    edited.target = '/etc/shadow';
    forged[7] = canonicalJson(edited);
    const forgedDir = await tempDir(t);
    await writeFile(join(forgedDir, RECORDS_FILE), `${forged.join('\n')}\n`);
    const forgedRoot = (await verifyStore(forgedDir)).rootHash;
    const forgedNote = signCheckpoint(nodeSha256, thief, { origin, size: 40, rootHash: fromHex(forgedRoot)! });
    await writeFile(join(forgedDir, CHECKPOINTS_FILE), `${canonicalJson({ note: forgedNote })}\n`);
    await writeFile(join(forgedDir, KEY_CHAIN_FILE), `${chainLines[0]}\n`);
    t.like(await verifyStore(forgedDir, { vkey: firstVkey2 }), { size: 40 });
    await t.throwsAsync(verifyStore(forgedDir, { vkey: rotation2.key }), {
      ...LOG_MISSING,
      message: /does not contain the trusted verifier key/,
    });
    // A handover from the retired key to one of the thief's, signed by both:
    // still not the successor the auditor holds.
    await writeFile(join(forgedDir, KEY_CHAIN_FILE), `${chainLines[0]}\n${canonicalJson({ handover: bothSigned })}\n`);
    await t.throwsAsync(verifyStore(forgedDir, { vkey: rotation2.key }), {
      ...LOG_MISSING,
      message: /does not contain the trusted verifier key/,
    });
  }

  // 5. No stolen key at all: the chain restarted at the trusted key (or
  //    deleted), every checkpoint dropped, a record rewritten. Nothing the
  //    trusted key signed is left to vouch for the records: refused.
  {
    const records = (await readFile(join(dir2, RECORDS_FILE), 'utf8')).split('\n');
    const edited = JSON.parse(records[5]!) as Record<string, unknown>;
    edited.decision = edited.decision === 'allow' ? 'deny' : 'allow';
    records[5] = canonicalJson(edited);
    const restarted = await tempDir(t);
    await writeFile(join(restarted, RECORDS_FILE), records.join('\n'));
    await writeFile(join(restarted, CHECKPOINTS_FILE), '');
    await writeFile(join(restarted, KEY_CHAIN_FILE), `${canonicalJson({ vkey: rotation2.key })}\n`);
    // (The key exists but nothing it signed is left: the log lost its checkpoints.)
    const NOTHING_SIGNED = { code: 'ZT_AUDIT_LOG_MISSING', message: /no signed checkpoint/ };
    await t.throwsAsync(verifyStore(restarted, { vkey: rotation2.key }), NOTHING_SIGNED);
    await rm(join(restarted, KEY_CHAIN_FILE));
    await t.throwsAsync(verifyStore(restarted, { vkey: rotation2.key }), NOTHING_SIGNED, 'chain file deleted');
    // The genuine store: the trusted key's handover and checkpoints vouch.
    t.like(await verifyStore(dir2, { vkey: rotation2.key }), { anchoredSize: 61 });
  }

  // 6. History before the handover rewritten and every old checkpoint re-signed
  //    with the retired key: the handover, co-signed by the new key, pins the root.
  const records = (await readFile(join(dir2, RECORDS_FILE), 'utf8')).split('\n');
  const edited = JSON.parse(records[5]!) as Record<string, unknown>;
  edited.decision = edited.decision === 'allow' ? 'deny' : 'allow';
  records[5] = canonicalJson(edited);
  await writeFile(join(dir2, RECORDS_FILE), records.join('\n'));
  await t.throwsAsync(verifyStore(dir2, { vkey: firstVkey2 }), { ...CORRUPT, message: /record 5 differs from the record the (checkpoint|key handover) at size 40 vouches for/ });
});

test('a crash after the handover committed is finished on restart', async t => {
  const dir = await auditFolder(t);
  const sink = startAuditVat({ dir, checkpointIntervalMs: 0 });
  await sink.ready();
  await appendSome(sink, 0, 10);
  const oldPem = await readFile(join(dir, CHECKPOINT_KEY_FILE));
  const firstVkey = await currentVkey(dir);
  const rotation = await sink.rotateKey();
  await sink.close();
  // Put the files back as they were between the commit point and the rename.
  await rename(join(dir, CHECKPOINT_KEY_FILE), join(dir, NEXT_CHECKPOINT_KEY_FILE));
  await writeFile(join(dir, CHECKPOINT_KEY_FILE), oldPem, { mode: 0o600 });

  const again = startAuditVat({ dir, checkpointIntervalMs: 0 });
  await again.ready();
  await appendSome(again, 10, 5);
  await again.close();
  await t.throwsAsync(stat(join(dir, NEXT_CHECKPOINT_KEY_FILE)), { code: 'ENOENT' });
  t.is(await currentVkey(dir), rotation.key, 'the successor took over');
  t.like(await verifyStore(dir, { vkey: firstVkey }), { rotations: 1, size: 16 });
});

test('a rotation that never reached its commit point is abandoned and recorded on restart', async t => {
  const dir = await auditFolder(t);
  const firstVkey = await storeOf(dir, 10);
  // A successor generated, then the crash.
  const successor = await createNextSigningKey(dir, nameOf);

  const again = startAuditVat({ dir, checkpointIntervalMs: 0 });
  await again.ready();
  await again.close();
  await t.throwsAsync(stat(join(dir, NEXT_CHECKPOINT_KEY_FILE)), { code: 'ENOENT' });
  t.is(await currentVkey(dir), firstVkey, 'the key did not change');
  const abandoned = (await lines(join(dir, RECORDS_FILE))).filter(r => r.type === 'audit.key-rotation-abandoned');
  t.is(abandoned.length, 1);
  t.is(abandoned[0]!.key, successor.vkey);
  t.like(await verifyStore(dir, { vkey: firstVkey }), { rotations: 0, size: 11 });
});

test('a torn successor key (crash while writing it) is dropped and recorded on restart', async t => {
  const dir = await auditFolder(t);
  const firstVkey = await storeOf(dir, 3);
  await writeFile(join(dir, `${NEXT_CHECKPOINT_KEY_FILE}.tmp`), '-----BEGIN PRIVATE KEY-----\nMC4C', { mode: 0o600 });
  await writeFile(join(dir, NEXT_CHECKPOINT_KEY_FILE), '-----BEGIN PRIVATE KEY-----\nMC4C', { mode: 0o600 });
  const again = startAuditVat({ dir, checkpointIntervalMs: 0 });
  await again.ready();
  // A rotation can start again: the leftover temporary file is replaced.
  const rotation = await again.rotateKey();
  await again.close();
  const records = await lines(join(dir, RECORDS_FILE));
  t.like(records.find(r => r.type === 'audit.key-rotation-abandoned'), { key: 'unreadable' });
  t.like(await verifyStore(dir, { vkey: rotation.key }), { rotations: 1 });
  t.deepEqual((await lines(join(dir, KEY_CHAIN_FILE))).map(l => l.vkey ?? 'handover'), [firstVkey, 'handover']);
});

test('verify --checkpoint: the records must reproduce a checkpoint published earlier', async t => {
  const dir = await auditFolder(t);
  const store = join(dir, '..');
  const sink = startAuditVat({ dir, checkpointIntervalMs: 0 });
  await sink.ready();
  await appendSome(sink, 0, 30);
  const published = await sink.checkpoint();
  const publishedFile = join(store, 'published.note');
  await writeFile(publishedFile, published.note!);
  const recordsAt30 = await readFile(join(dir, RECORDS_FILE));
  const checkpointsAt30 = await readFile(join(dir, CHECKPOINTS_FILE));
  await sink.rotateKey();
  await appendSome(sink, 30, 30);
  await sink.close();

  const ok = await cli('verify', '--store', store, '--checkpoint', publishedFile);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /1 external checkpoints matched/);

  // Rolled back to before the publication, checkpoints and all: the stored
  // checkpoints alone agree, the published one does not.
  const records = await readFile(join(dir, RECORDS_FILE));
  const checkpoints = await readFile(join(dir, CHECKPOINTS_FILE));
  const chain = await readFile(join(dir, KEY_CHAIN_FILE));
  await writeFile(join(dir, RECORDS_FILE), recordsAt30.subarray(0, recordsAt30.indexOf('\n'.charCodeAt(0), 0) + 1));
  await writeFile(join(dir, CHECKPOINTS_FILE), '');
  await writeFile(join(dir, KEY_CHAIN_FILE), `${chain.toString('utf8').split('\n')[0]}\n`);
  // Without its checkpoints the folder no longer vouches for itself: the key
  // it holds has signed, so the log was deleted or replaced.
  const alone = await cli('verify', '--store', store);
  t.is(alone.code, 1, 'the rolled-back store is refused even without the published checkpoint');
  t.regex(alone.stderr, /FAILED, the log was deleted or replaced/);
  const rolledBack = await cli('verify', '--store', store, '--checkpoint', publishedFile);
  t.is(rolledBack.code, 1);
  t.regex(rolledBack.stderr, /FAILED, first bad record: 1\b/);
  t.regex(rolledBack.stderr, /the external checkpoint covers 30/);

  // A different history of the same length: the published root exposes it.
  const lines30 = recordsAt30.toString('utf8').split('\n');
  const edited = JSON.parse(lines30[7]!) as Record<string, unknown>;
  edited.target = '/data/elsewhere.txt';
  lines30[7] = canonicalJson(edited);
  await writeFile(join(dir, RECORDS_FILE), lines30.join('\n'));
  await writeFile(join(dir, CHECKPOINTS_FILE), checkpointsAt30.subarray(0, 0));
  const forked = await cli('verify', '--store', store, '--checkpoint', publishedFile);
  t.is(forked.code, 1);
  t.regex(forked.stderr, /do not match the external checkpoint at size 30/);

  // Restore, and present a checkpoint signed by some other key.
  await writeFile(join(dir, RECORDS_FILE), records);
  await writeFile(join(dir, CHECKPOINTS_FILE), checkpoints);
  await writeFile(join(dir, KEY_CHAIN_FILE), chain);
  const strangerDir = await tempDir(t);
  const stranger = await loadOrCreateSigningKey(strangerDir, () => peekCheckpoint(published.note!)!.origin);
  const foreign = signCheckpoint(nodeSha256, stranger, peekCheckpoint(published.note!)!);
  const foreignFile = join(store, 'foreign.note');
  await writeFile(foreignFile, foreign);
  const refused = await cli('verify', '--store', store, '--checkpoint', foreignFile);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /external checkpoint 0 is not signed by this log's keys/);
  const missing = await cli('verify', '--store', store, '--checkpoint', join(store, 'nope.note'));
  t.is(missing.code, 1);
  t.regex(missing.stderr, /ZT_NOT_FOUND/);
});

test('the runtime rotates its audit key on request; a sink without keys refuses', async t => {
  const storeDir = await tempDir(t);
  const runtime = new SandboxRuntime({ storeDir });
  runtime.registerAgent('alice');
  const before = await runtime.audit.size();
  const rotated = await runtime.rotateAuditKey();
  t.true(rotated.size > before, 'the handover covers the records before it');
  await runtime.shutdown();
  const dir = join(storeDir, 'audit');
  const report = await verifyStore(dir);
  t.is(report.rotations, 1);
  t.is(await currentVkey(dir), rotated.key);

  const inMemory = new SandboxRuntime({
    storeDir: await tempDir(t),
    auditSink: {
      append: async () => ({ seq: 0, leafHash: '' }),
      read: async () => [],
      size: async () => 0,
      rootHash: async () => '',
      close: async () => undefined,
    },
  });
  await t.throwsAsync(inMemory.rotateAuditKey(), { code: 'ZT_BAD_ARGUMENT' });
  await inMemory.shutdown();
});
