/**
 * The Merkle tree of the audit log: leaf hashes of the acknowledged records,
 * the roots and proofs over them, and its rebuilding from the store when
 * the log opens.
 *
 * Invariants:
 * - Leaf `i` is SHA-256(0x00 ‖ stored line `i`): a leaf enters the tree only
 *   in sequence — a batch admitted ahead of an earlier one waits until that
 *   one is admitted — so `size()` and `rootHash()` cover exactly a prefix
 *   of the store.
 * - Rebuilding refuses (ZT_AUDIT_CORRUPT) a stored line that is not JSON,
 *   not canonical JSON, not a plain record, or whose `seq` is not its
 *   position: the tree never commits to a store it could not re-derive.
 * - Every tree size, index and proof range a caller names is checked
 *   against the acknowledged size (ZT_BAD_ARGUMENT), never trusted.
 *
 * Memory: 32 bytes per record for the leaves, plus the roots of perfect
 * subtrees of 2^8 leaves and more (~0.25 B per record), which the
 * accumulator completes anyway; a proof then hashes at most a few hundred
 * nodes instead of the whole tree.
 */
import { harden } from '../harden.js';
import { ztError } from '../errors.js';
import { canonicalJsonOfParsed } from './canonical.js';
import {
  consistencyProof as makeConsistencyProof,
  HASH_SIZE,
  inclusionProof as makeInclusionProof,
  makeMerkleAccumulator,
  makeMerkleHasher,
  merkleRootAt,
  toHex,
} from './merkle.js';
import type { LeafAt, NodeAt, Sha256 } from './merkle.js';
import { isPlainRecord } from './audit-batch.js';

const REBUILD_CHUNK = 4096;
const CACHE_MIN_HEIGHT = 8;
const LEAVES_PER_CHUNK = 4096;

/** Leaf hashes packed into fixed-size chunks: 32 bytes per record. */
const makeLeafTable = () => {
  const chunks: Uint8Array[] = [];
  let count = 0;
  const at: LeafAt = index => {
    const chunk = chunks[Math.floor(index / LEAVES_PER_CHUNK)]!;
    const off = (index % LEAVES_PER_CHUNK) * HASH_SIZE;
    return chunk.subarray(off, off + HASH_SIZE);
  };
  const push = (leaf: Uint8Array) => {
    const slot = count % LEAVES_PER_CHUNK;
    if (slot === 0) chunks.push(new Uint8Array(LEAVES_PER_CHUNK * HASH_SIZE));
    chunks[chunks.length - 1]!.set(leaf, slot * HASH_SIZE);
    count += 1;
  };
  return { at, push, size: () => count };
};

const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

export interface LogTree {
  /** Number of leaves (acknowledged records). */
  size(): number;
  /** Merkle root of all leaves, lowercase hex. */
  rootHash(): string;
  /** Merkle root of the first `treeSize` leaves, lowercase hex. */
  rootHashAt(treeSize: number): string;
  /** Audit path for leaf `index` in the tree of `treeSize`, hex, bottom-up. */
  inclusionProof(index: number, treeSize: number): string[];
  consistencyProof(size1: number, size2: number): string[];
  /** Leaf hash of record `index`, hex. */
  leafHash(index: number): string;
  /** SHA-256(0x00 ‖ line). */
  hashLine(line: Uint8Array): Uint8Array;
  /** Leaves of a durable batch starting at `first`; added once every earlier batch is. */
  admit(first: number, batchLeaves: Uint8Array[]): void;
}

export const makeLogTree = (sha256: Sha256): LogTree => {
  const hasher = makeMerkleHasher(sha256);
  // Roots of perfect subtrees of 2^8 leaves and more, kept as the
  // accumulator completes them (no extra hashing).
  const nodes: Uint8Array[][] = [];
  const accumulator = makeMerkleAccumulator(hasher, (height, index, hash) => {
    if (height < CACHE_MIN_HEIGHT) return;
    (nodes[height] ??= [])[index] = hash;
  });
  const nodeAt: NodeAt = (lo, hi) => {
    const width = hi - lo;
    if (width < 2 ** CACHE_MIN_HEIGHT) return undefined;
    return nodes[Math.round(Math.log2(width))]?.[lo / width];
  };
  const leaves = makeLeafTable();

  // Batches durable in the store but not yet in the tree, by first seq.
  const committed = new Map<number, Uint8Array[]>();
  const admit = (first: number, batchLeaves: Uint8Array[]): void => {
    committed.set(first, batchLeaves);
    for (let batch = committed.get(accumulator.size()); batch; batch = committed.get(accumulator.size())) {
      committed.delete(accumulator.size());
      for (const leaf of batch) {
        accumulator.append(leaf);
        leaves.push(leaf);
      }
    }
  };

  const assertTreeSize = (treeSize: number): void => {
    if (!isCount(treeSize) || treeSize > accumulator.size()) {
      throw ztError('ZT_BAD_ARGUMENT', `tree size ${String(treeSize)} is not in 0..${accumulator.size()}`);
    }
  };

  const inclusionProof = (index: number, treeSize: number): string[] => {
    assertTreeSize(treeSize);
    if (!isCount(index) || index >= treeSize) {
      throw ztError('ZT_BAD_ARGUMENT', `index ${String(index)} is not in 0..${treeSize - 1}`);
    }
    return harden(makeInclusionProof(hasher, leaves.at, index, treeSize, nodeAt).map(toHex));
  };

  const consistencyProof = (size1: number, size2: number): string[] => {
    assertTreeSize(size2);
    if (!isCount(size1) || size1 === 0 || size1 > size2) {
      throw ztError('ZT_BAD_ARGUMENT', `size1 ${String(size1)} is not in 1..${size2}`);
    }
    return harden(makeConsistencyProof(hasher, leaves.at, size1, size2, nodeAt).map(toHex));
  };

  const rootHashAt = (treeSize: number): string => {
    assertTreeSize(treeSize);
    return treeSize === accumulator.size()
      ? toHex(accumulator.root())
      : toHex(merkleRootAt(hasher, leaves.at, treeSize, nodeAt));
  };

  const leafHash = (index: number): string => {
    if (!isCount(index) || index >= accumulator.size()) {
      throw ztError('ZT_BAD_ARGUMENT', `no record ${String(index)}`);
    }
    return toHex(leaves.at(index));
  };

  return harden({
    size: () => accumulator.size(),
    rootHash: () => toHex(accumulator.root()),
    rootHashAt,
    inclusionProof,
    consistencyProof,
    leafHash,
    hashLine: (line: Uint8Array) => hasher.hashLeaf(line),
    admit,
  });
};
harden(makeLogTree);

/** What rebuilding needs of the store. */
export interface StoredLines {
  size(): number;
  readRange(fromSeq: number, count: number): Promise<string[]>;
}

/** Fills an empty `tree` from the first `limit` (default: all) stored lines, checking every one (ZT_AUDIT_CORRUPT). */
export const rebuildLogTree = async (tree: LogTree, store: StoredLines, limit?: number): Promise<void> => {
  const encoder = new TextEncoder();
  const stored = limit === undefined ? store.size() : Math.min(limit, store.size());
  for (let from = 0; from < stored; from += REBUILD_CHUNK) {
    const lines = await store.readRange(from, Math.min(REBUILD_CHUNK, stored - from));
    const chunkLeaves = lines.map((line, i) => {
      const index = from + i;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        throw ztError('ZT_AUDIT_CORRUPT', `record ${index} is not JSON`, { index });
      }
      let canonical: string | undefined;
      try {
        canonical = canonicalJsonOfParsed(parsed);
      } catch {
        canonical = undefined;
      }
      if (canonical !== line) {
        throw ztError('ZT_AUDIT_CORRUPT', `record ${index} is not canonical JSON`, { index });
      }
      if (!isPlainRecord(parsed) || (parsed as { seq?: unknown }).seq !== index) {
        throw ztError('ZT_AUDIT_CORRUPT', `record ${index} is out of sequence`, { index });
      }
      return tree.hashLine(encoder.encode(line));
    });
    // In order, right behind what is there: the tree is a prefix of the store.
    tree.admit(tree.size(), chunkLeaves);
  }
};
harden(rebuildLogTree);
