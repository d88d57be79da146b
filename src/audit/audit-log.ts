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
import { harden } from '../harden.js';
import { ztError, ZtError } from '../errors.js';
import { canonicalJson, canonicalJsonOfParsed } from './canonical.js';
import { compareKeyToName, scanCanonicalObjectBytes } from './canonical-scan.js';
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
   * Each text is the JSON of one record on one line (as `canonicalJson`
   * makes it on the kernel side). A canonical text is checked in one scan
   * and gets `seq` spliced in; any other JSON object text is parsed and
   * re-encoded canonically. Either way what is stored never depends on how
   * the caller encoded it. A text that is not a one-line JSON object, or
   * that sets a reserved key, fails the whole batch with ZT_BAD_ARGUMENT.
   */
  appendTexts(texts: readonly string[]): Promise<AuditBatchRef>;
  /**
   * The same for texts joined by '\n' (canonical JSON never holds a raw
   * newline): one string per batch, as the kernel sends it. Encoded to
   * UTF-8 once; each record is checked by one scan of its bytes and gets
   * `seq` spliced in, or takes the parsing path if the scan turns it down.
   */
  appendJoined(joined: string): Promise<AuditBatchRef>;
  /**
   * The same for the UTF-8 bytes of such lines (the last '\n' optional), as
   * the kernel's batch writer produces them: nothing is trusted, the bytes
   * are checked (UTF-8 included) record by record.
   */
  appendBytes(bytes: Uint8Array): Promise<AuditBatchRef>;
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
const asciiBytes = (text: string) => Uint8Array.from(text, c => c.charCodeAt(0));
const SEQ_NAME = asciiBytes('seq');
const DURABILITY_NAME = asciiBytes('durability');
/** `"seq":`, to which the record's number is appended. */
const SEQ_MEMBER = asciiBytes('"seq":');
/** Members the log adds, in sorted order: [name, encoded member (or its prefix, for seq)]. */
const DURABLE_MEMBERS: ReadonlyArray<readonly [Uint8Array, Uint8Array]> = [[SEQ_NAME, SEQ_MEMBER]];
const RELAXED_MEMBERS: ReadonlyArray<readonly [Uint8Array, Uint8Array]> = [
  [DURABILITY_NAME, asciiBytes('"durability":"relaxed"')],
  [SEQ_NAME, SEQ_MEMBER],
];
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
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

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

  /**
   * A batch's stored bytes, built in place: byte 0 is a spare slot so each
   * leaf can be hashed as SHA-256(0x00 ‖ line) without copying the line
   * (the byte before each line is set to 0x00 while it is hashed).
   */
  const makeBatchBuffer = (capacity: number) => {
    let out = new Uint8Array(Math.max(64, capacity + 1));
    let pos = 1;
    const starts: number[] = [];
    const ends: number[] = [];
    const ensure = (n: number) => {
      if (pos + n <= out.length) return;
      const bigger = new Uint8Array(Math.max(out.length * 2, pos + n));
      bigger.set(out.subarray(0, pos));
      out = bigger;
    };
    return {
      copy(src: Uint8Array, from: number, to: number) {
        ensure(to - from);
        out.set(src.subarray(from, to), pos);
        pos += to - from;
      },
      /** A member the log adds: `,`? then `"name":value` then `,`? (`value` undefined: `seq`). */
      member(encoded: Uint8Array, seq: number | undefined, lead: boolean, trail: boolean) {
        ensure(encoded.length + 24);
        if (lead) out[pos++] = 0x2c;
        out.set(encoded, pos);
        pos += encoded.length;
        if (seq !== undefined) {
          const digits = String(seq);
          for (let i = 0; i < digits.length; i += 1) out[pos++] = digits.charCodeAt(i);
        }
        if (trail) out[pos++] = 0x2c;
      },
      utf8(text: string) {
        const bytes = encoder.encode(text);
        this.copy(bytes, 0, bytes.length);
      },
      beginLine() {
        starts.push(pos);
      },
      endLine() {
        ends.push(pos);
        ensure(1);
        out[pos] = 0x0a;
        pos += 1;
      },
      finish() {
        return { out, starts, ends, bytes: out.subarray(1, pos) };
      },
    };
  };

  /** A built batch → durable, in the tree; its leaf hashes. */
  const commitBatch = async (
    firstSeq: number,
    batch: { out: Uint8Array; starts: number[]; ends: number[]; bytes: Uint8Array },
  ): Promise<{ first: number; leaves: Uint8Array[] }> => {
    const { out, starts, ends, bytes } = batch;
    const batchLeaves: Uint8Array[] = new Array<Uint8Array>(starts.length);
    for (let i = 0; i < starts.length; i += 1) {
      const slot = starts[i]! - 1;
      const saved = out[slot]!;
      out[slot] = 0x00;
      batchLeaves[i] = sha256(out.subarray(slot, ends[i]));
      out[slot] = saved;
    }
    let first: number;
    try {
      first = store.appendEncoded ? await store.appendEncoded(bytes) : await store.appendBatch(decodeLines(bytes));
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

  const decodeLines = (bytes: Uint8Array): string[] => new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes).slice(0, -1).split('\n');

  const append = async (records: readonly object[]): Promise<AuditRef[]> => {
    if (failure) throw failure;
    if (!Array.isArray(records) || records.length === 0) {
      throw ztError('ZT_BAD_ARGUMENT', 'append needs a non-empty array of records');
    }
    const firstSeq = store.size();
    const batch = makeBatchBuffer(records.length * 256);
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
      batch.beginLine();
      batch.utf8(canonicalJson(Object.assign(full, extra)));
      batch.endLine();
    });
    const { first, leaves: batchLeaves } = await commitBatch(firstSeq, batch.finish());
    return harden(batchLeaves.map((leaf, i) => ({ seq: first + i, leafHash: toHex(leaf) })));
  };

  /**
   * One record of a joined batch that the scan did not accept: parsed,
   * checked and re-encoded canonically with its `seq` (the authoritative
   * path; refuses what is not a JSON object or sets a reserved key).
   */
  const slowLine = (text: string, i: number, seq: number): string => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
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
    return canonicalJsonOfParsed(record);
  };

  const appendBytes = async (input: Uint8Array): Promise<AuditBatchRef> => {
    if (failure) throw failure;
    if (!(input instanceof Uint8Array) || input.length === 0) {
      throw ztError('ZT_BAD_ARGUMENT', 'appendBytes needs non-empty UTF-8 record lines');
    }
    // One trailing newline ends the last record; it does not start another.
    const stop = input[input.length - 1] === 0x0a ? input.length - 1 : input.length;
    const firstSeq = store.size();
    const batch = makeBatchBuffer(stop + 64 * 1024);
    let i = 0;
    for (let from = 0; from <= stop; i += 1) {
      let to = input.indexOf(0x0a, from);
      if (to === -1 || to > stop) to = stop;
      const seq = firstSeq + i;
      batch.beginLine();
      const scan = scanCanonicalObjectBytes(input, from, to);
      if (scan) {
        // Splice the reserved members in at their sorted places.
        const { keyStarts } = scan;
        for (let r = 0; r < keyStarts.length; r += 1) {
          if (compareKeyToName(input, scan, r, SEQ_NAME) === 0 || compareKeyToName(input, scan, r, DURABILITY_NAME) === 0) {
            throw ztError('ZT_BAD_ARGUMENT', `record ${i} of the batch sets a reserved key`);
          }
        }
        let k = 0;
        let at = from; // next input byte to copy
        let wrote = false;
        for (const [name, value] of relaxed ? RELAXED_MEMBERS : DURABLE_MEMBERS) {
          while (k < keyStarts.length && compareKeyToName(input, scan, k, name) < 0) k += 1;
          const memberSeq = value === SEQ_MEMBER ? seq : undefined;
          if (k < keyStarts.length) {
            // Before member k: the separator before it stays in front.
            batch.copy(input, at, keyStarts[k]!);
            batch.member(value, memberSeq, false, true);
            at = keyStarts[k]!;
          } else {
            // After every member: just before the closing brace.
            batch.copy(input, at, to - 1);
            batch.member(value, memberSeq, keyStarts.length > 0 || wrote, false);
            at = to - 1;
          }
          wrote = true;
        }
        batch.copy(input, at, to);
      } else {
        let text: string;
        try {
          text = decoder.decode(input.subarray(from, to));
        } catch {
          throw ztError('ZT_BAD_ARGUMENT', `record ${i} of the batch is not UTF-8`);
        }
        batch.utf8(slowLine(text, i, seq));
      }
      batch.endLine();
      from = to + 1;
    }
    const { first, leaves: batchLeaves } = await commitBatch(firstSeq, batch.finish());
    let leafHashes = '';
    for (const leaf of batchLeaves) leafHashes += toHex(leaf);
    return harden({ first, leafHashes });
  };

  const appendJoined = async (joined: string): Promise<AuditBatchRef> => {
    if (failure) throw failure;
    if (typeof joined !== 'string' || joined === '') {
      throw ztError('ZT_BAD_ARGUMENT', 'appendJoined needs a non-empty string of record texts');
    }
    if (joined.endsWith('\n')) throw ztError('ZT_BAD_ARGUMENT', 'the last record of the batch is empty');
    // A lone surrogate is not Unicode text: no record holding one is canonical.
    if (!(joined as unknown as { isWellFormed(): boolean }).isWellFormed()) {
      throw ztError('ZT_AUDIT_NOT_CANONICAL', 'a record of the batch holds a lone surrogate');
    }
    return appendBytes(encoder.encode(joined));
  };

  const appendTexts = async (texts: readonly string[]): Promise<AuditBatchRef> => {
    if (failure) throw failure;
    if (!Array.isArray(texts) || texts.length === 0) {
      throw ztError('ZT_BAD_ARGUMENT', 'appendTexts needs a non-empty array of record texts');
    }
    texts.forEach((text, i) => {
      if (typeof text !== 'string' || text === '' || text.includes('\n')) {
        throw ztError('ZT_BAD_ARGUMENT', `record ${i} of the batch is not a one-line JSON object text`);
      }
    });
    return appendJoined(texts.join('\n'));
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
    appendJoined,
    appendBytes,
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
