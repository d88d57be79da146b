/**
 * The one regular-expression engine for expressions an operator writes and
 * the kernel runs on agent-supplied text: policy argument `pattern`s, the
 * effectors' `{ regex }` argument patterns and the `pattern` keywords of MCP
 * input schemas.
 *
 * Invariants:
 * - matching is linear in the text: expressions are compiled by RE2JS (a
 *   pure-JavaScript port of RE2, an automaton engine that never
 *   backtracks), never by the host `RegExp`. The threat: a backtracking
 *   engine runs `(a+)+b` over `aaaa…c` in time exponential in the text, and
 *   one agent call would freeze the kernel's event loop for everyone;
 * - what RE2 cannot express in linear time (backreferences, lookahead,
 *   lookbehind) is refused when the expression is compiled, with a reason
 *   naming the construct; it is never approximated;
 * - an expression matches the whole text (`fullMatch`), or anywhere in it
 *   (`search`, for JSON Schema's unanchored `pattern`); nothing is taken
 *   from the host realm's RegExp at match time.
 *
 * Syntax: RE2's (https://github.com/google/re2/wiki/Syntax), close to
 * JavaScript's with the `u` flag: classes, `\d \w \s \b`, `\p{L}`, counted
 * repetition up to 1000, `(?i)` and friends as inline flags, named groups.
 * `\uXXXX` is written `\x{XXXX}`.
 */
import { RE2JS } from 're2js';
import { harden } from './harden.js';
import { ZtError } from './errors.js';

/** Longest expression compiled (policy and settings limits are lower). */
export const MAX_REGEX_SOURCE = 4096;

export interface LinearRegex {
  readonly source: string;
  /** Does the whole text match? */
  fullMatch(text: string): boolean;
  /** Does some part of the text match (JSON Schema `pattern`)? */
  search(text: string): boolean;
}

/** Constructs RE2 refuses, named for the operator (RE2's own messages name the symptom, not the cause). */
const UNSUPPORTED: ReadonlyArray<readonly [RegExp, string]> = [
  [/\(\?<[=!]/, 'lookbehind ((?<= or (?<!)'],
  [/\(\?[=!]/, 'lookahead ((?= or (?!)'],
  [/\\[1-9]|\\k</, 'backreferences (\\1, \\k<name>)'],
];

const wrap = (source: string, compiled: RE2JS): LinearRegex =>
  harden({
    source,
    fullMatch: (text: string) => compiled.testExact(text),
    search: (text: string) => compiled.test(text),
  });

/**
 * Compiles `source`, or says why it is not a linear-time expression (the
 * reason is for the operator who wrote it).
 */
export const tryCompileRegex = (source: unknown): { readonly regex: LinearRegex } | { readonly problem: string } => {
  if (typeof source !== 'string') return harden({ problem: 'a regular expression is a string' });
  if (source.length > MAX_REGEX_SOURCE) return harden({ problem: `a regular expression is at most ${MAX_REGEX_SOURCE} characters` });
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(source);
  } catch (err) {
    const unsupported = UNSUPPORTED.find(([re]) => re.test(source));
    if (unsupported) return harden({ problem: `uses ${unsupported[1]}, which a linear-time (RE2) expression cannot have` });
    const detail = err instanceof Error ? err.message.replace(/^error parsing regexp: /, '') : 'malformed';
    return harden({ problem: `is not a valid RE2 regular expression: ${detail.slice(0, 160)}` });
  }
  return harden({ regex: wrap(source, compiled) });
};
harden(tryCompileRegex);

/** Compiles `source`; throws ZT_BAD_ARGUMENT with the reason when it cannot be. */
export const compileRegex = (source: string): LinearRegex => {
  const attempt = tryCompileRegex(source);
  if ('problem' in attempt) throw new ZtError('ZT_BAD_ARGUMENT', `the regular expression ${attempt.problem}`);
  return attempt.regex;
};
harden(compileRegex);

/**
 * A `RegExp` stand-in for Ajv's `code.regExp` option: JSON Schema `pattern`
 * keywords (an MCP server's input schema, an operator's narrowing) run on
 * RE2 too. A pattern RE2 refuses makes the schema fail to compile, which
 * denies.
 */
export const ajvRegExpEngine = Object.assign((source: string, _flags: string) => {
  const re = compileRegex(source);
  return harden({ test: (text: string) => re.search(text) });
}, { code: 'linear-time RE2 (re2js)' });
harden(ajvRegExpEngine);
