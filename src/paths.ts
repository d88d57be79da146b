/**
 * Lexical path handling for targets. Invariant: a path that passes
 * `normalizePath` is absolute, has no `.`/`..` segments, no empty segments
 * and no NUL byte, so pattern matching can never be steered out of a tree by
 * spelling. (Symlinks are the effector's business: it re-checks the resolved
 * path at open time.)
 */
import { harden } from './harden.js';
import { assertZt } from './errors.js';
import { assertGlobSyntax, compileGlob } from './glob.js';
import type { ParsedUrl } from './targets.js';

/** Anything `normalizePath` would change: `//`, `.` or `..` segments, a trailing `/`. */
const NOT_NORMAL = /\/\/|\/\.\.?(?:\/|$)|.\/$/;

export const normalizePath = (input: string): string => {
  assertZt(typeof input === 'string', 'ZT_BAD_ARGUMENT', 'path must be a string');
  assertZt(!input.includes('\0'), 'ZT_BAD_ARGUMENT', 'path contains a NUL byte');
  assertZt(input.startsWith('/'), 'ZT_BAD_ARGUMENT', 'path must be absolute');
  // Hot path: most targets are already normal.
  if (!NOT_NORMAL.test(input)) return input;
  const out: string[] = [];
  for (const segment of input.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      out.pop();
      continue;
    }
    out.push(segment);
  }
  return `/${out.join('/')}`;
};
harden(normalizePath);

/**
 * A target pattern: an absolute path in which `*` matches within one segment,
 * `**` (a whole segment) matches any number of segments (at the end: the
 * directory itself and everything below it), and `?` one character other
 * than `/`; src/glob.ts has the exact rules. A pattern without wildcards
 * matches exactly one path.
 */
export interface TargetPattern {
  readonly source: string;
  readonly exact: boolean;
  matches(path: string): boolean;
  /** URL patterns only: `matches` on a target already parsed (src/targets.ts), without parsing it again. */
  matchesParsed?(url: ParsedUrl): boolean;
}

export const compileTargetPattern = (pattern: string): TargetPattern => {
  assertZt(typeof pattern === 'string' && pattern.length > 0, 'ZT_BAD_ARGUMENT', 'pattern must be a non-empty string');
  assertZt(!pattern.includes('\0'), 'ZT_BAD_ARGUMENT', 'pattern contains a NUL byte');
  assertZt(pattern.startsWith('/'), 'ZT_BAD_ARGUMENT', 'pattern must be an absolute path');
  // Exact patterns too: `/data/{a,b}.txt` is refused, never read as one literal path.
  assertGlobSyntax(pattern);
  const segments = pattern.split('/').slice(1);
  for (const seg of segments) {
    assertZt(seg !== '.' && seg !== '..', 'ZT_BAD_ARGUMENT', 'pattern must not contain . or .. segments');
    assertZt(!seg.includes('**') || seg === '**', 'ZT_BAD_ARGUMENT', '** must be a whole path segment');
  }
  const exact = !/[*?]/.test(pattern);
  if (exact) {
    const normalized = normalizePath(pattern);
    return harden({ source: pattern, exact, matches: (path: string) => path === normalized });
  }
  const glob = compileGlob(pattern, { separator: '/', globstar: true });
  return harden({
    source: pattern,
    exact,
    matches: (path: string) => glob.matches(path),
  });
};
harden(compileTargetPattern);
