/**
 * The gateway on Node: reads the configuration, starts the runtime (the
 * kernel in its own vat), issues the configured grants, and serves MCP
 * over stdio and Streamable HTTP, plus a control socket for the operator's
 * CLI (`ztaas approve`, `deny`, `revoke`, `gateway reload`, `tools`).
 *
 * Invariants:
 * - The gateway process is a host application: it is not locked down;
 *   the kernel, the agents' requests and the upstream clients live in the
 *   kernel vat.
 * - HTTP binds 127.0.0.1 unless configured otherwise, checks the Host
 *   header (DNS rebinding), authenticates every request (not only the
 *   first of a session), and a session is only ever served to the agent
 *   that opened it (another agent's token gets 404, as for no session).
 *   Request bodies are bounded (size, batch, time); sessions are bounded
 *   in all and per agent, counted from the accepted initialize request, and
 *   an agent at its bound gives up its own least recently used idle
 *   session: one agent never holds the others' slots.
 * - One gateway per store: a control socket that answers refuses the start.
 * - The configuration is read from a regular file, at most
 *   MAX_CONFIG_BYTES, whatever the path points to.
 * - The control socket is `<store>/gateway.sock`, mode 0600, one bounded
 *   JSON request per connection.
 * - Revocations made through the gateway persist in the store
 *   (`gateway-revocations.json`) and are applied again at start: a revoked
 *   agent or capability does not come back because the gateway restarted.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { chmodSync, constants, fstatSync, mkdirSync, readFileSync, readSync, renameSync, rmSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { connect as connectSocket, createServer as createNetServer, type Server as NetServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ZtError, codeOf, reasonOf } from '../errors.js';
import { SandboxRuntime } from '../runtime.js';
import { Capability } from '../types.js';
import { MAX_CONFIG_BYTES, parseGatewayConfig, type GatewayConfig } from './config.js';
import { makeGateway, type Gateway } from './gateway.js';
import { handleControl, MAX_CONTROL_BYTES, type Revocation } from './control.js';

const MAX_BODY_BYTES = 4 * 1024 * 1024;

/** Reads and validates a configuration file. */
export const readGatewayConfig = (path: string, env: Readonly<Record<string, string | undefined>> = process.env): GatewayConfig => {
  const file = resolve(path);
  // Opened once, checked on the descriptor, read at most MAX + 1 bytes: a
  // FIFO, a device (/dev/zero) or a file that grows after the check is refused,
  // never read without end.
  let text: string;
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    throw new ZtError('ZT_CONFIG_INVALID', `the configuration file ${file} cannot be read`, { problems: [`${file}: not found or not readable`] });
  }
  try {
    if (!fstatSync(fd).isFile()) throw new ZtError('ZT_CONFIG_INVALID', 'the configuration is not a regular file', { problems: [`${file}: not a regular file`] });
    const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    for (;;) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > MAX_CONFIG_BYTES) throw new ZtError('ZT_CONFIG_INVALID', `the configuration file is larger than ${MAX_CONFIG_BYTES} bytes`, { problems: [`${file}: too large`] });
    }
    text = buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
  let document: unknown;
  try {
    document = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new ZtError('ZT_CONFIG_INVALID', `the configuration file is not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`, { problems: [`${file}: parse error`] });
  }
  return parseGatewayConfig(document, dirname(file), env, process.execPath);
};

const revocationsFile = (storeDir: string) => `${storeDir}/gateway-revocations.json`;

const readRevocations = (storeDir: string): Revocation[] => {
  let text: string;
  try {
    text = readFileSync(revocationsFile(storeDir), 'utf8');
  } catch {
    return [];
  }
  // Unreadable revocations fail closed: the gateway does not start without them.
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const valid = (r: unknown): r is Revocation =>
    r !== null && typeof r === 'object' && ((r as Revocation).kind === 'agent' || (r as Revocation).kind === 'capability') && typeof (r as Revocation).id === 'string' && typeof (r as Revocation).reason === 'string';
  if (!Array.isArray(parsed) || !parsed.every(valid)) throw new ZtError('ZT_CONFIG_INVALID', 'gateway-revocations.json is not a list of revocations', { problems: [`${revocationsFile(storeDir)}: not a list of { kind, id, reason, time }`] });
  return parsed;
};

/** Atomic: temp file, fsync, rename. */
const writeRevocations = (storeDir: string, list: readonly Revocation[]) => {
  const file = revocationsFile(storeDir);
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(list, null, 1)}\n`, { mode: 0o600 });
  const fd = openSync(temp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
};

export const nodeGatewayPowers = {
  sha256Hex: (text: string) => createHash('sha256').update(text, 'utf8').digest('hex'),
  equalHex: (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')),
  now: () => Date.now(),
  log: (line: string) => {
    process.stderr.write(`${line}\n`);
  },
};

export interface RunningGateway {
  readonly runtime: SandboxRuntime;
  readonly gateway: Gateway;
  /** The bound HTTP address, when HTTP is served. */
  readonly http?: { readonly host: string; readonly port: number; readonly url: string };
  readonly controlSocket: string;
  /** Re-reads the policy file (revoking what it no longer grants). */
  reload(): Promise<{ policyHash: string; revoked: readonly string[] }>;
  /** Settles when the stdio session ends (the client went away, or broke the protocol): the gateway should then stop. */
  readonly stdioClosed?: Promise<void>;
  close(): Promise<void>;
}

export interface StartOptions {
  readonly transports?: { readonly stdio?: boolean; readonly http?: boolean };
  /** For stdio: the streams (default: this process's). */
  readonly stdin?: NodeJS.ReadableStream;
  readonly stdout?: NodeJS.WritableStream;
  readonly log?: (line: string) => void;
}

const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

const jsonRpcError = (code: number, message: string) => ({ jsonrpc: '2.0', error: { code, message }, id: null });

/** Does a gateway answer on this control socket? (A socket file left by a crash does not.) */
const socketAnswers = (path: string): Promise<boolean> =>
  new Promise(resolvePromise => {
    const probe = connectSocket(path);
    probe.once('connect', () => {
      probe.destroy();
      resolvePromise(true);
    });
    probe.once('error', () => resolvePromise(false));
  });

/** Starts a gateway from a configuration; resolves once it serves. */
export const startGateway = async (config: GatewayConfig, options: StartOptions = {}): Promise<RunningGateway> => {
  const log = options.log ?? nodeGatewayPowers.log;
  const powers = { ...nodeGatewayPowers, log };
  mkdirSync(config.storeDir, { recursive: true, mode: 0o700 });
  // One gateway per store: a second one would take the first one's control
  // socket (the operator's revocations would reach the wrong process) and
  // could not write the audit log the first one holds.
  if (await socketAnswers(`${config.storeDir}/gateway.sock`)) {
    throw new ZtError('ZT_CONFIG_INVALID', `another gateway is serving the store ${config.storeDir}`, { problems: [`store: another gateway is serving ${config.storeDir} (its control socket answers); stop it or give this one its own store`] });
  }
  const runtime = new SandboxRuntime({
    storeDir: config.storeDir,
    ...(config.policy !== undefined && 'document' in config.policy ? { policy: config.policy.document } : {}),
    ...(config.durability === undefined ? {} : { durability: config.durability }),
    mcpServers: config.servers as never,
  });
  try {
    if (config.policy !== undefined && 'file' in config.policy) await runtime.loadPolicyFile(config.policy.file);
    const problems: string[] = [];
    for (const [agentId, agent] of Object.entries(config.agents)) {
      runtime.registerAgent(agentId, { labels: agent.labels });
      for (const [i, grant] of agent.grants.entries()) {
        try {
          runtime.issueCapability(new Capability({ ...grant, holder: agentId } as never));
        } catch (err) {
          problems.push(`agents.${agentId}.grants[${i}] (${grant.id}): ${codeOf(err) ?? ''} ${reasonOf(err) ?? String(err)}`.trim());
        }
      }
    }
    if (problems.length > 0) throw new ZtError('ZT_CONFIG_INVALID', `grants could not be issued: ${problems.slice(0, 5).join('; ')}`, { problems });
  } catch (err) {
    await runtime.shutdown().catch(() => undefined);
    throw err;
  }

  const gateway = makeGateway(runtime, config, powers);
  const revocations = readRevocations(config.storeDir);
  for (const r of revocations) {
    if (r.kind === 'agent') {
      runtime.revokeAgent(r.id, r.reason);
      gateway.noteRevoked(r.id);
    } else if (r.kind === 'capability') {
      try {
        runtime.revokeCapability(r.id, r.reason);
      } catch {
        // A capability the configuration no longer grants: nothing to revoke.
      }
    }
  }
  const persist = (r: Revocation) => {
    revocations.push(r);
    writeRevocations(config.storeDir, revocations);
  };

  const reload = async () => {
    if (config.policy === undefined || !('file' in config.policy)) throw new ZtError('ZT_BAD_ARGUMENT', 'this gateway has no policy file to reload (the policy is inline)');
    const result = await runtime.loadPolicyFile(config.policy.file);
    return { policyHash: result.policyHash, revoked: result.revoked };
  };

  // The control socket.
  const controlSocket = `${config.storeDir}/gateway.sock`;
  rmSync(controlSocket, { force: true });
  const control: NetServer = createNetServer(socket => {
    let buffered = '';
    let done = false;
    socket.setEncoding('utf8');
    socket.setTimeout(30_000, () => socket.destroy());
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      // One request per connection: whatever follows it is not read (nor kept).
      if (done) return;
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0 ? buffered.length > MAX_CONTROL_BYTES : nl > MAX_CONTROL_BYTES) {
        done = true;
        buffered = '';
        socket.pause();
        socket.end(`${JSON.stringify({ ok: false, code: 'ZT_BAD_ARGUMENT', message: 'the request is too large' })}\n`);
        return;
      }
      if (nl < 0) return;
      done = true;
      const line = buffered.slice(0, nl);
      buffered = '';
      socket.pause();
      void handleControl(line, { runtime, gateway, persist, reload, now: powers.now }).then(answer => socket.end(`${JSON.stringify(answer)}\n`));
    });
  });
  await new Promise<void>((resolvePromise, reject) => {
    control.once('error', reject);
    control.listen(controlSocket, () => {
      control.off('error', reject);
      resolvePromise();
    });
  });
  chmodSync(controlSocket, 0o600);

  const closers: Array<() => Promise<void>> = [];
  const wants = options.transports ?? { stdio: config.stdio !== undefined, http: config.http !== undefined };

  // stdio: one session, the configured agent.
  let stdioClosed: Promise<void> | undefined;
  if (wants.stdio && config.stdio !== undefined) {
    const agentId = config.stdio.agent;
    if (gateway.isRevoked(agentId)) {
      gateway.recordRefusal('stdio', { ok: false, code: 'ZT_AGENT_REVOKED', reason: 'the agent has been revoked', agentId });
      throw new ZtError('ZT_AGENT_REVOKED', `the stdio agent ${agentId} has been revoked`);
    }
    const transport = new StdioServerTransport((options.stdin ?? process.stdin) as never, (options.stdout ?? process.stdout) as never);
    // The SDK closes the transport on a line over its buffer bound; with no other way in, the gateway ends.
    stdioClosed = new Promise<void>(resolvePromise => {
      transport.onclose = () => resolvePromise();
    });
    const session = gateway.openSession(agentId, 'stdio');
    await session.server.connect(transport);
    closers.push(() => session.server.close());
  }

  // Streamable HTTP: every request authenticated; sessions bound to their agent.
  let http: RunningGateway['http'];
  if (wants.http && config.http !== undefined) {
    const settings = config.http;
    /**
     * Sessions, counted from the moment an initialize request is accepted
     * (`pending`), so concurrent initialize requests cannot overshoot the
     * bound. `open` counts the HTTP requests (SSE streams included) the
     * session has in flight; `used` when it last had one.
     */
    interface HttpSession {
      readonly agentId: string;
      readonly transport: StreamableHTTPServerTransport;
      pending: boolean;
      open: number;
      used: number;
    }
    const httpSessions = new Map<string, HttpSession>();
    const perAgent = settings.maxSessionsPerAgent;
    let allowedHosts: string[] = [];
    const closeSession = (id: string, why: string) => {
      const entry = httpSessions.get(id);
      if (entry === undefined) return;
      httpSessions.delete(id);
      log(`gateway: closing HTTP session ${id} of ${entry.agentId}: ${why}`);
      void entry.transport.close().catch(() => undefined);
    };
    /** Tracks one request of a session: busy while it (or its SSE stream) is open. */
    const track = (entry: HttpSession, res: ServerResponse) => {
      entry.open += 1;
      entry.used = Date.now();
      res.once('close', () => {
        entry.open -= 1;
        entry.used = Date.now();
      });
    };
    /**
     * Room for one more session of this agent: an agent at its own bound
     * gives up its least recently used idle session (a client that went
     * away without DELETE); the gateway's bound refuses. One agent can
     * never hold the slots of the others.
     */
    const makeRoom = (agentId: string): boolean => {
      const own = [...httpSessions.entries()].filter(([, e]) => e.agentId === agentId);
      if (own.length >= perAgent) {
        const idle = own.filter(([, e]) => !e.pending && e.open === 0).sort((x, y) => x[1].used - y[1].used)[0];
        if (idle === undefined) return false;
        closeSession(idle[0], 'the agent opened more sessions than it may hold; this one was the least recently used');
      }
      return httpSessions.size < settings.maxSessions;
    };
    const idleSweep = setInterval(() => {
      const now = Date.now();
      for (const [id, entry] of httpSessions) if (!entry.pending && entry.open === 0 && now - entry.used > settings.sessionIdleMs) closeSession(id, 'idle');
    }, Math.min(60_000, Math.max(1000, Math.floor(settings.sessionIdleMs / 2))));
    idleSweep.unref();
    const handle = async (req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://gateway.invalid');
      if (url.pathname !== settings.path) {
        sendJson(res, 404, jsonRpcError(-32601, 'not found'));
        return;
      }
      const identity = gateway.authenticate(req.headers.authorization);
      if (!identity.ok) {
        gateway.recordRefusal('http', identity, req.socket.remoteAddress);
        sendJson(res, identity.code === 'ZT_UNAUTHENTICATED' ? 401 : 403, jsonRpcError(-32001, `${identity.code}: ${identity.reason}`), identity.code === 'ZT_UNAUTHENTICATED' ? { 'www-authenticate': 'Bearer' } : {});
        return;
      }
      const sid = req.headers['mcp-session-id'];
      if (typeof sid === 'string') {
        const entry = httpSessions.get(sid);
        if (entry === undefined || entry.pending || entry.agentId !== identity.agentId) {
          sendJson(res, 404, jsonRpcError(-32001, 'session not found'));
          return;
        }
        track(entry, res);
        await entry.transport.handleRequest(req, res);
        return;
      }
      if (req.method !== 'POST') {
        sendJson(res, 400, jsonRpcError(-32000, 'a session starts with an initialize POST'));
        return;
      }
      if (!makeRoom(identity.agentId)) {
        gateway.recordRefusal('http', { ok: false, code: 'ZT_TOO_MANY_SESSIONS', reason: 'too many sessions are open', agentId: identity.agentId }, req.socket.remoteAddress);
        sendJson(res, 503, jsonRpcError(-32000, 'ZT_TOO_MANY_SESSIONS: too many sessions are open; close one (DELETE) or try later'), { 'retry-after': '5' });
        return;
      }
      const sessionId = randomUUID();
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => sessionId,
        enableDnsRebindingProtection: true,
        allowedHosts,
        maxRequestBodySize: MAX_BODY_BYTES,
        onsessioninitialized: (id: string) => {
          const entry = httpSessions.get(id);
          if (entry !== undefined) entry.pending = false;
        },
        onsessionclosed: (id: string) => {
          httpSessions.delete(id);
        },
      } as never);
      // Reserved before anything is awaited: the bound holds under concurrent initialize requests.
      const entry: HttpSession = { agentId: identity.agentId, transport, pending: true, open: 0, used: Date.now() };
      httpSessions.set(sessionId, entry);
      transport.onclose = () => {
        if (httpSessions.get(sessionId) === entry) httpSessions.delete(sessionId);
      };
      track(entry, res);
      try {
        const session = gateway.openSession(identity.agentId, 'http', sessionId);
        await session.server.connect(transport);
        await transport.handleRequest(req, res);
        // Not an initialize request (or a refused one): no session was made.
        if (entry.pending) {
          httpSessions.delete(sessionId);
          await session.server.close().catch(() => undefined);
        }
      } finally {
        if (entry.pending) httpSessions.delete(sessionId);
      }
    };
    const server: HttpServer = createHttpServer((req, res) => {
      handle(req, res).catch((err: unknown) => {
        log(`gateway: HTTP request failed: ${String((err as Error)?.message ?? err)}`);
        sendJson(res, 500, jsonRpcError(-32603, 'internal error'));
      });
    });
    // A request (headers and body) must arrive within these bounds: a client
    // that drips its body holds no socket for long. Responses (SSE streams)
    // are not bounded by them.
    server.headersTimeout = 30_000;
    server.requestTimeout = 60_000;
    await new Promise<void>((resolvePromise, reject) => {
      server.once('error', reject);
      server.listen(settings.port, settings.host, () => {
        server.off('error', reject);
        resolvePromise();
      });
    });
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : settings.port;
    allowedHosts = settings.allowedHosts !== undefined ? [...settings.allowedHosts] : [`${settings.host}:${port}`, ...(['127.0.0.1', 'localhost', '::1'].includes(settings.host) ? [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`] : [])];
    const hostPart = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
    http = { host: settings.host, port, url: `http://${hostPart}:${port}${settings.path}` };
    closers.push(async () => {
      clearInterval(idleSweep);
      await Promise.all([...httpSessions.values()].map(e => e.transport.close().catch(() => undefined)));
      server.closeAllConnections();
      await new Promise<void>(r => server.close(() => r()));
    });
  }

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      for (const closer of closers) await closer().catch(() => undefined);
      await gateway.close();
      await new Promise<void>(r => control.close(() => r()));
      rmSync(controlSocket, { force: true });
      await runtime.shutdown();
    })();
    return closing;
  };
  return { runtime, gateway, ...(http === undefined ? {} : { http }), ...(stdioClosed === undefined ? {} : { stdioClosed }), controlSocket, reload, close };
};
