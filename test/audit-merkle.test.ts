import { test } from './_prepare.js';
import { fc } from '@fast-check/ava';
import {
  bytesEqual,
  consistencyProof,
  fromHex,
  inclusionProof,
  makeMerkleAccumulator,
  makeMerkleHasher,
  merkleRoot,
  toHex,
  verifyConsistency,
  verifyInclusion,
} from '../src/audit/merkle.js';
import { nodeSha256 } from '../src/audit/node-powers.js';
import { countFiles, loadVectors } from './_audit-vectors.js';

const hasher = makeMerkleHasher(nodeSha256);
// Loaded inside each test, so a missing test/fixtures/rfc6962 or an
// unrecognised file fails every vector test with a readable message.
let loaded: ReturnType<typeof loadVectors> | undefined;
const getVectors = () => (loaded ??= loadVectors());

test('every file in the vector folder is recognised', t => {
  const vectors = getVectors();
  t.is(vectors.allFiles.length, countFiles());
  t.true(vectors.inclusion.length > 0 && vectors.consistency.length > 0);
  t.is(vectors.treeHeads.roots.length, 9);
});

test('RFC 6962 vectors: tree heads of the first N reference leaves', t => {
  const vectors = getVectors();
  const refLeafHashes = vectors.treeHeads.leaves.map(d => hasher.hashLeaf(d));
  for (const { size, root } of vectors.treeHeads.roots) {
    t.is(toHex(merkleRoot(hasher, refLeafHashes.slice(0, size))), toHex(root), `size ${size}`);
  }
});

test('RFC 6962 vectors: every inclusion vector', t => {
  const vectors = getVectors();
  for (const v of vectors.inclusion) {
    const ok = verifyInclusion(hasher, v.leafIdx, v.treeSize, v.leafHash, v.proof, v.root);
    t.is(ok, !v.wantErr, `${v.file}: ${v.desc}`);
  }
});

test('RFC 6962 vectors: every consistency vector', t => {
  const vectors = getVectors();
  for (const v of vectors.consistency) {
    const ok = verifyConsistency(hasher, v.size1, v.size2, v.root1, v.root2, v.proof);
    t.is(ok, !v.wantErr, `${v.file}: ${v.desc}`);
  }
});

const sameProof = (a: Uint8Array[], b: Uint8Array[]) =>
  a.length === b.length && a.every((h, i) => bytesEqual(h, b[i]!));

test('generated proofs over the reference leaves equal the happy-path vectors', t => {
  const vectors = getVectors();
  const refLeafHashes = vectors.treeHeads.leaves.map(d => hasher.hashLeaf(d));
  const leafAt = (i: number) => refLeafHashes[i]!;
  let compared = 0;
  for (const v of vectors.inclusion) {
    if (v.wantErr || v.treeSize > refLeafHashes.length) continue;
    if (!bytesEqual(v.leafHash, refLeafHashes[v.leafIdx]!)) continue;
    t.true(sameProof(inclusionProof(hasher, leafAt, v.leafIdx, v.treeSize), v.proof), v.file);
    compared += 1;
  }
  for (const v of vectors.consistency) {
    if (v.wantErr || v.size2 > refLeafHashes.length || v.size1 === 0) continue;
    t.true(sameProof(consistencyProof(hasher, leafAt, v.size1, v.size2), v.proof), v.file);
    compared += 1;
  }
  t.true(compared >= 5, `compared ${compared} happy paths`);
});

test('generated proofs verify against the vectors roots for every (m, n) up to 8', t => {
  const vectors = getVectors();
  const refLeafHashes = vectors.treeHeads.leaves.map(d => hasher.hashLeaf(d));
  const leafAt = (i: number) => refLeafHashes[i]!;
  const rootOf = (n: number) => vectors.treeHeads.roots.find(r => r.size === n)!.root;
  for (let n = 1; n <= 8; n += 1) {
    for (let m = 0; m < n; m += 1) {
      const proof = inclusionProof(hasher, leafAt, m, n);
      t.true(verifyInclusion(hasher, m, n, refLeafHashes[m]!, proof, rootOf(n)), `incl ${m}/${n}`);
    }
    for (let m = 1; m <= n; m += 1) {
      const proof = consistencyProof(hasher, leafAt, m, n);
      t.true(verifyConsistency(hasher, m, n, rootOf(m), rootOf(n), proof), `cons ${m}->${n}`);
    }
  }
});

test('the accumulator agrees with the recursive root at every size', t => {
  const vectors = getVectors();
  const acc = makeMerkleAccumulator(hasher);
  t.is(toHex(acc.root()), toHex(vectors.treeHeads.roots[0]!.root));
  const leaves: Uint8Array[] = [];
  for (let i = 0; i < 300; i += 1) {
    const leaf = hasher.hashLeaf(Uint8Array.of(i & 255, i >> 8));
    leaves.push(leaf);
    acc.append(leaf);
    t.is(toHex(acc.root()), toHex(merkleRoot(hasher, leaves)), `size ${i + 1}`);
  }
  // O(log n): one perfect subtree per set bit of the size (300 = 0b100101100).
  t.is(acc.frontier().length, 4);
  t.is(acc.size(), 300);
});

test('proof generation refuses out-of-range arguments', t => {
  const vectors = getVectors();
  const refLeafHashes = vectors.treeHeads.leaves.map(d => hasher.hashLeaf(d));
  const leafAt = (i: number) => refLeafHashes[i]!;
  t.throws(() => inclusionProof(hasher, leafAt, 3, 3), { instanceOf: RangeError });
  t.throws(() => consistencyProof(hasher, leafAt, 0, 3), { instanceOf: RangeError });
  t.throws(() => consistencyProof(hasher, leafAt, 4, 3), { instanceOf: RangeError });
});

test('hex helpers round-trip and reject malformed input', t => {
  t.is(toHex(fromHex('00ff10Ab')!), '00ff10ab');
  t.is(fromHex('abc'), undefined);
  t.is(fromHex('zz'), undefined);
});

test('property: generator and verifier agree on random trees; tampering is rejected', t => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 70 }).chain(n =>
        fc.tuple(
          fc.constant(n),
          fc.integer({ min: 0, max: n - 1 }),
          fc.integer({ min: 1, max: n }),
          fc.integer({ min: 0, max: 1_000_000 }),
        ),
      ),
      ([n, m, size1, salt]) => {
        const leaves = Array.from({ length: n }, (_, i) =>
          hasher.hashLeaf(new TextEncoder().encode(`${salt}:${i}`)),
        );
        const leafAt = (i: number) => leaves[i]!;
        const acc = makeMerkleAccumulator(hasher);
        const roots = [acc.root()];
        for (const leaf of leaves) {
          acc.append(leaf);
          roots.push(acc.root());
        }
        const incl = inclusionProof(hasher, leafAt, m, n);
        t.true(verifyInclusion(hasher, m, n, leaves[m]!, incl, roots[n]!));
        const wrongIndex = (m + 1) % n;
        if (wrongIndex !== m) {
          t.false(verifyInclusion(hasher, wrongIndex, n, leaves[m]!, incl, roots[n]!));
        }
        const cons = consistencyProof(hasher, leafAt, size1, n);
        t.true(verifyConsistency(hasher, size1, n, roots[size1]!, roots[n]!, cons));
        if (cons.length > 0) {
          const flipped = cons.map(h => h.slice());
          flipped[salt % flipped.length]![salt % 32]! ^= 1;
          t.false(verifyConsistency(hasher, size1, n, roots[size1]!, roots[n]!, flipped));
        }
      },
    ),
    { numRuns: 200 },
  );
});
