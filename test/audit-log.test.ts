import { test } from './_prepare.js';
import { fc } from '@fast-check/ava';
import { dictionary } from './_arbitraries.js';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeAuditLog } from '../src/audit/audit-log.js';
import type { AuditStore } from '../src/audit/audit-log.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { openFileStore, RECORDS_FILE } from '../src/audit/file-store.js';
import type { Durability } from '../src/audit/file-store.js';
import {
  fromHex,
  makeMerkleHasher,
  verifyConsistency,
  verifyInclusion,
} from '../src/audit/merkle.js';
import { makeNodeFileStorePowers, nodeSha256 } from '../src/audit/node-powers.js';
import { instrumentedPowers, tempDir } from './_audit-fs.js';


const hasher = makeMerkleHasher(nodeSha256);
const hex = (s: string) => fromHex(s)!;

const openLog = async (dir: string, durability: Durability = 'durable') =>
  makeAuditLog({
    store: await openFileStore(makeNodeFileStorePowers(), { dir, durability }),
    sha256: nodeSha256,
  });

test('append numbers records, stores canonical JSON and commits them to the tree', async t => {
  const dir = await tempDir(t);
  const log = await openLog(dir);
  t.is(log.size(), 0);
  t.is(log.rootHash(), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  const refs = await log.append([{ b: 2, a: 'x' }, { kind: 'decision' }]);
  t.deepEqual(
    refs.map(r => r.seq),
    [0, 1],
  );
  const line0 = '{"a":"x","b":2,"seq":0}';
  t.is(refs[0]!.leafHash, Buffer.from(hasher.hashLeaf(new TextEncoder().encode(line0))).toString('hex'));
  t.regex(refs[1]!.leafHash, /^[0-9a-f]{64}$/);
  t.is(log.size(), 2);
  t.is(
    await readFile(join(dir, RECORDS_FILE), 'utf8'),
    `${line0}\n{"kind":"decision","seq":1}\n`,
  );
  t.deepEqual(await log.read(0, 10), [
    { a: 'x', b: 2, seq: 0 },
    { kind: 'decision', seq: 1 },
  ]);
  const root = hasher.hashChildren(hex(refs[0]!.leafHash), hex(refs[1]!.leafHash));
  t.is(log.rootHash(), Buffer.from(root).toString('hex'));
  await log.close();
});

test('concurrent appends get consecutive, distinct seqs and one tree', async t => {
  const dir = await tempDir(t);
  const log = await openLog(dir);
  const refs = await Promise.all(Array.from({ length: 40 }, (_, i) => log.append([{ i }])));
  t.deepEqual(
    refs.map(r => r[0]!.seq),
    Array.from({ length: 40 }, (_, i) => i),
  );
  const records = await log.read(0, 40);
  t.deepEqual(
    records.map(r => r.i),
    Array.from({ length: 40 }, (_, i) => i),
  );
  await log.close();
});

test('reopening rebuilds the same tree; proofs verify against the roots', async t => {
  const dir = await tempDir(t);
  const log = await openLog(dir);
  const roots: string[] = [log.rootHash()];
  for (let i = 0; i < 13; i += 1) {
    await log.append([{ i }]);
    roots.push(log.rootHash());
  }
  await log.close();
  const again = await openLog(dir);
  t.is(again.size(), 13);
  t.is(again.rootHash(), roots[13]);
  for (let n = 1; n <= 13; n += 1) {
    t.is(again.rootHashAt(n), roots[n]);
    for (let m = 0; m < n; m += 1) {
      const proof = again.inclusionProof(m, n).map(hex);
      t.true(verifyInclusion(hasher, m, n, hex(again.leafHash(m)), proof, hex(roots[n]!)));
    }
    for (let m = 1; m <= n; m += 1) {
      const proof = again.consistencyProof(m, n).map(hex);
      t.true(verifyConsistency(hasher, m, n, hex(roots[m]!), hex(roots[n]!), proof));
    }
  }
  const refs = await again.append([{ i: 13 }]);
  t.is(refs[0]!.seq, 13);
  await again.close();
});

test('relaxed mode marks every record it writes', async t => {
  const dir = await tempDir(t);
  const log = await openLog(dir, 'relaxed');
  await log.append([{ a: 1 }]);
  t.deepEqual(await log.read(0, 1), [{ a: 1, durability: 'relaxed', seq: 0 }]);
  await log.close();
});

test('reserved keys, non-records and non-canonical values are refused without a trace', async t => {
  const dir = await tempDir(t);
  const log = await openLog(dir);
  await t.throwsAsync(log.append([{ seq: 7 }]), { message: /^ZT_BAD_ARGUMENT\b/ });
  await t.throwsAsync(log.append([{ durability: 'durable' }]), { message: /^ZT_BAD_ARGUMENT\b/ });
  await t.throwsAsync(log.append([[1, 2]]), { message: /^ZT_BAD_ARGUMENT\b/ });
  await t.throwsAsync(log.append([]), { message: /^ZT_BAD_ARGUMENT\b/ });
  await t.throwsAsync(log.append([new Date()]), { message: /^ZT_BAD_ARGUMENT\b/ });
  await t.throwsAsync(log.append([{ ok: 1 }, { n: NaN }]), { message: /^ZT_AUDIT_NOT_CANONICAL\b/ });
  let ran = false;
  const sneaky = Object.defineProperty({}, 'x', {
    enumerable: true,
    get: () => {
      ran = true;
      return 1;
    },
  });
  await t.throwsAsync(log.append([sneaky]), { message: /^ZT_AUDIT_NOT_CANONICAL\b/ });
  t.false(ran, 'a getter is refused, not run');
  t.is(log.size(), 0, 'a refused batch leaves no record');
  t.deepEqual((await log.append([{ ok: 1 }]))[0]!.seq, 0);
  await log.close();
});

/** An in-memory store: the stored lines are the test's to inspect. */
const memoryStore = (durability: Durability): AuditStore & { lines: string[] } => {
  const lines: string[] = [];
  return {
    durability,
    lines,
    size: () => lines.length,
    appendBatch: async batch => {
      const first = lines.length;
      lines.push(...batch);
      return first;
    },
    appendEncoded: async bytes => {
      const first = lines.length;
      lines.push(...new TextDecoder().decode(bytes).slice(0, -1).split('\n'));
      return first;
    },
    readRange: async (from, count) => lines.slice(from, from + count),
    sync: async () => undefined,
    close: async () => undefined,
  };
};

const jsonRecord = dictionary(
  fc.oneof(fc.string(), fc.constantFrom('seq0', 'sep', 'durable', 'durabilityX', 'é', '\u0001', 'z', '__proto__', 'constructor', 'toString')).filter(k => k !== 'seq' && k !== 'durability'),
  fc.jsonValue({ maxDepth: 3 }).map(v => JSON.parse(JSON.stringify(v)) as unknown),
  { maxKeys: 6 },
);

test('property: joined batches are stored as the canonical record with seq (and the relaxed mark), by either path', async t => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(jsonRecord, fc.boolean()), { minLength: 1, maxLength: 8 }),
      fc.constantFrom<Durability>('durable', 'relaxed'),
      async (batch, durability) => {
        const store = memoryStore(durability);
        const log = await makeAuditLog({ store, sha256: nodeSha256 });
        // Canonical texts take the scan; others (JSON.stringify order) the parsing path.
        const texts = batch.map(([value, canonical]) => (canonical ? canonicalJson(value) : JSON.stringify(value)));
        const ref = await log.appendJoined(texts.join('\n'));
        t.is(ref.first, 0);
        const expected = batch.map(([value], seq) =>
          canonicalJson({ ...Object.fromEntries(Object.entries(value)), seq, ...(durability === 'relaxed' ? { durability } : {}) }),
        );
        t.deepEqual(store.lines, expected);
        t.is(
          ref.leafHashes,
          expected.map(line => Buffer.from(hasher.hashLeaf(new TextEncoder().encode(line))).toString('hex')).join(''),
        );
      },
    ),
    { numRuns: 300 },
  );
});

test('joined batches: reserved keys, empty or non-object lines and lone surrogates refuse the whole batch', async t => {
  const store = memoryStore('durable');
  const log = await makeAuditLog({ store, sha256: nodeSha256 });
  const BAD = { message: /^ZT_BAD_ARGUMENT\b/ };
  await t.throwsAsync(log.appendJoined('{"a":1}\n{"seq":3}'), BAD);
  await t.throwsAsync(log.appendJoined('{"durability":"durable"}'), BAD);
  await t.throwsAsync(log.appendJoined('{ "seq" : 3 }'), BAD, 'on the parsing path too');
  await t.throwsAsync(log.appendJoined('{"a":1}\n'), BAD, 'an empty last line');
  await t.throwsAsync(log.appendJoined('[1]'), BAD);
  await t.throwsAsync(log.appendJoined(''), BAD);
  await t.throwsAsync(log.appendJoined('{"a":"\ud800"}'), { message: /^ZT_AUDIT_NOT_CANONICAL\b/ });
  await t.throwsAsync(log.appendJoined('{"a":"\\ud800"}'), { message: /^ZT_AUDIT_NOT_CANONICAL\b/ }, 'escaped, on the parsing path');
  await t.throwsAsync(log.appendBytes(Uint8Array.of(0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d)), BAD, 'not UTF-8');
  await t.throwsAsync(log.appendBytes(new Uint8Array(0)), BAD);
  await t.throwsAsync(log.appendJoined('\uFEFF{"a":1}'), BAD, 'a byte order mark is not part of JSON');
  await t.throwsAsync(log.appendTexts(['{"a":\n1}']), BAD, 'a text spanning lines');
  t.deepEqual(store.lines, [], 'nothing stored');
  await log.appendJoined('{"a":1}\n{"b":"é","a":[]}');
  await log.appendBytes(new TextEncoder().encode('{"c":true}\n'));
  t.deepEqual(store.lines, ['{"a":1,"seq":0}', '{"a":[],"b":"é","seq":1}', '{"c":true,"seq":2}']);
});

test('bad proof and read arguments are ZT_BAD_ARGUMENT', async t => {
  const dir = await tempDir(t);
  const log = await openLog(dir);
  await log.append([{ a: 1 }, { a: 2 }]);
  const BAD = { message: /^ZT_BAD_ARGUMENT\b/ };
  t.throws(() => log.inclusionProof(2, 2), BAD);
  t.throws(() => log.inclusionProof(0, 3), BAD);
  t.throws(() => log.consistencyProof(0, 2), BAD);
  t.throws(() => log.consistencyProof(2, 1), BAD);
  t.throws(() => log.rootHashAt(3), BAD);
  await t.throwsAsync(log.read(-1, 1), BAD);
  t.deepEqual(await log.read(5, 1), []);
  await log.close();
});

// Attack: someone edits a stored record so that it is still valid JSON (a
// changed value, reordered keys, a changed seq). The log must refuse to open
// rather than build a tree over the altered history.
test('a non-canonical or out-of-sequence stored record is ZT_AUDIT_CORRUPT on open', async t => {
  const dir = await tempDir(t);
  const path = join(dir, RECORDS_FILE);
  const cases: Array<[string, RegExp]> = [
    ['{"seq":0,"a":1}\n{"a":2,"seq":1}\n{"a":3,"seq":2}\n', /record 0 is not canonical/],
    ['{"a":1,"seq":0}\n{"a":2,"seq":2}\n{"a":3,"seq":2}\n', /record 1 is out of sequence/],
    ['{"a":1,"seq":0}\n{"a":2, "seq":1}\n{"a":3,"seq":2}\n', /record 1 is not canonical/],
    ['{"a":1,"seq":0}\n[1]\n{"a":3,"seq":2}\n', /record 1 is out of sequence/],
  ];
  for (const [content, why] of cases) {
    await writeFile(path, content);
    const store = await openFileStore(makeNodeFileStorePowers(), { dir });
    const err = await t.throwsAsync(makeAuditLog({ store, sha256: nodeSha256 }), {
      message: /^ZT_AUDIT_CORRUPT\b/,
    });
    t.regex(err!.message, why);
    await store.close();
  }
});

test('after a store failure the log refuses every append', async t => {
  const dir = await tempDir(t);
  const io = instrumentedPowers();
  const store = await openFileStore(io.powers, { dir });
  const log = await makeAuditLog({ store, sha256: nodeSha256 });
  await log.append([{ a: 1 }]);
  const root = log.rootHash();
  io.failNextWrite('ENOSPC');
  await t.throwsAsync(log.append([{ a: 2 }]), { message: /^ZT_AUDIT_UNAVAILABLE\b/ });
  await t.throwsAsync(log.append([{ a: 3 }]), { message: /^ZT_AUDIT_UNAVAILABLE\b/ });
  t.is(log.size(), 1);
  t.is(log.rootHash(), root, 'the failed batch never entered the tree');
});
