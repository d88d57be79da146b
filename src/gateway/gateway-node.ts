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
 *   Request bodies are bounded; sessions are bounded.
 * - The control socket is `<store>/gateway.sock`, mode 0600, one bounded
 *   JSON request per connection.
 * - Revocations made through the gateway persist in the store
 *   (`gateway-revocations.json`) and are applied again at start: a revoked
 *   agent or capability does not come back because the gateway restarted.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
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
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw new ZtError('ZT_CONFIG_INVALID', `the configuration file ${file} cannot be read`, { problems: [`${file}: not found or not readable`] });
  }
  if (size > MAX_CONFIG_BYTES) throw new ZtError('ZT_CONFIG_INVALID', `the configuration file is larger than ${MAX_CONFIG_BYTES} bytes`, { problems: [`${file}: too large`] });
  let document: unknown;
  try {
    document = parseYaml(readFileSync(file, 'utf8'), { maxAliasCount: 100 });
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
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) throw new ZtError('ZT_CONFIG_INVALID', 'gateway-revocations.json is not a list', { problems: [revocationsFile(storeDir)] });
  return parsed as Revocation[];
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

/** Starts a gateway from a configuration; resolves once it serves. */
export const startGateway = async (config: GatewayConfig, options: StartOptions = {}): Promise<RunningGateway> => {
  const log = options.log ?? nodeGatewayPowers.log;
  const powers = { ...nodeGatewayPowers, log };
  mkdirSync(config.storeDir, { recursive: true, mode: 0o700 });
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
    socket.setEncoding('utf8');
    socket.setTimeout(30_000, () => socket.destroy());
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > MAX_CONTROL_BYTES) {
        socket.end(`${JSON.stringify({ ok: false, code: 'ZT_BAD_ARGUMENT', message: 'the request is too large' })}\n`);
        return;
      }
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      const line = buffered.slice(0, nl);
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
  if (wants.stdio && config.stdio !== undefined) {
    const agentId = config.stdio.agent;
    if (gateway.isRevoked(agentId)) {
      gateway.recordRefusal('stdio', { ok: false, code: 'ZT_AGENT_REVOKED', reason: 'the agent has been revoked', agentId });
      throw new ZtError('ZT_AGENT_REVOKED', `the stdio agent ${agentId} has been revoked`);
    }
    const transport = new StdioServerTransport((options.stdin ?? process.stdin) as never, (options.stdout ?? process.stdout) as never);
    const session = gateway.openSession(agentId, 'stdio');
    await session.server.connect(transport);
    closers.push(() => session.server.close());
  }

  // Streamable HTTP: every request authenticated; sessions bound to their agent.
  let http: RunningGateway['http'];
  if (wants.http && config.http !== undefined) {
    const settings = config.http;
    const httpSessions = new Map<string, { agentId: string; transport: StreamableHTTPServerTransport }>();
    let allowedHosts: string[] = [];
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
        if (entry === undefined || entry.agentId !== identity.agentId) {
          sendJson(res, 404, jsonRpcError(-32001, 'session not found'));
          return;
        }
        await entry.transport.handleRequest(req, res);
        return;
      }
      if (req.method !== 'POST') {
        sendJson(res, 400, jsonRpcError(-32000, 'a session starts with an initialize POST'));
        return;
      }
      if (httpSessions.size >= settings.maxSessions) {
        sendJson(res, 503, jsonRpcError(-32000, 'too many sessions'));
        return;
      }
      const sessionId = randomUUID();
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => sessionId,
        enableDnsRebindingProtection: true,
        allowedHosts,
        maxRequestBodySize: MAX_BODY_BYTES,
        onsessioninitialized: (id: string) => {
          httpSessions.set(id, { agentId: identity.agentId, transport });
        },
        onsessionclosed: (id: string) => {
          httpSessions.delete(id);
        },
      } as never);
      transport.onclose = () => {
        httpSessions.delete(sessionId);
      };
      const session = gateway.openSession(identity.agentId, 'http', sessionId);
      await session.server.connect(transport);
      await transport.handleRequest(req, res);
      // Not an initialize request: no session was made.
      if (!httpSessions.has(sessionId)) await session.server.close().catch(() => undefined);
    };
    const server: HttpServer = createHttpServer((req, res) => {
      handle(req, res).catch((err: unknown) => {
        log(`gateway: HTTP request failed: ${String((err as Error)?.message ?? err)}`);
        sendJson(res, 500, jsonRpcError(-32603, 'internal error'));
      });
    });
    server.headersTimeout = 30_000;
    server.requestTimeout = 0;
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
  return { runtime, gateway, ...(http === undefined ? {} : { http }), controlSocket, reload, close };
};
