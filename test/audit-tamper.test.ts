/**
 * Tamper evidence: for a signed log of a few thousand records, every kind of
 * single change an intruder with write access to the store folder can make
 * is detected by verification, at random positions (property tests). Each
 * attack must yield ZT_AUDIT_CORRUPT naming a first bad record at or before
 * the first record the attacker touched.
 */
import { test } from './_prepare.js';
import { fc } from '@fast-check/ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { canonicalJson } from '../src/audit/canonical.js';
import { signCheckpoint } from '../src/audit/checkpoint.js';
import { CHECKPOINTS_FILE } from '../src/audit/checkpointer.js';
import { RECORDS_FILE } from '../src/audit/file-store.js';
import { fromHex } from '../src/audit/merkle.js';
import { CHECKPOINT_VKEY_FILE, loadOrCreateSigningKey, nodeSha256 } from '../src/audit/node-powers.js';
import { verifyStore } from '../src/audit/verify-node.js';
import { tempDir } from './_audit-fs.js';
import { makeSignedStore, sampleRecord } from './_audit-store.js';
import type { SignedStore } from './_audit-store.js';

const N = 3000;
const EVERY = 400; // checkpoints at 400, 800, …, 2800, and 3000 on close
const RUNS = 25;

const lineStarts = (bytes: Buffer): number[] => {
  const starts = [0];
  for (let i = bytes.indexOf(0x0a); i !== -1 && i < bytes.length - 1; i = bytes.indexOf(0x0a, i + 1)) starts.push(i + 1);
  return starts;
};

const splitRecords = (bytes: Buffer): string[] => {
  const lines = bytes.toString('utf8').split('\n');
  lines.pop();
  return lines;
};

/** Expects verification to fail with ZT_AUDIT_CORRUPT; returns the index it blames, if any. */
const expectCorrupt = async (t: ExecutionContext, dir: string, label: string, vkey?: string) => {
  const err = await t.throwsAsync(verifyStore(dir, vkey === undefined ? {} : { vkey }), { message: /^ZT_AUDIT_CORRUPT\b/ }, label);
  return (err as { details?: { index?: number } } | undefined)?.details?.index;
};

let store: Promise<SignedStore> | undefined;
/** One pristine signed store, built once and copied into each test's folder. */
const pristine = (t: ExecutionContext) => {
  store ??= (async () => makeSignedStore(await tempDir(t), N, { every: EVERY }))();
  return store;
};

const freshCopy = async (t: ExecutionContext) => {
  const original = await pristine(t);
  const dir = await tempDir(t);
  await writeFile(join(dir, RECORDS_FILE), original.records);
  await writeFile(join(dir, CHECKPOINTS_FILE), original.checkpoints);
  await writeFile(join(dir, CHECKPOINT_VKEY_FILE), `${original.vkey}\n`);
  const report = await verifyStore(dir);
  t.is(report.size, N);
  t.is(report.checkpoints, Math.floor(N / EVERY) + 1);
  return { ...original, dir };
};

// Attack: flip bits of any one byte of the records file (an edited target,
// a decision turned from deny to allow, a changed digest or seq).
test('tamper: flipping any byte of any record is detected at or before that record', async t => {
  const { dir, records } = await freshCopy(t);
  const starts = lineStarts(records);
  const recordAt = (pos: number) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (starts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: records.length - 1 }), fc.integer({ min: 1, max: 255 }), async (pos, xor) => {
      const damaged = Buffer.from(records);
      damaged[pos]! ^= xor;
      await writeFile(join(dir, RECORDS_FILE), damaged);
      const index = await expectCorrupt(t, dir, `byte ${pos} ^ ${xor}`);
      t.true(index !== undefined && index <= recordAt(pos), `blamed ${index} for a change in record ${recordAt(pos)}`);
    }),
    { numRuns: RUNS * 2 },
  );
});

// Attack: delete the record of one embarrassing request or outcome.
test('tamper: deleting any record is detected at its index', async t => {
  const { dir, records } = await freshCopy(t);
  const lines = splitRecords(records);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: N - 1 }), async k => {
      const copy = [...lines];
      copy.splice(k, 1);
      await writeFile(join(dir, RECORDS_FILE), `${copy.join('\n')}\n`);
      const index = await expectCorrupt(t, dir, `delete ${k}`);
      t.is(index, k);
    }),
    { numRuns: RUNS },
  );
});

// Attack: swap two records so that, say, a revocation seems to come first.
test('tamper: swapping any two records is detected at the first of them', async t => {
  const { dir, records } = await freshCopy(t);
  const lines = splitRecords(records);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: N - 2 }), fc.integer({ min: 1, max: N - 1 }), async (j, d) => {
      const k = Math.min(N - 1, j + d);
      const copy = [...lines];
      [copy[j], copy[k]] = [copy[k]!, copy[j]!];
      await writeFile(join(dir, RECORDS_FILE), `${copy.join('\n')}\n`);
      const index = await expectCorrupt(t, dir, `swap ${j} ${k}`);
      t.is(index, j);
    }),
    { numRuns: RUNS },
  );
});

// Attack: cut the tail of the log (everything after some point).
test('tamper: truncating the tail anywhere is detected as missing records', async t => {
  const { dir, records } = await freshCopy(t);
  const lines = splitRecords(records);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: N - 1 }), async p => {
      await writeFile(join(dir, RECORDS_FILE), lines.slice(0, p).map(l => `${l}\n`).join(''));
      if (p === 0) {
        // Nothing left at all: the log was deleted, and its checkpoints say so.
        await t.throwsAsync(verifyStore(dir), { code: 'ZT_AUDIT_LOG_MISSING' }, 'truncate to 0');
        return;
      }
      const index = await expectCorrupt(t, dir, `truncate to ${p}`);
      t.is(index, p);
    }),
    { numRuns: RUNS },
  );
});

// Attack: replace the tail with a different history that is itself
// perfectly well formed: canonical records, consecutive seqs, plausible
// content. Only the signed checkpoints can tell.
test('tamper: replacing the tail with a different valid-looking history is detected', async t => {
  const { dir, records } = await freshCopy(t);
  const lines = splitRecords(records);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: N - 1 }), async p => {
      const forged = lines.slice(0, p);
      for (let i = p; i < N; i += 1) {
        forged.push(canonicalJson({ ...sampleRecord(i), target: `/data/forged-${i}.txt`, seq: i }));
      }
      await writeFile(join(dir, RECORDS_FILE), `${forged.join('\n')}\n`);
      const index = await expectCorrupt(t, dir, `forged tail from ${p}`);
      t.true(index !== undefined && index <= p, `blamed ${index} for a tail forged from ${p}`);
    }),
    { numRuns: RUNS },
  );
});

// Attack: swap in a checkpoint signed by another key, vouching for a
// history of the attacker's choosing (here: the same size, another root).
test('tamper: a checkpoint signed by another key is detected', async t => {
  const { dir, checkpoints } = await freshCopy(t);
  const notes = splitRecords(checkpoints).map(line => (JSON.parse(line) as { note: string }).note);
  const [name] = notes[0]!.split('\n');
  const intruder = await loadOrCreateSigningKey(await tempDir(t), () => name!);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: notes.length - 1 }), fc.boolean(), async (k, sameRoot) => {
      const [, size, root] = notes[k]!.split('\n');
      const rootHash = sameRoot ? Buffer.from(root!, 'base64') : nodeSha256(Buffer.from(`forged ${k}`));
      const forged = signCheckpoint(nodeSha256, intruder, { origin: name!, size: Number(size), rootHash: new Uint8Array(rootHash) });
      const lines = notes.map((note, i) => canonicalJson({ note: i === k ? forged : note }));
      await writeFile(join(dir, CHECKPOINTS_FILE), `${lines.join('\n')}\n`);
      await expectCorrupt(t, dir, `checkpoint ${k} re-signed by another key`);
    }),
    { numRuns: RUNS },
  );
});

// Attack: rewrite history and re-sign every checkpoint with the attacker's
// own key, replacing the verifier key in the folder too. Only a key obtained
// separately (`verify --vkey`) catches this.
test('tamper: a rewritten log re-signed with a replaced key fails against the key obtained separately', async t => {
  const { dir, records, vkey } = await freshCopy(t);
  const lines = splitRecords(records);
  const forgedDir = await tempDir(t);
  const forgedLines = lines.map((line, i) => (i === 1234 ? line.replace('/data/', '/DATA/') : line));
  const forged = await makeSignedStore(forgedDir, N, {
    every: EVERY,
    record: i => {
      const rec = sampleRecord(i);
      return i === 1234 ? { ...rec, target: String(rec.target ?? '').replace('/data/', '/DATA/') } : rec;
    },
  });
  t.not(forged.vkey, vkey);
  t.deepEqual(splitRecords(forged.records)[1234], forgedLines[1234]);
  await writeFile(join(dir, RECORDS_FILE), forged.records);
  await writeFile(join(dir, CHECKPOINTS_FILE), forged.checkpoints);
  await writeFile(join(dir, CHECKPOINT_VKEY_FILE), `${forged.vkey}\n`);
  t.is((await verifyStore(dir)).size, N, 'self-consistent against the replaced key in the folder');
  await expectCorrupt(t, dir, 'against the real key', vkey);
});

test('tamper: the pristine copy verifies, also against the key obtained separately', async t => {
  const { dir, vkey } = await freshCopy(t);
  const report = await verifyStore(dir, { vkey });
  t.is(report.size, N);
  t.regex(report.rootHash, /^[0-9a-f]{64}$/);
  t.truthy(fromHex(report.rootHash));
});
