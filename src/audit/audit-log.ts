/**
 * The audit log core that runs inside the audit vat: numbered, canonical,
 * Merkle-committed records over an append-only store.
 *
 * Invariants:
 * - Record `seq` is its 0-based position in the store, assigned here and
 *   nowhere else; a caller cannot choose it (`seq` and `durability` are
 *   reserved keys and refused; audit-batch.ts).
 * - Each stored line is `canonicalJson({ ...record, seq })`, so its leaf hash
 *   `SHA-256(0x00 ‖ line)` can be recomputed by anyone holding the file
 *   (audit-batch.ts).
 * - `size()` and `rootHash()` cover exactly the acknowledged records: a
 *   record enters the Merkle tree only once the store reports it durable
 *   (or written, in relaxed mode, where it carries `"durability":"relaxed"`)
 *   and every record before it is in the tree (log-tree.ts).
 * - Opening re-derives the tree from the stored lines and refuses
 *   (ZT_AUDIT_CORRUPT) a line that is not canonical or is out of sequence
 *   (log-tree.ts).
 * - After a store failure the log refuses every later append
 *   (ZT_AUDIT_UNAVAILABLE): no gap, no reordering, fail closed. This module
 *   keeps that latch, numbers each batch and hands it to the store.
 */
import { harden } from '../harden.js';
import { ztError, ZtError } from '../errors.js';
import { decodeLines, hashBatchLeaves, makeBatchEncoder, type BuiltBatch } from './audit-batch.js';
import { makeLogTree, rebuildLogTree } from './log-tree.js';
import { toHex } from './merkle.js';
import type { Sha256 } from './merkle.js';
import type { Durability } from './file-store.js';

export { RESERVED_KEYS } from './audit-batch.js';

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
  /**
   * Rebuild the tree from only the first `prefix` stored lines (the signed
   * ones); the owner cuts the rest off the store before the first append,
   * which is refused until the store holds exactly the tree's records.
   */
  prefix?: number;
}

const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

export const makeAuditLog = async (options: AuditLogOptions): Promise<AuditLog> => {
  const { store, sha256, maxRead = 10_000, prefix } = options;
  if (prefix !== undefined && (!isCount(prefix) || prefix > store.size())) {
    throw ztError('ZT_BAD_ARGUMENT', `the store has fewer than ${String(prefix)} records`);
  }
  const encoder = new TextEncoder();
  const tree = makeLogTree(sha256);
  // Rebuild the tree from what is stored, checking every line.
  await rebuildLogTree(tree, store, prefix);
  // Until the first append: the store must hold exactly the tree's records.
  let aligned = false;
  const batches = makeBatchEncoder({ relaxed: store.durability === 'relaxed' });

  let failure: ZtError | undefined;

  /** A built batch → durable, in the tree; its leaf hashes. */
  const commitBatch = async (firstSeq: number, batch: BuiltBatch): Promise<{ first: number; leaves: Uint8Array[] }> => {
    if (!aligned) {
      if (store.size() !== tree.size()) {
        failure ??= ztError('ZT_AUDIT_UNAVAILABLE', 'the audit store holds records the log has not adopted');
        throw failure;
      }
      aligned = true;
    }
    const batchLeaves = hashBatchLeaves(batch, sha256);
    const { bytes } = batch;
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
    tree.admit(first, batchLeaves);
    return { first, leaves: batchLeaves };
  };

  const append = async (records: readonly object[]): Promise<AuditRef[]> => {
    if (failure) throw failure;
    if (!Array.isArray(records) || records.length === 0) {
      throw ztError('ZT_BAD_ARGUMENT', 'append needs a non-empty array of records');
    }
    const firstSeq = store.size();
    const { first, leaves: batchLeaves } = await commitBatch(firstSeq, batches.encodeRecords(records, firstSeq));
    return harden(batchLeaves.map((leaf, i) => ({ seq: first + i, leafHash: toHex(leaf) })));
  };

  const appendBytes = async (input: Uint8Array): Promise<AuditBatchRef> => {
    if (failure) throw failure;
    if (!(input instanceof Uint8Array) || input.length === 0) {
      throw ztError('ZT_BAD_ARGUMENT', 'appendBytes needs non-empty UTF-8 record lines');
    }
    const firstSeq = store.size();
    const { first, leaves: batchLeaves } = await commitBatch(firstSeq, batches.encodeLines(input, firstSeq));
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

  const read = async (fromSeq: number, count: number) => {
    if (!isCount(fromSeq) || !isCount(count)) {
      throw ztError('ZT_BAD_ARGUMENT', 'read needs non-negative integers');
    }
    const n = Math.max(0, Math.min(count, maxRead, tree.size() - fromSeq));
    if (n === 0) return harden([]);
    const lines = await store.readRange(fromSeq, n);
    return harden(lines.map(line => JSON.parse(line) as Record<string, unknown>));
  };

  return harden({
    append,
    appendTexts,
    appendJoined,
    appendBytes,
    size: tree.size,
    rootHash: tree.rootHash,
    rootHashAt: tree.rootHashAt,
    read,
    inclusionProof: tree.inclusionProof,
    consistencyProof: tree.consistencyProof,
    leafHash: tree.leafHash,
    sync: () => store.sync(),
    close: async () => {
      failure ??= ztError('ZT_AUDIT_UNAVAILABLE', 'the audit log is closed');
      await store.close();
    },
  });
};
harden(makeAuditLog);
