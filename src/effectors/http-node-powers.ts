/**
 * Node adapter for the HTTP effector: the only HTTP-effector module that
 * touches `node:http`, `node:https` and `node:dns`. It performs one exchange
 * with exactly the address it is given (`host` is the checked IP address;
 * the hostname travels only in the Host header and as the TLS server name,
 * against which the certificate is verified), never follows redirects, never
 * decompresses, uses no connection pool, and destroys the socket as soon as
 * the body passes its bound or the signal fires.
 */
import { harden } from '../harden.js';
import { lookup } from 'node:dns/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { ZtError } from '../errors.js';
import type { HttpPowers, HttpRequestSpec, HttpResponseLike, ResolvedAddress } from './http.js';
import { makeNodeTimerPowers } from './process-node-powers.js';

const flattenHeaders = (res: IncomingMessage): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
};

export const nodeHttpRequest = (spec: HttpRequestSpec): Promise<HttpResponseLike> =>
  new Promise<HttpResponseLike>((resolve, reject) => {
    const url = new URL(spec.url);
    const https = url.protocol === 'https:';
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const headers: Record<string, string> = { ...spec.headers, host: url.host };
    if (spec.body) headers['content-length'] = String(spec.body.byteLength);
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(err);
    };
    const options = {
      host: spec.address,
      family: spec.family,
      port: url.port === '' ? (https ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: spec.method,
      headers,
      setHost: false,
      agent: false as const,
      signal: spec.signal,
      ...(https && isIP(hostname) === 0 ? { servername: hostname } : {}),
    };
    const req = (https ? httpsRequest : httpRequest)(options, res => {
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > spec.maxBytes) {
        fail(new ZtError('ZT_TOO_LARGE', `the response declares ${declared} bytes, over the limit of ${spec.maxBytes}`));
        return;
      }
      const chunks: Buffer[] = [];
      let total = 0;
      res.on('data', (chunk: Buffer) => {
        total += chunk.byteLength;
        if (total > spec.maxBytes) {
          fail(new ZtError('ZT_TOO_LARGE', `the response body passed the limit of ${spec.maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', fail);
      res.on('aborted', () => fail(Object.assign(Error('response aborted'), { code: 'ECONNRESET' })));
      res.on('end', () => {
        if (settled) return;
        settled = true;
        resolve({ status: res.statusCode ?? 0, headers: flattenHeaders(res), body: Buffer.concat(chunks) });
        req.destroy();
      });
    });
    req.on('error', err => fail(spec.signal.aborted ? spec.signal.reason : err));
    req.end(spec.body);
  });
harden(nodeHttpRequest);

export const nodeResolve = async (hostname: string): Promise<readonly ResolvedAddress[]> =>
  (await lookup(hostname, { all: true, verbatim: true })).map(a => harden({ address: a.address, family: a.family === 6 ? 6 : 4 }));
harden(nodeResolve);

export const makeNodeHttpPowers = (options: { resolve?: (hostname: string) => Promise<readonly ResolvedAddress[]> } = {}): HttpPowers =>
  harden({
    ...makeNodeTimerPowers(),
    resolve: options.resolve ?? nodeResolve,
    request: nodeHttpRequest,
    encode: (text: string, encoding: 'utf8' | 'base64') => Buffer.from(text, encoding),
    decode: (bytes: Uint8Array, encoding: 'utf8' | 'base64') => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(encoding),
  });
harden(makeNodeHttpPowers);
