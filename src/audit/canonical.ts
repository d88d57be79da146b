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
import { harden } from '../harden.js';
import { ztError } from '../errors.js';

const { getPrototypeOf, getOwnPropertyDescriptor, keys: objectKeys, prototype: objectPrototype } = Object;
const { ownKeys } = Reflect;
const { getOwnPropertyNames, getOwnPropertySymbols } = Object;

/**
 * Whether `v` has exactly `expected` own keys, symbols included. Two
 * specific calls cost a fifth of one `Reflect.ownKeys` here (measured).
 */
const ownKeyCountIs = (v: object, expected: number): boolean =>
  getOwnPropertyNames(v).length === expected && getOwnPropertySymbols(v).length === 0;
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
 * Deeper than this, the fast paths hand over to the checking encoder, which
 * detects cycles. Records are shallow; a cycle recurses until it gets here.
 */
const FAST_DEPTH = 64;

/**
 * The copying fast path: checks the same domain as `encodeChecked` and
 * returns a copy of `v` made of fresh arrays and fresh objects whose keys
 * are inserted in canonical order. `JSON.stringify` of such a copy is the
 * canonical text, written natively as one flat string. Objects with a key
 * that the engine would not keep in insertion order (an array index) or that
 * assignment would not make an own property (`__proto__`, `constructor` and
 * the other names of `Object.prototype`) throw OUTSIDE_ORDER, and the
 * checking encoder takes over.
 */
const OUTSIDE_ORDER = harden({ outsideOrder: true });
const INDEX_LIKE = /^(?:0|[1-9][0-9]*)$/;
/**
 * Names `Object.prototype` has (`__proto__`, `constructor`,
 * `hasOwnProperty`…): assigning them on a fresh `{}` would reach the
 * (frozen, after lockdown) prototype instead of making an own property.
 */
const INHERITED_NAMES = new Set<string>(getOwnPropertyNames(objectPrototype));
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
        if (!ownKeyCountIs(v, n + 1)) throw OUTSIDE;
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
      if (!ownKeyCountIs(v, names.length)) throw OUTSIDE;
      names.sort();
      const out: Record<string, unknown> = {};
      for (let i = 0; i < names.length; i += 1) {
        const name = names[i]!;
        if (!orderedKeys.has(name)) {
          if (INHERITED_NAMES.has(name) || INDEX_LIKE.test(name)) throw OUTSIDE_ORDER;
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
  }
  // Refused, very deep, or keys the copy cannot hold in order: the checking
  // encoder names the offending path, or encodes the (valid) value.
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
