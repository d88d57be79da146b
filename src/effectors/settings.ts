/**
 * Shared helpers for effector settings (`constraints.effect`) and argument
 * patterns. Settings are plain JSON written by the operator; they are
 * validated once at issue time (GrantValidator, ZT_BAD_ARGUMENT) and read
 * again at use time with the same functions, so a setting the validator
 * would refuse can never take effect.
 *
 * Invariant: settings only narrow. An unknown key is refused rather than
 * ignored, so a misspelt restriction (`maxStdotBytes`) cannot silently
 * leave an action unrestricted.
 */
import { harden } from '../harden.js';
import { ZtError, assertZt, reasonOf } from '../errors.js';
import { compileTargetPattern, normalizePath } from '../paths.js';
import { tryCompileRegex } from '../regex.js';
import type { CapabilityConstraints } from '../types.js';

export type Settings = Readonly<Record<string, unknown>>;

/** The `effect` settings of a capability, with only `allowed` keys. */
export const readSettings = (constraints: CapabilityConstraints, allowed: readonly string[], kind: string): Settings => {
  const effect = constraints.effect ?? {};
  for (const key of Object.keys(effect)) {
    assertZt(allowed.includes(key), 'ZT_BAD_ARGUMENT', `unknown ${kind} setting ${JSON.stringify(key)} (known: ${allowed.join(', ')})`);
  }
  return effect;
};
harden(readSettings);

export const optionalBoolean = (settings: Settings, key: string): boolean => {
  const value = settings[key];
  assertZt(value === undefined || typeof value === 'boolean', 'ZT_BAD_ARGUMENT', `${key} must be a boolean`);
  return value === true;
};
harden(optionalBoolean);

export const optionalPositiveInt = (settings: Settings, key: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number => {
  const value = settings[key];
  if (value === undefined) return fallback;
  assertZt(typeof value === 'number' && Number.isSafeInteger(value) && value > 0 && value <= max, 'ZT_BAD_ARGUMENT', `${key} must be a positive integer of at most ${max}`);
  return value;
};
harden(optionalPositiveInt);

export const optionalNonNegativeInt = (settings: Settings, key: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number => {
  const value = settings[key];
  if (value === undefined) return fallback;
  assertZt(typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max, 'ZT_BAD_ARGUMENT', `${key} must be a non-negative integer of at most ${max}`);
  return value;
};
harden(optionalNonNegativeInt);

export const isPlainRecord = (x: unknown): x is Record<string, unknown> =>
  x !== null && typeof x === 'object' && !Array.isArray(x);
harden(isPlainRecord);

/**
 * An argument pattern, as the operator writes it:
 * - `"text"`: exactly this string;
 * - `{ "regex": "[a-z]+" }`: the whole value matches (RE2 syntax, linear time; src/regex.ts);
 * - `{ "oneOf": ["a", "b"] }`: one of these strings;
 * - `{ "glob": "/data/**" }`: an absolute, already normalized path matching
 *   the path glob (spelling only: the program itself follows symlinks);
 * - `{ "any": true }`: any string.
 */
export type ArgPattern =
  | string
  | { readonly regex: string }
  | { readonly oneOf: readonly string[] }
  | { readonly glob: string }
  | { readonly any: true };

export interface ArgMatcher {
  matches(value: string): boolean;
}

const MAX_REGEX = 1000;

export const compileArgPattern = (pattern: unknown, where: string): ArgMatcher => {
  if (typeof pattern === 'string') return harden({ matches: (v: string) => v === pattern });
  assertZt(isPlainRecord(pattern), 'ZT_BAD_ARGUMENT', `${where}: a pattern is a string, {regex}, {oneOf}, {glob} or {any: true}`);
  const keys = Object.keys(pattern);
  assertZt(keys.length === 1, 'ZT_BAD_ARGUMENT', `${where}: a pattern object has exactly one key`);
  const { regex, oneOf, glob, any } = pattern;
  if (regex !== undefined) {
    assertZt(typeof regex === 'string' && regex.length <= MAX_REGEX, 'ZT_BAD_ARGUMENT', `${where}: regex must be a string of at most ${MAX_REGEX} characters`);
    // RE2, not RegExp: the value is agent-supplied (src/regex.ts).
    const attempt = tryCompileRegex(regex);
    if ('problem' in attempt) throw new ZtError('ZT_BAD_ARGUMENT', `${where}: regex ${attempt.problem}`);
    const re = attempt.regex;
    return harden({ matches: (v: string) => re.fullMatch(v) });
  }
  if (oneOf !== undefined) {
    assertZt(Array.isArray(oneOf) && oneOf.every(s => typeof s === 'string'), 'ZT_BAD_ARGUMENT', `${where}: oneOf must be an array of strings`);
    const set = new Set(oneOf as string[]);
    return harden({ matches: (v: string) => set.has(v) });
  }
  if (glob !== undefined) {
    assertZt(typeof glob === 'string', 'ZT_BAD_ARGUMENT', `${where}: glob must be a string`);
    let compiled;
    try {
      compiled = compileTargetPattern(glob);
    } catch (err) {
      throw new ZtError('ZT_BAD_ARGUMENT', `${where}: ${reasonOf(err) ?? 'bad glob'}`);
    }
    const pathPattern = compiled;
    return harden({
      matches: (v: string) => {
        try {
          // The value must already be in normal form: no `..` can be spelt past the glob.
          return normalizePath(v) === v && pathPattern.matches(v);
        } catch {
          return false;
        }
      },
    });
  }
  if (any !== undefined) {
    assertZt(any === true, 'ZT_BAD_ARGUMENT', `${where}: any must be true`);
    return harden({ matches: () => true });
  }
  throw new ZtError('ZT_BAD_ARGUMENT', `${where}: unknown pattern key ${JSON.stringify(keys[0])}`);
};
harden(compileArgPattern);

/** Timer powers: effectors never reach for the ambient clock. */
export interface TimerPowers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
