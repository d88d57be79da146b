/**
 * HTTP effector (NETWORK). Invariant: every connection goes to an address
 * that was checked, for a URL the capability and the policy permit, with a
 * method the capability allows, and moves bounded data in bounded time.
 *
 * Threats and how each is met:
 * - Redirects toward a forbidden origin: redirects are never followed by the
 *   HTTP stack. Each hop's URL goes through `ctx.recheck` (capability
 *   pattern, policy, audit) before it is contacted; a refused hop fails the
 *   request with the hop's code (ZT_WRONG_TARGET, ZT_POLICY_DENIED). A 303
 *   (and a 301/302 after POST) becomes GET without body; credentials
 *   (`Authorization`, `Cookie`) are dropped when the origin changes.
 * - DNS tricks (a permitted name resolving to 127.0.0.1, 169.254.169.254,
 *   private or unique-local space, or rebinding between check and use):
 *   the name is resolved once through the `resolve` power; if any address is
 *   special (addresses.ts) the request fails with ZT_FORBIDDEN_ADDRESS,
 *   unless `effect.allowPrivateAddresses` is true or lists a CIDR range that
 *   contains it. The connection is then made to that checked address (the
 *   Host header and TLS server name carry the hostname), so there is no
 *   second resolution to rebind.
 * - Header smuggling: `Host`, hop-by-hop headers, `Content-Length`,
 *   `Transfer-Encoding`, `Expect`, proxy and forwarding headers are refused
 *   (ZT_ARGUMENT_DENIED); names must be tokens and values free of CR, LF and
 *   NUL (ZT_BAD_ARGUMENT).
 * - Response bombs: a declared `Content-Length` over the bound fails at
 *   once, and the body is cut (socket destroyed) as soon as it passes
 *   `effect.maxResponseBytes` (ZT_TOO_LARGE). Bodies are never decompressed.
 * - Slow servers: one deadline (`effect.timeoutMs`) covers resolution, every
 *   hop and the body (ZT_TIMEOUT); revocation aborts the socket at once.
 */
import { harden } from '../harden.js';
import { ZtError, assertZt, type ErrorCode } from '../errors.js';
import { originOf, parseUrlTarget, type ParsedUrl } from '../targets.js';
import type { CapabilityConstraints } from '../types.js';
import { parseCidr, parseIp, inCidr, specialRangeOf, type Cidr } from './addresses.js';
import { isPlainRecord, optionalNonNegativeInt, optionalPositiveInt, readSettings, type Settings, type TimerPowers } from './settings.js';
import type { Effector, GrantValidator } from './types.js';

export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

export interface HttpRequestSpec {
  readonly url: string;
  /** The checked address to connect to; the hostname is used only for Host and TLS. */
  readonly address: string;
  readonly family: 4 | 6;
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array | undefined;
  readonly maxBytes: number;
  readonly signal: AbortSignal;
}

export interface HttpResponseLike {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

export interface HttpPowers extends TimerPowers {
  /** Resolves a hostname to all of its addresses (DNS is a power: tests inject their own). */
  resolve(hostname: string): Promise<readonly ResolvedAddress[]>;
  /**
   * One HTTP exchange with no redirect following, connected to `address`.
   * Rejects with ZT_TOO_LARGE once the body passes `maxBytes`, with the
   * signal's reason when aborted, or with the OS error.
   */
  request(spec: HttpRequestSpec): Promise<HttpResponseLike>;
  encode(text: string, encoding: 'utf8' | 'base64'): Uint8Array;
  decode(bytes: Uint8Array, encoding: 'utf8' | 'base64'): string;
}

const SETTINGS = harden(['methods', 'allowPrivateAddresses', 'timeoutMs', 'maxResponseBytes', 'maxRequestBytes', 'maxRedirects']);
const DEFAULT_METHODS = harden(['GET', 'HEAD']);
const KNOWN_METHODS = harden(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_REDIRECTS = 5;

/** Headers an agent may never set: the effector owns framing, routing and hop-by-hop semantics. */
const REFUSED_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'expect',
  'http2-settings',
  'via',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
]);
const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['authorization', 'cookie']);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

interface HttpSettings {
  readonly methods: ReadonlySet<string>;
  readonly allowAll: boolean;
  readonly allowRanges: readonly Cidr[];
  readonly timeoutMs: number;
  readonly maxResponseBytes: number | undefined;
  readonly maxRequestBytes: number | undefined;
  readonly maxRedirects: number;
}

const parseSettings = (constraints: CapabilityConstraints): HttpSettings => {
  const s: Settings = readSettings(constraints, SETTINGS, 'NETWORK');
  const { methods = DEFAULT_METHODS, allowPrivateAddresses = false } = s;
  assertZt(Array.isArray(methods) && methods.length > 0 && methods.every(m => typeof m === 'string' && KNOWN_METHODS.includes(m.toUpperCase())), 'ZT_BAD_ARGUMENT', `methods must be a non-empty array of ${KNOWN_METHODS.join(', ')}`);
  let allowAll = false;
  const allowRanges: Cidr[] = [];
  if (typeof allowPrivateAddresses === 'boolean') allowAll = allowPrivateAddresses;
  else {
    assertZt(Array.isArray(allowPrivateAddresses), 'ZT_BAD_ARGUMENT', 'allowPrivateAddresses must be a boolean or an array of CIDR ranges');
    for (const text of allowPrivateAddresses) {
      const cidr = parseCidr(text as string);
      assertZt(cidr !== undefined, 'ZT_BAD_ARGUMENT', `allowPrivateAddresses: ${JSON.stringify(text)} is not a CIDR range`);
      allowRanges.push(cidr);
    }
  }
  const bound = (key: string) => (s[key] === undefined ? undefined : optionalPositiveInt(s, key, 1));
  return {
    methods: new Set((methods as string[]).map(m => m.toUpperCase())),
    allowAll,
    allowRanges,
    timeoutMs: optionalPositiveInt(s, 'timeoutMs', DEFAULT_TIMEOUT_MS, 24 * 60 * 60 * 1000),
    maxResponseBytes: bound('maxResponseBytes'),
    maxRequestBytes: bound('maxRequestBytes'),
    maxRedirects: optionalNonNegativeInt(s, 'maxRedirects', DEFAULT_MAX_REDIRECTS, 20),
  };
};

/** Issue-time check of NETWORK settings (the URL pattern itself is checked by src/targets.ts). */
export const validateNetworkGrant: GrantValidator = (target, constraints) => {
  assertZt(typeof target === 'string' && /^https?:\/\//.test(target), 'ZT_BAD_ARGUMENT', 'a NETWORK target is an http(s) URL pattern');
  parseSettings(constraints);
};
harden(validateNetworkGrant);

const checkHeaders = (headers: unknown): Record<string, string> => {
  if (headers === undefined) return {};
  assertZt(isPlainRecord(headers), 'ZT_BAD_ARGUMENT', 'headers must be a record of strings');
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    assertZt(TOKEN.test(name), 'ZT_BAD_ARGUMENT', `header name ${JSON.stringify(name.slice(0, 40))} is not a token`);
    assertZt(typeof value === 'string' && !/[\r\n\0]/.test(value) && value.length <= 8192, 'ZT_BAD_ARGUMENT', `header ${name} must be a single-line string`);
    const lower = name.toLowerCase();
    if (REFUSED_HEADERS.has(lower) || lower.startsWith('proxy-')) throw new ZtError('ZT_ARGUMENT_DENIED', `the ${name} header is set by the runtime, never by an agent`);
    assertZt(!Object.hasOwn(out, lower), 'ZT_BAD_ARGUMENT', `header ${name} is given twice`);
    out[lower] = value;
  }
  return out;
};

const NET_ERRORS: Readonly<Record<string, ErrorCode>> = harden({
  ENOTFOUND: 'ZT_UNREACHABLE',
  EAI_AGAIN: 'ZT_UNREACHABLE',
  EAI_NONAME: 'ZT_UNREACHABLE',
  ENODATA: 'ZT_UNREACHABLE',
  ECONNREFUSED: 'ZT_UNREACHABLE',
  ECONNRESET: 'ZT_UNREACHABLE',
  EHOSTUNREACH: 'ZT_UNREACHABLE',
  ENETUNREACH: 'ZT_UNREACHABLE',
  ETIMEDOUT: 'ZT_UNREACHABLE',
  EPIPE: 'ZT_UNREACHABLE',
  ERR_TLS_CERT_ALTNAME_INVALID: 'ZT_UNREACHABLE',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'ZT_UNREACHABLE',
  SELF_SIGNED_CERT_IN_CHAIN: 'ZT_UNREACHABLE',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'ZT_UNREACHABLE',
  CERT_HAS_EXPIRED: 'ZT_UNREACHABLE',
  HPE_HEADER_OVERFLOW: 'ZT_TOO_LARGE',
});

const translate = (err: unknown, host: string): ZtError => {
  if (err instanceof ZtError) return err;
  const osCode = (err as { code?: unknown })?.code;
  const code = (typeof osCode === 'string' && NET_ERRORS[osCode]) || 'ZT_EFFECT_FAILED';
  return new ZtError(code, `${host}: ${typeof osCode === 'string' ? osCode : 'request failed'}`);
};

export interface HttpResult {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly url: string;
  readonly redirects: number;
}

export const makeHttpEffector = (powers: HttpPowers): Effector =>
  async ({ target, url: checkedUrl, args, signal, maxBytes, constraints, recheck }) => {
    const settings = parseSettings(constraints);
    const { method: rawMethod = 'GET', headers: rawHeaders, body: rawBody, encoding = 'utf8', bodyEncoding = 'utf8' } = args as Record<string, unknown>;
    assertZt(typeof rawMethod === 'string' && TOKEN.test(rawMethod), 'ZT_BAD_ARGUMENT', 'method must be an HTTP method name');
    assertZt(encoding === 'utf8' || encoding === 'base64', 'ZT_BAD_ARGUMENT', 'encoding must be "utf8" or "base64"');
    assertZt(bodyEncoding === 'utf8' || bodyEncoding === 'base64', 'ZT_BAD_ARGUMENT', 'bodyEncoding must be "utf8" or "base64"');
    let method = rawMethod.toUpperCase();
    if (!settings.methods.has(method)) throw new ZtError('ZT_ARGUMENT_DENIED', `this capability does not allow ${method}`);
    let headers = checkHeaders(rawHeaders);
    assertZt(rawBody === undefined || typeof rawBody === 'string', 'ZT_BAD_ARGUMENT', 'body must be a string');
    let body = rawBody === undefined ? undefined : powers.encode(rawBody, bodyEncoding);
    if (body && (method === 'GET' || method === 'HEAD')) throw new ZtError('ZT_BAD_ARGUMENT', `a ${method} request has no body`);
    const requestLimit = Math.min(settings.maxRequestBytes ?? maxBytes, maxBytes);
    if (body && body.byteLength > requestLimit) throw new ZtError('ZT_TOO_LARGE', `the request body exceeds ${requestLimit} bytes`);
    const responseLimit = Math.min(settings.maxResponseBytes ?? maxBytes, maxBytes);

    // One deadline for the whole exchange; revocation aborts the same controller.
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const timer = powers.setTimeout(() => controller.abort(new ZtError('ZT_TIMEOUT', `no complete response within ${settings.timeoutMs} ms`)), settings.timeoutMs);
    const race = <T>(p: Promise<T>): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        const stop = () => reject(controller.signal.reason);
        if (controller.signal.aborted) {
          p.catch(() => undefined);
          stop();
          return;
        }
        controller.signal.addEventListener('abort', stop, { once: true });
        p.then(
          v => {
            controller.signal.removeEventListener('abort', stop);
            resolve(v);
          },
          e => {
            controller.signal.removeEventListener('abort', stop);
            reject(e);
          },
        );
      });

    // The first hop is the target as the kernel checked and parsed it; each redirect hop is parsed anew.
    let url: ParsedUrl = checkedUrl !== undefined && checkedUrl.href === target ? checkedUrl : parseUrlTarget(target);
    let redirects = 0;
    try {
      for (;;) {
        signal.throwIfAborted();
        const host = url.host.startsWith('[') ? url.host.slice(1, -1) : url.host;
        let addresses: readonly ResolvedAddress[];
        if (parseIp(host)) {
          addresses = [{ address: host, family: host.includes(':') ? 6 : 4 }];
        } else {
          try {
            addresses = await race(powers.resolve(host));
          } catch (err) {
            if (controller.signal.aborted) throw controller.signal.reason;
            throw translate(err, host);
          }
          if (addresses.length === 0) throw new ZtError('ZT_UNREACHABLE', `${host}: no address`);
        }
        // Every address must pass: a name with one public and one private address is a rebinding tool.
        for (const { address } of addresses) {
          const range = specialRangeOf(address);
          if (range === undefined || settings.allowAll) continue;
          const ip = parseIp(address);
          if (ip && settings.allowRanges.some(cidr => inCidr(ip, cidr))) continue;
          throw new ZtError('ZT_FORBIDDEN_ADDRESS', `${host} resolves to a ${range} address`);
        }
        const chosen = addresses[0] as ResolvedAddress;
        let response: HttpResponseLike;
        try {
          response = await race(
            powers.request({ url: url.href, address: chosen.address, family: chosen.family, method, headers, body, maxBytes: responseLimit, signal: controller.signal }),
          );
        } catch (err) {
          if (controller.signal.aborted) throw controller.signal.reason;
          throw translate(err, host);
        }
        const location = response.headers.location;
        if (REDIRECTS.has(response.status) && location !== undefined && settings.maxRedirects > 0) {
          redirects += 1;
          if (redirects > settings.maxRedirects) throw new ZtError('ZT_TOO_MANY_REDIRECTS', `more than ${settings.maxRedirects} redirects`);
          let next: URL;
          try {
            next = new URL(location, url.href);
          } catch {
            throw new ZtError('ZT_EFFECT_FAILED', 'the server sent an invalid redirect');
          }
          let verdict;
          try {
            verdict = await race(recheck(next.href));
          } catch (err) {
            if (controller.signal.aborted) throw controller.signal.reason;
            throw new ZtError('ZT_AUDIT_UNAVAILABLE', 'the redirect could not be recorded');
          }
          if (!verdict.allowed) throw new ZtError(verdict.code ?? 'ZT_WRONG_TARGET', 'a redirect led to a target this capability does not grant');
          const nextUrl = verdict.url !== undefined && verdict.url.href === verdict.target ? verdict.url : parseUrlTarget(verdict.target ?? next.href);
          if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) {
            if (method !== 'HEAD') method = 'GET';
            body = undefined;
            const { 'content-type': _dropped, ...rest } = headers;
            headers = rest;
          }
          if (!settings.methods.has(method)) throw new ZtError('ZT_ARGUMENT_DENIED', `the redirect needs ${method}, which this capability does not allow`);
          if (originOf(nextUrl) !== originOf(url)) {
            headers = Object.fromEntries(Object.entries(headers).filter(([name]) => !CREDENTIAL_HEADERS.has(name)));
          }
          url = nextUrl;
          continue;
        }
        return harden({
          status: response.status,
          headers: harden({ ...response.headers }),
          body: powers.decode(response.body, encoding),
          url: url.href,
          redirects,
        });
      }
    } finally {
      powers.clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (!controller.signal.aborted) controller.abort(new ZtError('ZT_EFFECT_FAILED', 'the exchange is over'));
    }
  };
harden(makeHttpEffector);
