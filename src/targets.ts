/**
 * What a target is, per action type, and how a capability's target pattern
 * matches a request's concrete target.
 *
 * | action          | target                      | pattern                                   |
 * | --------------- | --------------------------- | ----------------------------------------- |
 * | READ, WRITE     | absolute file path          | path glob (`*` in a segment, `**` across) |
 * | EXECUTE         | absolute path of a program  | path glob                                 |
 * | NETWORK         | absolute http(s) URL        | URL pattern `scheme://host[:port]/path-glob`; host may start with `*.` |
 * | TOOL            | `server/tool`               | glob over `server/tool` (`*` within a part) |
 *
 * Invariant: matching happens only on normalized targets (paths without
 * `.`/`..`, URLs parsed by WHATWG URL with default ports elided and no
 * userinfo or fragment), so spelling can never widen a grant.
 *
 * A URL target is parsed once per request (`normalizeUrlTarget`, in the
 * kernel's checks) into a frozen `ParsedUrl`; the capability's pattern
 * (`matchesParsed`), the policy and the http effector all read that one
 * parsed form, so they cannot disagree on what the URL is, and the same
 * href is checked, decided, recorded and fetched.
 */
import { harden } from './harden.js';
import { ZtError, assertZt } from './errors.js';
import { compileGlob } from './glob.js';
import { compileTargetPattern, normalizePath, type TargetPattern } from './paths.js';
import type { ActionType } from './types.js';

export type TargetKind = 'path' | 'url' | 'tool';

export const targetKindOf = (actionType: ActionType): TargetKind => {
  switch (actionType) {
    case 'READ':
    case 'WRITE':
    case 'EXECUTE':
      return 'path';
    case 'NETWORK':
      return 'url';
    case 'TOOL':
      return 'tool';
  }
};
harden(targetKindOf);

const TOOL_PART = /^[A-Za-z0-9_.:@-]+$/;
const TOOL_PATTERN_PART = /^[A-Za-z0-9_.:@*-]+$/;

/** Normalizes a URL target; throws ZT_BAD_ARGUMENT for anything that is not a plain http(s) URL. */
export const normalizeUrl = (input: string): URL => {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new ZtError('ZT_BAD_ARGUMENT', 'target is not a valid URL');
  }
  assertZt(url.protocol === 'https:' || url.protocol === 'http:', 'ZT_BAD_ARGUMENT', 'only http and https URLs are targets');
  assertZt(url.username === '' && url.password === '', 'ZT_BAD_ARGUMENT', 'URLs with credentials are not targets');
  url.hash = '';
  return url;
};
harden(normalizeUrl);

/** A normalized URL target taken apart once: what every check of a NETWORK request reads. */
export interface ParsedUrl {
  /** The normalized URL (`normalizeUrl(...).href`): the target as checked, decided, recorded and fetched. */
  readonly href: string;
  /** `http` or `https`. */
  readonly scheme: string;
  /** The host name as WHATWG URL spells it (lower case, IDNA, IPv6 in brackets). */
  readonly host: string;
  /** The port, default ports included. */
  readonly port: number;
  /** `''` for the scheme's default port, as WHATWG URL spells it. */
  readonly rawPort: string;
  /** Decoded and normalized path, or undefined when it cannot be decoded. */
  readonly path: string | undefined;
}

const DEFAULT_PORT: Readonly<Record<string, number>> = harden({ http: 80, https: 443 });

/** Every ParsedUrl this module made: a parsed form handed on is trusted only if it is one. */
const madeHere = new WeakSet<ParsedUrl>();

/** True for a parsed form `parseUrlTarget` made (never a look-alike record). */
export const isParsedUrl = (x: unknown): x is ParsedUrl => typeof x === 'object' && x !== null && madeHere.has(x as ParsedUrl);
harden(isParsedUrl);

/** Parses and normalizes a URL; throws ZT_BAD_ARGUMENT for anything but a plain http(s) URL. */
export const parseUrlTarget = (target: string): ParsedUrl => {
  const url = normalizeUrl(target);
  const scheme = url.protocol.slice(0, -1);
  let path: string | undefined;
  try {
    path = normalizePath(decodeURIComponent(url.pathname));
  } catch {
    path = undefined;
  }
  const parsed: ParsedUrl = harden({
    href: url.href,
    scheme,
    host: url.hostname,
    port: url.port === '' ? (DEFAULT_PORT[scheme] ?? 0) : Number(url.port),
    rawPort: url.port,
    path,
  });
  madeHere.add(parsed);
  return parsed;
};
harden(parseUrlTarget);

/** The origin (`scheme://host[:port]`) of a parsed URL, as WHATWG URL serializes it for http(s). */
export const originOf = (url: ParsedUrl): string => `${url.scheme}://${url.host}${url.rawPort === '' ? '' : `:${url.rawPort}`}`;
harden(originOf);

const assertTargetText = (target: string) =>
  assertZt(typeof target === 'string' && target.length > 0 && target.length <= 4096, 'ZT_BAD_ARGUMENT', 'target must be a non-empty string of at most 4096 characters');

/** A NETWORK target, normalized and parsed in one step; ZT_BAD_ARGUMENT as `normalizeTarget`. */
export const normalizeUrlTarget = (target: string): ParsedUrl => {
  assertTargetText(target);
  return parseUrlTarget(target);
};
harden(normalizeUrlTarget);

/** A concrete target as the kernel checks it: normalized, and for a URL its parsed form (whose href is `target`). */
export interface CheckedTarget {
  readonly target: string;
  readonly url: ParsedUrl | undefined;
}

/** Normalizes a concrete target once, keeping a URL's parsed form for every later check; ZT_BAD_ARGUMENT as `normalizeTarget`. */
export const checkTarget = (actionType: ActionType, target: string): CheckedTarget => {
  if (targetKindOf(actionType) !== 'url') return harden({ target: normalizeTarget(actionType, target), url: undefined });
  const url = normalizeUrlTarget(target);
  return harden({ target: url.href, url });
};
harden(checkTarget);

/** Does a capability's pattern match a checked target? On the parsed form when there is one, so nothing is parsed again. */
export const patternMatches = (pattern: TargetPattern, checked: CheckedTarget): boolean =>
  checked.url !== undefined && pattern.matchesParsed !== undefined ? pattern.matchesParsed(checked.url) : pattern.matches(checked.target);
harden(patternMatches);

/** The canonical form of a concrete target, or ZT_BAD_ARGUMENT. */
export const normalizeTarget = (actionType: ActionType, target: string): string => {
  assertTargetText(target);
  switch (targetKindOf(actionType)) {
    case 'path':
      return normalizePath(target);
    case 'url':
      return normalizeUrl(target).href;
    case 'tool': {
      const parts = target.split('/');
      assertZt(parts.length === 2 && parts.every(p => TOOL_PART.test(p)), 'ZT_BAD_ARGUMENT', 'a tool target is "server/tool"');
      return target;
    }
  }
};
harden(normalizeTarget);

const compileUrlPattern = (pattern: string): TargetPattern => {
  const m = /^(https?):\/\/([^/?#]+)(\/[^?#]*)?$/.exec(pattern);
  if (!m) throw new ZtError('ZT_BAD_ARGUMENT', 'a URL pattern is scheme://host[:port]/path-glob');
  const [, scheme, authority, path = '/'] = m as unknown as [string, string, string, string | undefined];
  assertZt(!authority.includes('@'), 'ZT_BAD_ARGUMENT', 'URL patterns carry no credentials');
  const wildcardHost = authority.startsWith('*.');
  // The host is literal but for a leading `*.` (and an IPv6 literal's brackets): any other glob syntax is refused, never taken literally.
  const hostPart = (wildcardHost ? authority.slice(2) : authority).replace(/^\[[0-9A-Fa-f:.]+\]/, '');
  assertZt(!/[*?{}[\]\\]/.test(hostPart), 'ZT_BAD_ARGUMENT', 'a URL pattern\'s host is literal, or *.suffix: no other wildcards, braces or classes');
  // Parse the concrete part of the authority to normalize case, IDNA and default ports.
  const probe = normalizeUrl(`${scheme}://${wildcardHost ? `x${authority.slice(1)}` : authority}/`);
  const hostSuffix = wildcardHost ? probe.hostname.slice(1) : undefined; // ".example.com"
  const port = probe.port;
  const pathPattern = compileTargetPattern(path === '' ? '/' : path);
  const exact = !wildcardHost && pathPattern.exact;
  const host = probe.hostname;
  const matchesParsed = (url: ParsedUrl): boolean => {
    if (url.scheme !== scheme || url.rawPort !== port) return false;
    if (hostSuffix !== undefined ? !url.host.endsWith(hostSuffix) || url.host.length <= hostSuffix.length : url.host !== host) return false;
    // A path that cannot be decoded matches nothing. A query string is part
    // of the request, not of the grant's path; patterns match the path.
    return url.path !== undefined && pathPattern.matches(url.path);
  };
  return harden({
    source: pattern,
    exact,
    matches: (target: string) => {
      let url: ParsedUrl;
      try {
        url = parseUrlTarget(target);
      } catch {
        return false;
      }
      return matchesParsed(url);
    },
    matchesParsed,
  });
};

const compileToolPattern = (pattern: string): TargetPattern => {
  const parts = pattern.split('/');
  assertZt(parts.length === 2 && parts.every(p => TOOL_PATTERN_PART.test(p)), 'ZT_BAD_ARGUMENT', 'a tool pattern is "server/tool" (with * wildcards)');
  // `*` stays within its part; `?` cannot occur (TOOL_PATTERN_PART).
  const glob = compileGlob(pattern, { separator: '/' });
  return harden({ source: pattern, exact: !pattern.includes('*'), matches: (target: string) => glob.matches(target) });
};

/** Compiles a capability's (or a policy rule's) target pattern for an action type. */
export const compileTarget = (actionType: ActionType, pattern: string): TargetPattern => {
  assertZt(typeof pattern === 'string' && pattern.length > 0 && pattern.length <= 4096, 'ZT_BAD_ARGUMENT', 'target must be a non-empty string of at most 4096 characters');
  switch (targetKindOf(actionType)) {
    case 'path':
      return compileTargetPattern(pattern);
    case 'url':
      return compileUrlPattern(pattern);
    case 'tool':
      return compileToolPattern(pattern);
  }
};
harden(compileTarget);
