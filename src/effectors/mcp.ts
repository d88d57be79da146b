/**
 * MCP tool effector (TOOL). Invariant: a tool call reaches a server only
 * for a `server/tool` the capability and policy approved, with arguments
 * that satisfy both the tool's own input schema and the capability's
 * narrowing schema, and its result reaches the agent only as bounded plain
 * data.
 *
 * - Servers are configured by the operator (stdio command, or HTTP URL);
 *   the agent can only name them. One client per server, connected lazily
 *   on first use (bounded by `connectTimeoutMs`), re-connected after the
 *   server closes or crashes, closed on `close()`.
 * - Arguments are validated before the call: the tool's inputSchema as the
 *   server announced it (ZT_BAD_ARGUMENT), then `effect.inputSchema`, the
 *   operator's narrowing (ZT_ARGUMENT_DENIED). A schema that cannot be
 *   compiled denies. A tool the server does not list is ZT_TOOL_UNKNOWN.
 * - Revocation, deadline (`effect.timeoutMs`, ZT_TIMEOUT) and shutdown abort
 *   the call, and the SDK sends `notifications/cancelled` to the server.
 * - A server that crashes, hangs or answers with a protocol error yields
 *   ZT_TOOL_FAILED (messages are generic: server error text can name host
 *   paths). A tool-level error (`isError: true`) is the tool's output and
 *   crosses as data.
 * - The result is copied to plain JSON (`content`, `structuredContent`,
 *   `isError`) and bounded by `effect.maxResultBytes` and the kernel byte
 *   limit (ZT_TOO_LARGE).
 */
import { harden } from '../harden.js';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import { ZtError, assertZt } from '../errors.js';
import { ajvRegExpEngine } from '../regex.js';
import { isPlainRecord, optionalPositiveInt, readSettings, type TimerPowers } from './settings.js';
import type { Effector, GrantValidator } from './types.js';

export interface McpStdioServerConfig {
  /** Absolute path of the server program (no shell, no PATH search). */
  readonly command: string;
  readonly args?: readonly string[];
  /** The server's whole environment: nothing is inherited. */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly connectTimeoutMs?: number;
}

export interface McpHttpServerConfig {
  /** Streamable HTTP endpoint, e.g. `http://127.0.0.1:3001/mcp`. */
  readonly url: string;
  /** Headers sent with every request (e.g. an operator's bearer token; never shown to agents). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly connectTimeoutMs?: number;
}

export type McpServerConfig = McpStdioServerConfig | McpHttpServerConfig;

export interface McpToolInfo {
  readonly name: string;
  readonly inputSchema: unknown;
}

export interface McpClientLike {
  listTools(options: { readonly signal: AbortSignal; readonly timeoutMs: number }): Promise<readonly McpToolInfo[]>;
  callTool(
    name: string,
    args: Readonly<Record<string, unknown>>,
    options: { readonly signal: AbortSignal; readonly timeoutMs: number },
  ): Promise<unknown>;
  close(): Promise<void>;
}

export interface McpPowers extends TimerPowers {
  /**
   * Connects an SDK client to a configured server; `onClose` fires once when
   * the connection ends for any reason (crash, exit, close).
   */
  connect(
    name: string,
    config: McpServerConfig,
    options: { readonly signal: AbortSignal; readonly timeoutMs: number; readonly onClose: () => void },
  ): Promise<McpClientLike>;
}

const SETTINGS = harden(['inputSchema', 'timeoutMs', 'maxResultBytes']);
const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
const SERVER_NAME = /^[A-Za-z0-9_.:@-]+$/;

/** Checks an operator's server table; throws ZT_BAD_ARGUMENT. */
export const validateMcpServers = (servers: unknown): Readonly<Record<string, McpServerConfig>> => {
  if (servers === undefined) return harden({});
  assertZt(isPlainRecord(servers), 'ZT_BAD_ARGUMENT', 'mcpServers must be a record of name → server config');
  for (const [name, config] of Object.entries(servers)) {
    assertZt(SERVER_NAME.test(name), 'ZT_BAD_ARGUMENT', `MCP server name ${JSON.stringify(name)} must match ${SERVER_NAME.source}`);
    assertZt(isPlainRecord(config), 'ZT_BAD_ARGUMENT', `mcpServers.${name} must be an object`);
    const { command, args, env, cwd, url, headers, connectTimeoutMs, ...rest } = config;
    assertZt(Object.keys(rest).length === 0, 'ZT_BAD_ARGUMENT', `mcpServers.${name}: unknown key ${JSON.stringify(Object.keys(rest)[0])}`);
    assertZt((command === undefined) !== (url === undefined), 'ZT_BAD_ARGUMENT', `mcpServers.${name} needs exactly one of command or url`);
    if (command !== undefined) {
      assertZt(typeof command === 'string' && command.startsWith('/'), 'ZT_BAD_ARGUMENT', `mcpServers.${name}.command must be an absolute path (no PATH search)`);
      assertZt(args === undefined || (Array.isArray(args) && args.every(a => typeof a === 'string')), 'ZT_BAD_ARGUMENT', `mcpServers.${name}.args must be an array of strings`);
      assertZt(env === undefined || (isPlainRecord(env) && Object.values(env).every(v => typeof v === 'string')), 'ZT_BAD_ARGUMENT', `mcpServers.${name}.env must be a record of strings`);
      assertZt(cwd === undefined || (typeof cwd === 'string' && cwd.startsWith('/')), 'ZT_BAD_ARGUMENT', `mcpServers.${name}.cwd must be an absolute path`);
      assertZt(headers === undefined, 'ZT_BAD_ARGUMENT', `mcpServers.${name}: headers are for url servers`);
    } else {
      let parsed: URL | undefined;
      try {
        parsed = new URL(url as string);
      } catch {
        parsed = undefined;
      }
      assertZt(parsed !== undefined && (parsed.protocol === 'http:' || parsed.protocol === 'https:'), 'ZT_BAD_ARGUMENT', `mcpServers.${name}.url must be an http(s) URL`);
      assertZt(headers === undefined || (isPlainRecord(headers) && Object.values(headers).every(v => typeof v === 'string')), 'ZT_BAD_ARGUMENT', `mcpServers.${name}.headers must be a record of strings`);
      assertZt(args === undefined && env === undefined && cwd === undefined, 'ZT_BAD_ARGUMENT', `mcpServers.${name}: args, env and cwd are for command servers`);
    }
    assertZt(connectTimeoutMs === undefined || (typeof connectTimeoutMs === 'number' && Number.isSafeInteger(connectTimeoutMs) && connectTimeoutMs > 0), 'ZT_BAD_ARGUMENT', `mcpServers.${name}.connectTimeoutMs must be a positive integer`);
  }
  return harden(JSON.parse(JSON.stringify(servers)) as Record<string, McpServerConfig>);
};
harden(validateMcpServers);

interface Session {
  readonly client: McpClientLike;
  tools: Map<string, McpToolInfo>;
  readonly validators: Map<string, ValidateFunction>;
  alive: boolean;
}

/** Strips `$schema` (draft markers Ajv would try to resolve) and compiles; a schema that cannot compile denies. */
const compileSchema = (ajv: Ajv, schema: unknown): ValidateFunction => {
  assertZt(isPlainRecord(schema), 'ZT_TOOL_SCHEMA_INVALID', 'the tool announced no usable input schema');
  const { $schema: _ignored, ...rest } = schema;
  try {
    return ajv.compile(rest);
  } catch {
    throw new ZtError('ZT_TOOL_SCHEMA_INVALID', 'the tool announced an input schema that cannot be compiled');
  }
};

const describeErrors = (validate: ValidateFunction): string => {
  const first = validate.errors?.[0];
  if (!first) return 'does not match the schema';
  return `${first.instancePath || '(root)'} ${first.message ?? 'is invalid'}`.slice(0, 200);
};

/** Plain, bounded copy of a CallToolResult. */
const toPlainResult = (raw: unknown, limit: number) => {
  assertZt(isPlainRecord(raw), 'ZT_TOOL_FAILED', 'the tool server sent a malformed result');
  const { content = [], structuredContent, isError = false } = raw;
  assertZt(Array.isArray(content), 'ZT_TOOL_FAILED', 'the tool server sent a malformed result');
  const picked = {
    content,
    ...(structuredContent === undefined ? {} : { structuredContent }),
    isError: isError === true,
  };
  let json: string;
  try {
    json = JSON.stringify(picked);
  } catch {
    throw new ZtError('ZT_TOOL_FAILED', 'the tool result is not plain data');
  }
  if (json.length > limit) throw new ZtError('ZT_TOO_LARGE', `the tool result exceeds the limit of ${limit} bytes`);
  return harden(JSON.parse(json) as { content: unknown[]; structuredContent?: unknown; isError: boolean });
};

const listTools = async (client: McpClientLike, signal: AbortSignal, timeoutMs: number): Promise<Map<string, McpToolInfo>> => {
  const tools = await client.listTools({ signal, timeoutMs });
  return new Map(tools.map(tool => [tool.name, tool]));
};

const errorCodeOf = (err: unknown): number | undefined => {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
};

export const makeMcpToolEffectors = (options: { readonly servers?: unknown; readonly powers: McpPowers }) => {
  const servers = validateMcpServers(options.servers);
  const { powers } = options;
  // JSON Schema `pattern`s (the server's and the operator's) run on RE2: linear in the agent's text.
  const ajv = new Ajv({ strict: false, allErrors: false, validateSchema: false, code: { regExp: ajvRegExpEngine } });
  const sessions = new Map<string, Promise<Session>>();
  const live = new Set<Session>();
  let closed = false;

  const openSession = (name: string): Promise<Session> => {
    const existing = sessions.get(name);
    if (existing) return existing;
    const config = servers[name] as McpServerConfig;
    const timeoutMs = config.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const controller = new AbortController();
    const timer = powers.setTimeout(() => controller.abort(new ZtError('ZT_TOOL_FAILED', `MCP server ${name} did not start within ${timeoutMs} ms`)), timeoutMs);
    let session: Session | undefined;
    const forget = () => {
      if (session) {
        session.alive = false;
        live.delete(session);
      }
      if (sessions.get(name) === pending) sessions.delete(name);
    };
    const pending = (async () => {
      let client: McpClientLike | undefined;
      try {
        client = await powers.connect(name, config, { signal: controller.signal, timeoutMs, onClose: forget });
        controller.signal.throwIfAborted();
        const tools = await listTools(client, controller.signal, timeoutMs);
        session = { client, tools, validators: new Map(), alive: true };
        live.add(session);
        if (closed) throw new ZtError('ZT_SHUT_DOWN');
        return session;
      } catch (err) {
        forget();
        if (client) await client.close().catch(() => undefined);
        if (err instanceof ZtError) throw err;
        throw new ZtError('ZT_TOOL_FAILED', `MCP server ${name} could not be started or reached`);
      } finally {
        powers.clearTimeout(timer);
      }
    })();
    sessions.set(name, pending);
    return pending;
  };

  const effector: Effector = async ({ target, args, signal, maxBytes, constraints }) => {
    if (closed) throw new ZtError('ZT_SHUT_DOWN');
    const settings = readSettings(constraints, SETTINGS, 'TOOL');
    const timeoutMs = optionalPositiveInt(settings, 'timeoutMs', DEFAULT_TIMEOUT_MS, 24 * 60 * 60 * 1000);
    const limit = Math.min(optionalPositiveInt(settings, 'maxResultBytes', maxBytes), maxBytes);
    const [serverName = '', toolName = ''] = target.split('/');
    if (!Object.hasOwn(servers, serverName)) throw new ZtError('ZT_TOOL_UNKNOWN', `no MCP server ${serverName} is configured`);
    const { arguments: toolArgs = {} } = args as { arguments?: unknown };
    assertZt(isPlainRecord(toolArgs), 'ZT_BAD_ARGUMENT', 'arguments must be a record');
    signal.throwIfAborted();

    const session = await openSession(serverName);
    let tool = session.tools.get(toolName);
    if (!tool) {
      // Tool lists can change: refresh once before refusing.
      session.tools = await listTools(session.client, signal, timeoutMs).catch(() => session.tools);
      session.validators.clear();
      tool = session.tools.get(toolName);
    }
    if (!tool) throw new ZtError('ZT_TOOL_UNKNOWN', `${serverName} has no tool ${toolName}`);
    let validate = session.validators.get(toolName);
    if (!validate) {
      validate = compileSchema(ajv, tool.inputSchema);
      session.validators.set(toolName, validate);
    }
    if (!validate(toolArgs)) throw new ZtError('ZT_BAD_ARGUMENT', `arguments for ${toolName}: ${describeErrors(validate)}`);
    if (settings.inputSchema !== undefined) {
      const narrowing = compileSchema(ajv, settings.inputSchema);
      if (!narrowing(toolArgs)) throw new ZtError('ZT_ARGUMENT_DENIED', `arguments for ${toolName}: ${describeErrors(narrowing)}`);
    }

    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    // Revoked while connecting or validating: never send the call at all.
    if (signal.aborted) controller.abort(signal.reason);
    const timer = powers.setTimeout(() => controller.abort(new ZtError('ZT_TIMEOUT', `${target} did not answer within ${timeoutMs} ms; cancelled`)), timeoutMs);
    try {
      controller.signal.throwIfAborted();
      const raw = await session.client.callTool(toolName, toolArgs, { signal: controller.signal, timeoutMs });
      return toPlainResult(raw, limit);
    } catch (err) {
      if (controller.signal.aborted) throw controller.signal.reason;
      if (err instanceof ZtError) throw err;
      const code = errorCodeOf(err);
      if (code === -32601) throw new ZtError('ZT_TOOL_UNKNOWN', `${serverName} has no tool ${toolName}`);
      if (code === -32001) throw new ZtError('ZT_TIMEOUT', `${target} did not answer in time`);
      if (!session.alive) throw new ZtError('ZT_TOOL_FAILED', `MCP server ${serverName} closed the connection during the call`);
      throw new ZtError('ZT_TOOL_FAILED', `${target} failed${code === undefined ? '' : ` (MCP error ${code})`}`);
    } finally {
      powers.clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  };

  const validateGrant: GrantValidator = (target, constraints) => {
    const parts = typeof target === 'string' ? target.split('/') : [];
    assertZt(parts.length === 2, 'ZT_BAD_ARGUMENT', 'a TOOL target is "server/tool"');
    const server = parts[0] as string;
    if (!server.includes('*')) assertZt(Object.hasOwn(servers, server), 'ZT_BAD_ARGUMENT', `no MCP server named ${server} is configured`);
    const settings = readSettings(constraints, SETTINGS, 'TOOL');
    optionalPositiveInt(settings, 'timeoutMs', DEFAULT_TIMEOUT_MS, 24 * 60 * 60 * 1000);
    optionalPositiveInt(settings, 'maxResultBytes', 1);
    if (settings.inputSchema !== undefined) {
      try {
        compileSchema(ajv, settings.inputSchema);
      } catch {
        throw new ZtError('ZT_BAD_ARGUMENT', 'effect.inputSchema is not a JSON schema that compiles');
      }
    }
  };

  const close = async () => {
    closed = true;
    const pendings = [...sessions.values()];
    sessions.clear();
    await Promise.all(pendings.map(p => p.then(s => s.client.close(), () => undefined).catch(() => undefined)));
    await Promise.all([...live].map(s => s.client.close().catch(() => undefined)));
    live.clear();
  };

  return harden({ effector, validateGrant, close, serverNames: () => harden(Object.keys(servers)) });
};
harden(makeMcpToolEffectors);
