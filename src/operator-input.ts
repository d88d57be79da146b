/**
 * Operator input at the two edges of the kernel boundary: the host's
 * `SandboxRuntime` checks what its caller passed before anything else, and
 * the kernel vat checks it again when it arrives.
 *
 * Invariant: what `copyOperatorInput` returns is a fresh list of plain data
 * (null, booleans, finite numbers, strings, dense plain arrays, plain
 * records; `undefined` only as a whole positional argument), bounded by
 * `OPERATOR_INPUT_LIMITS`, that structured clone and the kernel can read
 * without running any of the caller's code. Everything else is refused with
 * ZT_BAD_ARGUMENT before it is iterated: a sparse array of length 2³²−1 is
 * refused on its length, a getter is never called, a Proxy whose trap throws
 * or that was revoked is refused, not propagated as a TypeError.
 *
 * Strings that are not Unicode text (a lone UTF-16 surrogate) are copied as
 * they are and reported (`unrecordable`): the kernel refuses the operation
 * with ZT_NOT_RECORDABLE and records the refusal with the input escaped
 * (`escapeForRecord`), so the refusal itself is in the log.
 *
 * Threat: an input the audit log cannot encode that reaches a record makes
 * the append fail, which used to latch the audit fault and deny every agent;
 * an input with no bound (a sparse array claiming four billion elements)
 * kills the host in structured clone or stalls the kernel in `every`.
 *
 * No `node:` import and no lockdown: this module runs in the host realm too.
 */
import { harden } from './harden.js';
import { ZtError } from './errors.js';
import { PLAIN_DATA_LIMITS, escapeText, isWellFormedString } from './plain-data.js';

/** The bounds of plain data at every boundary (src/plain-data.ts), operator inputs included. */
export const OPERATOR_INPUT_LIMITS = PLAIN_DATA_LIMITS;

const { getPrototypeOf, getOwnPropertyDescriptor, prototype: objectPrototype, freeze } = Object;
const { ownKeys } = Reflect;
const objectToString = Object.prototype.toString;
const { isArray, prototype: arrayPrototype } = Array;


const refuse = (what: string, why: string): never => {
  throw new ZtError('ZT_BAD_ARGUMENT', `${what}: ${why}`);
};

export interface OperatorInput {
  /** The checked copy: a frozen list, one element per argument. */
  readonly args: readonly unknown[];
  /** Some string holds a lone surrogate: the operation must be refused (ZT_NOT_RECORDABLE) and the refusal recorded. */
  readonly unrecordable: boolean;
}

/**
 * Checks and copies a list of positional arguments of the operation named
 * `what`. Throws ZT_BAD_ARGUMENT (never anything else) for anything outside
 * plain data or its bounds.
 */
export interface OperatorInputOptions {
  /**
   * Copy records as structured clone would: an instance of a class as its
   * own enumerable properties, a getter's value read (once, here, in the
   * caller's realm; one that throws is ZT_BAD_ARGUMENT). A Date, Map or
   * other built-in with internal state is still refused. For a request's
   * arguments, which have always crossed to the kernel by structured clone.
   */
  readonly cloneInstances?: boolean;
}

export const copyOperatorInput = (what: string, list: readonly unknown[], options: OperatorInputOptions = {}): OperatorInput => {
  const { maxDepth, maxArrayLength, maxStringLength, maxTotalSize } = OPERATOR_INPUT_LIMITS;
  let total = 0;
  let unrecordable = false;
  const ancestors: object[] = [];
  const count = (n: number) => {
    total += n;
    if (total > maxTotalSize) refuse(what, `the input exceeds ${maxTotalSize} in total size`);
  };
  const copyString = (s: string): string => {
    if (s.length > maxStringLength * 2) refuse(what, `a string is longer than ${maxStringLength} characters`);
    if (!isWellFormedString(s)) unrecordable = true;
    count(s.length);
    return s;
  };
  const copy = (value: unknown, depth: number): unknown => {
    count(1);
    switch (typeof value) {
      case 'string':
        return copyString(value);
      case 'number':
        return Number.isFinite(value) ? value : refuse(what, 'a number is not finite (NaN or Infinity)');
      case 'boolean':
        return value;
      case 'object':
        if (value === null) return null;
        if (depth >= maxDepth) refuse(what, `the input nests deeper than ${maxDepth}`);
        if (ancestors.includes(value)) refuse(what, 'the input holds a cycle');
        ancestors.push(value);
        try {
          return isArray(value) ? copyArray(value, depth) : copyRecord(value, depth);
        } finally {
          ancestors.pop();
        }
      case 'undefined':
        return refuse(what, 'undefined is not data (leave the property out)');
      default:
        return refuse(what, `a ${typeof value} is not data`);
    }
  };
  const copyArray = (value: unknown[], depth: number): readonly unknown[] => {
    if (getPrototypeOf(value) !== arrayPrototype) refuse(what, 'an array is not a plain array');
    const n = value.length;
    // Length first, density second, elements last: nothing iterates a sparse giant.
    if (typeof n !== 'number' || n > maxArrayLength) refuse(what, `an array has more than ${maxArrayLength} elements`);
    if (ownKeys(value).length !== n + 1) refuse(what, 'an array is sparse or has properties of its own');
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i += 1) {
      const desc = getOwnPropertyDescriptor(value, i);
      if (desc === undefined || !('value' in desc)) refuse(what, 'an array element is missing or an accessor');
      out[i] = copy((desc as PropertyDescriptor).value, depth + 1);
    }
    return freeze(out);
  };
  const copyRecord = (value: object, depth: number): Record<string, unknown> => {
    const proto = getPrototypeOf(value);
    if (proto !== objectPrototype && proto !== null && !(options.cloneInstances === true && objectToString.call(value) === '[object Object]')) {
      refuse(what, 'an object is not a plain record');
    }
    const keys = ownKeys(value);
    if (keys.length > maxArrayLength) refuse(what, `a record has more than ${maxArrayLength} properties`);
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      if (typeof key !== 'string') refuse(what, 'a record has a symbol key');
      const desc = getOwnPropertyDescriptor(value, key);
      if (desc === undefined) refuse(what, 'a record property vanished while it was read');
      const cloneLike = options.cloneInstances === true;
      if (!(desc as PropertyDescriptor).enumerable) {
        if (cloneLike) continue;
        refuse(what, 'a record property is not enumerable');
      }
      if (!('value' in (desc as PropertyDescriptor)) && !cloneLike) refuse(what, 'a record property is an accessor (getter or setter)');
      const v = 'value' in (desc as PropertyDescriptor) ? (desc as PropertyDescriptor).value : (value as Record<string, unknown>)[key as string];
      if (v === undefined) continue;
      count(1);
      Object.defineProperty(out, copyString(key as string), { value: copy(v, depth + 1), enumerable: true, writable: true, configurable: true });
    }
    return freeze(out);
  };

  try {
    if (!isArray(list) || list.length > 16) refuse(what, 'too many arguments');
    const args = new Array<unknown>(list.length);
    for (let i = 0; i < list.length; i += 1) args[i] = list[i] === undefined ? undefined : copy(list[i], 1);
    return harden({ args: freeze(args), unrecordable });
  } catch (err) {
    if (err instanceof ZtError) throw err;
    // A Proxy's trap threw, or the Proxy was revoked: refused, never propagated.
    throw new ZtError('ZT_BAD_ARGUMENT', `${what}: the input could not be read (a proxy or an accessor threw)`);
  }
};
harden(copyOperatorInput);

/** A string as the log can hold it: unchanged if it is Unicode text, else its JSON escape (`\ud800`). */

/**
 * A copy of plain data (as `copyOperatorInput` returns it) with every string
 * that is not Unicode text, key or value, replaced by its JSON escape, and
 * cut to `maxStrings` characters per string: always recordable.
 */
export const escapeForRecord = (value: unknown, maxString = 256): unknown => {
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return escapeText(v.length > maxString ? v.slice(0, maxString) : v);
    if (v === undefined) return null;
    if (v === null || typeof v !== 'object') return typeof v === 'number' && !Number.isFinite(v) ? String(v) : (v as unknown);
    if (depth > 8) return '[…]';
    if (isArray(v)) return v.slice(0, 64).map(e => walk(e, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, e] of Object.entries(v).slice(0, 64)) Object.defineProperty(out, escapeText(k), { value: walk(e, depth + 1), enumerable: true, writable: true, configurable: true });
    return out;
  };
  return walk(value, 0);
};
harden(escapeForRecord);

/** Reads `key` of `value` without letting a getter or a Proxy trap throw past the caller. */
export const readField = (value: unknown, key: string): { ok: true; value: unknown } | { ok: false } => {
  try {
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return { ok: true, value: undefined };
    return { ok: true, value: (value as Record<string, unknown>)[key] };
  } catch {
    return { ok: false };
  }
};
harden(readField);
