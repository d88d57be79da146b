/**
 * The log's proofs use cached interior nodes (perfect subtrees of 256
 * leaves and more). They must equal the proofs computed from the leaves
 * alone, and verify, for every index and tree size (property test).
 */
import { test } from './_prepare.js';
import { fc } from '@fast-check/ava';
import { makeAuditLog } from '../src/audit/audit-log.js';
import { openFileStore } from '../src/audit/file-store.js';
import {
  consistencyProof,
  fromHex,
  inclusionProof,
  makeMerkleHasher,
  merkleRootAt,
  toHex,
  verifyConsistency,
  verifyInclusion,
} from '../src/audit/merkle.js';
import { makeNodeFileStorePowers, nodeSha256 } from '../src/audit/node-powers.js';
import { tempDir } from './_audit-fs.js';

const N = 2100; // eight cached blocks of 256 and a ragged edge

test('property: cached-node proofs equal leaf-only proofs and verify', async t => {
  const dir = await tempDir(t);
  const log = await makeAuditLog({ store: await openFileStore(makeNodeFileStorePowers(), { dir }), sha256: nodeSha256 });
  for (let i = 0; i < N; i += 300) {
    await log.appendTexts(Array.from({ length: Math.min(300, N - i) }, (_, k) => JSON.stringify({ i: i + k })));
  }
  const hasher = makeMerkleHasher(nodeSha256);
  const leaves = Array.from({ length: N }, (_, i) => fromHex(log.leafHash(i))!);
  const leafAt = (i: number) => leaves[i]!;
  fc.assert(
    fc.property(fc.integer({ min: 1, max: N }), fc.nat(), fc.nat(), (size, a, b) => {
      const index = a % size;
      const root = merkleRootAt(hasher, leafAt, size);
      t.is(log.rootHashAt(size), toHex(root));
      const proof = log.inclusionProof(index, size);
      t.deepEqual(proof, inclusionProof(hasher, leafAt, index, size).map(toHex));
      t.true(verifyInclusion(hasher, index, size, leaves[index]!, proof.map(h => fromHex(h)!), root));
      const size1 = 1 + (b % size);
      const cproof = log.consistencyProof(size1, size);
      t.deepEqual(cproof, consistencyProof(hasher, leafAt, size1, size).map(toHex));
      t.true(verifyConsistency(hasher, size1, size, merkleRootAt(hasher, leafAt, size1), root, cproof.map(h => fromHex(h)!)));
    }),
    { numRuns: 60 },
  );
  // Reopened, the cache is rebuilt from the stored records.
  await log.close();
  const again = await makeAuditLog({ store: await openFileStore(makeNodeFileStorePowers(), { dir }), sha256: nodeSha256 });
  t.deepEqual(again.inclusionProof(1000, N), inclusionProof(hasher, leafAt, 1000, N).map(toHex));
  await again.close();
});
