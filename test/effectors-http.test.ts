import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { test } from './_prepare.js';
import { fc, testProp } from '@fast-check/ava';
import { codeOfRejection, makeCtx, waitFor } from './_effectors.js';
import { makeTestKernel } from './_kernel.js';
import { parseCidr, parseIp, specialRangeOf } from '../src/effectors/addresses.js';
import { makeHttpEffector, validateNetworkGrant, type HttpPowers, type HttpResult, type ResolvedAddress } from '../src/effectors/http.js';
import { makeNodeHttpPowers } from '../src/effectors/http-node-powers.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

interface TestServer {
  readonly origin: string;
  readonly port: number;
  readonly requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string }>;
  readonly sockets: Set<Socket>;
  readonly closedSockets: { count: number };
  close(): Promise<void>;
}

/** A local server on 127.0.0.1 only; every socket is tracked and destroyed on close. */
const startServer = async (routes: (req: IncomingMessage, res: ServerResponse, server: TestServer) => void): Promise<TestServer> => {
  const sockets = new Set<Socket>();
  const closedSockets = { count: 0 };
  const requests: TestServer['requests'] = [];
  let self: TestServer | undefined;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      routes(req, res, self as TestServer);
    });
  });
  server.on('connection', socket => {
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      closedSockets.count += 1;
    });
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  self = {
    origin: `http://127.0.0.1:${port}`,
    port,
    requests,
    sockets,
    closedSockets,
    close: () =>
      new Promise<void>(resolve => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  return self;
};

const routes = (other: () => string) => (req: IncomingMessage, res: ServerResponse) => {
  const path = (req.url ?? '/').split('?')[0];
  switch (path) {
    case '/hello':
      res.setHeader('content-type', 'text/plain');
      res.end('hello from the test server');
      return;
    case '/echo':
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, headers: req.headers }));
      return;
    case '/redirect-ok':
      res.writeHead(302, { location: '/hello' }).end();
      return;
    case '/redirect-other-origin':
      res.writeHead(302, { location: `${other()}/hello` }).end();
      return;
    case '/redirect-metadata':
      res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' }).end();
      return;
    case '/redirect-file':
      res.writeHead(302, { location: 'file:///etc/passwd' }).end();
      return;
    case '/post-303':
      res.writeHead(303, { location: '/echo' }).end();
      return;
    case '/loop':
      res.writeHead(307, { location: '/loop' }).end();
      return;
    case '/bomb': {
      // An endless body: the client must cut it.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 0x41);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
      return;
    }
    case '/bomb-declared':
      res.writeHead(200, { 'content-length': String(10 ** 9) });
      res.write('a little');
      return;
    case '/slow':
      // Never answers; the socket must be closed by the client.
      return;
    default:
      res.writeHead(404).end('not found');
  }
};

const setup = async () => {
  const other = await startServer(routes(() => ''));
  const server = await startServer(routes(() => other.origin));
  return { server, other, close: async () => Promise.all([server.close(), other.close()]) };
};

const LOCAL = { allowPrivateAddresses: true };

const fetchAt = (powers: HttpPowers, pattern: string, target: string, args: Record<string, unknown> = {}, effect: Record<string, unknown> = LOCAL, maxBytes?: number) => {
  const made = makeCtx({ actionType: ActionType.NETWORK, pattern, target, args, effect, ...(maxBytes ? { maxBytes } : {}) });
  return { made, result: makeHttpEffector(powers)(made.ctx) as Promise<HttpResult> };
};

/** Powers with a fixed DNS table and a count of resolutions and connections. */
const withResolver = (table: Record<string, string[] | (() => string[])>) => {
  const base = makeNodeHttpPowers();
  const counts = { resolve: 0, request: 0 };
  const powers: HttpPowers = {
    ...base,
    resolve: async (hostname: string): Promise<readonly ResolvedAddress[]> => {
      counts.resolve += 1;
      const entry = table[hostname];
      if (entry === undefined) throw Object.assign(Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
      const list = typeof entry === 'function' ? entry() : entry;
      return list.map(address => ({ address, family: address.includes(':') ? 6 : 4 }));
    },
    request: spec => {
      counts.request += 1;
      return base.request(spec);
    },
  };
  return { powers, counts };
};

const nodePowers = makeNodeHttpPowers();

test('GET and POST to a granted local origin', async t => {
  const { server, close } = await setup();
  t.teardown(close);
  const pattern = `${server.origin}/**`;
  const { result } = fetchAt(nodePowers, pattern, `${server.origin}/hello?x=1`);
  const hello = await result;
  t.is(hello.status, 200);
  t.is(hello.body, 'hello from the test server');
  t.is(hello.headers['content-type'], 'text/plain');
  t.is(hello.redirects, 0);
  const post = await fetchAt(nodePowers, pattern, `${server.origin}/echo`, { method: 'post', headers: { 'X-Trace': 'abc', 'content-type': 'text/plain' }, body: 'payload' }, { ...LOCAL, methods: ['GET', 'POST'] }).result;
  const echoed = JSON.parse(post.body) as { method: string; headers: Record<string, string> };
  t.is(echoed.method, 'POST');
  t.is(echoed.headers['x-trace'], 'abc');
  t.is(echoed.headers.host, `127.0.0.1:${server.port}`);
  t.is(server.requests.at(-1)?.body, 'payload');
  t.is(await codeOfRejection(fetchAt(nodePowers, pattern, `${server.origin}/echo`, { method: 'POST', body: 'x' }).result), 'ZT_ARGUMENT_DENIED', 'POST is not in the default methods');
  t.is(await codeOfRejection(fetchAt(nodePowers, pattern, `${server.origin}/echo`, { body: 'x' }).result), 'ZT_BAD_ARGUMENT', 'GET has no body');
});

test('redirect to a forbidden origin: each hop is re-checked and a hop outside the grant is refused before it is contacted', async t => {
  // Attack: a permitted server answers with a redirect to an origin the
  // capability does not grant (another local service, the cloud metadata
  // endpoint, a file: URL), hoping the client follows it blindly.
  const { server, other, close } = await setup();
  t.teardown(close);
  const pattern = `${server.origin}/**`;
  const ok = fetchAt(nodePowers, pattern, `${server.origin}/redirect-ok`);
  const followed = await ok.result;
  t.is(followed.body, 'hello from the test server');
  t.is(followed.redirects, 1);
  t.is(followed.url, `${server.origin}/hello`);
  t.deepEqual(ok.made.hops, [{ target: `${server.origin}/hello`, allowed: true }]);
  for (const path of ['/redirect-other-origin', '/redirect-metadata', '/redirect-file']) {
    const attempt = fetchAt(nodePowers, pattern, `${server.origin}${path}`);
    t.is(await codeOfRejection(attempt.result), 'ZT_WRONG_TARGET', path);
    t.false(attempt.made.hops.at(-1)?.allowed, 'the hop was checked and refused');
  }
  t.is(other.requests.length, 0, 'the other origin was never contacted');
  t.is(await codeOfRejection(fetchAt(nodePowers, pattern, `${server.origin}/loop`).result), 'ZT_TOO_MANY_REDIRECTS', 'redirect loops end');
  const manual = await fetchAt(nodePowers, pattern, `${server.origin}/redirect-other-origin`, {}, { ...LOCAL, maxRedirects: 0 }).result;
  t.is(manual.status, 302, 'with maxRedirects 0 the agent gets the redirect itself');
  const seeOther = await fetchAt(nodePowers, pattern, `${server.origin}/post-303`, { method: 'POST', body: 'x', headers: { authorization: 'Bearer t' } }, { ...LOCAL, methods: ['GET', 'POST'] }).result;
  t.is((JSON.parse(seeOther.body) as { method: string }).method, 'GET', '303 turns POST into GET');
});

test('redirect hops go through the kernel: audited, and refused with the policy code', async t => {
  const { server, close } = await setup();
  t.teardown(close);
  const policy = {
    version: 1,
    rules: [
      { id: 'local', effect: 'permit', actions: ['NETWORK'], targets: [`${server.origin}/**`] },
      { id: 'no-hello', effect: 'forbid', actions: ['NETWORK'], targets: [`${server.origin}/hello`] },
    ],
  };
  const { kernel, sink } = makeTestKernel({ policy, effectors: { NETWORK: makeHttpEffector(nodePowers) } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'web', actionType: ActionType.NETWORK, target: `${server.origin}/**`, holder: 'a', constraints: { effect: LOCAL } }));
  const run = (target: string) => kernel.execute(new ActionRequest({ capabilityId: 'web', agentId: 'a', actionType: ActionType.NETWORK, target }), 'api');
  const ok = await run(`${server.origin}/post-303`);
  t.true(ok.ok);
  t.is((ok.result as HttpResult).url, `${server.origin}/echo`);
  const before = server.requests.length;
  const refused = await run(`${server.origin}/redirect-ok`);
  t.is(refused.error?.code, 'ZT_POLICY_DENIED');
  t.is(server.requests.length, before + 1, 'the forbidden hop was never requested');
  const outside = await run(`${server.origin}/redirect-metadata`);
  t.is(outside.error?.code, 'ZT_WRONG_TARGET');
  await kernel.flush();
  const hops = sink.records.filter(r => r.type === 'request.hop');
  t.deepEqual(hops.map(h => h.code ?? h.decision), ['allow', 'ZT_POLICY_DENIED', 'ZT_WRONG_TARGET']);
  t.deepEqual(hops[1]?.rules, ['no-hello']);
});

test('DNS name resolving to 127.0.0.1 or 169.254.169.254 is refused before any connection', async t => {
  // Attack: a hostname the capability permits is pointed (by whoever controls
  // its DNS) at loopback services or the cloud metadata endpoint.
  const { powers, counts } = withResolver({
    'evil.test': ['127.0.0.1'],
    'metadata.test': ['169.254.169.254'],
    'private.test': ['10.1.2.3'],
    'mapped.test': ['::ffff:127.0.0.1'],
    'ula.test': ['fd00::1'],
    'mixed.test': ['93.184.216.34', '192.168.1.1'],
  });
  for (const host of ['evil.test', 'metadata.test', 'private.test', 'mapped.test', 'ula.test', 'mixed.test']) {
    const { result } = fetchAt(powers, `http://${host}/**`, `http://${host}/latest/meta-data/`, {}, {});
    t.is(await codeOfRejection(result), 'ZT_FORBIDDEN_ADDRESS', host);
  }
  t.is(counts.request, 0, 'no connection was ever attempted');
  // Literal addresses (in any spelling WHATWG URL accepts) are checked the same way, without DNS.
  for (const url of ['http://127.0.0.1:9/x', 'http://[::1]:9/x', 'http://169.254.169.254/x', 'http://2130706433/x', 'http://0x7f.1/x', 'http://[::ffff:169.254.169.254]/x']) {
    t.is(await codeOfRejection(fetchAt(powers, url, url, {}, {}).result), 'ZT_FORBIDDEN_ADDRESS', url);
  }
  t.is(counts.request, 0, 'still no connection');
  t.is(counts.resolve, 6, 'literal addresses need no resolution');
});

test('DNS rebinding: the name is resolved once per hop and the connection goes to the checked address', async t => {
  // Attack: the first resolution returns an allowed address, a second one (at
  // connect time) a forbidden one.
  const { server, close } = await setup();
  t.teardown(close);
  let calls = 0;
  const { powers, counts } = withResolver({ 'rebind.test': () => (++calls === 1 ? ['127.0.0.1'] : ['169.254.169.254']) });
  const target = `http://rebind.test:${server.port}/echo`;
  const result = await fetchAt(powers, `http://rebind.test:${server.port}/**`, target, {}, { allowPrivateAddresses: ['127.0.0.1/32'] }).result;
  t.is(result.status, 200);
  t.is(counts.resolve, 1, 'one resolution, no second lookup to rebind');
  t.is((JSON.parse(result.body) as { headers: Record<string, string> }).headers.host, `rebind.test:${server.port}`, 'Host carries the name; the socket went to the checked address');
  t.is(await codeOfRejection(fetchAt(powers, `http://rebind.test:${server.port}/**`, target, {}, { allowPrivateAddresses: ['127.0.0.1/32'] }).result), 'ZT_FORBIDDEN_ADDRESS', 'the second resolution (metadata) is outside the allowed range');
});

test('literal loopback and metadata URLs are refused unless the capability allows private addresses', async t => {
  const { server, close } = await setup();
  t.teardown(close);
  const pattern = `${server.origin}/**`;
  t.is(await codeOfRejection(fetchAt(nodePowers, pattern, `${server.origin}/hello`, {}, {}).result), 'ZT_FORBIDDEN_ADDRESS');
  t.is(await codeOfRejection(fetchAt(nodePowers, 'http://169.254.169.254/**', 'http://169.254.169.254/latest/meta-data/', {}, { allowPrivateAddresses: ['127.0.0.0/8'] }).result), 'ZT_FORBIDDEN_ADDRESS');
  t.is(await codeOfRejection(fetchAt(nodePowers, 'http://[::1]:9/**', 'http://[::1]:9/x', {}, {}).result), 'ZT_FORBIDDEN_ADDRESS');
  t.is(await codeOfRejection(fetchAt(nodePowers, 'http://127.0.0.1/**', 'http://2130706433/x', {}, {}).result), 'ZT_FORBIDDEN_ADDRESS', 'decimal spelling of 127.0.0.1');
  t.is(server.requests.length, 0);
  t.is((await fetchAt(nodePowers, pattern, `${server.origin}/hello`, {}, { allowPrivateAddresses: ['127.0.0.1/32'] }).result).status, 200);
});

test('headers the agent may not set are refused', async t => {
  // Attack: request smuggling and routing tricks through Host, hop-by-hop and
  // framing headers, or header injection with CR/LF.
  const { server, close } = await setup();
  t.teardown(close);
  const pattern = `${server.origin}/**`;
  for (const name of ['Host', 'Transfer-Encoding', 'Content-Length', 'Connection', 'Upgrade', 'Proxy-Authorization', 'X-Forwarded-For', 'TE', 'Expect']) {
    t.is(await codeOfRejection(fetchAt(nodePowers, pattern, `${server.origin}/echo`, { headers: { [name]: 'x' } }).result), 'ZT_ARGUMENT_DENIED', name);
  }
  t.is(await codeOfRejection(fetchAt(nodePowers, pattern, `${server.origin}/echo`, { headers: { 'X-A': 'x\r\nHost: evil' } }).result), 'ZT_BAD_ARGUMENT');
  t.is(await codeOfRejection(fetchAt(nodePowers, pattern, `${server.origin}/echo`, { headers: { 'Bad Name': 'x' } }).result), 'ZT_BAD_ARGUMENT');
  t.is(server.requests.length, 0);
});

test('response bombs: endless and over-declared bodies are cut with ZT_TOO_LARGE and the socket closed', async t => {
  // Attack: a server streams an unbounded body (or declares a huge one) to
  // exhaust the kernel's memory.
  const { server, close } = await setup();
  t.teardown(close);
  const pattern = `${server.origin}/**`;
  t.is(await codeOfRejection(fetchAt(nodePowers, pattern, `${server.origin}/bomb`, {}, { ...LOCAL, maxResponseBytes: 100_000 }).result), 'ZT_TOO_LARGE');
  t.is(await codeOfRejection(fetchAt(nodePowers, pattern, `${server.origin}/bomb`, {}, LOCAL, 50_000).result), 'ZT_TOO_LARGE', 'the kernel byte limit bounds it too');
  t.is(await codeOfRejection(fetchAt(nodePowers, pattern, `${server.origin}/bomb-declared`).result), 'ZT_TOO_LARGE');
  t.true(await waitFor(() => server.sockets.size === 0), 'every socket was closed');
});

test('a slow server: the deadline stops it (ZT_TIMEOUT) and revocation closes the socket (ZT_REVOKED)', async t => {
  const { server, close } = await setup();
  t.teardown(close);
  const pattern = `${server.origin}/**`;
  t.is(await codeOfRejection(fetchAt(nodePowers, pattern, `${server.origin}/slow`, {}, { ...LOCAL, timeoutMs: 300 }).result), 'ZT_TIMEOUT');
  t.true(await waitFor(() => server.sockets.size === 0), 'timed-out socket closed');
  const { kernel } = makeTestKernel({ effectors: { NETWORK: makeHttpEffector(nodePowers) } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'web', actionType: ActionType.NETWORK, target: pattern, holder: 'a', constraints: { effect: LOCAL } }));
  const before = server.requests.length;
  const pending = kernel.execute(new ActionRequest({ capabilityId: 'web', agentId: 'a', actionType: ActionType.NETWORK, target: `${server.origin}/slow` }), 'api');
  t.true(await waitFor(() => server.requests.length > before && server.sockets.size === 1), 'the request reached the server');
  kernel.revokeCapability('web');
  t.is((await pending).error?.code, 'ZT_REVOKED');
  t.true(await waitFor(() => server.sockets.size === 0), 'the socket was closed on revocation');
});

test('unreachable hosts and unresolvable names yield ZT_UNREACHABLE', async t => {
  const { server, close } = await setup();
  const port = server.port;
  await close();
  t.is(await codeOfRejection(fetchAt(nodePowers, `http://127.0.0.1:${port}/**`, `http://127.0.0.1:${port}/gone`).result), 'ZT_UNREACHABLE');
  const { powers } = withResolver({});
  t.is(await codeOfRejection(fetchAt(powers, 'http://nowhere.test/**', 'http://nowhere.test/').result), 'ZT_UNREACHABLE');
});

test('address classification covers the special ranges in both families', t => {
  const special = ['0.0.0.0', '10.0.0.1', '100.64.0.1', '127.0.0.1', '127.255.255.254', '169.254.169.254', '172.16.0.1', '172.31.255.255', '192.168.0.1', '198.18.0.1', '224.0.0.1', '255.255.255.255', '::', '::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '64:ff9b::a9fe:a9fe', '2002:a9fe:a9fe::1', 'fc00::1', 'fd12:3456::1', 'fe80::1', 'fe80::1%eth0', 'ff02::1', '2001:db8::1', 'not-an-ip', '1.2.3', '01.2.3.4'];
  for (const ip of special) t.not(specialRangeOf(ip), undefined, ip);
  // Once called public: IPv4-translated loopback (RFC 6145), the IPv6
  // documentation prefix of RFC 9637 and SRv6 SIDs (RFC 9602).
  t.is(specialRangeOf('::ffff:0:127.0.0.1'), 'loopback (embedded in IPv6)');
  t.is(specialRangeOf('3fff::1'), 'reserved (IANA special-purpose)');
  t.is(specialRangeOf('5f00::1'), 'segmentRouting (IANA special-purpose)');
  t.is(specialRangeOf('::ffff:0:8.8.8.8'), undefined, 'IPv4-translated public address');
  const general = ['93.184.216.34', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808'];
  for (const ip of general) t.is(specialRangeOf(ip), undefined, ip);
  t.is(specialRangeOf('169.254.169.254'), 'link-local (cloud metadata)');
  t.deepEqual([...(parseIp('1:2::3') as Uint8Array)], [0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
  t.is(parseCidr('10.0.0.0/33'), undefined);
  t.is(parseIp('1::2::3'), undefined);
});

test('grant validator refuses malformed NETWORK settings at issue time', t => {
  t.notThrows(() => validateNetworkGrant('https://api.example.com/v1/**', { effect: { methods: ['GET', 'post'], allowPrivateAddresses: ['10.0.0.0/8'], maxRedirects: 0, timeoutMs: 5000, maxResponseBytes: 1024 } }));
  for (const effect of [{ methods: ['TRACE'] }, { methods: [] }, { allowPrivateAddresses: 'yes' }, { allowPrivateAddresses: ['10.0.0.0/99'] }, { maxRedirects: 100 }, { followRedirects: true }]) {
    t.throws(() => validateNetworkGrant('https://api.example.com/**', { effect }), { message: /^ZT_BAD_ARGUMENT\b/ }, JSON.stringify(effect));
  }
});

const octet = fc.integer({ min: 0, max: 255 });
const v4 = fc.tuple(octet, octet, octet, octet);

testProp(
  'an IPv4 address classifies the same in every IPv6 spelling that embeds it (mapped, NAT64, 6to4)',
  [v4],
  (t, [a, b, c, d]) => {
    const dotted = `${a}.${b}.${c}.${d}`;
    const hex = (x: number, y: number) => ((x << 8) | y).toString(16);
    const special = specialRangeOf(dotted) !== undefined;
    for (const spelling of [`::ffff:${dotted}`, `::ffff:${hex(a, b)}:${hex(c, d)}`, `64:ff9b::${hex(a, b)}:${hex(c, d)}`, `2002:${hex(a, b)}:${hex(c, d)}::1`]) {
      t.is(specialRangeOf(spelling) !== undefined, special, spelling);
    }
  },
);

testProp(
  'every address in loopback, private, link-local and CGNAT space is special',
  [fc.constantFrom([127, 0, 8], [10, 0, 8], [172, 16, 12], [192, 168, 16], [169, 254, 16], [100, 64, 10]), v4],
  (t, [first, second, prefix], [, b, c, d]) => {
    // Keep the network bits of the range, randomize the host bits.
    const second8 = prefix >= 16 ? second : (second & (0xff << (16 - prefix))) | (b & (0xff >> (prefix - 8)));
    const address = prefix === 8 ? `${first}.${b}.${c}.${d}` : `${first}.${second8}.${c}.${d}`;
    t.not(specialRangeOf(address), undefined, address);
  },
);
