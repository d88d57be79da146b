/**
 * Offline verification of an audit store's contents: every record, the
 * Merkle tree, and every signed checkpoint.
 *
 * Threat: someone with write access to the folder edits, deletes, reorders
 * or inserts records. Sequence numbers live inside each canonical record, so
 * deletion, reordering and insertion break seq continuity at the first
 * affected index; an edit that keeps the record canonical changes its leaf
 * hash and so the root, which no longer matches the signed checkpoints that
 * cover it. `verifyAuditContents` throws ZT_AUDIT_CORRUPT naming the first
 * bad record index (for a root mismatch: the first index not vouched for by
 * an earlier matching checkpoint).
 *
 * Successive checkpoints are consistent because each one's root is
 * recomputed from the same records: a checkpoint whose root differs from
 * the records' root at its size is blamed, and sizes must not decrease in
 * file order. (Equality of recomputed roots is stronger than checking an
 * RFC 9162 consistency proof between them, which is derived from the same
 * leaves.)
 *
 * Pure: bytes, SHA-256 and Ed25519 verification are passed in.
 */
import { ztError } from '../errors.js';
import { canonicalJsonOfParsed } from './canonical.js';
import { openCheckpoint } from './checkpoint.js';
import type { Ed25519Verify } from './checkpoint.js';
import { bytesEqual, makeMerkleAccumulator, makeMerkleHasher, toHex } from './merkle.js';
import type { Sha256 } from './merkle.js';

export interface VerifyInput {
  /** The whole records file. */
  records: Uint8Array;
  /** The `note` of each line of the checkpoint file, in file order. */
  checkpointNotes: readonly string[];
  /** The trusted signing key; required when there are checkpoints. */
  key?: { name: string; publicKey: Uint8Array };
  /** Expected checkpoint origin; defaults to the key name. */
  origin?: string;
  sha256: Sha256;
  verify: Ed25519Verify;
}

export interface VerifyReport {
  size: number;
  rootHash: string;
  checkpoints: number;
}

const corrupt = (message: string, details: Record<string, unknown>) =>
  ztError('ZT_AUDIT_CORRUPT', message, details);

export const verifyAuditContents = (input: VerifyInput): VerifyReport => {
  const { records, checkpointNotes, key, sha256, verify } = input;
  const hasher = makeMerkleHasher(sha256);
  const origin = input.origin ?? key?.name;

  // Open every checkpoint first: which tree sizes we need roots for.
  if (checkpointNotes.length > 0 && !key) {
    throw ztError('ZT_BAD_ARGUMENT', 'checkpoints exist but no verifier key was given');
  }
  const checkpoints = checkpointNotes.map((note, k) => {
    const body = key ? openCheckpoint(sha256, verify, key, note) : undefined;
    if (!body || body.origin !== origin) {
      throw corrupt(`checkpoint ${k} has a bad signature or origin`, { checkpoint: k });
    }
    return body;
  });
  // Checkpoints are appended as the log grows: one covering fewer records
  // than an earlier one means the checkpoint file was edited or rolled back.
  checkpoints.forEach((c, k) => {
    if (k > 0 && c.size < checkpoints[k - 1]!.size) {
      throw corrupt(`checkpoint ${k} covers fewer records than checkpoint ${k - 1}`, { checkpoint: k });
    }
  });
  const wanted = new Map<number, Uint8Array | undefined>(checkpoints.map(c => [c.size, undefined]));

  const decoder = new TextDecoder('utf-8', { fatal: true });
  const accumulator = makeMerkleAccumulator(hasher);
  if (wanted.has(0)) wanted.set(0, accumulator.root());
  let start = 0;
  let index = 0;
  while (start < records.length) {
    const end = records.indexOf(0x0a, start);
    if (end === -1) throw corrupt(`record ${index} is incomplete`, { index });
    const bytes = records.subarray(start, end);
    let parsed: unknown;
    let line: string;
    try {
      line = decoder.decode(bytes);
      parsed = JSON.parse(line);
    } catch {
      throw corrupt(`record ${index} is not JSON`, { index });
    }
    let canonical: string | undefined;
    try {
      canonical = canonicalJsonOfParsed(parsed);
    } catch {
      canonical = undefined;
    }
    if (canonical !== line) throw corrupt(`record ${index} is not canonical JSON`, { index });
    const seq =
      parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
        ? (parsed as { seq?: unknown }).seq
        : undefined;
    if (seq !== index) throw corrupt(`record ${index} is out of sequence (seq ${String(seq)})`, { index });
    accumulator.append(hasher.hashLeaf(bytes));
    index += 1;
    if (wanted.has(index)) wanted.set(index, accumulator.root());
    start = end + 1;
  }

  // Check checkpoints in size order; a mismatch is blamed on the records
  // after the largest smaller checkpoint that matched.
  let vouched = 0;
  for (const c of [...checkpoints].sort((a, b) => a.size - b.size)) {
    if (c.size > index) {
      throw corrupt(`records from index ${index} are missing (a checkpoint covers ${c.size})`, { index });
    }
    if (!bytesEqual(wanted.get(c.size)!, c.rootHash)) {
      throw corrupt(
        `records ${vouched}..${c.size - 1} do not match the checkpoint at size ${c.size}; first bad record at or after index ${vouched}`,
        { index: vouched, checkpointSize: c.size },
      );
    }
    vouched = c.size;
  }
  return harden({ size: index, rootHash: toHex(accumulator.root()), checkpoints: checkpoints.length });
};
harden(verifyAuditContents);
