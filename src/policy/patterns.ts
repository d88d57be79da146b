/**
 * Target patterns as the policy uses them: which kind a pattern is, how it
 * matches a normalized target quickly, and how two patterns relate at issue
 * time (may they overlap? does one cover the other?).
 *
 * Invariants:
 * - a policy pattern accepts exactly the spellings `compileTarget` accepts
 *   for its kind, and matches exactly what `compileTarget(...).matches`
 *   matches (a property test holds the two together), so the policy and a
 *   capability can never read one pattern two ways;
 * - matching happens only on normalized targets: paths without `.`/`..`,
 *   URLs parsed by WHATWG URL with their path percent-decoded and
 *   normalized. A URL path that cannot be decoded is an evaluation error
 *   (the rule denies), never "no match": a forbid must not be slipped past
 *   by a malformed escape;
 * - `overlaps` may say yes when unsure and `covers` may say no when unsure;
 *   both only decide what is refused at issue time, and every use is
 *   checked again on its concrete target.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';
import { compileTargetPattern, normalizePath, type TargetPattern } from '../paths.js';
import { compileTarget, normalizeUrl, type ParsedUrl, type TargetKind } from '../targets.js';
import type { ActionType } from '../types.js';

export const KIND_ACTIONS: Readonly<Record<TargetKind, readonly ActionType[]>> = harden({
  path: ['READ', 'WRITE', 'EXECUTE'],
  url: ['NETWORK'],
  tool: ['TOOL'],
});

/** The kind of a target pattern by its spelling. */
export const patternKind = (pattern: string): TargetKind => {
  if (pattern.startsWith('/')) return 'path';
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(pattern)) return 'url';
  return 'tool';
};
harden(patternKind);

const WILDCARD = /[*?]/;

/** The segments of a path pattern before its first wildcard (or empty) segment. */
export const literalSegments = (pattern: string): string[] => {
  const out: string[] = [];
  for (const seg of pattern.split('/').slice(1)) {
    // An empty segment (`//`) never occurs in a normalized path; stop before it too.
    if (seg === '' || WILDCARD.test(seg)) break;
    out.push(seg);
  }
  return out;
};
harden(literalSegments);

const isSegmentPrefix = (a: readonly string[], b: readonly string[]) =>
  a.length <= b.length && a.every((s, i) => s === b[i]);

/** A compiled path pattern with the literal prefix used for indexing. */
export interface PathPattern {
  readonly kind: 'path';
  readonly source: string;
  readonly exact: boolean;
  /** Literal leading segments (all segments when exact). */
  readonly prefix: readonly string[];
  /** `/literal/prefix/**`: matches exactly the paths at or below its prefix. */
  readonly subtree: boolean;
  matches(path: string): boolean;
  readonly compiled: TargetPattern;
}

export const compilePathPattern = (source: string): PathPattern => {
  const compiled = compileTargetPattern(source);
  const exact = compiled.exact;
  const normalized = exact ? normalizePath(source) : source;
  const segments = source.split('/').slice(1);
  const prefix = exact ? normalized.split('/').filter(s => s !== '') : literalSegments(source);
  const subtree = !exact && segments[segments.length - 1] === '**' && prefix.length === segments.length - 1;
  return harden({
    kind: 'path',
    source,
    exact,
    prefix,
    subtree,
    matches: exact ? (path: string) => path === normalized : (path: string) => compiled.matches(path),
    compiled,
  });
};
harden(compilePathPattern);

// The parsed form of a URL target is the kernel's (src/targets.ts): one parse serves both sides.
export { isParsedUrl, parseUrlTarget, type ParsedUrl } from '../targets.js';

/** A compiled URL pattern: `scheme://host[:port]/path-glob`, host may start with `*.`. */
export interface UrlPattern {
  readonly kind: 'url';
  readonly source: string;
  readonly scheme: string;
  /** Exact host, or undefined when `hostSuffix` is set. */
  readonly host: string | undefined;
  /** `.example.com` for `*.example.com`. */
  readonly hostSuffix: string | undefined;
  readonly rawPort: string;
  readonly path: PathPattern;
  /** Throws when the target's path cannot be decoded (fail closed). */
  matches(url: ParsedUrl): boolean;
}

export const hostMatches = (host: string, exact: string | undefined, suffix: string | undefined): boolean =>
  suffix !== undefined ? host.endsWith(suffix) && host.length > suffix.length : host === exact;
harden(hostMatches);

export const compileUrlPattern = (source: string): UrlPattern => {
  // Accept exactly what the capability side accepts.
  compileTarget('NETWORK', source);
  const m = /^(https?):\/\/([^/?#]+)(\/[^?#]*)?$/.exec(source);
  if (!m) throw new ZtError('ZT_BAD_ARGUMENT', 'a URL pattern is scheme://host[:port]/path-glob');
  const scheme = m[1] as string;
  const authority = m[2] as string;
  const pathSource = m[3] ?? '/';
  const wildcardHost = authority.startsWith('*.');
  const probe = normalizeUrl(`${scheme}://${wildcardHost ? `x${authority.slice(1)}` : authority}/`);
  const hostSuffix = wildcardHost ? probe.hostname.slice(1) : undefined;
  const host = wildcardHost ? undefined : probe.hostname;
  const rawPort = probe.port;
  const path = compilePathPattern(pathSource === '' ? '/' : pathSource);
  return harden({
    kind: 'url',
    source,
    scheme,
    host,
    hostSuffix,
    rawPort,
    path,
    matches: (url: ParsedUrl) => {
      if (url.scheme !== scheme || url.rawPort !== rawPort || !hostMatches(url.host, host, hostSuffix)) return false;
      if (url.path === undefined) throw new ZtError('ZT_POLICY_ERROR', 'the URL path cannot be decoded');
      return path.matches(url.path);
    },
  });
};
harden(compileUrlPattern);

/** A compiled tool pattern: `server/tool`, `*` within a part. */
export interface ToolPattern {
  readonly kind: 'tool';
  readonly source: string;
  readonly parts: readonly [string, string];
  matches(target: string): boolean;
}

export const compileToolPattern = (source: string): ToolPattern => {
  const compiled = compileTarget('TOOL', source);
  const [server = '', tool = ''] = source.split('/');
  return harden({ kind: 'tool', source, parts: [server, tool] as const, matches: (t: string) => compiled.matches(t) });
};
harden(compileToolPattern);

export type AnyPattern = PathPattern | UrlPattern | ToolPattern;

/** Compiles a pattern of a known kind; throws ZT_BAD_ARGUMENT when it is malformed. */
export const compilePattern = (kind: TargetKind, source: string): AnyPattern => {
  switch (kind) {
    case 'path':
      return compilePathPattern(source);
    case 'url':
      return compileUrlPattern(source);
    case 'tool':
      return compileToolPattern(source);
  }
};
harden(compilePattern);

// ---- issue-time relations ----------------------------------------------

/** Conservative: true unless the two path patterns certainly share no path. */
const pathOverlaps = (a: PathPattern, b: PathPattern): boolean => {
  if (a.exact) return b.matches(`/${a.prefix.join('/')}`);
  if (b.exact) return a.matches(`/${b.prefix.join('/')}`);
  return isSegmentPrefix(a.prefix, b.prefix) || isSegmentPrefix(b.prefix, a.prefix);
};

/** True when every path `inner` can match is certainly matched by `outer`. */
const pathCovers = (outer: PathPattern, inner: PathPattern): boolean => {
  if (inner.exact) return outer.matches(`/${inner.prefix.join('/')}`);
  const segs = outer.source.split('/').slice(1);
  if (segs[segs.length - 1] !== '**' || segs.slice(0, -1).some(s => WILDCARD.test(s))) return false;
  return isSegmentPrefix(segs.slice(0, -1), inner.prefix);
};

const hostsOverlap = (a: UrlPattern, b: UrlPattern): boolean => {
  if (a.host !== undefined && b.host !== undefined) return a.host === b.host;
  if (a.host !== undefined) return hostMatches(a.host, undefined, b.hostSuffix);
  if (b.host !== undefined) return hostMatches(b.host, undefined, a.hostSuffix);
  const sa = a.hostSuffix as string;
  const sb = b.hostSuffix as string;
  return sa.endsWith(sb) || sb.endsWith(sa);
};

const hostCovers = (outer: UrlPattern, inner: UrlPattern): boolean => {
  if (outer.host !== undefined) return inner.host === outer.host;
  if (inner.host !== undefined) return hostMatches(inner.host, undefined, outer.hostSuffix);
  return (inner.hostSuffix as string).endsWith(outer.hostSuffix as string);
};

const starPrefix = (part: string) => {
  const i = part.indexOf('*');
  return i < 0 ? undefined : part.slice(0, i);
};

const toolPartOverlaps = (a: string, b: string): boolean => {
  const pa = starPrefix(a);
  const pb = starPrefix(b);
  if (pa === undefined && pb === undefined) return a === b;
  const la = pa ?? a;
  const lb = pb ?? b;
  return la.startsWith(lb) || lb.startsWith(la);
};

const toolPartCovers = (outer: string, inner: string): boolean => {
  if (outer === '*') return true;
  const po = starPrefix(outer);
  if (po === undefined) return outer === inner;
  if (outer !== `${po}*`) return false;
  return (starPrefix(inner) ?? inner).startsWith(po);
};

/** May the two patterns (of one kind) match a common target? Yes when unsure. */
export const patternsOverlap = (a: AnyPattern, b: AnyPattern): boolean => {
  if (a.kind === 'path' && b.kind === 'path') return pathOverlaps(a, b);
  if (a.kind === 'url' && b.kind === 'url') {
    return a.scheme === b.scheme && a.rawPort === b.rawPort && hostsOverlap(a, b) && pathOverlaps(a.path, b.path);
  }
  if (a.kind === 'tool' && b.kind === 'tool') {
    return toolPartOverlaps(a.parts[0], b.parts[0]) && toolPartOverlaps(a.parts[1], b.parts[1]);
  }
  return false;
};
harden(patternsOverlap);

/** Does `outer` certainly match every target `inner` can match? No when unsure. */
export const patternCovers = (outer: AnyPattern, inner: AnyPattern): boolean => {
  if (outer.kind === 'path' && inner.kind === 'path') return pathCovers(outer, inner);
  if (outer.kind === 'url' && inner.kind === 'url') {
    return outer.scheme === inner.scheme && outer.rawPort === inner.rawPort && hostCovers(outer, inner) && pathCovers(outer.path, inner.path);
  }
  if (outer.kind === 'tool' && inner.kind === 'tool') {
    return toolPartCovers(outer.parts[0], inner.parts[0]) && toolPartCovers(outer.parts[1], inner.parts[1]);
  }
  return false;
};
harden(patternCovers);

/**
 * A cheap test that a path is already normalized (absolute, no empty, `.` or
 * `..` segments, no NUL). False may be returned for some normal paths (a
 * segment starting with a dot); callers then normalize, which is always safe.
 */
export const isNormalPath = (path: string): boolean => {
  if (path.charCodeAt(0) !== 47 /* / */) return false;
  let prev = 47;
  for (let i = 1; i < path.length; i += 1) {
    const c = path.charCodeAt(i);
    // NUL, or a segment that is empty or starts with a dot.
    if (c === 0 || (prev === 47 && (c === 47 || c === 46))) return false;
    prev = c;
  }
  return path.length === 1 || prev !== 47;
};
harden(isNormalPath);
