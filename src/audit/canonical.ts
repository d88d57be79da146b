/**
 * Canonical JSON (RFC 8785, JSON Canonicalization Scheme) for audit records.
 *
 * Invariant: one value has exactly one byte encoding, so a record's leaf hash
 * is a function of its content alone. Whoever recomputes the Merkle tree from
 * the stored lines (an auditor, `verifyStore`) gets the same hashes the log
 * computed when it appended them.
 *
 * Threat: a value whose encoding depends on something other than its content
 * (property insertion order, a getter, a prototype, `toJSON`) would let two
 * readers disagree about what was recorded, or let a record change after it
 * was hashed. The domain is therefore closed: null, booleans, finite numbers,
 * well-formed strings, dense arrays and plain data objects. Everything else
 * (undefined, NaN, Infinity, bigint, functions, symbols, accessors, class
 * instances, cycles, lone surrogates, which I-JSON forbids) is refused with
 * ZT_AUDIT_NOT_CANONICAL rather than silently dropped or coerced, as
 * `JSON.stringify` would. `-0` is encoded as `0`, as RFC 8785 specifies.
 */
import { ztError } from '../errors.js';

const { getPrototypeOf, getOwnPropertyDescriptor, keys: objectKeys, prototype: objectPrototype } = Object;
const { ownKeys } = Reflect;
const { isArray, prototype: arrayPrototype } = Array;
const { stringify } = JSON;

/**
 * Strings that need no escaping: printable ASCII other than `"` and `\`.
 * For them the encoding is the string in quotes, with no call into JSON.
 */
const PLAIN_ASCII = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * The path of the value being encoded is kept as a stack of keys and only
 * rendered when something is refused, so the common case builds no strings.
 */
type PathStack = Array<string | number>;

const renderPath = (stack: PathStack, last?: string | number): string => {
  let out = '$';
  const all = last === undefined ? stack : [...stack, last];
  for (const k of all) out += typeof k === 'number' ? `[${k}]` : `.${k}`;
  return out;
};

const refuse = (why: string, stack: PathStack, last?: string | number): never => {
  throw ztError('ZT_AUDIT_NOT_CANONICAL', `${why} at ${renderPath(stack, last)}`);
};

/** ES2024 `String.prototype.isWellFormed` (Node 20); not in this project's TS lib. */
interface WellFormed {
  isWellFormed(): boolean;
}

const encodeString = (s: string, stack: PathStack, last?: string | number): string => {
  if (PLAIN_ASCII.test(s)) return `"${s}"`;
  // A lone surrogate is not a Unicode string (I-JSON, RFC 8785 §3.2.2.2).
  if (!(s as unknown as WellFormed).isWellFormed()) refuse('string with a lone surrogate', stack, last);
  // ECMAScript JSON.stringify escapes exactly as RFC 8785 requires.
  return stringify(s);
};

/**
 * The checking encoder: tracks the path and every ancestor so that a
 * refusal names where it happened. Only run when the fast encoder refused
 * (or for values nested deeper than it goes), to produce the error.
 */
const encodeChecked = (value: unknown): string => {
  // Ancestors on the current path: a repeated one is a cycle. Shared,
  // acyclic references are fine and are encoded once per occurrence.
  const ancestors: object[] = [];
  const stack: PathStack = [];

  const enter = (v: object): void => {
    // Records are shallow; a linear scan beats a Set for small depths.
    if (ancestors.includes(v)) refuse('cycle', stack);
    ancestors.push(v);
  };

  const encode = (v: unknown): string => {
    switch (typeof v) {
      case 'string':
        return encodeString(v, stack);
      case 'number':
        if (!Number.isFinite(v)) refuse(`non-finite number ${String(v)}`, stack);
        // ECMAScript Number-to-string is exactly the JCS number format;
        // JSON.stringify(-0) is '0'.
        return stringify(v);
      case 'boolean':
        return v ? 'true' : 'false';
      case 'object': {
        if (v === null) return 'null';
        enter(v);
        const out = isArray(v) ? encodeArray(v) : encodeObject(v);
        ancestors.pop();
        return out;
      }
      default:
        return refuse(typeof v, stack);
    }
  };

  const encodeArray = (arr: unknown[]): string => {
    if (getPrototypeOf(arr) !== arrayPrototype) refuse('exotic array', stack);
    const n = arr.length;
    // Dense, and nothing but indices and `length`.
    if (ownKeys(arr).length !== n + 1) refuse('sparse or decorated array', stack);
    // Parts joined once: a flat string, not a rope of thousands of pieces
    // that the garbage collector would have to trace while it is retained.
    const parts = new Array<string>(n);
    for (let i = 0; i < n; i += 1) {
      const desc = getOwnPropertyDescriptor(arr, i);
      if (desc === undefined || !('value' in desc)) refuse('accessor element', stack, i);
      stack.push(i);
      parts[i] = encode(desc!.value);
      stack.pop();
    }
    return `[${parts.join(',')}]`;
  };

  const encodeObject = (obj: object): string => {
    const proto = getPrototypeOf(obj);
    if (proto !== objectPrototype && proto !== null) {
      refuse('object that is not a plain record', stack);
    }
    // Enumerable string keys; any other own key (symbol, non-enumerable)
    // makes the two counts differ.
    const names = objectKeys(obj);
    const all = ownKeys(obj);
    if (all.length !== names.length) {
      for (const key of all) {
        if (typeof key !== 'string') refuse('symbol-keyed property', stack);
        else if (!names.includes(key)) refuse(`non-enumerable property ${stringify(key)}`, stack, key);
      }
    }
    // Default sort compares UTF-16 code units, which is what RFC 8785 asks.
    names.sort();
    const parts = new Array<string>(names.length);
    for (let i = 0; i < names.length; i += 1) {
      const name = names[i]!;
      const desc = getOwnPropertyDescriptor(obj, name);
      if (desc === undefined || !('value' in desc)) {
        refuse(`accessor property ${stringify(name)}`, stack, name);
      }
      const key = encodeString(name, stack, name);
      stack.push(name);
      parts[i] = `${key}:${encode(desc!.value)}`;
      stack.pop();
    }
    return `{${parts.join(',')}}`;
  };

  return encode(value);
};

/** Thrown inside the fast encoders when a value is outside the domain. */
const OUTSIDE = harden({ outside: true });

/**
 * Encoded object keys (`"key":`), shared by every record: audit records
 * repeat a few dozen key names. Bounded so odd input cannot grow it.
 */
const keyCache = new Map<string, string>();
const KEY_CACHE_LIMIT = 4096;

const fastString = (s: string): string => {
  if (PLAIN_ASCII.test(s)) return `"${s}"`;
  if (!(s as unknown as WellFormed).isWellFormed()) throw OUTSIDE;
  return stringify(s);
};

const fastKey = (k: string): string => {
  let encoded = keyCache.get(k);
  if (encoded === undefined) {
    encoded = `${fastString(k)}:`;
    if (keyCache.size < KEY_CACHE_LIMIT) keyCache.set(k, encoded);
  }
  return encoded;
};

/**
 * Deeper than this, the fast encoder hands over to the checking one, which
 * detects cycles. Records are shallow; a cycle recurses until it gets here.
 */
const FAST_DEPTH = 64;

/**
 * The fast encoder: the same domain checks as `encodeChecked`, without
 * path bookkeeping; anything outside the domain throws OUTSIDE.
 */
const encodeFast = (v: unknown, depth: number): string => {
  switch (typeof v) {
    case 'string':
      return fastString(v);
    case 'number':
      if (!Number.isFinite(v)) throw OUTSIDE;
      return stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (depth > FAST_DEPTH) throw OUTSIDE;
      if (isArray(v)) {
        if (getPrototypeOf(v) !== arrayPrototype) throw OUTSIDE;
        const n = v.length;
        if (ownKeys(v).length !== n + 1) throw OUTSIDE;
        let out = '[';
        for (let i = 0; i < n; i += 1) {
          const desc = getOwnPropertyDescriptor(v, i);
          if (desc === undefined || !('value' in desc)) throw OUTSIDE;
          if (i > 0) out += ',';
          out += encodeFast(desc.value, depth + 1);
        }
        return `${out}]`;
      }
      const proto = getPrototypeOf(v);
      if (proto !== objectPrototype && proto !== null) throw OUTSIDE;
      const names = objectKeys(v);
      if (ownKeys(v).length !== names.length) throw OUTSIDE;
      names.sort();
      let out = '{';
      for (let i = 0; i < names.length; i += 1) {
        const name = names[i]!;
        const desc = getOwnPropertyDescriptor(v, name);
        if (desc === undefined || !('value' in desc)) throw OUTSIDE;
        if (i > 0) out += ',';
        out += fastKey(name) + encodeFast(desc.value, depth + 1);
      }
      return `${out}}`;
    }
    default:
      throw OUTSIDE;
  }
};

/**
 * The copying fast path: checks the same domain as `encodeChecked` and
 * returns a copy of `v` made of fresh arrays and fresh objects whose keys
 * are inserted in canonical order. `JSON.stringify` of such a copy is the
 * canonical text, written natively as one flat string. Objects with a key
 * that the engine would not keep in insertion order (an array index) or that
 * assignment would misread (`__proto__`) throw OUTSIDE_ORDER, and the
 * concatenating encoder takes over.
 */
const OUTSIDE_ORDER = harden({ outsideOrder: true });
const INDEX_LIKE = /^(?:0|[1-9][0-9]*)$/;
/** Key names already found well-formed and kept in insertion order (bounded). */
const orderedKeys = new Set<string>();

const copySorted = (v: unknown, depth: number): unknown => {
  switch (typeof v) {
    case 'string':
      if (!(v as unknown as WellFormed).isWellFormed()) throw OUTSIDE;
      return v;
    case 'number':
      if (!Number.isFinite(v)) throw OUTSIDE;
      return v;
    case 'boolean':
      return v;
    case 'object': {
      if (v === null) return null;
      if (depth > FAST_DEPTH) throw OUTSIDE;
      if (isArray(v)) {
        if (getPrototypeOf(v) !== arrayPrototype) throw OUTSIDE;
        const n = v.length;
        if (ownKeys(v).length !== n + 1) throw OUTSIDE;
        const out = new Array<unknown>(n);
        for (let i = 0; i < n; i += 1) {
          const desc = getOwnPropertyDescriptor(v, i);
          if (desc === undefined || !('value' in desc)) throw OUTSIDE;
          out[i] = copySorted(desc.value, depth + 1);
        }
        return out;
      }
      const proto = getPrototypeOf(v);
      if (proto !== objectPrototype && proto !== null) throw OUTSIDE;
      const names = objectKeys(v);
      if (ownKeys(v).length !== names.length) throw OUTSIDE;
      names.sort();
      const out: Record<string, unknown> = {};
      for (let i = 0; i < names.length; i += 1) {
        const name = names[i]!;
        if (!orderedKeys.has(name)) {
          if (name === '__proto__' || INDEX_LIKE.test(name)) throw OUTSIDE_ORDER;
          if (!(name as unknown as WellFormed).isWellFormed()) throw OUTSIDE;
          if (orderedKeys.size < KEY_CACHE_LIMIT) orderedKeys.add(name);
        }
        const desc = getOwnPropertyDescriptor(v, name);
        if (desc === undefined || !('value' in desc)) throw OUTSIDE;
        out[name] = copySorted(desc.value, depth + 1);
      }
      return out;
    }
    default:
      throw OUTSIDE;
  }
};

/**
 * Encodes `value` as RFC 8785 canonical JSON, or throws
 * ZT_AUDIT_NOT_CANONICAL naming the path of the first offending part.
 */
export const canonicalJson = (value: unknown): string => {
  try {
    return stringify(copySorted(value, 0));
  } catch (err) {
    if (err !== OUTSIDE && err !== OUTSIDE_ORDER) throw err;
    if (err === OUTSIDE_ORDER) {
      try {
        return encodeFast(value, 0);
      } catch (err2) {
        if (err2 !== OUTSIDE) throw err2;
      }
    }
  }
  // Refused (or very deep): the checking encoder names the offending path,
  // or encodes a deep but valid value.
  return encodeChecked(value);
};
harden(canonicalJson);

/**
 * Encodes a value that `JSON.parse` produced, canonically. Such a value is
 * plain data by construction (data properties only, dense arrays, no
 * cycles), so only what JSON text can still carry outside the domain is
 * checked: numbers that overflow to ±Infinity and lone surrogates from
 * `\uD800`-style escapes. Refuses with ZT_AUDIT_NOT_CANONICAL.
 *
 * Precondition: `value` came from `JSON.parse` and nothing changed it but
 * adding data properties with values in the domain.
 */
export const canonicalJsonOfParsed = (value: unknown): string => {
  try {
    return encodeParsed(value);
  } catch (err) {
    if (err !== OUTSIDE) throw err;
  }
  return encodeChecked(value);
};
harden(canonicalJsonOfParsed);

const encodeParsed = (v: unknown): string => {
  switch (typeof v) {
    case 'string':
      return fastString(v);
    case 'number':
      if (!Number.isFinite(v)) throw OUTSIDE;
      return stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i += 1) {
          if (i > 0) out += ',';
          out += encodeParsed(v[i]);
        }
        return `${out}]`;
      }
      const names = objectKeys(v).sort();
      const record = v as Record<string, unknown>;
      let out = '{';
      for (let i = 0; i < names.length; i += 1) {
        const name = names[i]!;
        if (i > 0) out += ',';
        // An own `__proto__` data property (JSON.parse makes one) shadows
        // the inherited accessor, so indexing reads the data.
        out += fastKey(name) + encodeParsed(record[name]);
      }
      return `${out}}`;
    }
    default:
      throw OUTSIDE;
  }
};


/**
 * True when `text` is already the canonical encoding of the value it
 * denotes. Used when reading stored lines back: a stored line that is valid
 * JSON but not canonical was not written by this log.
 */
export const isCanonicalJson = (text: string): boolean => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return false;
  }
  try {
    return canonicalJsonOfParsed(parsed) === text;
  } catch {
    return false;
  }
};
harden(isCanonicalJson);

// ---------------------------------------------------------------------------
// Scanning canonical text without parsing it

/** The top-level members of a canonical object text, as `scanCanonicalObject` finds them. */
export interface CanonicalObjectScan {
  /** Member names, decoded, in (sorted) order. */
  readonly keys: readonly string[];
  /** Offset of each member's opening quote in the text. */
  readonly starts: readonly number[];
}

/** Nesting beyond this is left to the parsing path. */
const SCAN_DEPTH = 64;
const isLowerHex = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66);
const isDigit07 = (c: number) => c >= 0x30 && c <= 0x37;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
/** A JSON number token; canonical only if ECMAScript renders its value the same. */
const JSON_NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/**
 * Checks, in one pass over the characters, that `text` is exactly what
 * `canonicalJson` makes of some plain object, and returns where its
 * top-level members are. Returns undefined when it is not, or when the text
 * is beyond what the scan handles (nesting deeper than 64); callers then
 * take the parsing path (`JSON.parse` + `canonicalJsonOfParsed`), which
 * decides authoritatively.
 *
 * Sound by construction (a differential property test holds it to
 * `isCanonicalJson`): it accepts only strings with the canonical escapes,
 * numbers whose text is ECMAScript's own rendering of their value, members
 * in strictly increasing UTF-16 order, no whitespace, and no lone surrogate.
 */
export const scanCanonicalObject = (text: string): CanonicalObjectScan | undefined => {
  if (typeof text !== 'string' || text.charCodeAt(0) !== 0x7b) return undefined;
  const keys: string[] = [];
  const starts: number[] = [];
  let i = 0; // the cursor every helper advances
  let escaped = false; // whether the last string scanned had an escape

  /** At a quote; moves past the closing quote, or returns false. */
  const scanString = (): boolean => {
    const t = text; // a local: the loop below reads it per character
    let j = i + 1;
    escaped = false;
    for (;;) {
      let c = t.charCodeAt(j);
      // The common run: printable characters below the surrogates.
      while (c >= 0x20 && c !== 0x22 && c !== 0x5c && c < 0xd800) {
        j += 1;
        c = t.charCodeAt(j);
      }
      if (c === 0x22) {
        i = j + 1;
        return true;
      }
      if (c !== c || c < 0x20) return false; // end of text (NaN) or a raw control
      if (c === 0x5c) {
        escaped = true;
        const e = t.charCodeAt(j + 1);
        if (e === 0x22 || e === 0x5c || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
          j += 2;
          continue;
        }
        // \u00XX, lowercase, only for controls without a short form.
        if (e !== 0x75 || t.charCodeAt(j + 2) !== 0x30 || t.charCodeAt(j + 3) !== 0x30) return false;
        const h = t.charCodeAt(j + 4);
        const l = t.charCodeAt(j + 5);
        if (!((h === 0x30 && (isDigit07(l) || l === 0x62 || l === 0x65 || l === 0x66)) || (h === 0x31 && isLowerHex(l)))) {
          return false;
        }
        j += 6;
        continue;
      }
      if (c <= 0xdbff) {
        // A high surrogate must be followed by a low one.
        const d = t.charCodeAt(j + 1);
        if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
        j += 2;
        continue;
      }
      if (c <= 0xdfff) return false; // a lone low surrogate
      j += 1;
    }
  };

  const scanValue = (depth: number): boolean => {
    const c = text.charCodeAt(i);
    if (c === 0x22) return scanString();
    if (c === 0x7b || c === 0x5b) {
      if (depth >= SCAN_DEPTH) return false;
      return c === 0x7b ? scanObject(depth + 1, undefined) : scanArray(depth + 1);
    }
    if (c === 0x74) return literal('true');
    if (c === 0x66) return literal('false');
    if (c === 0x6e) return literal('null');
    // Small integers (most numbers in records) are canonical as written
    // when they have no leading zero.
    let j = i;
    if (text.charCodeAt(j) === 0x2d) j += 1;
    const firstDigit = j;
    while (isDigit(text.charCodeAt(j))) j += 1;
    const next = text.charCodeAt(j);
    if (j > firstDigit && j - firstDigit <= 15 && next !== 0x2e && next !== 0x65 && next !== 0x45) {
      const leadingZero = text.charCodeAt(firstDigit) === 0x30 && j - firstDigit > 1;
      const negativeZero = firstDigit > i && j - firstDigit === 1 && text.charCodeAt(firstDigit) === 0x30;
      if (leadingZero || negativeZero) return false;
      i = j;
      return true;
    }
    JSON_NUMBER.lastIndex = i;
    const m = JSON_NUMBER.exec(text);
    if (m === null) return false;
    const token = m[0];
    i = JSON_NUMBER.lastIndex;
    // Canonical numbers are ECMAScript's rendering of a finite value; this
    // also refuses -0, leading zeros, '+', '1.0', 'E', and malformed tokens.
    return String(Number(token)) === token;
  };

  const literal = (word: string): boolean => {
    if (!text.startsWith(word, i)) return false;
    i += word.length;
    return true;
  };

  const scanArray = (depth: number): boolean => {
    i += 1;
    if (text.charCodeAt(i) === 0x5d) {
      i += 1;
      return true;
    }
    for (;;) {
      if (!scanValue(depth)) return false;
      const c = text.charCodeAt(i);
      i += 1;
      if (c === 0x5d) return true;
      if (c !== 0x2c) return false;
    }
  };

  /** `top` collects the top-level members; nested objects pass undefined. */
  const scanObject = (depth: number, top: { keys: string[]; starts: number[] } | undefined): boolean => {
    i += 1;
    if (text.charCodeAt(i) === 0x7d) {
      i += 1;
      return true;
    }
    let previous: string | undefined;
    for (;;) {
      const start = i;
      if (text.charCodeAt(i) !== 0x22 || !scanString()) return false;
      let key = text.slice(start + 1, i - 1);
      if (escaped) {
        try {
          key = JSON.parse(text.slice(start, i)) as string;
        } catch {
          return false;
        }
      }
      // Strictly increasing UTF-16 order: sorted, and no duplicate names.
      if (previous !== undefined && !(previous < key)) return false;
      previous = key;
      if (top) {
        top.keys.push(key);
        top.starts.push(start);
      }
      if (text.charCodeAt(i) !== 0x3a) return false;
      i += 1;
      if (!scanValue(depth)) return false;
      const c = text.charCodeAt(i);
      i += 1;
      if (c === 0x7d) return true;
      if (c !== 0x2c) return false;
    }
  };

  if (!scanObject(1, { keys, starts })) return undefined;
  if (i !== text.length) return undefined;
  return { keys, starts };
};
harden(scanCanonicalObject);

/**
 * Adds members to a canonical object text that `scanCanonicalObject`
 * accepted, keeping it canonical: each `[name, encodedValue]` goes in its
 * sorted place. The names must be plain ASCII, absent from the object and
 * given in increasing order; each value must already be canonical.
 */
export const insertMembers = (
  text: string,
  scan: CanonicalObjectScan,
  members: ReadonlyArray<readonly [string, string]>,
): string => {
  const { keys, starts } = scan;
  let out = '';
  let from = 0; // next unread offset of `text`
  let k = 0; // next existing member
  for (const [name, value] of members) {
    while (k < keys.length && keys[k]! < name) k += 1;
    const member = `"${name}":${value}`;
    if (k < keys.length) {
      // Before existing member k.
      out += `${text.slice(from, starts[k]!)}${member},`;
      from = starts[k]!;
    } else {
      // After the last member: just before the closing brace.
      out += `${text.slice(from, text.length - 1)}${keys.length > 0 || out !== '' ? ',' : ''}${member}`;
      from = text.length - 1;
    }
  }
  return out + text.slice(from);
};
harden(insertMembers);
