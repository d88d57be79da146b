/**
 * What an MCP session's agent sees as tools, and how a tool call becomes
 * one mediated request. Pure: no I/O, no MCP SDK.
 *
 * Invariants:
 * - A tool is listed only for a live capability the session's agent holds:
 *   an upstream tool (TOOL capability whose `server/tool` pattern matches
 *   it, and whose definition is pinned: a changed or unpinned tool is
 *   withheld), or a native effector (READ: `read_file`, `list_directory`;
 *   WRITE: `write_file`; EXECUTE: `run_program`; NETWORK: `fetch_url`).
 * - Every call names exactly one capability and becomes one request for
 *   the kernel, which decides everything again (holder, state, limits,
 *   target, policy). The capability is the first live one of that kind
 *   whose pattern covers the target; when none does, the first one of that
 *   kind is named and the kernel denies and records the request
 *   (ZT_WRONG_TARGET): a refused call is audited like any other.
 * - Exposed names are unambiguous: upstream tools whose names map to the
 *   same exposed name (after the character replacement and the 64-character
 *   cut) are all withheld, whichever servers announce them.
 * - A tool name the agent holds no capability for is unknown to it: the
 *   answer is the same as for a tool that does not exist, and names nothing
 *   about other agents or the policy.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';
import { checkTarget, compileTarget, patternMatches, type CheckedTarget } from '../targets.js';
import type { ActionType } from '../types.js';

/** A capability as the gateway reads it from `listCapabilities`. */
export interface HeldCapability {
  readonly id: string;
  readonly actionType: ActionType;
  readonly target: string;
  readonly state: string;
  readonly constraints?: { readonly effect?: Readonly<Record<string, unknown>>; readonly expiresAt?: number };
}

/** An upstream tool as `SandboxRuntime.listTools` reports it. */
export interface UpstreamTool {
  readonly server: string;
  readonly name: string;
  readonly title?: string;
  readonly description?: string;
  readonly inputSchema: unknown;
  readonly outputSchema?: unknown;
  readonly annotations?: unknown;
  readonly status: string;
}

/** A tool as `tools/list` shows it. */
export interface ListedTool {
  readonly name: string;
  readonly title?: string;
  readonly description?: string;
  readonly inputSchema: Readonly<Record<string, unknown>>;
  readonly outputSchema?: Readonly<Record<string, unknown>>;
  readonly annotations?: Readonly<Record<string, unknown>>;
}

/** One request for the kernel. */
export interface RoutedCall {
  readonly capabilityId: string;
  readonly actionType: ActionType;
  readonly target: string;
  readonly args: Readonly<Record<string, unknown>>;
  /** How the effector's result becomes the tool's result. */
  readonly shape: 'tool' | 'text' | 'json';
}

/** An MCP client's names: letters, digits, `_` and `-`, at most 64 (what the strictest clients accept). */
const MAX_NAME = 64;
export const exposedToolName = (server: string, tool: string): string => `${server}__${tool}`.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, MAX_NAME);
harden(exposedToolName);

interface NativeTool {
  readonly name: string;
  readonly actionType: ActionType;
  readonly description: string;
  readonly inputSchema: Readonly<Record<string, unknown>>;
  readonly annotations: Readonly<Record<string, unknown>>;
  /** The target and effector arguments of a call, from the tool's arguments. */
  readonly route: (args: Readonly<Record<string, unknown>>) => { target: unknown; args: Record<string, unknown>; shape: RoutedCall['shape'] };
}

const str = { type: 'string' } as const;
const isRecord = (x: unknown): x is Readonly<Record<string, unknown>> => x !== null && typeof x === 'object' && !Array.isArray(x);
const optionalFields = (args: Readonly<Record<string, unknown>>, names: readonly string[]) => {
  const out: Record<string, unknown> = {};
  for (const name of names) if (args[name] !== undefined) out[name] = args[name];
  return out;
};

const NATIVE: readonly NativeTool[] = [
  {
    name: 'read_file',
    actionType: 'READ',
    description: 'Read a file you were granted, as text (or base64).',
    inputSchema: { type: 'object', properties: { path: { ...str, description: 'absolute path' }, encoding: { enum: ['utf8', 'base64'] } }, required: ['path'], additionalProperties: false },
    annotations: { readOnlyHint: true, openWorldHint: false },
    route: args => ({ target: args.path, args: { op: 'read', ...optionalFields(args, ['encoding']) }, shape: 'text' }),
  },
  {
    name: 'list_directory',
    actionType: 'READ',
    description: 'List a directory you were granted: names and types, sorted by name.',
    inputSchema: { type: 'object', properties: { path: { ...str, description: 'absolute path' } }, required: ['path'], additionalProperties: false },
    annotations: { readOnlyHint: true, openWorldHint: false },
    route: args => ({ target: args.path, args: { op: 'list' }, shape: 'json' }),
  },
  {
    name: 'write_file',
    actionType: 'WRITE',
    description: 'Write (replace, or append where granted) a file you were granted.',
    inputSchema: {
      type: 'object',
      properties: { path: { ...str, description: 'absolute path' }, content: str, encoding: { enum: ['utf8', 'base64'] }, append: { type: 'boolean' } },
      required: ['path', 'content'],
      additionalProperties: false,
    },
    annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: false },
    route: args => ({ target: args.path, args: { content: args.content, ...optionalFields(args, ['encoding', 'append']) }, shape: 'json' }),
  },
  {
    name: 'run_program',
    actionType: 'EXECUTE',
    description: 'Run a program you were granted (no shell), with arguments its grant allows.',
    inputSchema: {
      type: 'object',
      properties: { program: { ...str, description: 'absolute path of the program' }, argv: { type: 'array', items: str }, stdin: str, cwd: str },
      required: ['program'],
      additionalProperties: false,
    },
    annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: true },
    route: args => ({ target: args.program, args: optionalFields(args, ['argv', 'stdin', 'cwd']), shape: 'json' }),
  },
  {
    name: 'fetch_url',
    actionType: 'NETWORK',
    description: 'Fetch a URL you were granted (http or https).',
    inputSchema: {
      type: 'object',
      properties: { url: str, method: str, headers: { type: 'object', additionalProperties: str }, body: str },
      required: ['url'],
      additionalProperties: false,
    },
    annotations: { readOnlyHint: false, openWorldHint: true },
    route: args => ({ target: args.url, args: optionalFields(args, ['method', 'headers', 'body']), shape: 'json' }),
  },
];

const grantedTargets = (caps: readonly HeldCapability[]) => caps.map(c => c.target).slice(0, 20).join(', ');

/** Does a TOOL capability's `server/tool` pattern cover this upstream tool? */
const toolPatternMatches = (pattern: string, server: string, tool: string): boolean => {
  try {
    return compileTarget('TOOL', pattern).matches(`${server}/${tool}`);
  } catch {
    return false;
  }
};

/** The upstream tool's input schema with the capability's narrowing (`effect.inputSchema`) added. */
const narrowed = (announced: unknown, cap: HeldCapability): Readonly<Record<string, unknown>> => {
  const schema = isRecord(announced) ? announced : { type: 'object' };
  const narrowing = cap.constraints?.effect?.inputSchema;
  if (narrowing === undefined || narrowing === null || typeof narrowing !== 'object') return schema;
  const { $schema: _ignored, ...plain } = narrowing as Record<string, unknown>;
  const allOf = Array.isArray(schema.allOf) ? schema.allOf : [];
  return { ...schema, allOf: [...allOf, plain] };
};

export interface ToolCatalogue {
  readonly tools: readonly ListedTool[];
  /** Routes a `tools/call`; throws ZT_TOOL_UNKNOWN for a name not listed. */
  route(name: string, args: Readonly<Record<string, unknown>>): RoutedCall;
}

/**
 * The tools of one agent, from its live capabilities and the upstream
 * catalogue. `upstream` holds only tools of servers the gateway configures.
 */
export const makeToolCatalogue = (held: readonly HeldCapability[], upstream: readonly UpstreamTool[]): ToolCatalogue => {
  const live = held.filter(c => c.state === 'live');
  const tools: ListedTool[] = [];
  const routes = new Map<string, (args: Readonly<Record<string, unknown>>) => RoutedCall>();

  const toolCaps = live.filter(c => c.actionType === 'TOOL');
  // Two upstream tools whose exposed names coincide (`a__b.c` and `a__b_c`,
  // server `x__y` tool `z` and server `x` tool `y__z`, or past the 64-character
  // cut) are both withheld: one server must never answer for another's tool.
  const targetsByName = new Map<string, Set<string>>();
  for (const tool of upstream) {
    const name = exposedToolName(tool.server, tool.name);
    const targets = targetsByName.get(name) ?? new Set<string>();
    targets.add(`${tool.server}/${tool.name}`);
    targetsByName.set(name, targets);
  }
  for (const tool of upstream) {
    if (tool.status !== 'pinned') continue;
    const caps = toolCaps.filter(c => toolPatternMatches(c.target, tool.server, tool.name));
    const first = caps[0];
    if (first === undefined) continue;
    const name = exposedToolName(tool.server, tool.name);
    if (routes.has(name) || (targetsByName.get(name)?.size ?? 0) > 1) continue;
    tools.push(
      harden({
        name,
        ...(tool.title === undefined ? {} : { title: tool.title }),
        ...(tool.description === undefined ? {} : { description: tool.description }),
        inputSchema: narrowed(tool.inputSchema, first),
        ...(isRecord(tool.outputSchema) ? { outputSchema: tool.outputSchema } : {}),
        ...(isRecord(tool.annotations) ? { annotations: tool.annotations } : {}),
      }),
    );
    const target = `${tool.server}/${tool.name}`;
    routes.set(name, args => harden({ capabilityId: first.id, actionType: 'TOOL', target, args: { arguments: args }, shape: 'tool' }));
  }

  for (const native of NATIVE) {
    const caps = live.filter(c => c.actionType === native.actionType);
    if (caps.length === 0 || routes.has(native.name)) continue;
    tools.push(
      harden({
        name: native.name,
        description: `${native.description} Granted: ${grantedTargets(caps)}.`,
        inputSchema: native.inputSchema,
        annotations: native.annotations,
      }),
    );
    routes.set(native.name, args => {
      const routed = native.route(args);
      if (typeof routed.target !== 'string' || routed.target === '') throw new ZtError('ZT_BAD_ARGUMENT', `${native.name} needs ${native.actionType === 'NETWORK' ? 'a url' : native.actionType === 'EXECUTE' ? 'a program' : 'a path'}`);
      let checked: CheckedTarget | undefined;
      try {
        checked = checkTarget(native.actionType, routed.target);
      } catch {
        checked = undefined;
      }
      // The first capability whose pattern covers the target; else the first
      // of its kind, which the kernel will deny (and record) as the wrong target.
      const cap =
        (checked &&
          caps.find(c => {
            try {
              return patternMatches(compileTarget(native.actionType, c.target), checked);
            } catch {
              return false;
            }
          })) ??
        (caps[0] as HeldCapability);
      return harden({ capabilityId: cap.id, actionType: native.actionType, target: routed.target, args: routed.args, shape: routed.shape });
    });
  }

  return harden({
    tools: harden(tools),
    route: (name: string, args: Readonly<Record<string, unknown>>) => {
      const routeOf = routes.get(name);
      if (routeOf === undefined) throw new ZtError('ZT_TOOL_UNKNOWN', `no tool named ${JSON.stringify(name.slice(0, 100))}`);
      return routeOf(args);
    },
  });
};
harden(makeToolCatalogue);
