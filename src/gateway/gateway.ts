/**
 * The MCP gateway: MCP clients (Claude Desktop, Cursor, any SDK client) in
 * front, the kernel behind. Each MCP session is one agent, and an agent
 * acts only through the capabilities it holds.
 *
 * Invariants:
 * - Identity first: a stdio session is the one agent its configuration
 *   names; an HTTP request authenticates with a bearer token whose SHA-256
 *   is compared, in constant time, with every agent's (`authenticate`). No
 *   token, an unknown one or a revoked agent is refused before any tool is
 *   listed, and the refusal is recorded.
 * - `tools/list` shows what the session's agent holds live capabilities for
 *   (tools.ts); any change to that (a capability issued or revoked, the
 *   agent revoked, a policy reload, an upstream tool list changing) sends
 *   `notifications/tools/list_changed` to that agent's sessions.
 * - Every `tools/call` is one request through the kernel (holder, state,
 *   limits, policy, audit before the action, the action, the outcome
 *   record). A refusal comes back as a tool error (`isError: true`) whose
 *   text is the code, the kernel's reason and, for a policy denial, the
 *   rule that decided: what the caller may see of its own request, nothing
 *   about other agents. A call the agent has no tool for is recorded too.
 * - Revocation cuts calls in flight in the kernel; the client gets the
 *   outcome, an error result carrying ZT_REVOKED.
 * - Approvals: when a policy rule asks for one, a session whose client
 *   supports elicitation is asked (the connected person answers);
 *   otherwise the request waits in the runtime's pending queue for
 *   `ztaas approve` / `ztaas deny`; no answer in time denies (kernel).
 * - Upstream resources and prompts are not exposed: the gateway announces
 *   the tools capability only.
 */
import { harden } from '../harden.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema, McpError, ErrorCode as McpErrorCode, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ZtError, codeOf, reasonOf, type ErrorCode } from '../errors.js';
import { MAX_APPROVAL_NOTE_LENGTH } from '../approval.js';
import { makeGovernedTools, refusalText, type GovernedTools, type ToolRuntime } from '../governed-tools.js';
import type { GatewayConfig } from './config.js';
import type { RoutedCall } from './tools.js';
import type { CapabilitySetDescription } from '../describe.js';
import type { CodeRunOptions, CodeRunResult } from '../runtime.js';

/** The code-mode tool's name. */
export const EXECUTE_CODE = 'execute_code';
const MAX_CODE_CHARS = 256 * 1024;

const executeCodeTool = (typescript: string) => ({
  name: EXECUTE_CODE,
  description:
    'Run JavaScript or TypeScript (erasable syntax) in a fresh sandbox that holds your capabilities as `caps`. ' +
    'Write a function body: `await` and `return` work at top level; return the result you want back (plain data). ' +
    'No imports. console.log lines come back with the result. Every capability call is checked and recorded; a refused one throws an error whose message starts with its code.\n\n' +
    typescript,
  inputSchema: {
    type: 'object',
    properties: {
      code: { type: 'string', description: 'the program: a function body, or a module with `export default async function main({ caps, input })`' },
      language: { enum: ['javascript', 'typescript'] },
      input: { description: 'plain data handed to the program as `input`' },
    },
    required: ['code'],
    additionalProperties: false,
  },
  annotations: { readOnlyHint: false, openWorldHint: true },
});

/** What the gateway needs of a `SandboxRuntime`. */
export interface GatewayRuntime extends ToolRuntime {
  describeCapabilities(agentId: string): Promise<CapabilitySetDescription>;
  runCode(options: CodeRunOptions): Promise<CodeRunResult>;
  onApproval(handler: (request: ApprovalRequestView) => ApprovalAnswerView | undefined | Promise<ApprovalAnswerView | undefined>): () => void;
  recordGatewayEvent(event: Readonly<Record<string, unknown>>): Promise<void>;
}

export interface ApprovalRequestView {
  readonly approvalId: string;
  readonly agentId: string;
  readonly capabilityId: string;
  readonly actionType: string;
  readonly target: string;
  readonly args?: unknown;
  readonly ruleIds: readonly string[];
  readonly prompt?: string;
  readonly expiresAt: number;
}

export interface ApprovalAnswerView {
  readonly approved: boolean;
  readonly by: string;
  readonly note?: string;
  readonly via?: string;
}

export interface GatewayPowers {
  /** Lower-case hex SHA-256 of a UTF-8 string. */
  readonly sha256Hex: (text: string) => string;
  /** Constant-time equality of two equal-length hex strings. */
  readonly equalHex: (a: string, b: string) => boolean;
  readonly now: () => number;
  /** The gateway's own log (stderr): never a client's channel. */
  readonly log: (line: string) => void;
}

export type Identity = { readonly ok: true; readonly agentId: string } | { readonly ok: false; readonly code: ErrorCode; readonly reason: string; readonly agentId?: string };

const MAX_SHOWN_ARGS = 2000;
/** Refused connections recorded one by one per window; the rest are counted (`recordRefusal`). */
const REFUSALS_PER_WINDOW = 20;
const REFUSAL_WINDOW_MS = 60_000;
const MAX_CLIENT_NAME = 100;

/** Text cut to `max` characters, as well-formed Unicode (no lone surrogate), control characters shown as spaces. */
const shown = (text: string, max: number): string => {
  const plain = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, ' ');
  const cut = plain.length > max ? `${plain.slice(0, max - 1)}…` : plain;
  return cut.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
};

/** A client's self-chosen name, as the audit log shows it. */
const clientName = (name: unknown): string => {
  const text = typeof name === 'string' ? shown(name, MAX_CLIENT_NAME).replace(/\s+/g, ' ').trim() : '';
  return text === '' ? 'mcp-client' : text;
};

const errorResult = (code: string, message: string, rules: readonly string[] = []): CallToolResult => ({
  isError: true,
  content: [{ type: 'text', text: refusalText(code, message, rules) }],
  _meta: { 'ztaas/error': { code, ...(rules.length > 0 ? { rules: [...rules] } : {}) } },
});

const isRecord = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

/** A successful outcome as the tool's result. */
const successResult = (shape: RoutedCall['shape'], result: unknown): CallToolResult => {
  if (shape === 'tool' && isRecord(result) && Array.isArray(result.content)) {
    return {
      content: result.content as CallToolResult['content'],
      ...(result.structuredContent === undefined ? {} : { structuredContent: result.structuredContent as Record<string, unknown> }),
      ...(result.isError === true ? { isError: true } : {}),
    };
  }
  if (shape === 'text' && typeof result === 'string') return { content: [{ type: 'text', text: result }] };
  return {
    content: [{ type: 'text', text: JSON.stringify(result) }],
    ...(isRecord(result) ? { structuredContent: result } : {}),
  };
};

export interface GatewaySession {
  readonly server: Server;
  readonly agentId: string;
  readonly sessionId: string;
  readonly transport: 'stdio' | 'http';
  /** Tells the client its tool list changed. */
  notifyToolsChanged(): void;
}

export const makeGateway = (runtime: GatewayRuntime, config: GatewayConfig, powers: GatewayPowers) => {
  const governed = new Map<string, GovernedTools>();
  const sessions = new Set<GatewaySession>();
  const revoked = new Set<string>();
  let closed = false;
  let sessionCount = 0;

  const record = (event: Record<string, unknown>): Promise<void> =>
    runtime.recordGatewayEvent({ time: powers.now(), ...event }).catch((err: unknown) => powers.log(`gateway: could not record ${String(event.type)}: ${reasonOf(err) ?? String(err)}`));

  /** Tells the agent's sessions that its tools changed. */
  const changed = (agentId: string) => {
    for (const session of sessions) if (session.agentId === agentId) session.notifyToolsChanged();
  };

  /** The agent's tools (src/governed-tools.ts): rebuilt after any change, which its sessions are told of. */
  const toolsOf = (agentId: string): GovernedTools => {
    let tools = governed.get(agentId);
    if (tools === undefined) {
      tools = makeGovernedTools(runtime, agentId, { servers: Object.keys(config.servers), now: powers.now, log: line => powers.log(`gateway: ${line}`) });
      tools.onChange(() => changed(agentId));
      governed.set(agentId, tools);
    }
    return tools;
  };

  const stopEvents = runtime.onEvent(event => {
    if (event.type === 'agent.revoked' && typeof event.agentId === 'string') revoked.add(event.agentId);
  });

  /** Elicitation: the connected person of one of the agent's sessions answers, when its client can. */
  const stopApprovals = runtime.onApproval(async request => {
    if (!config.elicitation) return undefined;
    const session = [...sessions].find(s => s.agentId === request.agentId && s.server.getClientCapabilities()?.elicitation !== undefined);
    if (session === undefined) return undefined;
    let shownArgs = '';
    try {
      shownArgs = JSON.stringify(request.args ?? {});
    } catch {
      shownArgs = '(arguments)';
    }
    if (shownArgs.length > MAX_SHOWN_ARGS) shownArgs = `${shownArgs.slice(0, MAX_SHOWN_ARGS)}…`;
    const message = `${request.prompt ?? 'A call needs your approval.'}\nAgent ${request.agentId} asks to ${request.actionType} ${request.target}\nwith ${shownArgs}\n(rule ${request.ruleIds.join(', ')})`;
    const client = session.server.getClientVersion();
    try {
      const answer = await session.server.elicitInput(
        {
          message,
          requestedSchema: { type: 'object', properties: { approve: { type: 'boolean', title: 'Allow this call', default: false } }, required: ['approve'] },
        },
        { timeout: Math.max(1, request.expiresAt - powers.now()) },
      );
      // The client names itself: recorded as its claim, bounded and printable,
      // so an answer fits what the kernel accepts (an answer it cannot read denies).
      const by = `${clientName(client?.name)} user (session ${session.sessionId})`;
      const note = shown(message, MAX_APPROVAL_NOTE_LENGTH);
      if (answer.action === 'accept' && isRecord(answer.content) && answer.content.approve === true) return { approved: true, by, via: 'elicitation', note };
      if (answer.action === 'accept' || answer.action === 'decline') return { approved: false, by, via: 'elicitation', note };
      // Cancelled (dismissed): left to the pending queue.
      return undefined;
    } catch {
      return undefined;
    }
  });

  /**
   * Code mode: the model's program runs in a fresh vat holding the
   * session agent's live capabilities (named as `describeCapabilities`
   * names them); its calls are mediated and recorded under that agent, and
   * the run id links them to this call (`gateway.code-run`). Only the
   * value, the console and the error (code, message, position in the
   * submitted code) go back.
   */
  const executeCode = async (session: GatewaySession, args: unknown): Promise<CallToolResult> => {
    const mode = config.codeMode;
    if (mode === undefined) return errorResult('ZT_TOOL_UNKNOWN', `no tool named ${JSON.stringify(EXECUTE_CODE)}`);
    const given = isRecord(args) ? args : {};
    const { code, language = 'javascript', input } = given as { code?: unknown; language?: unknown; input?: unknown };
    if (typeof code !== 'string' || code.length === 0 || code.length > MAX_CODE_CHARS || (language !== 'javascript' && language !== 'typescript')) {
      void record({ type: 'gateway.call-refused', agentId: session.agentId, sessionId: session.sessionId, tool: EXECUTE_CODE, code: 'ZT_BAD_ARGUMENT' });
      return errorResult('ZT_BAD_ARGUMENT', `execute_code needs code (a string of at most ${MAX_CODE_CHARS} characters) and language javascript or typescript`);
    }
    let result: CodeRunResult;
    try {
      const { names } = await runtime.describeCapabilities(session.agentId);
      result = await runtime.runCode({
        agentId: session.agentId,
        source: code,
        language,
        capabilities: names,
        ...(input === undefined ? {} : { input }),
        ...(mode.isolation === undefined ? {} : { isolation: mode.isolation }),
        ...(mode.deadlineMs === undefined && mode.memoryMb === undefined ? {} : { limits: { ...(mode.deadlineMs === undefined ? {} : { deadlineMs: mode.deadlineMs }), ...(mode.memoryMb === undefined ? {} : { memoryMb: mode.memoryMb }) } }),
      });
    } catch (err) {
      const failed = codeOf(err) ?? 'ZT_EFFECT_FAILED';
      void record({ type: 'gateway.call-refused', agentId: session.agentId, sessionId: session.sessionId, tool: EXECUTE_CODE, code: failed });
      return errorResult(failed, reasonOf(err) ?? 'the code could not be run');
    }
    if (result.runId !== undefined) void record({ type: 'gateway.code-run', agentId: session.agentId, sessionId: session.sessionId, runId: result.runId, ok: result.ok ? 'yes' : 'no' });
    const consoleText = result.console.map(line => `[${line.level}] ${line.text}`).join('\n');
    const body = {
      ok: result.ok,
      ...(result.ok ? { value: result.value ?? null } : { error: result.error }),
      console: consoleText,
      ...(result.consoleTruncated ? { consoleTruncated: true } : {}),
      ...(result.runId === undefined ? {} : { runId: result.runId }),
    };
    const text = result.ok
      ? `${JSON.stringify(result.value ?? null)}${consoleText === '' ? '' : `\n--- console ---\n${consoleText}`}`
      : `${result.error?.code ?? 'ZT_EFFECT_FAILED'}: ${result.error?.message ?? 'the code failed'}${result.error?.line === undefined ? '' : ` (line ${result.error.line}${result.error.column === undefined ? '' : `, column ${result.error.column}`})`}${consoleText === '' ? '' : `\n--- console ---\n${consoleText}`}`;
    return { ...(result.ok ? {} : { isError: true }), content: [{ type: 'text', text }], structuredContent: body };
  };

  /**
   * One mediated call. A call that never reached the kernel (no such tool
   * for this agent, arguments not an object) is recorded here.
   */
  const callTool = async (session: GatewaySession, name: string, args: unknown): Promise<CallToolResult> => {
    if (name === EXECUTE_CODE && config.codeMode !== undefined) return executeCode(session, args);
    const result = await toolsOf(session.agentId).call(name, args);
    if (result.ok) return successResult(result.shape, result.result);
    if (!result.mediated) void record({ type: 'gateway.call-refused', agentId: session.agentId, sessionId: session.sessionId, tool: name.slice(0, 200), code: result.code });
    return errorResult(result.code, result.message, result.rules);
  };

  /** A new MCP session for an authenticated agent. */
  const openSession = (agentId: string, transport: 'stdio' | 'http', sessionId?: string): GatewaySession => {
    if (closed) throw new ZtError('ZT_SHUT_DOWN', 'the gateway is closing');
    sessionCount += 1;
    const id = sessionId ?? `${transport}-${sessionCount}`;
    const server = new Server({ name: 'ztaas-gateway', version: '0.1.0' }, { capabilities: { tools: { listChanged: true } } });
    // Notifications only once the client said it is initialized (the protocol's order).
    let initialized = false;
    server.oninitialized = () => {
      initialized = true;
    };
    const session: GatewaySession = {
      server,
      agentId,
      sessionId: id,
      transport,
      notifyToolsChanged: () => {
        if (initialized) server.sendToolListChanged().catch(() => undefined);
      },
    };
    server.setRequestHandler(ListToolsRequestSchema, async () => {
      if (revoked.has(agentId)) throw new McpError(McpErrorCode.InvalidRequest, 'ZT_AGENT_REVOKED: the agent has been revoked');
      const tools = await toolsOf(agentId).list();
      const listed: unknown[] = tools.map(t => ({ ...t }));
      if (config.codeMode !== undefined && tools.length > 0) listed.push(executeCodeTool((await runtime.describeCapabilities(agentId)).typescript));
      return { tools: listed as never };
    });
    server.setRequestHandler(CallToolRequestSchema, async request => callTool(session, request.params.name, request.params.arguments));
    server.onclose = () => {
      if (sessions.delete(session)) void record({ type: 'gateway.session-closed', agentId, sessionId: id, transport });
    };
    sessions.add(session);
    void record({ type: 'gateway.session-opened', agentId, sessionId: id, transport });
    return session;
  };

  /** Maps an `Authorization` header to an agent, in constant time over all tokens. */
  const authenticate = (authorization: string | undefined): Identity => {
    const match = typeof authorization === 'string' ? /^Bearer ([\x21-\x7e]{1,4096})$/.exec(authorization) : null;
    if (match === null) return harden({ ok: false, code: 'ZT_UNAUTHENTICATED', reason: 'a bearer token is required' });
    const hash = powers.sha256Hex(match[1] as string);
    let found: string | undefined;
    for (const [agentId, agent] of Object.entries(config.agents)) {
      if (agent.tokenSha256 !== undefined && powers.equalHex(hash, agent.tokenSha256) && found === undefined) found = agentId;
    }
    if (found === undefined) return harden({ ok: false, code: 'ZT_UNAUTHENTICATED', reason: 'the bearer token maps to no agent' });
    if (revoked.has(found)) return harden({ ok: false, code: 'ZT_AGENT_REVOKED', reason: 'the agent has been revoked', agentId: found });
    return harden({ ok: true, agentId: found });
  };

  /**
   * Refusals are recorded one by one up to REFUSALS_PER_WINDOW a minute;
   * past that (a flood of bad tokens) they are counted, and the count is
   * recorded as one record when the next window opens or the gateway
   * closes: the log says what happened without growing with the flood.
   */
  let refusalWindow = { start: powers.now(), recorded: 0, suppressed: 0 };
  const flushSuppressed = async (): Promise<void> => {
    if (refusalWindow.suppressed === 0) return;
    const { start, suppressed } = refusalWindow;
    const recorded = record({ type: 'gateway.session-refused', code: 'ZT_UNAUTHENTICATED', reason: `${suppressed} more refused connection${suppressed === 1 ? ' was' : 's were'} counted, not recorded one by one`, suppressed, windowStart: start });
    powers.log(`gateway: ${suppressed} refused connections in one minute (counted)`);
    refusalWindow = { ...refusalWindow, suppressed: 0 };
    await recorded;
  };

  /** Records a refused connection (never its token). */
  const recordRefusal = (transport: 'stdio' | 'http', identity: Identity, remote?: string) => {
    if (identity.ok) return;
    const now = powers.now();
    if (now - refusalWindow.start >= REFUSAL_WINDOW_MS) {
      void flushSuppressed();
      refusalWindow = { start: now, recorded: 0, suppressed: 0 };
    }
    if (refusalWindow.recorded >= REFUSALS_PER_WINDOW) {
      refusalWindow.suppressed += 1;
      return;
    }
    refusalWindow.recorded += 1;
    void record({ type: 'gateway.session-refused', transport, code: identity.code, reason: identity.reason, ...(identity.agentId === undefined ? {} : { agentId: identity.agentId }), ...(remote === undefined ? {} : { remote }) });
  };

  const close = async () => {
    closed = true;
    await flushSuppressed();
    stopEvents();
    for (const tools of governed.values()) tools.close();
    governed.clear();
    stopApprovals();
    await Promise.all([...sessions].map(s => s.server.close().catch(() => undefined)));
  };

  return harden({
    openSession,
    authenticate,
    recordRefusal,
    isRevoked: (agentId: string) => revoked.has(agentId),
    noteRevoked: (agentId: string) => {
      revoked.add(agentId);
      changed(agentId);
    },
    sessions: () => [...sessions],
    close,
  });
};
harden(makeGateway);

export type Gateway = ReturnType<typeof makeGateway>;
