/**
 * The gateway's configuration file (`ztaas gateway --config gateway.yaml`):
 * upstream MCP servers, agents, their grants, and the transports. Pure:
 * the caller reads the file and the environment.
 *
 *   store: ./.ztaas/gateway          # the embedded store (relative to this file)
 *   policy: ./policy.yaml            # a policy file, or a policy document inline
 *   servers:                         # upstream MCP servers (the library's mcpServers)
 *     fs:
 *       command: /usr/bin/node
 *       args: [/opt/mcp/server-filesystem/dist/index.js, /home/me/notes]
 *       env: { API_KEY: '${env:FS_API_KEY}' }   # from the gateway's environment
 *       # `${node}` is the gateway's own Node, `${configDir}` this file's folder
 *   agents:
 *     desktop:
 *       labels: [local]
 *       grants:
 *         - { id: notes-read, actionType: TOOL, target: fs/read_text_file }
 *     remote-bot:
 *       tokenSha256: 3b1f…            # sha256 (hex) of its bearer token
 *       grants: [ … ]
 *   stdio: { agent: desktop }        # a stdio connection is this agent
 *   http: { host: 127.0.0.1, port: 8931, path: /mcp, maxSessions: 256, maxSessionsPerAgent: 16 }
 *
 * Invariants:
 * - Nothing unknown is ignored: a misspelt key is a problem, never a
 *   silently wider or narrower gateway. Every problem is listed at once
 *   (ZT_CONFIG_INVALID, `details.problems`).
 * - Credentials for upstream servers (`env`, `headers`) may come from the
 *   gateway's environment (`${env:NAME}`); a missing variable is a problem,
 *   never an empty credential. They stay in the gateway: no client sees
 *   them.
 * - Bearer tokens are stored only as SHA-256 hashes.
 * - A server's `command`, `args` and `cwd` may say `${node}` (the Node
 *   running the gateway) and `${configDir}`; the command must still end up
 *   an absolute path (the kernel checks: no PATH search).
 * - Grants use the library's capability fields (`id`, `actionType`,
 *   `target`, `constraints`); the holder is the agent they are listed under.
 *   The kernel validates them again when they are issued.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';
import { isActionType, type ActionType } from '../types.js';

export const MAX_CONFIG_BYTES = 1024 * 1024;

export interface GatewayGrant {
  readonly id: string;
  readonly actionType: ActionType;
  readonly target: string;
  readonly constraints?: Readonly<Record<string, unknown>>;
}

export interface GatewayAgent {
  readonly labels: readonly string[];
  /** Lower-case hex SHA-256 of the agent's bearer token (HTTP). */
  readonly tokenSha256?: string;
  readonly grants: readonly GatewayGrant[];
}

export interface GatewayConfig {
  /** Absolute folder of the config file; relative paths are resolved against it. */
  readonly baseDir: string;
  readonly storeDir: string;
  /** A policy file (absolute path) or a document. */
  readonly policy?: { readonly file: string } | { readonly document: unknown };
  readonly durability?: 'durable' | 'relaxed';
  /** Upstream servers, as the library's `mcpServers` (validated by the kernel). */
  readonly servers: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly agents: Readonly<Record<string, GatewayAgent>>;
  readonly stdio?: { readonly agent: string };
  readonly http?: {
    readonly host: string;
    readonly port: number;
    readonly path: string;
    /** Host header values accepted (DNS-rebinding protection). Default: the host and port bound. */
    readonly allowedHosts?: readonly string[];
    readonly maxSessions: number;
    /** Sessions one agent may hold; at the bound its least recently used idle session is closed for a new one. */
    readonly maxSessionsPerAgent: number;
    /** A session with no request or stream open for this long is closed. */
    readonly sessionIdleMs: number;
  };
  /** Ask the connected person through MCP elicitation when the client supports it (default true). */
  readonly elicitation: boolean;
  /**
   * Code mode: an `execute_code` tool runs the model's program in a fresh
   * vat holding the session agent's capabilities (absent: no such tool).
   */
  readonly codeMode?: { readonly isolation?: 'worker' | 'process' | 'process-weak'; readonly deadlineMs?: number; readonly memoryMb?: number };
}

const ID = /^[A-Za-z0-9_.:@-]{1,128}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const ENV_REF = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g;

const isRecord = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

const joinPath = (base: string, path: string): string => {
  if (path.startsWith('/')) return path;
  const parts = `${base}/${path}`.split('/');
  const out: string[] = [];
  for (const part of parts) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return `/${out.join('/')}`;
};

/**
 * Validates a parsed configuration document. `baseDir` is the config file's
 * folder; `env` the gateway's environment (for `${env:NAME}`). Throws
 * ZT_CONFIG_INVALID listing every problem.
 */
export const parseGatewayConfig = (document: unknown, baseDir: string, env: Readonly<Record<string, string | undefined>>, execPath = '/usr/bin/node'): GatewayConfig => {
  const problems: string[] = [];
  const problem = (path: string, text: string) => {
    if (problems.length < 100) problems.push(`${path}: ${text}`);
  };
  if (!isRecord(document)) throw new ZtError('ZT_CONFIG_INVALID', 'the configuration must be a mapping', { problems: ['(root): not a mapping'] });
  const known = new Set(['store', 'policy', 'durability', 'servers', 'agents', 'stdio', 'http', 'elicitation', 'codeMode']);
  for (const key of Object.keys(document)) if (!known.has(key)) problem(key, 'unknown key');

  const store = document.store ?? '.ztaas/gateway';
  if (typeof store !== 'string' || store === '') problem('store', 'must be a path');
  const storeDir = joinPath(baseDir, typeof store === 'string' && store !== '' ? store : '.ztaas/gateway');

  let policy: GatewayConfig['policy'];
  if (typeof document.policy === 'string') policy = { file: joinPath(baseDir, document.policy) };
  else if (isRecord(document.policy)) policy = { document: document.policy };
  else if (document.policy !== undefined) problem('policy', 'must be a file path or a policy document');

  const { durability } = document;
  if (durability !== undefined && durability !== 'durable' && durability !== 'relaxed') problem('durability', "must be 'durable' or 'relaxed'");

  // Upstream servers: `${env:NAME}` in env and headers values; the rest is the kernel's to validate.
  const servers: Record<string, Record<string, unknown>> = {};
  if (document.servers !== undefined && !isRecord(document.servers)) problem('servers', 'must be a mapping of name → server');
  for (const [name, server] of Object.entries(isRecord(document.servers) ? document.servers : {})) {
    if (!ID.test(name)) problem(`servers.${name}`, `the name must match ${ID.source}`);
    if (!isRecord(server)) {
      problem(`servers.${name}`, 'must be a mapping');
      continue;
    }
    const copy: Record<string, unknown> = { ...server };
    // `${node}` (the gateway's own Node) and `${configDir}` in command, args and cwd.
    const place = (text: string) => text.replaceAll('${node}', execPath).replaceAll('${configDir}', baseDir);
    if (typeof server.command === 'string') copy.command = place(server.command);
    if (typeof server.cwd === 'string') copy.cwd = place(server.cwd);
    if (Array.isArray(server.args)) copy.args = server.args.map(a => (typeof a === 'string' ? place(a) : a));
    for (const field of ['env', 'headers'] as const) {
      const values = server[field];
      if (values === undefined) continue;
      if (!isRecord(values)) {
        problem(`servers.${name}.${field}`, 'must be a mapping of strings');
        continue;
      }
      const resolved: Record<string, string> = {};
      for (const [key, value] of Object.entries(values)) {
        if (typeof value !== 'string') {
          problem(`servers.${name}.${field}.${key}`, 'must be a string');
          continue;
        }
        resolved[key] = value.replace(ENV_REF, (_whole, variable: string) => {
          const found = env[variable];
          if (found === undefined) {
            problem(`servers.${name}.${field}.${key}`, `the environment variable ${variable} is not set`);
            return '';
          }
          return found;
        });
      }
      copy[field] = resolved;
    }
    servers[name] = copy;
  }

  const agents: Record<string, GatewayAgent> = {};
  const ids = new Set<string>();
  const hashes = new Set<string>();
  if (!isRecord(document.agents) || Object.keys(document.agents).length === 0) problem('agents', 'must name at least one agent');
  for (const [agentId, agent] of Object.entries(isRecord(document.agents) ? document.agents : {})) {
    const at = `agents.${agentId}`;
    if (!ID.test(agentId)) problem(at, `the agent id must match ${ID.source}`);
    if (!isRecord(agent)) {
      problem(at, 'must be a mapping');
      continue;
    }
    for (const key of Object.keys(agent)) if (!['labels', 'tokenSha256', 'grants'].includes(key)) problem(`${at}.${key}`, 'unknown key');
    const labels = agent.labels ?? [];
    if (!Array.isArray(labels) || !labels.every(l => typeof l === 'string' && l !== '')) problem(`${at}.labels`, 'must be a list of strings');
    const { tokenSha256 } = agent;
    if (tokenSha256 !== undefined) {
      if (typeof tokenSha256 !== 'string' || !HEX64.test(tokenSha256)) problem(`${at}.tokenSha256`, 'must be 64 lower-case hex digits (`ztaas gateway token` makes one)');
      else if (hashes.has(tokenSha256)) problem(`${at}.tokenSha256`, 'the same token is given to another agent');
      else hashes.add(tokenSha256);
    }
    const grants: GatewayGrant[] = [];
    if (agent.grants !== undefined && !Array.isArray(agent.grants)) problem(`${at}.grants`, 'must be a list');
    for (const [i, grant] of (Array.isArray(agent.grants) ? agent.grants : []).entries()) {
      const gat = `${at}.grants[${i}]`;
      if (!isRecord(grant)) {
        problem(gat, 'must be a mapping');
        continue;
      }
      for (const key of Object.keys(grant)) if (!['id', 'actionType', 'target', 'constraints'].includes(key)) problem(`${gat}.${key}`, 'unknown key');
      const { id, actionType, target, constraints } = grant;
      if (typeof id !== 'string' || !ID.test(id)) problem(`${gat}.id`, `must match ${ID.source}`);
      else if (ids.has(id)) problem(`${gat}.id`, 'is used by another grant');
      else ids.add(id);
      if (!isActionType(actionType)) problem(`${gat}.actionType`, 'must be READ, WRITE, EXECUTE, NETWORK or TOOL');
      if (typeof target !== 'string' || target === '') problem(`${gat}.target`, 'must be a target pattern');
      if (constraints !== undefined && !isRecord(constraints)) problem(`${gat}.constraints`, 'must be a mapping');
      if (typeof id === 'string' && isActionType(actionType) && typeof target === 'string') {
        grants.push({ id, actionType, target, ...(isRecord(constraints) ? { constraints } : {}) });
      }
    }
    agents[agentId] = {
      labels: Array.isArray(labels) ? labels.filter((l): l is string => typeof l === 'string') : [],
      ...(typeof tokenSha256 === 'string' ? { tokenSha256 } : {}),
      grants,
    };
  }

  let stdio: GatewayConfig['stdio'];
  if (document.stdio !== undefined) {
    const s = document.stdio;
    if (!isRecord(s) || typeof s.agent !== 'string' || Object.keys(s).some(k => k !== 'agent')) problem('stdio', 'must be { agent: <agent id> }');
    else if (!Object.hasOwn(agents, s.agent)) problem('stdio.agent', `names no agent of this file: ${JSON.stringify(s.agent)}`);
    else stdio = { agent: s.agent };
  }

  let http: GatewayConfig['http'];
  if (document.http !== undefined) {
    const h = document.http;
    if (!isRecord(h)) problem('http', 'must be a mapping');
    else {
      for (const key of Object.keys(h)) if (!['host', 'port', 'path', 'allowedHosts', 'maxSessions', 'maxSessionsPerAgent', 'sessionIdleMs'].includes(key)) problem(`http.${key}`, 'unknown key');
      const host = h.host ?? '127.0.0.1';
      const port = h.port ?? 8931;
      const path = h.path ?? '/mcp';
      const maxSessions = h.maxSessions ?? 256;
      const maxSessionsPerAgent = h.maxSessionsPerAgent ?? Math.min(16, typeof maxSessions === 'number' ? maxSessions : 16);
      const sessionIdleMs = h.sessionIdleMs ?? 30 * 60_000;
      if (typeof host !== 'string' || host === '') problem('http.host', 'must be an address to bind');
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) problem('http.port', 'must be a port number (0: any free port)');
      if (typeof path !== 'string' || !path.startsWith('/')) problem('http.path', 'must start with /');
      if (typeof maxSessions !== 'number' || !Number.isInteger(maxSessions) || maxSessions < 1) problem('http.maxSessions', 'must be a positive integer');
      if (typeof maxSessionsPerAgent !== 'number' || !Number.isInteger(maxSessionsPerAgent) || maxSessionsPerAgent < 1) problem('http.maxSessionsPerAgent', 'must be a positive integer');
      if (typeof sessionIdleMs !== 'number' || !Number.isInteger(sessionIdleMs) || sessionIdleMs < 1000) problem('http.sessionIdleMs', 'must be an integer of at least 1000 (milliseconds)');
      const { allowedHosts } = h;
      if (allowedHosts !== undefined && (!Array.isArray(allowedHosts) || !allowedHosts.every(a => typeof a === 'string'))) problem('http.allowedHosts', 'must be a list of host[:port] strings');
      if (!Object.values(agents).some(a => a.tokenSha256 !== undefined)) problem('http', 'no agent has a tokenSha256: no HTTP client could ever connect');
      http = {
        host: String(host),
        port: Number(port),
        path: String(path),
        maxSessions: Number(maxSessions),
        maxSessionsPerAgent: Number(maxSessionsPerAgent),
        sessionIdleMs: Number(sessionIdleMs),
        ...(Array.isArray(allowedHosts) ? { allowedHosts: allowedHosts.map(String) } : {}),
      };
    }
  }
  if (stdio === undefined && http === undefined && !problems.some(p => p.startsWith('stdio') || p.startsWith('http'))) {
    problem('(root)', 'needs stdio (a local client) or http (remote clients), or both');
  }
  let codeMode: GatewayConfig['codeMode'];
  if (document.codeMode === true) codeMode = {};
  else if (isRecord(document.codeMode)) {
    const { isolation, deadlineMs, memoryMb, ...rest } = document.codeMode;
    for (const key of Object.keys(rest)) problem(`codeMode.${key}`, 'unknown key');
    if (isolation !== undefined && isolation !== 'worker' && isolation !== 'process' && isolation !== 'process-weak') problem('codeMode.isolation', 'must be worker, process or process-weak');
    for (const [key, value] of [['deadlineMs', deadlineMs], ['memoryMb', memoryMb]] as const) {
      if (value !== undefined && !(typeof value === 'number' && Number.isSafeInteger(value) && value > 0)) problem(`codeMode.${key}`, 'must be a positive integer');
    }
    codeMode = {
      ...(typeof isolation === 'string' ? { isolation: isolation as 'worker' | 'process' | 'process-weak' } : {}),
      ...(typeof deadlineMs === 'number' ? { deadlineMs } : {}),
      ...(typeof memoryMb === 'number' ? { memoryMb } : {}),
    };
  } else if (document.codeMode !== undefined && document.codeMode !== false) problem('codeMode', 'must be true, false or { isolation?, deadlineMs?, memoryMb? }');
  const elicitation = document.elicitation ?? true;
  if (typeof elicitation !== 'boolean') problem('elicitation', 'must be true or false');

  if (problems.length > 0) throw new ZtError('ZT_CONFIG_INVALID', `the gateway configuration has ${problems.length} problem${problems.length === 1 ? '' : 's'}: ${problems.slice(0, 5).join('; ')}`, { problems });
  return harden({
    baseDir,
    storeDir,
    ...(policy === undefined ? {} : { policy }),
    ...(durability === undefined ? {} : { durability: durability as 'durable' | 'relaxed' }),
    servers,
    agents,
    ...(stdio === undefined ? {} : { stdio }),
    ...(http === undefined ? {} : { http }),
    elicitation: elicitation === true,
    ...(codeMode === undefined ? {} : { codeMode }),
  });
};
harden(parseGatewayConfig);
