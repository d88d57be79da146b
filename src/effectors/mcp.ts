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
 *   limit (ZT_TOO_LARGE). A tool that announced an `outputSchema` must send
 *   `structuredContent` that satisfies it (ZT_TOOL_FAILED otherwise).
 *
 * Rug pulls. Every tool definition as announced is hashed and compared
 * with its pin (config pins, or store pins on first use) before anything
 * is sent: a `changed` or `unpinned` tool is refused with ZT_TOOL_CHANGED
 * until the operator accepts it (`acceptTool`). Listings are bounded and
 * refused whole, never truncated. The hashing, bounds, pins and change
 * reports are src/effectors/mcp-catalogue.ts; this module lists, checks
 * status before each call and calls.
 */
import { harden } from '../harden.js';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import { ZtError, assertZt } from '../errors.js';
import { ajvRegExpEngine } from '../regex.js';
import { isPlainRecord, optionalPositiveInt, readSettings, type TimerPowers } from './settings.js';
import type { Effector, GrantValidator } from './types.js';
import { hashListing, isToolHash, makeMcpPinKeeper, validatePins, type McpCatalogueEvent, type McpPinStore, type McpToolInfo, type McpToolPins, type SeenTool, type ToolListing } from './mcp-catalogue.js';

export { MAX_LISTING_BYTES, MAX_TOOL_DEFINITION_BYTES, MAX_TOOLS } from './mcp-catalogue.js';
export type { McpCatalogueEvent, McpPinStore, McpToolInfo, McpToolPins, ToolListing, ToolStatus } from './mcp-catalogue.js';

export interface McpStdioServerConfig {
  /** Absolute path of the server program (no shell, no PATH search). */
  readonly command: string;
  readonly args?: readonly string[];
  /** The server's whole environment: nothing is inherited. */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly connectTimeoutMs?: number;
  /** When present, only these tools, at these hashes, are usable (no trust on first use). */
  readonly pins?: McpToolPins;
}

export interface McpHttpServerConfig {
  /** Streamable HTTP endpoint, e.g. `http://127.0.0.1:3001/mcp`. */
  readonly url: string;
  /** Headers sent with every request (e.g. an operator's bearer token; never shown to agents). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly connectTimeoutMs?: number;
  /** When present, only these tools, at these hashes, are usable (no trust on first use). */
  readonly pins?: McpToolPins;
}

export type McpServerConfig = McpStdioServerConfig | McpHttpServerConfig;

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
    options: {
      readonly signal: AbortSignal;
      readonly timeoutMs: number;
      readonly onClose: () => void;
      /** The server sent `notifications/tools/list_changed`. */
      readonly onToolsChanged?: () => void;
    },
  ): Promise<McpClientLike>;
  /** Hex SHA-256 of a string's UTF-8 bytes (tool hashes). */
  sha256Hex(data: string): string;
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
    const { command, args, env, cwd, url, headers, connectTimeoutMs, pins, ...rest } = config;
    validatePins(name, pins);
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
  tools: Map<string, SeenTool>;
  readonly validators: Map<string, ValidateFunction>;
  readonly outputValidators: Map<string, ValidateFunction>;
  alive: boolean;
  /** A re-listing on its way (list_changed), and whether another was asked for meanwhile. */
  refreshing?: Promise<void>;
  again?: boolean;
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

/**
 * Lists, bounds and hashes a server's tools. Throws ZT_TOO_LARGE for a
 * listing over the bounds, ZT_TOOL_FAILED for one that is malformed.
 */
const fetchTools = async (client: McpClientLike, sha256Hex: (data: string) => string, signal: AbortSignal, timeoutMs: number): Promise<Map<string, SeenTool>> =>
  hashListing(await client.listTools({ signal, timeoutMs }), sha256Hex);

const errorCodeOf = (err: unknown): number | undefined => {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
};

export interface McpToolEffectorsOptions {
  readonly servers?: unknown;
  readonly powers: McpPowers;
  /** Where trust-on-first-use pins are kept; default: in memory. */
  readonly pinStore?: McpPinStore;
  /** Tool changes, acceptances and catalogue changes; a listener that throws is ignored. */
  readonly onEvent?: (event: McpCatalogueEvent) => void;
}

export const makeMcpToolEffectors = (options: McpToolEffectorsOptions) => {
  const servers = validateMcpServers(options.servers);
  const { powers } = options;
  const sha256Hex = (data: string) => powers.sha256Hex(data);
  const { pinOf, statusOf, observe, accept } = makeMcpPinKeeper({
    configPinsOf: server => (servers[server] as McpServerConfig).pins,
    pinStore: options.pinStore,
    onEvent: options.onEvent,
  });
  // JSON Schema `pattern`s (the server's and the operator's) run on RE2: linear in the agent's text.
  const ajv = new Ajv({ strict: false, allErrors: false, validateSchema: false, code: { regExp: ajvRegExpEngine } });
  const sessions = new Map<string, Promise<Session>>();
  const live = new Set<Session>();
  let closed = false;

  /** Lists `session`'s tools again and takes the listing in. */
  const relist = async (name: string, session: Session, signal: AbortSignal, timeoutMs: number): Promise<void> => {
    const seen = await fetchTools(session.client, sha256Hex, signal, timeoutMs);
    await observe(name, seen);
    session.tools = seen;
    session.validators.clear();
    session.outputValidators.clear();
  };

  /** After `notifications/tools/list_changed`: one re-listing at a time, one more if asked meanwhile. */
  const refreshSoon = (name: string, session: Session) => {
    if (session.refreshing) {
      session.again = true;
      return;
    }
    session.refreshing = (async () => {
      try {
        do {
          session.again = false;
          if (!session.alive || closed) return;
          const timeoutMs = (servers[name] as McpServerConfig).connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
          await relist(name, session, new AbortController().signal, timeoutMs).catch(() => undefined);
        } while (session.again);
      } finally {
        session.refreshing = undefined;
      }
    })();
  };

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
    const onToolsChanged = () => {
      if (session?.alive) refreshSoon(name, session);
    };
    const pending = (async () => {
      let client: McpClientLike | undefined;
      try {
        client = await powers.connect(name, config, { signal: controller.signal, timeoutMs, onClose: forget, onToolsChanged });
        controller.signal.throwIfAborted();
        const tools = await fetchTools(client, sha256Hex, controller.signal, timeoutMs);
        await observe(name, tools);
        session = { client, tools, validators: new Map(), outputValidators: new Map(), alive: true };
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

  /** A result checked against the tool's announced `outputSchema`, when it announced one. */
  const checkOutput = (session: Session, tool: SeenTool, result: { structuredContent?: unknown; isError: boolean }) => {
    const { outputSchema } = tool.info;
    if (outputSchema === undefined || result.isError) return;
    if (result.structuredContent === undefined) throw new ZtError('ZT_TOOL_FAILED', `${tool.info.name} announced an output schema but sent no structured content`);
    let validate = session.outputValidators.get(tool.info.name);
    if (!validate) {
      try {
        validate = compileSchema(ajv, outputSchema);
      } catch {
        throw new ZtError('ZT_TOOL_FAILED', `${tool.info.name} announced an output schema that cannot be used`);
      }
      session.outputValidators.set(tool.info.name, validate);
    }
    if (!validate(result.structuredContent)) throw new ZtError('ZT_TOOL_FAILED', `the result of ${tool.info.name} does not match its output schema: ${describeErrors(validate)}`);
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
      await relist(serverName, session, signal, timeoutMs).catch(() => undefined);
      tool = session.tools.get(toolName);
    }
    if (!tool) throw new ZtError('ZT_TOOL_UNKNOWN', `${serverName} has no tool ${toolName}`);
    // A rug pull (or a tool the config does not pin) is refused before anything is sent.
    const status = statusOf(serverName, toolName, tool.hash);
    if (status !== 'pinned') {
      throw new ZtError('ZT_TOOL_CHANGED', `${target} ${status === 'changed' ? 'changed since it was pinned' : 'is not pinned'}; the operator must accept it before it can be called`, {
        status,
        seenHash: tool.hash,
        ...(pinOf(serverName, toolName) === undefined ? {} : { pinnedHash: pinOf(serverName, toolName) }),
      });
    }
    let validate = session.validators.get(toolName);
    if (!validate) {
      validate = compileSchema(ajv, tool.info.inputSchema);
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
      const result = toPlainResult(raw, limit);
      checkOutput(session, tool, result);
      return result;
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

  const assertServer = (server: unknown): string => {
    assertZt(typeof server === 'string', 'ZT_BAD_ARGUMENT', 'an MCP server is named by a string');
    if (!Object.hasOwn(servers, server)) throw new ZtError('ZT_TOOL_UNKNOWN', `no MCP server ${server} is configured`);
    return server;
  };

  /** A fresh listing of `server`, taken in (pins, changes) first. */
  const freshListing = async (server: string): Promise<Map<string, SeenTool>> => {
    if (closed) throw new ZtError('ZT_SHUT_DOWN');
    const existing = sessions.get(server);
    const session = await openSession(server);
    // A session opened just now has just listed; an older one lists again.
    if (existing) {
      const timeoutMs = (servers[server] as McpServerConfig).connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
      await relist(server, session, new AbortController().signal, timeoutMs);
    }
    return session.tools;
  };

  /**
   * The catalogue, operator-level: every configured server's tools (or
   * `server`'s), listed afresh, each with its hash and pin status. An
   * unknown server is ZT_TOOL_UNKNOWN; a server that cannot be reached
   * rejects the whole call (ZT_TOOL_FAILED, ZT_TOO_LARGE).
   */
  const listTools = async (server?: string): Promise<ToolListing[]> => {
    const names = server === undefined ? Object.keys(servers) : [assertServer(server)];
    const out: ToolListing[] = [];
    for (const name of names) {
      const tools = await freshListing(name);
      for (const { info, hash } of tools.values()) {
        const pinnedHash = pinOf(name, info.name);
        out.push(harden({ server: name, ...info, hash, status: statusOf(name, info.name, hash), ...(pinnedHash === undefined ? {} : { pinnedHash }) }));
      }
    }
    return harden(out);
  };

  /**
   * Re-pins `server/tool` to `hash`, which must be the hash it announces
   * now (ZT_BAD_ARGUMENT otherwise, naming the hash seen); writes the pin
   * store and reports `tool.accepted` and `tools.changed`. A server pinned
   * in the configuration is refused (ZT_BAD_ARGUMENT): its pins change only
   * with the configuration.
   */
  const acceptTool = async (server: string, tool: string, hash: string): Promise<{ server: string; tool: string; hash: string; previousHash?: string }> => {
    const name = assertServer(server);
    assertZt(typeof tool === 'string' && tool !== '', 'ZT_BAD_ARGUMENT', 'a tool is named by a non-empty string');
    assertZt(isToolHash(hash), 'ZT_BAD_ARGUMENT', 'a tool hash is "sha256:" and 64 lowercase hex digits');
    if ((servers[name] as McpServerConfig).pins) {
      throw new ZtError('ZT_BAD_ARGUMENT', `the tools of ${name} are pinned in the configuration (mcpServers.${name}.pins); change the pin there`);
    }
    const seen = (await freshListing(name)).get(tool);
    if (!seen) throw new ZtError('ZT_TOOL_UNKNOWN', `${name} has no tool ${tool}`);
    if (seen.hash !== hash) throw new ZtError('ZT_BAD_ARGUMENT', `${name}/${tool} announces ${seen.hash} now, not the hash accepted`, { seenHash: seen.hash });
    return accept(name, tool, hash);
  };

  const close = async () => {
    closed = true;
    const pendings = [...sessions.values()];
    sessions.clear();
    await Promise.all(pendings.map(p => p.then(s => s.client.close(), () => undefined).catch(() => undefined)));
    await Promise.all([...live].map(s => s.client.close().catch(() => undefined)));
    live.clear();
  };

  return harden({ effector, validateGrant, listTools, acceptTool, close, serverNames: () => harden(Object.keys(servers)) });
};
harden(makeMcpToolEffectors);
