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

/** The canonical form of a concrete target, or ZT_BAD_ARGUMENT. */
export const normalizeTarget = (actionType: ActionType, target: string): string => {
  assertZt(typeof target === 'string' && target.length > 0 && target.length <= 4096, 'ZT_BAD_ARGUMENT', 'target must be a non-empty string of at most 4096 characters');
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
  // Parse the concrete part of the authority to normalize case, IDNA and default ports.
  const probe = normalizeUrl(`${scheme}://${wildcardHost ? `x${authority.slice(1)}` : authority}/`);
  const hostSuffix = wildcardHost ? probe.hostname.slice(1) : undefined; // ".example.com"
  const port = probe.port;
  const pathPattern = compileTargetPattern(path === '' ? '/' : path);
  const exact = !wildcardHost && pathPattern.exact;
  return harden({
    source: pattern,
    exact,
    matches: (target: string) => {
      let url: URL;
      try {
        url = normalizeUrl(target);
      } catch {
        return false;
      }
      if (url.protocol !== `${scheme}:` || url.port !== port) return false;
      if (hostSuffix !== undefined ? !url.hostname.endsWith(hostSuffix) || url.hostname.length <= hostSuffix.length : url.hostname !== probe.hostname) return false;
      let pathname: string;
      try {
        pathname = normalizePath(decodeURIComponent(url.pathname));
      } catch {
        return false;
      }
      // A query string is part of the request, not of the grant's path; patterns match the path.
      return pathPattern.matches(pathname);
    },
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
