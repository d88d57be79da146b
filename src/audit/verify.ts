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
 * bad record index. For a root mismatch that is exact when the checkpoint
 * lines carry their leaf hashes (`checkpointLeaves`) and those reproduce
 * the signed root: the first record whose leaf differs from the one the
 * signature vouched for; otherwise the first index not vouched for by an
 * earlier matching checkpoint.
 *
 * Deletion and replacement: a log whose keys are known (`chain` or `key`)
 * but with no signed checkpoint at all, or with no records while a signed
 * head covers some, is ZT_AUDIT_LOG_MISSING (the vat signs a checkpoint of
 * the empty log before its key is put in place). Records after the last
 * signed head are ZT_AUDIT_UNSIGNED_TAIL (an append is acknowledged only
 * once a checkpoint covers it, so nobody vouches for them).
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
import { harden } from '../harden.js';
import { ztError } from '../errors.js';
import { canonicalJsonOfParsed } from './canonical.js';
import type { Ed25519Verify } from './checkpoint.js';
import { openChainCheckpoint } from './keychain.js';
import type { KeyChain } from './keychain.js';
import { bytesEqual, fromHex, makeMerkleAccumulator, makeMerkleHasher, toHex } from './merkle.js';
import type { Sha256 } from './merkle.js';

export interface VerifyInput {
  /** The whole records file. */
  records: Uint8Array;
  /** The `note` of each line of the checkpoint file, in file order. */
  checkpointNotes: readonly string[];
  /**
   * The `leaves` of each line of the checkpoint file (hex leaf hashes of the
   * records it adds to the previous line's size), where present.
   */
  checkpointLeaves?: readonly (string | undefined)[];
  /** The trusted signing key of a log whose key never rotated. */
  key?: { name: string; publicKey: Uint8Array };
  /** The verified key chain (`openKeyChain`); takes precedence over `key`. */
  chain?: KeyChain;
  /** Expected checkpoint origin; defaults to the key name. */
  origin?: string;
  /**
   * Checkpoints obtained elsewhere (published, witnessed): each must be
   * signed by this log's keys, and the records must reproduce its root.
   */
  externalNotes?: readonly string[];
  sha256: Sha256;
  verify: Ed25519Verify;
}

export interface VerifyReport {
  size: number;
  rootHash: string;
  checkpoints: number;
  /** Key rotations verified (handovers in the key chain). */
  rotations: number;
  /** External checkpoints the records were found to match. */
  external: number;
  /**
   * With a trusted key: the number of records vouched for by a tree head
   * that key (or a successor it handed over to) signed.
   */
  anchoredSize?: number;
}

const corrupt = (message: string, details: Record<string, unknown>) =>
  ztError('ZT_AUDIT_CORRUPT', message, details);

/**
 * The leaf hash each checkpoint line vouches for, by record index: line k
 * lists the leaves from the previous line's size to its own. Lines without
 * leaves (or with a list of the wrong length) vouch for none.
 */
const vouchedLeaves = (sizes: readonly number[], leaves: readonly (string | undefined)[]): Map<number, string> => {
  const out = new Map<number, string>();
  let previous = 0;
  sizes.forEach((size, k) => {
    const list = leaves[k];
    if (typeof list === 'string' && size >= previous && list.length === 64 * (size - previous) && /^[0-9a-f]*$/.test(list)) {
      for (let i = previous; i < size; i += 1) out.set(i, list.slice(64 * (i - previous), 64 * (i - previous) + 64));
    }
    previous = size;
  });
  return out;
};

/** Each record's leaf hash, for the first `count` complete lines of `records`. */
const recordLeaves = (hasher: ReturnType<typeof makeMerkleHasher>, records: Uint8Array, count: number): Uint8Array[] => {
  const out: Uint8Array[] = [];
  for (let start = 0; out.length < count; ) {
    const end = records.indexOf(0x0a, start);
    out.push(hasher.hashLeaf(records.subarray(start, end)));
    start = end + 1;
  }
  return out;
};

/**
 * The exact first bad record in `[from, size)`, if the leaves the checkpoint
 * lines vouch for cover that range and reproduce the signed root: then they
 * are the leaves that were signed, and the first record that differs from
 * them is the changed one. Undefined otherwise.
 */
const exactBadRecord = (
  hasher: ReturnType<typeof makeMerkleHasher>,
  records: Uint8Array,
  vouched: Map<number, string>,
  from: number,
  size: number,
  rootHash: Uint8Array,
): number | undefined => {
  const actual = recordLeaves(hasher, records, size);
  const signed = actual.slice(0, from);
  for (let i = from; i < size; i += 1) {
    const hex = vouched.get(i);
    if (hex === undefined) return undefined;
    signed.push(fromHex(hex)!);
  }
  const accumulator = makeMerkleAccumulator(hasher);
  for (const leaf of signed) accumulator.append(leaf);
  if (!bytesEqual(accumulator.root(), rootHash)) return undefined;
  for (let i = from; i < size; i += 1) if (!bytesEqual(actual[i]!, signed[i]!)) return i;
  return undefined;
};

export const verifyAuditContents = (input: VerifyInput): VerifyReport => {
  const { records, checkpointNotes, key, sha256, verify, externalNotes = [] } = input;
  const hasher = makeMerkleHasher(sha256);
  const chain: KeyChain | undefined =
    input.chain ??
    (key
      ? { origin: input.origin ?? key.name, keys: [{ vkey: '', key, fromSize: 0 }], handovers: [] }
      : undefined);

  // Open every checkpoint first: which tree sizes we need roots for.
  if ((checkpointNotes.length > 0 || externalNotes.length > 0) && !chain) {
    throw ztError('ZT_BAD_ARGUMENT', 'checkpoints exist but no verifier key was given');
  }
  const openNote = (note: string) =>
    chain && (input.origin === undefined || input.origin === chain.origin)
      ? openChainCheckpoint(sha256, verify, chain, note)
      : undefined;
  const checkpoints = checkpointNotes.map((note, k) => {
    const body = openNote(note);
    if (!body) {
      throw corrupt(`checkpoint ${k} has a bad signature or origin`, { checkpoint: k });
    }
    return body;
  });
  const external = externalNotes.map((note, k) => {
    const body = openNote(note);
    if (!body) {
      throw corrupt(`external checkpoint ${k} is not signed by this log's keys (bad signature, origin or key for its size)`, {
        external: k,
      });
    }
    return body;
  });
  const handovers = chain?.handovers ?? [];
  // The vat signs the empty log before its key is in place: a log with keys
  // and no signed head at all lost its checkpoints.
  if (chain && checkpoints.length === 0 && handovers.length === 0 && external.length === 0) {
    throw ztError('ZT_AUDIT_LOG_MISSING', 'the log has a key but no signed checkpoint: its checkpoints were deleted or replaced', {});
  }
  // Each rotation must be recorded in the log before its handover.
  const rotationRecords = new Map<string, number>();
  // Checkpoints are appended as the log grows: one covering fewer records
  // than an earlier one means the checkpoint file was edited or rolled back.
  checkpoints.forEach((c, k) => {
    if (k > 0 && c.size < checkpoints[k - 1]!.size) {
      throw corrupt(`checkpoint ${k} covers fewer records than checkpoint ${k - 1}`, { checkpoint: k });
    }
  });
  const wanted = new Map<number, Uint8Array | undefined>(
    [...checkpoints, ...handovers, ...external].map(c => [c.size, undefined]),
  );

  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
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
    const { type, key: rotatedTo } = parsed as { type?: unknown; key?: unknown };
    if (type === 'audit.key-rotation' && typeof rotatedTo === 'string' && !rotationRecords.has(rotatedTo)) {
      rotationRecords.set(rotatedTo, index);
    }
    accumulator.append(hasher.hashLeaf(bytes));
    index += 1;
    if (wanted.has(index)) wanted.set(index, accumulator.root());
    start = end + 1;
  }

  // Check every signed tree head in size order (stored checkpoints, key
  // handovers, external checkpoints); a mismatch is blamed on the records
  // after the largest smaller head that matched.
  const heads = [
    ...checkpoints.map(c => ({ ...c, what: 'the checkpoint' })),
    ...handovers.map(c => ({ ...c, what: 'the key handover' })),
    ...external.map(c => ({ ...c, what: 'the external checkpoint' })),
  ].sort((a, b) => a.size - b.size);
  let vouched = 0;
  for (const c of heads) {
    if (c.size > index) {
      if (index === 0) {
        throw ztError('ZT_AUDIT_LOG_MISSING', `the log has no records, but ${c.what} covers ${c.size}: the log was deleted or replaced`, {
          index,
          checkpointSize: c.size,
        });
      }
      throw corrupt(`records from index ${index} are missing (${c.what} covers ${c.size})`, { index });
    }
    if (!bytesEqual(wanted.get(c.size)!, c.rootHash)) {
      const leaves = vouchedLeaves(
        checkpoints.map(cp => cp.size),
        input.checkpointLeaves ?? [],
      );
      const exact = exactBadRecord(hasher, records, leaves, vouched, c.size, c.rootHash);
      if (exact !== undefined) {
        throw corrupt(`record ${exact} differs from the record ${c.what} at size ${c.size} vouches for`, {
          index: exact,
          checkpointSize: c.size,
        });
      }
      throw corrupt(
        `records ${vouched}..${c.size - 1} do not match ${c.what} at size ${c.size}; first bad record at or after index ${vouched}`,
        { index: vouched, checkpointSize: c.size },
      );
    }
    vouched = c.size;
  }
  // With a trusted key, something it (or a successor) signed must vouch for
  // the records: else the folder's chain could simply restart at that key.
  let anchoredSize: number | undefined;
  if (chain?.anchor !== undefined) {
    const anchor = chain.anchor;
    const signedByAnchor = [
      ...checkpoints.filter(c => c.signer >= anchor),
      ...external.filter(c => c.signer >= anchor),
      ...handovers.filter((_, n) => n + 1 >= anchor),
    ];
    if (signedByAnchor.length === 0) {
      throw corrupt('no checkpoint signed by the trusted key (or a key it handed over to) vouches for these records', {});
    }
    anchoredSize = Math.max(...signedByAnchor.map(c => c.size));
  }
  (chain?.keys ?? []).slice(1).forEach((k, n) => {
    const at = rotationRecords.get(k.vkey);
    if (at === undefined || at >= k.fromSize) {
      throw corrupt(`key rotation ${n + 1} is not recorded in the log before its handover at size ${k.fromSize}`, {
        rotation: n + 1,
      });
    }
  });
  // Every acknowledged record is covered by a signed checkpoint: records
  // past the last signed head are vouched for by nobody.
  if (chain && index > vouched) {
    throw ztError(
      'ZT_AUDIT_UNSIGNED_TAIL',
      `records ${vouched}..${index - 1} are not covered by a signed checkpoint (written by someone else, or never acknowledged); the audit vat quarantines them when it reopens the store`,
      { index: vouched, size: index },
    );
  }
  return harden({
    size: index,
    rootHash: toHex(accumulator.root()),
    checkpoints: checkpoints.length,
    rotations: handovers.length,
    external: external.length,
    ...(anchoredSize === undefined ? {} : { anchoredSize }),
  });
};
harden(verifyAuditContents);
