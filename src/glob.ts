/**
 * The one glob matcher: argument rules (`constraints.args[name].pattern`),
 * tool targets (`server/tool`) and path targets (`/data/**`, which are also
 * the path part of URL patterns, the policy's path globs and the effectors'
 * `{ glob }` settings) all match through it.
 *
 * Invariants:
 * - Only `*` and `?` are wildcards, and with `globstar` a segment that is
 *   exactly `**`. What other glob dialects give a meaning this matcher does
 *   not have is refused when the pattern is compiled (ZT_BAD_ARGUMENT, see
 *   `globSyntaxProblem`), never taken literally: character classes
 *   `[...]`, braces `{a,b}`, escapes `\`, extglobs `?(…)` `*(…)` `+(…)`
 *   `@(…)` `!(…)` and a leading `!`. The threat: `forbid /data/{secrets,keys}/**`
 *   read literally matches no real path, and the forbid silently fails open.
 *   Every other character (`.`, `(`, `-`, spaces…) stands for itself.
 * - A pattern matches the whole text, never a part of it. Characters are
 *   UTF-16 code units: `?` matches one.
 * - A match costs at most O(|pattern| × |text|) steps, whatever the pattern.
 *   The threat: a pattern compiled to a backtracking RegExp, such as
 *   `*a*a*a*a*a*a*b`, takes time polynomial in the text with the number of
 *   stars as exponent on a long run of `a`s, and a caller who may write
 *   patterns could freeze the kernel's event loop with one check. Here a star
 *   only ever resumes from the latest star (one pass per text position), and
 *   `**` segments are never backtracked over: a single inner one is placed
 *   by matching the segments around it from both ends, several are tracked
 *   as a set of reachable pattern positions.
 */
import { harden } from './harden.js';
import { ZtError } from './errors.js';

/** Syntax other dialects (bash, minimatch, picomatch) read as operators; refused here. */
const RESERVED = /[[\]{}\\]|[?*+@!]\(|^!/;

/**
 * Why `pattern` is not a glob of this matcher's syntax, or undefined when it
 * is. Every pattern source (policy targets, capability targets, argument
 * rules, effector settings) is checked with this one function.
 */
export const globSyntaxProblem = (pattern: string): string | undefined => {
  const m = RESERVED.exec(pattern);
  if (m === null) return undefined;
  const found = m[0];
  const what =
    found === '[' || found === ']'
      ? 'character classes ([...]) are not supported'
      : found === '{' || found === '}'
        ? 'braces ({a,b}) are not supported: write one pattern per alternative'
        : found === '\\'
          ? 'escapes (\\) are not supported'
          : found === '!'
            ? 'a leading ! (negation) is not supported: write a forbid'
            : `extglobs (${found}…)) are not supported`;
  return `${what} (character ${m.index + 1}); the only wildcards are *, ? and ** (a whole path segment)`;
};
harden(globSyntaxProblem);

/** Throws ZT_BAD_ARGUMENT when `pattern` uses syntax this matcher does not support. */
export const assertGlobSyntax = (pattern: string): void => {
  const problem = globSyntaxProblem(pattern);
  if (problem !== undefined) throw new ZtError('ZT_BAD_ARGUMENT', `unsupported glob syntax: ${problem}`);
};
harden(assertGlobSyntax);

/**
 * How a glob reads its text.
 *
 * - Without `separator`: `*` matches any run of characters (possibly empty,
 *   newlines included), `?` exactly one.
 * - With `separator`: pattern and text are sequences of segments split at
 *   that character; `*` matches a run within one segment and `?` one
 *   character other than the separator.
 * - With `globstar` as well: a pattern segment that is exactly `**` matches
 *   zero or more whole text segments, each non-empty. As the last segment of
 *   the pattern it matches the rest of the text instead — nothing, or the
 *   separator and whatever follows — provided the rest holds no line
 *   terminator (`\n`, `\r`, U+2028, U+2029): such a text is never matched by
 *   a trailing `**`, so the rule only narrows.
 */
export interface GlobOptions {
  /** One character. */
  readonly separator?: string;
  /** Only with `separator`. */
  readonly globstar?: boolean;
}

export interface Glob {
  readonly source: string;
  matches(text: string): boolean;
}

const STAR = 42; // *
const QUESTION = 63; // ?

/**
 * Does `text[tFrom, tTo)` match `pattern[pFrom, pTo)`, `*` and `?` being the
 * only wildcards? On a mismatch the latest star takes one more character and
 * matching resumes after it; earlier stars are never revisited (a later
 * star can absorb anything they could), so the cost is at most
 * (pTo - pFrom + 1) × (tTo - tFrom + 1) steps.
 */
const matchRun = (pattern: string, pFrom: number, pTo: number, text: string, tFrom: number, tTo: number): boolean => {
  let p = pFrom;
  let t = tFrom;
  let resumeP = -1;
  let resumeT = tFrom;
  while (t < tTo) {
    if (p < pTo) {
      const c = pattern.charCodeAt(p);
      if (c === STAR) {
        p += 1;
        resumeP = p;
        resumeT = t;
        continue;
      }
      if (c === QUESTION || c === text.charCodeAt(t)) {
        p += 1;
        t += 1;
        continue;
      }
    }
    if (resumeP < 0) return false;
    resumeT += 1;
    p = resumeP;
    t = resumeT;
  }
  while (p < pTo && pattern.charCodeAt(p) === STAR) p += 1;
  return p === pTo;
};

const hasLineTerminator = (text: string, from: number, to: number): boolean => {
  for (let i = from; i < to; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13 || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
};

/** How one pattern segment (or a whole pattern without a separator) matches. */
type Piece =
  | { readonly kind: 'literal'; readonly text: string }
  /** Only stars: any run (within a segment, any segment). */
  | { readonly kind: 'any' }
  | { readonly kind: 'glob'; readonly from: number; readonly to: number }
  | { readonly kind: 'globstar' };

const pieceOf = (pattern: string, from: number, to: number, globstar: boolean): Piece => {
  const text = pattern.slice(from, to);
  if (globstar && text === '**') return { kind: 'globstar' };
  if (!/[*?]/.test(text)) return { kind: 'literal', text };
  if (/^\*+$/.test(text)) return { kind: 'any' };
  return { kind: 'glob', from, to };
};

const matchPiece = (pattern: string, piece: Piece, text: string, from: number, to: number): boolean => {
  switch (piece.kind) {
    case 'literal':
      return to - from === piece.text.length && text.startsWith(piece.text, from);
    case 'any':
      return true;
    case 'glob':
      return matchRun(pattern, piece.from, piece.to, text, from, to);
    case 'globstar':
      return false; // never matched as one segment (see matchGlobstar)
  }
};

const splitPattern = (pattern: string, separator: string, globstar: boolean): Piece[] => {
  const pieces: Piece[] = [];
  let from = 0;
  for (;;) {
    const end = pattern.indexOf(separator, from);
    const to = end < 0 ? pattern.length : end;
    pieces.push(pieceOf(pattern, from, to, globstar));
    if (end < 0) return pieces;
    from = end + 1;
  }
};

/**
 * No `**` but perhaps a last one (`rest`): each of the first `count` pattern
 * segments matches exactly one text segment, in order; then the text ends,
 * or (with `rest`) goes on past a separator without a line terminator.
 */
const matchSegmentwise = (pattern: string, pieces: readonly Piece[], count: number, rest: boolean, text: string, separator: string): boolean => {
  if (count === 0) return !hasLineTerminator(text, 0, text.length); // the pattern is `**`
  let from = 0;
  for (let i = 0; i < count; i += 1) {
    const end = text.indexOf(separator, from);
    const to = end < 0 ? text.length : end;
    if (!matchPiece(pattern, pieces[i] as Piece, text, from, to)) return false;
    if (i === count - 1) return end < 0 || (rest && !hasLineTerminator(text, end + 1, text.length));
    if (end < 0) return false;
    from = end + 1;
  }
  return false;
};

/**
 * Exactly one `**`, neither first nor last: the segments before it match
 * the first text segments, those after it the last ones, and the `**` takes
 * whatever whole segments lie between (each non-empty). No choice is left,
 * so one pass from each end decides.
 */
const matchOneGlobstar = (pattern: string, pieces: readonly Piece[], at: number, text: string, separator: string): boolean => {
  // The segments before the `**`, from the start; a separator must follow them.
  let from = 0;
  for (let i = 0; i < at; i += 1) {
    const end = text.indexOf(separator, from);
    if (end < 0 || !matchPiece(pattern, pieces[i] as Piece, text, from, end)) return false;
    from = end + 1;
  }
  // The segments after it, from the end; a separator must precede them.
  let to = text.length;
  for (let i = pieces.length - 1; i > at; i -= 1) {
    const start = to > 0 ? text.lastIndexOf(separator, to - 1) + 1 : 0;
    if (start === 0 || !matchPiece(pattern, pieces[i] as Piece, text, start, to)) return false;
    to = start - 1;
  }
  // Between them: `to + 1` is where the segments after the `**` begin.
  if (to + 1 < from) return false;
  if (to + 1 === from) return true; // the `**` takes no segment
  let emptySegment = true;
  for (let i = from; i < to; i += 1) {
    if (text.charCodeAt(i) === separator.charCodeAt(0)) {
      if (emptySegment) return false;
      emptySegment = true;
    } else {
      emptySegment = false;
    }
  }
  return !emptySegment;
};

/**
 * `**` before the last segment: the set of pattern positions reachable after
 * each text segment (a position past a `**` is reachable wherever the `**`
 * is). `sets` are the compiled glob's own scratch space (matching is
 * synchronous, so two matches never share it).
 */
const matchGlobstar = (pattern: string, pieces: readonly Piece[], text: string, separator: string, sets: readonly [Uint8Array, Uint8Array]): boolean => {
  const n = pieces.length;
  let current = sets[0];
  let next = sets[1];
  current.fill(0);
  current[0] = 1;
  for (let i = 0; i < n; i += 1) if (current[i] === 1 && (pieces[i] as Piece).kind === 'globstar') current[i + 1] = 1;
  let from = 0;
  for (;;) {
    const end = text.indexOf(separator, from);
    const to = end < 0 ? text.length : end;
    next.fill(0);
    let alive = false;
    for (let i = 0; i < n; i += 1) {
      const piece = pieces[i] as Piece;
      if (current[i] === 1) {
        if (piece.kind === 'globstar') {
          if (i === n - 1 ? !hasLineTerminator(text, from, to) : to > from) {
            next[i] = 1;
            alive = true;
          }
        } else if (matchPiece(pattern, piece, text, from, to)) {
          next[i + 1] = 1;
          alive = true;
        }
      }
      // Past a reachable `**` is reachable too; next[i] is final here (only positions i - 1 and i set it).
      if (piece.kind === 'globstar' && next[i] === 1) next[i + 1] = 1;
    }
    if (!alive) return false;
    const swap = current;
    current = next;
    next = swap;
    if (end < 0) return current[n] === 1;
    from = end + 1;
  }
};

const compileSegmented = (pattern: string, separator: string, globstar: boolean): ((text: string) => boolean) => {
  const pieces = harden(splitPattern(pattern, separator, globstar));
  const inner = pieces.slice(0, -1).flatMap((p, i) => (p.kind === 'globstar' ? [i] : []));
  if (inner.length === 0) {
    const rest = pieces[pieces.length - 1]?.kind === 'globstar';
    const count = rest ? pieces.length - 1 : pieces.length;
    return text => matchSegmentwise(pattern, pieces, count, rest, text, separator);
  }
  const at = inner[0] as number;
  if (inner.length === 1 && at > 0 && pieces[pieces.length - 1]?.kind !== 'globstar') {
    return text => matchOneGlobstar(pattern, pieces, at, text, separator);
  }
  const sets: readonly [Uint8Array, Uint8Array] = [new Uint8Array(pieces.length + 1), new Uint8Array(pieces.length + 1)];
  return text => matchGlobstar(pattern, pieces, text, separator, sets);
};

/**
 * Compiles `pattern` once; `matches` may then be called on any number of
 * texts. Throws ZT_BAD_ARGUMENT for unsupported syntax (`globSyntaxProblem`).
 */
export const compileGlob = (pattern: string, options: GlobOptions = {}): Glob => {
  const { separator, globstar = false } = options;
  if (typeof pattern !== 'string') throw TypeError('a glob is a string');
  assertGlobSyntax(pattern);
  if (separator === undefined) {
    if (globstar) throw TypeError('globstar needs a separator');
    const piece = pieceOf(pattern, 0, pattern.length, false);
    return harden({ source: pattern, matches: (text: string) => matchPiece(pattern, piece, text, 0, text.length) });
  }
  if (separator.length !== 1 || separator === '*' || separator === '?') throw TypeError('a glob separator is one character other than * and ?');
  return harden({ source: pattern, matches: compileSegmented(pattern, separator, globstar) });
};
harden(compileGlob);
