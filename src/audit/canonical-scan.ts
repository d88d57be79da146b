/**
 * Checking canonical JSON in UTF-8 bytes, without parsing it.
 *
 * The audit vat receives record texts that the kernel already encoded with
 * `canonicalJson`. Re-parsing and re-encoding each one would double the
 * work; instead `scanCanonicalObjectBytes` checks, in one pass over the
 * bytes, that a record is exactly what `canonicalJson` makes of some plain
 * object, and says where its top-level members are, so `seq` can be spliced
 * in at its sorted place.
 *
 * Soundness is what matters: the scan accepts only canonical texts (a
 * differential property test holds it to `isCanonicalJson`). It may turn
 * down a canonical text it does not handle (nesting deeper than 64, an
 * escaped top-level key); the caller then takes the parsing path, which
 * decides authoritatively.
 *
 * Any bytes may be given: multi-byte sequences are checked to be valid
 * UTF-8 (shortest form, no surrogates, at most U+10FFFF), so an accepted
 * text always decodes to the string it stands for.
 */
import { harden } from '../harden.js';

/** Top-level members of an accepted object: byte offsets of each key's quotes. */
export interface ByteObjectScan {
  /** Offset of each top-level key's opening quote, in order. */
  readonly keyStarts: number[];
  /** Offset just after each top-level key's closing quote. */
  readonly keyEnds: number[];
}

const MAX_DEPTH = 64;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const isLowerHex = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

// Scanner state for one call (the scan is synchronous and not re-entrant).
let b: Uint8Array = new Uint8Array(0);
let end = 0;
/** Whether the string just scanned had an escape or a non-ASCII byte. */
let special = false;

const isContinuation = (x: number | undefined) => x !== undefined && x >= 0x80 && x <= 0xbf;

/**
 * Length of the valid UTF-8 sequence starting at `j` (before `end`), or -1:
 * no overlong forms, no surrogates (U+D800..DFFF), nothing above U+10FFFF.
 */
const utf8Length = (j: number): number => {
  const c = b[j]!;
  if (c >= 0xc2 && c <= 0xdf) return j + 2 <= end && isContinuation(b[j + 1]) ? 2 : -1;
  if (c >= 0xe0 && c <= 0xef) {
    const c1 = b[j + 1]!;
    if (j + 3 > end || !isContinuation(c1) || !isContinuation(b[j + 2])) return -1;
    if (c === 0xe0 && c1 < 0xa0) return -1; // overlong
    if (c === 0xed && c1 > 0x9f) return -1; // a surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const c1 = b[j + 1]!;
    if (j + 4 > end || !isContinuation(c1) || !isContinuation(b[j + 2]) || !isContinuation(b[j + 3])) return -1;
    if (c === 0xf0 && c1 < 0x90) return -1; // overlong
    if (c === 0xf4 && c1 > 0x8f) return -1; // above U+10FFFF
    return 4;
  }
  return -1;
};

/** String at `i` (a quote); returns the offset after its closing quote, or -1. */
const scanString = (i: number): number => {
  let j = i + 1;
  special = false;
  for (;;) {
    let c = b[j]!;
    // The common run: printable ASCII other than `"` and `\`.
    while (c >= 0x20 && c < 0x7f && c !== QUOTE && c !== BACKSLASH && j < end) {
      j += 1;
      c = b[j]!;
    }
    if (j >= end) return -1;
    if (c === QUOTE) return j + 1;
    if (c === 0x7f) {
      // DEL stands for itself (JSON.stringify does not escape it).
      special = true;
      j += 1;
      continue;
    }
    if (c >= 0x80) {
      // Non-ASCII characters stand for themselves, as valid UTF-8.
      special = true;
      const n = utf8Length(j);
      if (n < 0) return -1;
      j += n;
      continue;
    }
    if (c !== BACKSLASH) return -1; // a raw control character
    special = true;
    if (j + 1 >= end) return -1;
    const e = b[j + 1];
    // \" \\ \b \f \n \r \t
    if (e === QUOTE || e === BACKSLASH || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
      j += 2;
      continue;
    }
    // \u00XX in lowercase, only for controls without a short form:
    // 00-07, 0b, 0e, 0f, 10-1f.
    if (e !== 0x75 || b[j + 2] !== 0x30 || b[j + 3] !== 0x30) return -1;
    const h = b[j + 4]!;
    const l = b[j + 5]!;
    const ok =
      (h === 0x30 && ((l >= 0x30 && l <= 0x37) || l === 0x62 || l === 0x65 || l === 0x66)) ||
      (h === 0x31 && isLowerHex(l));
    if (!ok || j + 6 > end) return -1;
    j += 6;
  }
};

/** Number token at `i`; returns the offset after it if canonical, else -1. */
const scanNumber = (i: number): number => {
  let j = i;
  if (b[j] === 0x2d) j += 1;
  const firstDigit = j;
  while (j < end && isDigit(b[j]!)) j += 1;
  const digits = j - firstDigit;
  const next = j < end ? b[j] : undefined;
  if (digits > 0 && digits <= 15 && next !== 0x2e && next !== 0x65 && next !== 0x45) {
    // An integer of at most 15 digits is canonical unless it has a leading
    // zero or is -0.
    if (b[firstDigit] === 0x30 && (digits > 1 || firstDigit > i)) return -1;
    return j;
  }
  // Anything else: canonical only if ECMAScript renders its value the same.
  while (j < end) {
    const c = b[j]!;
    if (!(isDigit(c) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d)) break;
    j += 1;
  }
  // The longest canonical number is 24 characters (-1.7976931348623157e+308).
  if (j === i || j - i > 32) return -1;
  const token = String.fromCharCode(...b.subarray(i, j));
  return String(Number(token)) === token ? j : -1;
};

const literal = (i: number, word: readonly number[]): number => {
  if (i + word.length > end) return -1;
  for (let k = 0; k < word.length; k += 1) if (b[i + k] !== word[k]) return -1;
  return i + word.length;
};
const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

/**
 * Whether key a (bytes [as, ae), quotes included) sorts strictly before key
 * b in UTF-16 code-unit order. Plain ASCII keys compare byte by byte; keys
 * with escapes or non-ASCII characters are decoded and compared as strings
 * (UTF-8 byte order differs from UTF-16 order above U+FFFF).
 */
const keyBefore = (as: number, ae: number, aSpecial: boolean, bs: number, be: number, bSpecial: boolean): boolean => {
  if (aSpecial || bSpecial) {
    const a = JSON.parse(decoder.decode(b.subarray(as, ae))) as string;
    const c = JSON.parse(decoder.decode(b.subarray(bs, be))) as string;
    return a < c;
  }
  const n = Math.min(ae - as, be - bs);
  for (let k = 1; k < n - 1; k += 1) {
    const x = b[as + k]!;
    const y = b[bs + k]!;
    if (x !== y) return x === QUOTE ? true : y === QUOTE ? false : x < y;
  }
  // One is a prefix of the other (through its closing quote): shorter first.
  return ae - as < be - bs;
};

/** Any value at `i`; returns the offset after it, or -1. */
const scanValue = (i: number, depth: number): number => {
  const c = b[i];
  if (c === QUOTE) return scanString(i);
  if (c === 0x7b) return depth >= MAX_DEPTH ? -1 : scanObject(i, depth + 1, undefined);
  if (c === 0x5b) return depth >= MAX_DEPTH ? -1 : scanArray(i, depth + 1);
  if (c === 0x74) return literal(i, TRUE);
  if (c === 0x66) return literal(i, FALSE);
  if (c === 0x6e) return literal(i, NULL);
  return scanNumber(i);
};

const scanArray = (i: number, depth: number): number => {
  let j = i + 1;
  if (b[j] === 0x5d) return j + 1;
  for (;;) {
    j = scanValue(j, depth);
    if (j < 0 || j >= end) return -1;
    const c = b[j];
    j += 1;
    if (c === 0x5d) return j;
    if (c !== 0x2c) return -1;
  }
};

/** Object at `i`; `top` collects the members of the outermost object. */
const scanObject = (i: number, depth: number, top: ByteObjectScan | undefined): number => {
  let j = i + 1;
  if (b[j] === 0x7d) return j + 1;
  let prevStart = -1;
  let prevEnd = -1;
  let prevSpecial = false;
  for (;;) {
    if (b[j] !== QUOTE) return -1;
    const keyStart = j;
    j = scanString(j);
    if (j < 0) return -1;
    const keySpecial = special;
    // Escaped top-level keys are left to the parsing path: where `seq` goes
    // is decided by comparing raw key bytes.
    if (top && keySpecial && b.subarray(keyStart, j).includes(BACKSLASH)) return -1;
    // Strictly increasing: sorted, and no duplicate names.
    if (prevStart >= 0 && !keyBefore(prevStart, prevEnd, prevSpecial, keyStart, j, keySpecial)) return -1;
    prevStart = keyStart;
    prevEnd = j;
    prevSpecial = keySpecial;
    if (top) {
      top.keyStarts.push(keyStart);
      top.keyEnds.push(j);
    }
    if (b[j] !== 0x3a) return -1;
    j = scanValue(j + 1, depth);
    if (j < 0 || j >= end) return -1;
    const c = b[j];
    j += 1;
    if (c === 0x7d) return j;
    if (c !== 0x2c) return -1;
  }
};

/**
 * Checks that bytes [start, stop) are exactly the canonical JSON of a plain
 * object, and returns where its top-level keys are; undefined when they are
 * not (or the scan does not handle them; see the module comment).
 */
export const scanCanonicalObjectBytes = (
  bytes: Uint8Array,
  start: number,
  stop: number,
): ByteObjectScan | undefined => {
  if (stop - start < 2 || bytes[start] !== 0x7b) return undefined;
  b = bytes;
  end = stop;
  try {
    const top: ByteObjectScan = { keyStarts: [], keyEnds: [] };
    const j = scanObject(start, 1, top);
    return j === stop ? top : undefined;
  } catch {
    // A key that does not decode: not canonical.
    return undefined;
  } finally {
    b = new Uint8Array(0);
  }
};
harden(scanCanonicalObjectBytes);

/**
 * Compares top-level key k (raw bytes between its quotes, which for the
 * keys the scan accepts at the top level are the key's UTF-8) with an ASCII
 * name: negative, zero or positive. Byte order agrees with UTF-16 order
 * when one side is ASCII.
 */
export const compareKeyToName = (bytes: Uint8Array, scan: ByteObjectScan, k: number, name: Uint8Array): number => {
  const from = scan.keyStarts[k]! + 1;
  const len = scan.keyEnds[k]! - 1 - from;
  const n = Math.min(len, name.length);
  for (let i = 0; i < n; i += 1) {
    const d = bytes[from + i]! - name[i]!;
    if (d !== 0) return d;
  }
  return len - name.length;
};
harden(compareKeyToName);
