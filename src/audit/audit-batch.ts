/**
 * The stored bytes of a batch of audit records: one canonical JSON line per
 * record, with the members only the log may set (`seq`, and in relaxed mode
 * `"durability":"relaxed"`) in their sorted places.
 *
 * Invariants:
 * - A line is `canonicalJson({ ...record, seq })` whatever the caller sent:
 *   a record object is encoded here; a text that the one-pass byte scan
 *   (canonical-scan.ts) accepts as canonical gets the members spliced in;
 *   any other text is parsed and re-encoded canonically. What is stored
 *   never depends on how the caller encoded it.
 * - `seq` and `durability` are reserved: a record that sets either fails
 *   the whole batch (ZT_BAD_ARGUMENT), as does anything that is not a plain
 *   object (or, for texts, a one-line JSON object in UTF-8).
 * - Leaf hashes are SHA-256(0x00 ‖ line) of exactly the bytes stored,
 *   computed in place (byte 0 of the buffer is a spare slot so the 0x00 can
 *   precede each line without copying it).
 */
import { harden } from '../harden.js';
import { ztError } from '../errors.js';
import { canonicalJson, canonicalJsonOfParsed } from './canonical.js';
import { compareKeyToName, scanCanonicalObjectBytes, type ByteObjectScan } from './canonical-scan.js';
import type { Sha256 } from './merkle.js';

export const RESERVED_KEYS = harden(['seq', 'durability']);
const asciiBytes = (text: string) => Uint8Array.from(text, c => c.charCodeAt(0));
const SEQ_NAME = asciiBytes('seq');
const DURABILITY_NAME = asciiBytes('durability');
/** `"seq":`, to which the record's number is appended. */
const SEQ_MEMBER = asciiBytes('"seq":');
type Members = ReadonlyArray<readonly [Uint8Array, Uint8Array]>;
/** Members the log adds, in sorted order: [name, encoded member (or its prefix, for seq)]. */
const DURABLE_MEMBERS: Members = [[SEQ_NAME, SEQ_MEMBER]];
const RELAXED_MEMBERS: Members = [
  [DURABILITY_NAME, asciiBytes('"durability":"relaxed"')],
  [SEQ_NAME, SEQ_MEMBER],
];

export const isPlainRecord = (r: unknown): r is object => {
  if (r === null || typeof r !== 'object' || Array.isArray(r)) return false;
  const proto = Object.getPrototypeOf(r);
  return proto === Object.prototype || proto === null;
};
harden(isPlainRecord);

/** A batch's stored bytes (`bytes`: its lines, each ending in '\n') and where each line lies in `out`. */
export interface BuiltBatch {
  readonly out: Uint8Array;
  readonly starts: number[];
  readonly ends: number[];
  readonly bytes: Uint8Array;
}

/**
 * A batch's stored bytes, built in place: byte 0 is a spare slot so each
 * leaf can be hashed as SHA-256(0x00 ‖ line) without copying the line
 * (the byte before each line is set to 0x00 while it is hashed).
 */
const makeBatchBuffer = (capacity: number, encoder: { encode(text: string): Uint8Array }) => {
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
    finish(): BuiltBatch {
      return { out, starts, ends, bytes: out.subarray(1, pos) };
    },
  };
};
type BatchBuffer = ReturnType<typeof makeBatchBuffer>;

/**
 * Copies the canonical object `input[from, to)` (already scanned) into
 * `batch` with `members` spliced in at their sorted places.
 */
const spliceMembers = (batch: BatchBuffer, input: Uint8Array, from: number, to: number, scan: ByteObjectScan, members: Members, seq: number, i: number) => {
  const { keyStarts } = scan;
  for (let r = 0; r < keyStarts.length; r += 1) {
    if (compareKeyToName(input, scan, r, SEQ_NAME) === 0 || compareKeyToName(input, scan, r, DURABILITY_NAME) === 0) {
      throw ztError('ZT_BAD_ARGUMENT', `record ${i} of the batch sets a reserved key`);
    }
  }
  let k = 0;
  let at = from; // next input byte to copy
  let wrote = false;
  for (const [name, value] of members) {
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
};

export interface BatchEncoder {
  /** Record objects → their lines, numbered from `firstSeq`. */
  encodeRecords(records: readonly object[], firstSeq: number): BuiltBatch;
  /** UTF-8 record lines (the last '\n' optional) → their stored lines, numbered from `firstSeq`. */
  encodeLines(input: Uint8Array, firstSeq: number): BuiltBatch;
}

export const makeBatchEncoder = ({ relaxed }: { readonly relaxed: boolean }): BatchEncoder => {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const members = relaxed ? RELAXED_MEMBERS : DURABLE_MEMBERS;

  const encodeRecords = (records: readonly object[], firstSeq: number) => {
    const batch = makeBatchBuffer(records.length * 256, encoder);
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
    return batch.finish();
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

  const encodeLines = (input: Uint8Array, firstSeq: number) => {
    // One trailing newline ends the last record; it does not start another.
    const stop = input[input.length - 1] === 0x0a ? input.length - 1 : input.length;
    const batch = makeBatchBuffer(stop + 64 * 1024, encoder);
    let i = 0;
    for (let from = 0; from <= stop; i += 1) {
      let to = input.indexOf(0x0a, from);
      if (to === -1 || to > stop) to = stop;
      const seq = firstSeq + i;
      batch.beginLine();
      const scan = scanCanonicalObjectBytes(input, from, to);
      if (scan) {
        spliceMembers(batch, input, from, to, scan, members, seq, i);
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
    return batch.finish();
  };

  return harden({ encodeRecords, encodeLines });
};
harden(makeBatchEncoder);

/** The leaf hash of each line of `batch`, SHA-256(0x00 ‖ line), without copying a line. */
export const hashBatchLeaves = (batch: BuiltBatch, sha256: Sha256): Uint8Array[] => {
  const { out, starts, ends } = batch;
  const leaves: Uint8Array[] = new Array<Uint8Array>(starts.length);
  for (let i = 0; i < starts.length; i += 1) {
    const slot = starts[i]! - 1;
    const saved = out[slot]!;
    out[slot] = 0x00;
    leaves[i] = sha256(out.subarray(slot, ends[i]));
    out[slot] = saved;
  }
  return leaves;
};
harden(hashBatchLeaves);

/** The lines of a built batch's bytes, for a store without `appendEncoded`. */
export const decodeLines = (bytes: Uint8Array): string[] => new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes).slice(0, -1).split('\n');
harden(decodeLines);
