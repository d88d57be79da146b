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

const { getPrototypeOf, getOwnPropertyDescriptor } = Object;
const { ownKeys } = Reflect;
const { isArray } = Array;

/** A lone (unpaired) UTF-16 surrogate; paired ones are one code point under `u`. */
const LONE_SURROGATE = /\p{Cs}/u;

const refuse = (why: string, path: string): never => {
  throw ztError('ZT_AUDIT_NOT_CANONICAL', `${why} at ${path}`);
};

const encodeString = (s: string, path: string): string => {
  if (LONE_SURROGATE.test(s)) refuse('string with a lone surrogate', path);
  return JSON.stringify(s);
};

const dataValue = (obj: object, key: string, path: string): unknown => {
  const desc = getOwnPropertyDescriptor(obj, key);
  if (desc === undefined || !('value' in desc)) {
    return refuse(`accessor property ${JSON.stringify(key)}`, path);
  }
  if (!desc.enumerable) {
    return refuse(`non-enumerable property ${JSON.stringify(key)}`, path);
  }
  return desc.value;
};

/**
 * Encodes `value` as RFC 8785 canonical JSON, or throws
 * ZT_AUDIT_NOT_CANONICAL naming the path of the first offending part.
 */
export const canonicalJson = (value: unknown): string => {
  // Ancestors on the current path: a repeated one is a cycle. Shared,
  // acyclic references are fine and are encoded once per occurrence.
  const ancestors = new Set<object>();

  const encode = (v: unknown, path: string): string => {
    switch (typeof v) {
      case 'boolean':
        return v ? 'true' : 'false';
      case 'number':
        if (!Number.isFinite(v)) refuse(`non-finite number ${String(v)}`, path);
        // ECMAScript Number-to-string is exactly the JCS number format;
        // JSON.stringify(-0) is '0'.
        return JSON.stringify(v);
      case 'string':
        return encodeString(v, path);
      case 'object': {
        if (v === null) return 'null';
        if (ancestors.has(v)) refuse('cycle', path);
        ancestors.add(v);
        try {
          return isArray(v) ? encodeArray(v, path) : encodeObject(v, path);
        } finally {
          ancestors.delete(v);
        }
      }
      default:
        return refuse(typeof v, path);
    }
  };

  const encodeArray = (arr: unknown[], path: string): string => {
    if (getPrototypeOf(arr) !== Array.prototype) refuse('exotic array', path);
    const keys = ownKeys(arr);
    // Dense, and nothing but indices and `length`.
    if (keys.length !== arr.length + 1) refuse('sparse or decorated array', path);
    const parts: string[] = [];
    for (let i = 0; i < arr.length; i += 1) {
      const itemPath = `${path}[${i}]`;
      parts.push(encode(dataValue(arr, String(i), itemPath), itemPath));
    }
    return `[${parts.join(',')}]`;
  };

  const encodeObject = (obj: object, path: string): string => {
    const proto = getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) {
      refuse('object that is not a plain record', path);
    }
    const keys = ownKeys(obj);
    const names: string[] = [];
    for (const key of keys) {
      if (typeof key !== 'string') refuse('symbol-keyed property', path);
      names.push(key as string);
    }
    // Default sort compares UTF-16 code units, which is what RFC 8785 asks.
    names.sort();
    const parts: string[] = [];
    for (const name of names) {
      const memberPath = `${path}.${name}`;
      const member = dataValue(obj, name, memberPath);
      parts.push(`${encodeString(name, memberPath)}:${encode(member, memberPath)}`);
    }
    return `{${parts.join(',')}}`;
  };

  return encode(value, '$');
};
harden(canonicalJson);

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
    return canonicalJson(parsed) === text;
  } catch {
    return false;
  }
};
harden(isCanonicalJson);
