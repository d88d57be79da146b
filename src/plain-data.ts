/**
 * Plain data: the one definition of what may cross into the kernel.
 *
 * Invariant: whatever `copyPlainData` returns, the kernel can hold, decide
 * on, hand to an effector and record in the audit log (canonical JSON, RFC
 * 8785) without checking it again, and nothing of the caller's runs while
 * it is read. The copy is made of fresh, frozen arrays and records, so
 * nothing the caller keeps can change it afterwards.
 *
 * Threat: a value the audit log cannot encode (a lone surrogate, NaN) that
 * passes the boundary is refused later, in the middle of a request, with a
 * different record, or worse, reaches the audit log and makes an append
 * fail, which latches the audit fault and denies every agent's requests. A
 * value with behaviour (getter, proxy trap, thenable, toString) read in the
 * kernel runs the caller's code there. A value with no bound (a huge array,
 * deep nesting, a shared subtree repeated a million times) exhausts the
 * kernel before any check looks at it.
 *
 * The domain, checked and copied in one pass:
 * - null, booleans, well-formed strings (no lone UTF-16 surrogate: I-JSON,
 *   RFC 8785 §3.2.2.2), finite numbers (`-0` is copied as `0`, which is how
 *   the audit log encodes it, so the effector acts on what is recorded);
 * - dense arrays with `Array.prototype` and nothing but their elements;
 * - records: objects with `Object.prototype` or a null prototype whose own
 *   keys are all enumerable strings holding data properties (a getter is
 *   refused, never called). A property whose value is `undefined` is absent,
 *   as in JSON; `undefined` is refused anywhere else, except as a whole
 *   positional argument (`copyArgumentList`), which means "not given".
 * Everything else is refused: NaN, ±Infinity, bigint, symbols, functions,
 * promises, remotables, class instances (Date, Map, typed arrays…), symbol
 * or non-enumerable keys, sparse or decorated arrays, cycles.
 *
 * Bounds (`PLAIN_DATA_LIMITS`), counted over the whole value, shared
 * subtrees counted each time they occur:
 * - `maxDepth`: arrays and records nest at most this deep (the value itself
 *   is at depth 0);
 * - `maxArrayLength`: elements in one array;
 * - `maxStringLength`: code points in one string (a key is a string);
 * - `maxTotalSize`: one per value and per key, plus the code points of
 *   every string and key.
 *
 * A refusal is ZT_BAD_ARGUMENT with a reason that names only the kind of
 * value and fixed text: it may be shown to the caller, agent or operator.
 */
import { harden } from './harden.js';
import { ZtError, codeOf } from './errors.js';

export const PLAIN_DATA_LIMITS = harden({
  maxDepth: 64,
  maxArrayLength: 65_536,
  maxStringLength: 16 * 1024 * 1024,
  maxTotalSize: 32 * 1024 * 1024,
});

export interface PlainDataOptions {
  /**
   * Consulted for each object before it is read: a value it returns (not
   * `undefined`) stands in the copy for that object, as is and unchecked.
   * The agent vat uses it to send capabilities it was given back as the
   * presences they stand for; the kernel never passes one.
   */
  readonly substitute?: (value: object) => unknown;
}

const { getPrototypeOf, getOwnPropertyDescriptor, prototype: objectPrototype, fromEntries, freeze } = Object;
const { ownKeys } = Reflect;
const { isArray, prototype: arrayPrototype } = Array;

/** ES2024 `String.prototype.isWellFormed` (Node 20); not in this project's TS lib. */
interface WellFormed {
  isWellFormed(): boolean;
}

const HIGH_SURROGATE = /[\uD800-\uDBFF]/;

/** Code points of a well-formed string: one per pair of surrogates, one per other unit. */
const codePointsOf = (s: string): number => {
  if (!HIGH_SURROGATE.test(s)) return s.length;
  let n = s.length;
  for (let i = 0; i < s.length; i += 1) {
    const unit = s.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) n -= 1;
  }
  return n;
};

const refuse = (reason: string): never => {
  throw new ZtError('ZT_BAD_ARGUMENT', reason);
};

/** One walk over one value (or one argument list), with its running total. */
const makeWalk = (options: PlainDataOptions) => {
  const { maxDepth, maxArrayLength, maxStringLength, maxTotalSize } = PLAIN_DATA_LIMITS;
  const { substitute } = options;
  let total = 0;
  /** Objects on the current path: meeting one again is a cycle. */
  const ancestors: object[] = [];

  const count = (n: number) => {
    total += n;
    if (total > maxTotalSize) refuse(`arguments exceed ${maxTotalSize} in total size`);
  };

  const copyString = (s: string): string => {
    if (!(s as unknown as WellFormed).isWellFormed()) throw new ZtError('ZT_NOT_RECORDABLE', 'a string holds a lone surrogate (not Unicode text)');
    const points = codePointsOf(s);
    if (points > maxStringLength) refuse(`a string is longer than ${maxStringLength} characters`);
    count(points);
    return s;
  };

  const copy = (value: unknown, depth: number): unknown => {
    count(1);
    switch (typeof value) {
      case 'string':
        return copyString(value);
      case 'number':
        if (!Number.isFinite(value)) return refuse('a number is not finite (NaN or Infinity)');
        return value === 0 ? 0 : value;
      case 'boolean':
        return value;
      case 'undefined':
        return refuse('undefined is not data (leave the property out)');
      case 'object':
        if (value === null) return null;
        return copyObject(value, depth);
      case 'bigint':
        return refuse('a bigint is not data (use a number or a string)');
      default:
        return refuse(`a ${typeof value} is not data`);
    }
  };

  const copyObject = (value: object, depth: number): unknown => {
    if (substitute) {
      const stand = substitute(value);
      if (stand !== undefined) return stand;
    }
    if (depth >= maxDepth) refuse(`arguments nest deeper than ${maxDepth}`);
    if (ancestors.includes(value)) refuse('arguments hold a cycle');
    ancestors.push(value);
    const out = isArray(value) ? copyArray(value, depth) : copyRecord(value, depth);
    ancestors.pop();
    return out;
  };

  const copyArray = (value: unknown[], depth: number): readonly unknown[] => {
    if (getPrototypeOf(value) !== arrayPrototype) refuse('an array is not a plain array');
    const n = value.length;
    if (n > maxArrayLength) refuse(`an array has more than ${maxArrayLength} elements`);
    // Dense, and nothing but its elements and `length`.
    if (ownKeys(value).length !== n + 1) refuse('an array is sparse or has properties of its own');
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i += 1) {
      const desc = getOwnPropertyDescriptor(value, i);
      if (desc === undefined || !('value' in desc)) return refuse('an array element is an accessor');
      out[i] = copy(desc.value, depth + 1);
    }
    return freeze(out);
  };

  const copyRecord = (value: object, depth: number): Record<string, unknown> => {
    const proto = getPrototypeOf(value);
    if (proto !== objectPrototype && proto !== null) refuse('an object is not a plain record');
    const entries: Array<[string, unknown]> = [];
    for (const key of ownKeys(value)) {
      if (typeof key !== 'string') return refuse('a record has a symbol key');
      const desc = getOwnPropertyDescriptor(value, key) as PropertyDescriptor;
      if (!('value' in desc)) return refuse('a record property is an accessor (getter or setter)');
      if (!desc.enumerable) return refuse('a record property is not enumerable');
      if (desc.value === undefined) continue;
      count(1);
      entries.push([copyString(key), copy(desc.value, depth + 1)]);
    }
    // `fromEntries` defines own data properties: a `__proto__` key stays a key.
    return freeze(fromEntries(entries));
  };

  return { copy, copyObject };
};

/**
 * Checks `value` against the plain-data domain and its bounds, and returns
 * a frozen copy, or throws ZT_BAD_ARGUMENT with a reason.
 */
export const copyPlainData = (value: unknown, options: PlainDataOptions = {}): unknown => makeWalk(options).copy(value, 0);
harden(copyPlainData);

/**
 * The same for a list of positional arguments: each element is plain data,
 * or `undefined` for an argument not given. The bounds apply to the list as
 * a whole.
 */
export const copyArgumentList = (list: unknown, options: PlainDataOptions = {}): readonly unknown[] => {
  if (!isArray(list)) return refuse('arguments must be a list');
  const walk = makeWalk(options);
  if (getPrototypeOf(list) !== arrayPrototype || ownKeys(list).length !== list.length + 1) refuse('arguments must be a plain list');
  if (list.length > PLAIN_DATA_LIMITS.maxArrayLength) refuse(`more than ${PLAIN_DATA_LIMITS.maxArrayLength} arguments`);
  const out = new Array<unknown>(list.length);
  for (let i = 0; i < list.length; i += 1) {
    const desc = getOwnPropertyDescriptor(list, i);
    if (desc === undefined || !('value' in desc)) return refuse('an argument is an accessor');
    out[i] = desc.value === undefined ? undefined : walk.copy(desc.value, 1);
  }
  return freeze(out);
};
harden(copyArgumentList);

/** Whether `s` is a string the audit log can encode (no lone surrogate). */
export const isWellFormedString = (s: unknown): s is string => typeof s === 'string' && (s as unknown as WellFormed).isWellFormed();
harden(isWellFormedString);

/**
 * At most `max` code points of `s`, never cutting a surrogate pair, with
 * any lone surrogate replaced by U+FFFD: a string the audit log can always
 * encode, for recording what a caller sent when it is not itself checked
 * data (a method name, an id of a malformed request).
 */
/**
 * The code of a refusal at a boundary into the kernel: ZT_NOT_RECORDABLE
 * for text the log cannot record (a lone surrogate), ZT_BAD_ARGUMENT for
 * anything else outside plain data.
 */
export const boundaryCodeOf = (err: unknown): 'ZT_NOT_RECORDABLE' | 'ZT_BAD_ARGUMENT' =>
  codeOf(err) === 'ZT_NOT_RECORDABLE' ? 'ZT_NOT_RECORDABLE' : 'ZT_BAD_ARGUMENT';
harden(boundaryCodeOf);

/** `s` as it is when it is Unicode text; otherwise JSON-escaped (a lone surrogate reads `\ud800`). */
export const escapeText = (s: string): string => (isWellFormedString(s) ? s : JSON.stringify(s).slice(1, -1));
harden(escapeText);

/** At most `max` code points of `s`, never cutting a surrogate pair; nothing else changed. */
export const cutCodePoints = (s: string, max: number): string => {
  let n = 0;
  let end = 0;
  for (const ch of s) {
    if (n >= max) break;
    end += ch.length;
    n += 1;
  }
  return end === s.length ? s : s.slice(0, end);
};
harden(cutCodePoints);

/**
 * At most `max` code points of `s` as the log can hold them faithfully:
 * as they are when they are Unicode text; otherwise JSON-escaped (a lone
 * surrogate reads `\ud800`), with `escaped` set so a record can say so.
 */
export const faithfulText = (s: string, max: number): { readonly text: string; readonly escaped: boolean } => {
  const cut = cutCodePoints(s, max);
  return isWellFormedString(cut) ? harden({ text: cut, escaped: false }) : harden({ text: escapeText(cut), escaped: true });
};
harden(faithfulText);

export const recordableString = (s: string, max: number): string => {
  let out = '';
  let n = 0;
  for (const ch of s) {
    if (n >= max) break;
    const unit = ch.charCodeAt(0);
    out += ch.length === 1 && unit >= 0xd800 && unit <= 0xdfff ? '\uFFFD' : ch;
    n += 1;
  }
  return out;
};
harden(recordableString);

/** Code points of the prefix a digest keeps of the text it stands for. */
export const DIGEST_PREFIX = 32;

/**
 * `s` made safe to print: at most `max` code points (never a half pair),
 * lone surrogates replaced, and every control, format or non-ASCII
 * character escaped as `\uXXXX` (or `\u{…}`), so it can reach a
 * terminal or a log line as inert text.
 */
export const escapedPrefix = (s: string, max: number): string => {
  let out = '';
  let n = 0;
  for (const ch of s) {
    if (n >= max) break;
    n += 1;
    const cp = ch.codePointAt(0) as number;
    if (cp >= 0x20 && cp < 0x7f && ch !== '\\') out += ch;
    else if (ch === '\\') out += '\\\\';
    else if (cp >= 0xd800 && cp <= 0xdfff) out += '\\ufffd';
    else out += cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
  }
  return out;
};
harden(escapedPrefix);

/** What a record holds in place of a text too long (or too odd) to record: bounded whatever the text. */
export interface TextDigest {
  /** UTF-16 units of the text. */
  readonly length: number;
  /** SHA-256 of its UTF-8 encoding (a lone surrogate encodes as U+FFFD). */
  readonly sha256: string;
  /** Its first code points, escaped (`escapedPrefix`). */
  readonly prefix: string;
}

export const digestText = (s: string, sha256Hex: (data: string) => string): TextDigest =>
  harden({ length: s.length, sha256: sha256Hex(s), prefix: escapedPrefix(s, DIGEST_PREFIX) });
harden(digestText);

/**
 * The size `value` would take in the audit log (about its JSON length), or
 * `Infinity` as soon as it passes `max`: the walk stops there, so measuring
 * a huge value costs no more than measuring `max` of it.
 */
export const boundedSize = (value: unknown, max: number): number => {
  let total = 0;
  const walk = (v: unknown): boolean => {
    if (typeof v === 'string') total += v.length + 2;
    else if (v === null || typeof v !== 'object') total += 8;
    else if (Array.isArray(v)) {
      total += 2;
      for (const x of v) {
        total += 1;
        if (total > max || !walk(x)) return false;
      }
    } else {
      total += 2;
      for (const [k, x] of Object.entries(v)) {
        total += k.length + 4;
        if (total > max || !walk(x)) return false;
      }
    }
    return total <= max;
  };
  return walk(value) ? total : Infinity;
};
harden(boundedSize);

/** Longest field of a request's arguments recorded as it is; a longer one is recorded as a digest. */
export const MAX_RECORDED_FIELD = 1024;
/** Most of a request's arguments one record holds as they are; fields past it are recorded as digests. */
export const MAX_RECORDED_ARGS = 4096;

/**
 * The audit form of a request's arguments: each field recorded as it is
 * while it fits `MAX_RECORDED_FIELD` and the record's `MAX_RECORDED_ARGS`,
 * otherwise as a digest of its canonical JSON (`{ digest: TextDigest }`).
 * `content`, whatever its size, is always a digest. A record is never
 * larger than about `MAX_RECORDED_ARGS` plus one digest per field.
 */
export const recordableArgs = (
  args: Readonly<Record<string, unknown>>,
  powers: { readonly sha256Hex: (data: string) => string; readonly canonicalJson: (value: unknown) => string },
): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  let used = 0;
  for (const [key, value] of Object.entries(args)) {
    const size = key === 'content' && typeof value === 'string' ? Infinity : boundedSize(value, MAX_RECORDED_FIELD);
    if (size <= MAX_RECORDED_FIELD && used + size <= MAX_RECORDED_ARGS) {
      used += size;
      out[key] = value;
    } else if (typeof value === 'string') {
      out[key] = digestText(value, powers.sha256Hex);
    } else {
      out[key] = { digest: digestText(powers.canonicalJson(value), powers.sha256Hex) };
    }
  }
  return out;
};
harden(recordableArgs);
