/**
 * The one glob matcher: argument rules (`constraints.args[name].pattern`),
 * tool targets (`server/tool`) and path targets (`/data/**`, which are also
 * the path part of URL patterns, the policy's path globs and the effectors'
 * `{ glob }` settings) all match through it.
 *
 * Invariants:
 * - Only `*` and `?` are wildcards, and with `globstar` a segment that is
 *   exactly `**`. Every other character (`\`, `[`, `{`, `.` included) stands
 *   for itself: there are no escapes, classes or braces.
 * - A pattern matches the whole text, never a part of it. Characters are
 *   UTF-16 code units: `?` matches one.
 * - A match costs at most O(|pattern| × |text|) steps, whatever the pattern.
 *   The threat: a pattern compiled to a backtracking RegExp, such as
 *   `*a*a*a*a*a*a*b`, takes time polynomial in the text with the number of
 *   stars as exponent on a long run of `a`s, and a caller who may write
 *   patterns could freeze the kernel's event loop with one check. Here a star
 *   only ever resumes from the latest star (one pass per text position), and
 *   `**` segments are tracked as a set of pattern positions, never by
 *   backtracking.
 */
import { harden } from './harden.js';

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

interface Segment {
  readonly from: number;
  readonly to: number;
  readonly globstar: boolean;
}

const splitPattern = (pattern: string, separator: string, globstar: boolean): readonly Segment[] => {
  const segments: Segment[] = [];
  let from = 0;
  for (;;) {
    const end = pattern.indexOf(separator, from);
    const to = end < 0 ? pattern.length : end;
    segments.push({ from, to, globstar: globstar && to - from === 2 && pattern.startsWith('**', from) });
    if (end < 0) return segments;
    from = end + 1;
  }
};

/** Segments without `**`: each pattern segment matches exactly one text segment, in order. */
const matchSegmentwise = (pattern: string, segments: readonly Segment[], text: string, separator: string): boolean => {
  let from = 0;
  for (let i = 0; i < segments.length; i += 1) {
    const end = text.indexOf(separator, from);
    const last = i === segments.length - 1;
    // The text must run out exactly with the pattern.
    if (last !== (end < 0)) return false;
    const to = end < 0 ? text.length : end;
    const segment = segments[i] as Segment;
    if (!matchRun(pattern, segment.from, segment.to, text, from, to)) return false;
    from = to + 1;
  }
  return true;
};

/**
 * Segments with `**`: the set of pattern positions reachable after each text
 * segment (a position past a `**` is reachable wherever the `**` is).
 */
const matchGlobstar = (pattern: string, segments: readonly Segment[], text: string, separator: string): boolean => {
  const n = segments.length;
  let current = new Uint8Array(n + 1);
  let next = new Uint8Array(n + 1);
  const close = (set: Uint8Array) => {
    for (let i = 0; i < n; i += 1) if (set[i] === 1 && (segments[i] as Segment).globstar) set[i + 1] = 1;
  };
  current[0] = 1;
  close(current);
  let from = 0;
  for (;;) {
    const end = text.indexOf(separator, from);
    const to = end < 0 ? text.length : end;
    next.fill(0);
    let alive = false;
    for (let i = 0; i < n; i += 1) {
      if (current[i] !== 1) continue;
      const segment = segments[i] as Segment;
      if (segment.globstar) {
        const consumes = i === n - 1 ? !hasLineTerminator(text, from, to) : to > from;
        if (consumes) next[i] = 1;
        alive ||= consumes;
      } else if (matchRun(pattern, segment.from, segment.to, text, from, to)) {
        next[i + 1] = 1;
        alive = true;
      }
    }
    if (!alive) return false;
    close(next);
    [current, next] = [next, current];
    if (end < 0) return current[n] === 1;
    from = end + 1;
  }
};

/** Compiles `pattern` once; `matches` may then be called on any number of texts. */
export const compileGlob = (pattern: string, options: GlobOptions = {}): Glob => {
  const { separator, globstar = false } = options;
  if (typeof pattern !== 'string') throw TypeError('a glob is a string');
  if (separator === undefined) {
    if (globstar) throw TypeError('globstar needs a separator');
    return harden({ source: pattern, matches: (text: string) => matchRun(pattern, 0, pattern.length, text, 0, text.length) });
  }
  if (separator.length !== 1 || separator === '*' || separator === '?') throw TypeError('a glob separator is one character other than * and ?');
  const segments = harden(splitPattern(pattern, separator, globstar));
  const match = segments.some(s => s.globstar) ? matchGlobstar : matchSegmentwise;
  return harden({ source: pattern, matches: (text: string) => match(pattern, segments, text, separator) });
};
harden(compileGlob);
