/**
 * The audit log core that runs inside the audit vat: numbered, canonical,
 * Merkle-committed records over an append-only store.
 *
 * Invariants:
 * - Record `seq` is its 0-based position in the store, assigned here and
 *   nowhere else; a caller cannot choose it (`seq` and `durability` are
 *   reserved keys and refused).
 * - Each stored line is `canonicalJson({ ...record, seq })`, so its leaf hash
 *   `SHA-256(0x00 ‖ line)` can be recomputed by anyone holding the file.
 * - `size()` and `rootHash()` cover exactly the acknowledged records: a
 *   record enters the Merkle tree only once the store reports it durable
 *   (or written, in relaxed mode, where it carries `"durability":"relaxed"`).
 * - Opening re-derives the tree from the stored lines and refuses
 *   (ZT_AUDIT_CORRUPT) a line that is not canonical or is out of sequence.
 * - After a store failure the log refuses every later append
 *   (ZT_AUDIT_UNAVAILABLE): no gap, no reordering, fail closed.
 */
import { ztError, ZtError } from '../errors.js';
import { canonicalJson, canonicalJsonOfParsed, insertMembers, scanCanonicalObject } from './canonical.js';
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
import type { Durability } from './file-store.js';

export interface AuditRef {
  seq: number;
  /** SHA-256(0x00 ‖ stored line), lowercase hex. */
  leafHash: string;
}

/** What the log needs from a store; `openFileStore` provides it. */
export interface AuditStore {
  readonly durability: Durability;
  size(): number;
  appendBatch(lines: readonly string[]): Promise<number>;
  /** Optional fast path: '\n'-terminated UTF-8 lines, already encoded. */
  appendEncoded?(bytes: Uint8Array): Promise<number>;
  readRange(fromSeq: number, count: number): Promise<string[]>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** Confirmation of a batch in compact form: `leafHashes` is 64 hex digits per record. */
export interface AuditBatchRef {
  first: number;
  leafHashes: string;
}

export interface AuditLog {
  append(records: readonly object[]): Promise<AuditRef[]>;
  /**
   * The hot path: each text is the JSON of one record (as `canonicalJson`
   * makes it on the kernel side). A canonical text is checked in one scan
   * and gets `seq` spliced in; any other JSON object text is parsed and
   * re-encoded canonically. Either way what is stored never depends on how
   * the caller encoded it. A text that is not a plain JSON object, or that sets
   * a reserved key, fails the whole batch with ZT_BAD_ARGUMENT.
   */
  appendTexts(texts: readonly string[]): Promise<AuditBatchRef>;
  /** Number of acknowledged records. */
  size(): number;
  /** Merkle root of the acknowledged records, lowercase hex. */
  rootHash(): string;
  /** Merkle root of the first `treeSize` records, lowercase hex. */
  rootHashAt(treeSize: number): string;
  read(fromSeq: number, count: number): Promise<Array<Record<string, unknown>>>;
  /** Audit path for record `index` in the tree of `treeSize`, hex, bottom-up. */
  inclusionProof(index: number, treeSize: number): string[];
  consistencyProof(size1: number, size2: number): string[];
  /** Leaf hash of record `index`, hex. */
  leafHash(index: number): string;
  /** Forces acknowledged records to disk (matters in relaxed mode). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface AuditLogOptions {
  store: AuditStore;
  sha256: Sha256;
  /** Largest `count` that `read` serves in one call. */
  maxRead?: number;
}

export const RESERVED_KEYS = harden(['seq', 'durability']);
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

const isPlainRecord = (r: unknown): r is object => {
  if (r === null || typeof r !== 'object' || Array.isArray(r)) return false;
  const proto = Object.getPrototypeOf(r);
  return proto === Object.prototype || proto === null;
};

const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

export const makeAuditLog = async (options: AuditLogOptions): Promise<AuditLog> => {
  const { store, sha256, maxRead = 10_000 } = options;
  const hasher = makeMerkleHasher(sha256);
  const encoder = new TextEncoder();
  // Roots of perfect subtrees of 2^8 leaves and more, kept as the
  // accumulator completes them (no extra hashing): a proof then hashes at
  // most a few hundred nodes instead of the whole tree. ~0.25 B per record.
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
  const relaxed = store.durability === 'relaxed';

  // Rebuild the tree from what is stored, checking every line.
  const stored = store.size();
  for (let from = 0; from < stored; from += REBUILD_CHUNK) {
    const lines = await store.readRange(from, REBUILD_CHUNK);
    lines.forEach((line, i) => {
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
      const leaf = hasher.hashLeaf(encoder.encode(line));
      accumulator.append(leaf);
      leaves.push(leaf);
    });
  }

  let failure: ZtError | undefined;
  // Batches durable in the store but not yet in the tree, by first seq.
  const committed = new Map<number, Uint8Array[]>();
  const admit = (): void => {
    for (let batch = committed.get(accumulator.size()); batch; batch = committed.get(accumulator.size())) {
      committed.delete(accumulator.size());
      for (const leaf of batch) {
        accumulator.append(leaf);
        leaves.push(leaf);
      }
    }
  };

  /** Final lines of one batch → durable, in the tree; the leaf hashes, packed. */
  const commit = async (firstSeq: number, lines: string[]): Promise<{ first: number; leaves: Uint8Array[] }> => {
    // One encoder call per batch; each leaf hashes its line's bytes in place.
    const bytes = encoder.encode(`${lines.join('\n')}\n`);
    const batchLeaves: Uint8Array[] = [];
    for (let from = 0; from < bytes.length; ) {
      const end = bytes.indexOf(0x0a, from);
      batchLeaves.push(hasher.hashLeaf(bytes.subarray(from, end)));
      from = end + 1;
    }
    let first: number;
    try {
      first = store.appendEncoded ? await store.appendEncoded(bytes) : await store.appendBatch(lines);
    } catch (err) {
      const error =
        err instanceof ZtError && err.code !== 'ZT_BAD_ARGUMENT'
          ? err
          : ztError('ZT_AUDIT_UNAVAILABLE', 'the audit store refused the batch');
      failure ??= error;
      throw error;
    }
    if (first !== firstSeq) {
      // Someone else appended to our store: the numbering is broken.
      failure ??= ztError('ZT_AUDIT_UNAVAILABLE', 'the audit store numbering diverged');
      throw failure;
    }
    committed.set(first, batchLeaves);
    admit();
    return { first, leaves: batchLeaves };
  };

  const append = async (records: readonly object[]): Promise<AuditRef[]> => {
    if (failure) throw failure;
    if (!Array.isArray(records) || records.length === 0) {
      throw ztError('ZT_BAD_ARGUMENT', 'append needs a non-empty array of records');
    }
    const firstSeq = store.size();
    const lines: string[] = [];
    records.forEach((record, i) => {
      if (!isPlainRecord(record)) {
        throw ztError('ZT_BAD_ARGUMENT', `record ${i} of the batch is not a plain object`);
      }
      for (const key of RESERVED_KEYS) {
        if (Object.hasOwn(record, key)) {
          throw ztError('ZT_BAD_ARGUMENT', `record ${i} of the batch sets the reserved key ${key}`);
        }
      }
      // Copy descriptors, not values: an accessor stays an accessor and is
      // refused by canonicalJson instead of being run here.
      const full = Object.defineProperties({}, Object.getOwnPropertyDescriptors(record));
      const extra: Record<string, unknown> = { seq: firstSeq + i };
      if (relaxed) extra.durability = 'relaxed';
      lines.push(canonicalJson(Object.assign(full, extra)));
    });
    const { first, leaves: batchLeaves } = await commit(firstSeq, lines);
    return harden(batchLeaves.map((leaf, i) => ({ seq: first + i, leafHash: toHex(leaf) })));
  };

  const appendTexts = async (texts: readonly string[]): Promise<AuditBatchRef> => {
    if (failure) throw failure;
    if (!Array.isArray(texts) || texts.length === 0) {
      throw ztError('ZT_BAD_ARGUMENT', 'appendTexts needs a non-empty array of record texts');
    }
    const firstSeq = store.size();
    const lines: string[] = new Array<string>(texts.length);
    for (let i = 0; i < texts.length; i += 1) {
      const text = texts[i];
      const seq = firstSeq + i;
      // Fast path: the text is already canonical (the kernel sends what
      // `canonicalJson` made); check it in one scan and splice in `seq`.
      const scan = typeof text === 'string' ? scanCanonicalObject(text) : undefined;
      if (scan) {
        if (scan.keys.includes('seq') || scan.keys.includes('durability')) {
          throw ztError('ZT_BAD_ARGUMENT', `record ${i} of the batch sets a reserved key`);
        }
        lines[i] = insertMembers(
          text as string,
          scan,
          relaxed ? [['durability', '"relaxed"'], ['seq', String(seq)]] : [['seq', String(seq)]],
        );
        continue;
      }
      // Any other JSON object text: parse and re-encode it canonically.
      let parsed: unknown;
      try {
        parsed = typeof text === 'string' ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined;
      }
      if (!isPlainRecord(parsed)) {
        throw ztError('ZT_BAD_ARGUMENT', `record ${i} of the batch is not a JSON object`);
      }
      const record = parsed as Record<string, unknown>;
      if (Object.hasOwn(record, 'seq') || Object.hasOwn(record, 'durability')) {
        throw ztError('ZT_BAD_ARGUMENT', `record ${i} of the batch sets a reserved key`);
      }
      // A fresh object from JSON.parse: plain data, ours to extend.
      record.seq = seq;
      if (relaxed) record.durability = 'relaxed';
      lines[i] = canonicalJsonOfParsed(record);
    }
    const { first, leaves: batchLeaves } = await commit(firstSeq, lines);
    let leafHashes = '';
    for (const leaf of batchLeaves) leafHashes += toHex(leaf);
    return harden({ first, leafHashes });
  };

  const assertTreeSize = (treeSize: number): void => {
    if (!isCount(treeSize) || treeSize > accumulator.size()) {
      throw ztError('ZT_BAD_ARGUMENT', `tree size ${String(treeSize)} is not in 0..${accumulator.size()}`);
    }
  };

  const read = async (fromSeq: number, count: number) => {
    if (!isCount(fromSeq) || !isCount(count)) {
      throw ztError('ZT_BAD_ARGUMENT', 'read needs non-negative integers');
    }
    const n = Math.max(0, Math.min(count, maxRead, accumulator.size() - fromSeq));
    if (n === 0) return harden([]);
    const lines = await store.readRange(fromSeq, n);
    return harden(lines.map(line => JSON.parse(line) as Record<string, unknown>));
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
    append,
    appendTexts,
    size: () => accumulator.size(),
    rootHash: () => toHex(accumulator.root()),
    rootHashAt,
    read,
    inclusionProof,
    consistencyProof,
    leafHash,
    sync: () => store.sync(),
    close: async () => {
      failure ??= ztError('ZT_AUDIT_UNAVAILABLE', 'the audit log is closed');
      await store.close();
    },
  });
};
harden(makeAuditLog);
