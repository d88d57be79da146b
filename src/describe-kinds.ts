/**
 * The methods of each kind of caretaker, as JSON Schemas: READ, WRITE,
 * EXECUTE, NETWORK and TOOL (one `call` per tool of the upstream
 * catalogue). src/describe.ts names the capabilities and renders these
 * methods as TypeScript.
 *
 * Invariants:
 * - Pure: data from the record and the catalogue it is given; nothing is
 *   reached for.
 * - It says only what the holder may know: the capability's target and the
 *   settings that shape its calls (READ ops, EXECUTE argument patterns,
 *   allowed environment names and working directory, NETWORK methods, TOOL
 *   narrowing), each narrowed by the capability's argument rules. Never the
 *   values of an EXECUTE capability's fixed environment or an MCP server's
 *   configuration.
 * - The signatures are the membrane's (src/membrane.ts `toRequest`): what
 *   is described is what a call with those arguments sends to the kernel.
 * - Upstream text is untrusted: tool schemas go through `boundSchema`
 *   (src/schema-ts.ts), tool titles and descriptions through `upstreamText`
 *   (bounded, well-formed). A tool that is not pinned (`changed`,
 *   `unpinned`) is described as withheld: its new schema and text are not
 *   repeated. A pattern grant describes at most MAX_DESCRIBED_TOOLS tools.
 */
import { harden } from './harden.js';
import type { ErrorCode } from './errors.js';
import type { ToolListing } from './effectors/mcp.js';
import { boundSchema } from './schema-ts.js';
import { compileTarget } from './targets.js';
import { ActionType, type ArgumentRule, type CapabilityConstraints } from './types.js';

export type JsonSchema = boolean | Readonly<Record<string, unknown>>;

/** One method of a caretaker (for TOOL grants over several tools: one per tool). */
export interface MethodDescription {
  readonly name: string;
  readonly description: string;
  /** The positional arguments: an array schema whose `prefixItems` carry each parameter (its `title` names it). */
  readonly params: JsonSchema;
  /** What the call resolves with. */
  readonly result: JsonSchema;
  /** TOOL: the `server/tool` this method calls. */
  readonly tool?: string;
  /** TOOL: the tool is not callable now (changed or unpinned upstream, unknown, or its server unreachable). */
  readonly withheld?: boolean;
}

/** What the describer needs of a capability record. */
export interface DescribedRecord {
  readonly id: string;
  readonly actionType: ActionType;
  readonly target: string;
  readonly constraints: CapabilityConstraints;
}

/** A server's tools as listed now, or why they could not be. */
export type ServerTools = { readonly ok: true; readonly tools: readonly ToolListing[] } | { readonly ok: false; readonly code: ErrorCode };

/** Most tools one TOOL capability over a pattern is described with, one method each. */
export const MAX_DESCRIBED_TOOLS = 64;
/** Longest description text kept from upstream. */
const MAX_UPSTREAM_TEXT = 2000;

const isRecord = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

/** Text from upstream kept as data: bounded, well-formed. */
const upstreamText = (x: unknown): string => {
  if (typeof x !== 'string') return '';
  const cut = x.length > MAX_UPSTREAM_TEXT ? `${x.slice(0, MAX_UPSTREAM_TEXT)}…` : x;
  return cut.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
};

const param = (title: string, schema: Record<string, unknown>): Record<string, unknown> => ({ ...schema, title });

const paramList = (params: readonly Record<string, unknown>[], required: number, rest?: JsonSchema): JsonSchema => ({
  type: 'array',
  prefixItems: params,
  minItems: required,
  ...(rest === undefined ? { maxItems: params.length, items: false } : { items: rest }),
});

const objectSchema = (properties: Record<string, unknown>, required: readonly string[] = [], extra = false): Record<string, unknown> => ({
  type: 'object',
  properties,
  ...(required.length > 0 ? { required: [...required] } : {}),
  additionalProperties: extra,
});

/** A schema narrowed by the capability's argument rule for `key` (constraints.args); undefined when the rule forbids the argument. */
const ruled = (rules: Readonly<Record<string, ArgumentRule>> | undefined, key: string, schema: Record<string, unknown>): Record<string, unknown> | undefined => {
  const rule = rules?.[key];
  if (!rule) return schema;
  if (rule.forbidden) return undefined;
  const notes: string[] = [];
  const out: Record<string, unknown> = { ...schema };
  if (rule.type !== undefined) out.type = rule.type;
  if (rule.enum !== undefined) out.enum = [...rule.enum];
  if (rule.maxLength !== undefined) out.maxLength = rule.maxLength;
  if (rule.min !== undefined) out.minimum = rule.min;
  if (rule.max !== undefined) out.maximum = rule.max;
  if (rule.pattern !== undefined) notes.push(`must match the glob ${JSON.stringify(rule.pattern)}`);
  if (notes.length > 0) out.description = [out.description, ...notes].filter(Boolean).join('; ');
  return out;
};

const requiredBy = (rules: Readonly<Record<string, ArgumentRule>> | undefined, key: string): boolean => rules?.[key]?.required === true;

/** Properties of an options record, the forbidden ones left out. */
const options = (rules: Readonly<Record<string, ArgumentRule>> | undefined, properties: Record<string, Record<string, unknown>>): { schema: Record<string, unknown>; required: boolean } => {
  const kept: Record<string, unknown> = {};
  const required: string[] = [];
  for (const [key, schema] of Object.entries(properties)) {
    const s = ruled(rules, key, schema);
    if (s === undefined) continue;
    kept[key] = s;
    if (requiredBy(rules, key) || s.required === true) required.push(key);
  }
  for (const schema of Object.values(kept) as Array<Record<string, unknown>>) delete schema.required;
  return { schema: objectSchema(kept, required), required: required.length > 0 };
};

const ENCODING = { type: 'string', enum: ['utf8', 'base64'], description: 'utf8 (default) or base64' };
const FILE_TYPE = { type: 'string', enum: ['file', 'directory', 'symlink', 'other'] };

const targetParam = (exact: boolean, target: string, what: string): Record<string, unknown> =>
  exact ? { type: 'string', description: `the ${what}; default and only value: ${target}` } : { type: 'string', description: `a ${what} matching ${target}`, required: true };

/** Whether `record`'s target names exactly one resource (a pattern, or a target that does not compile, is not exact). */
export const isExact = (record: DescribedRecord): boolean => {
  try {
    return compileTarget(record.actionType, record.target).exact;
  } catch {
    return false;
  }
};
harden(isExact);

const describeRead = (record: DescribedRecord, exact: boolean): MethodDescription[] => {
  const rules = record.constraints.args;
  const ops = Array.isArray(record.constraints.effect?.ops) ? (record.constraints.effect.ops as string[]) : ['read', 'stat', 'list'];
  const opts = options(rules, { path: targetParam(exact, record.target, 'file path'), encoding: { ...ENCODING } });
  const params = paramList([param('opts', opts.schema)], opts.required ? 1 : 0);
  const out: MethodDescription[] = [];
  if (ops.includes('read')) out.push({ name: 'read', description: 'Reads the file: its content as text (or base64).', params, result: { type: 'string' } });
  if (ops.includes('stat')) {
    out.push({
      name: 'stat',
      description: 'Describes the path itself (a symlink is reported, never followed).',
      params,
      result: objectSchema({ type: FILE_TYPE, size: { type: 'number' }, mtimeMs: { type: 'number' } }, ['type', 'size', 'mtimeMs']),
    });
  }
  if (ops.includes('list')) {
    out.push({
      name: 'list',
      description: 'Lists a directory, sorted by name.',
      params,
      result: { type: 'array', items: objectSchema({ name: { type: 'string' }, type: FILE_TYPE }, ['name', 'type'], true) },
    });
  }
  return out;
};

const describeWrite = (record: DescribedRecord, exact: boolean): MethodDescription[] => {
  const rules = record.constraints.args;
  const props: Record<string, Record<string, unknown>> = { path: targetParam(exact, record.target, 'file path'), encoding: { ...ENCODING, description: 'how content is encoded: utf8 (default) or base64' } };
  if (record.constraints.effect?.append === true) props.append = { type: 'boolean', description: 'append instead of replacing the file' };
  const opts = options(rules, props);
  const content = ruled(rules, 'content', { type: 'string', description: 'the new content (the file is replaced atomically)' }) ?? { type: 'string' };
  return [
    {
      name: 'write',
      description: 'Writes the file.',
      params: paramList([param('content', content), param('opts', opts.schema)], opts.required ? 2 : 1),
      result: objectSchema({ bytes: { type: 'number' } }, ['bytes']),
    },
  ];
};

/** An EXECUTE argument pattern (effectors/settings.ts `ArgPattern`) as a string schema. */
const patternSchema = (pattern: unknown): Record<string, unknown> => {
  if (typeof pattern === 'string') return { type: 'string', const: pattern };
  if (!isRecord(pattern)) return { type: 'string' };
  if (Array.isArray(pattern.oneOf)) return { type: 'string', enum: pattern.oneOf.filter(v => typeof v === 'string').slice(0, 256) };
  if (typeof pattern.regex === 'string') return { type: 'string', description: `matches the RE2 regular expression ${JSON.stringify(pattern.regex)} (whole value)` };
  if (typeof pattern.glob === 'string') return { type: 'string', description: `an absolute, normalized path matching ${JSON.stringify(pattern.glob)}` };
  return { type: 'string' };
};

const describeExecute = (record: DescribedRecord): MethodDescription[] => {
  const effect = record.constraints.effect ?? {};
  const positional = Array.isArray(effect.args) ? effect.args.slice(0, 256) : [];
  const rest = effect.restArgs;
  const minArgs = typeof effect.minArgs === 'number' ? effect.minArgs : positional.length;
  const maxArgs = typeof effect.maxArgs === 'number' ? effect.maxArgs : rest === undefined ? positional.length : 256;
  const argv: Record<string, unknown> = {
    type: 'array',
    prefixItems: positional.slice(0, maxArgs).map(patternSchema),
    minItems: minArgs,
    maxItems: maxArgs,
    items: rest === undefined ? false : patternSchema(rest),
    description: `the arguments after the program name (no shell)${typeof effect.argvRegex === 'string' ? `; joined by newlines they must match ${JSON.stringify(effect.argvRegex)}` : ''}`,
  };
  const props: Record<string, Record<string, unknown>> = { stdin: { type: 'string' } };
  if (isRecord(effect.agentEnv) && Object.keys(effect.agentEnv).length > 0) {
    const env: Record<string, unknown> = {};
    for (const [name, pattern] of Object.entries(effect.agentEnv).slice(0, 128)) env[name] = patternSchema(pattern);
    props.env = { ...objectSchema(env), description: 'environment variables the agent may set' };
  }
  if (typeof effect.cwd === 'string') props.cwd = { type: 'string', description: `working directory inside ${effect.cwd}` };
  const opts = options(record.constraints.args, props);
  const argvSchema = ruled(record.constraints.args, 'argv', argv) ?? argv;
  return [
    {
      name: 'run',
      description: `Runs ${record.target} with these arguments and waits for it to exit.`,
      params: paramList([param('argv', argvSchema), param('opts', opts.schema)], opts.required ? 2 : minArgs > 0 ? 1 : 0),
      result: objectSchema(
        {
          exitCode: { type: ['number', 'null'] },
          signal: { type: ['string', 'null'] },
          stdout: { type: 'string' },
          stderr: { type: 'string' },
          truncated: { type: 'boolean', description: 'output past its bound was cut and the program killed' },
        },
        ['exitCode', 'signal', 'stdout', 'stderr', 'truncated'],
      ),
    },
  ];
};

const describeNetwork = (record: DescribedRecord, exact: boolean): MethodDescription[] => {
  const methods = Array.isArray(record.constraints.effect?.methods) ? (record.constraints.effect.methods as string[]).map(m => String(m).toUpperCase()) : ['GET', 'HEAD'];
  const url = { ...targetParam(exact, record.target, 'URL') };
  delete url.required;
  const opts = options(record.constraints.args, {
    method: { type: 'string', enum: methods, description: `default ${methods.includes('GET') ? 'GET' : methods[0]}` },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    body: { type: 'string' },
  });
  return [
    {
      name: 'fetch',
      description: 'Sends an HTTP request; redirects are followed only to URLs this capability covers.',
      params: paramList([param('url', url), param('opts', opts.schema)], opts.required ? 2 : exact ? 0 : 1),
      result: objectSchema(
        {
          status: { type: 'number' },
          headers: { type: 'object', additionalProperties: { type: 'string' }, description: 'lower-cased names' },
          body: { type: 'string' },
          url: { type: 'string', description: 'the final URL' },
          redirects: { type: 'number' },
        },
        ['status', 'headers', 'body', 'url', 'redirects'],
      ),
    },
  ];
};

const TOOL_RESULT_BASE = { content: { type: 'array', items: { type: 'object' } }, isError: { type: 'boolean', description: 'the tool reported an error (its output says which)' } };

const WITHHELD_REASON: Record<string, string> = {
  changed: 'its definition changed upstream since it was pinned; calls are refused with ZT_TOOL_CHANGED until the operator accepts it',
  unpinned: 'it is not pinned; calls are refused with ZT_TOOL_CHANGED until the operator accepts it',
  unknown: 'its server does not announce it; calls are refused with ZT_TOOL_UNKNOWN',
};

const withheld = (tool: string, reason: string): MethodDescription => ({
  name: 'call',
  description: `${tool} is withheld: ${reason}.`,
  params: { type: 'array', items: {} },
  result: false,
  tool,
  withheld: true,
});

/** A pinned tool as a `call` method; `named`: the tool must be named in the options (pattern grants). */
const toolMethod = (tool: ToolListing, target: string, narrowing: unknown, named: boolean): MethodDescription => {
  const input = boundSchema(tool.inputSchema);
  const args: Record<string, unknown> =
    narrowing === undefined ? (isRecord(input) ? { ...input } : { allOf: [input] }) : { allOf: [input, boundSchema(narrowing)], description: 'the tool\'s input schema, narrowed by this capability' };
  const needsArgs = (isRecord(input) && Array.isArray(input.required) && input.required.length > 0) || (isRecord(narrowing) && Array.isArray(narrowing.required) && narrowing.required.length > 0);
  const params = [param('args', args)];
  if (named) params.push(param('options', objectSchema({ tool: { type: 'string', const: target } }, ['tool'])));
  const title = upstreamText(tool.title);
  return {
    name: 'call',
    description: upstreamText([title, tool.description].filter(x => typeof x === 'string' && x !== '').join(': ')) || `Calls ${target}.`,
    params: paramList(params, named ? 2 : needsArgs ? 1 : 0),
    result: objectSchema({ ...TOOL_RESULT_BASE, ...(tool.outputSchema === undefined ? {} : { structuredContent: boundSchema(tool.outputSchema) }) }, ['content', 'isError']),
    tool: target,
  };
};

const describeTool = (record: DescribedRecord, exact: boolean, catalogue: ReadonlyMap<string, ServerTools>): { methods: MethodDescription[]; note: string } => {
  const narrowing = record.constraints.effect?.inputSchema;
  const [server = ''] = record.target.split('/');
  if (exact) {
    const listed = catalogue.get(server);
    if (!listed || !listed.ok) {
      const code = listed && !listed.ok ? listed.code : 'ZT_TOOL_FAILED';
      return { methods: [withheld(record.target, `its server could not be listed (${code}); its schema is not known now`)], note: '' };
    }
    const tool = listed.tools.find(t => `${t.server}/${t.name}` === record.target);
    if (!tool) return { methods: [withheld(record.target, WITHHELD_REASON.unknown as string)], note: '' };
    if (tool.status !== 'pinned') return { methods: [withheld(record.target, WITHHELD_REASON[tool.status] as string)], note: '' };
    return { methods: [toolMethod(tool, record.target, narrowing, false)], note: '' };
  }
  let pattern;
  try {
    pattern = compileTarget(ActionType.TOOL, record.target);
  } catch {
    return { methods: [], note: '' };
  }
  const methods: MethodDescription[] = [];
  const held: string[] = [];
  const unlisted: string[] = [];
  for (const [name, listed] of catalogue) {
    if (!compileTargetSafe(server, name)) continue;
    if (!listed.ok) {
      unlisted.push(name);
      continue;
    }
    for (const tool of listed.tools) {
      const target = `${tool.server}/${tool.name}`;
      if (!pattern.matches(target)) continue;
      if (tool.status !== 'pinned') held.push(target);
      else if (methods.length < MAX_DESCRIBED_TOOLS) methods.push(toolMethod(tool, target, narrowing, true));
      else held.push(target);
    }
  }
  const notes = [
    held.length > 0 ? `not described here (withheld or past ${MAX_DESCRIBED_TOOLS} tools): ${held.slice(0, 32).join(', ')}${held.length > 32 ? ', …' : ''}` : '',
    unlisted.length > 0 ? `servers that could not be listed: ${unlisted.join(', ')}` : '',
  ].filter(Boolean);
  return { methods, note: notes.join('; ') };
};

/** Whether a server name matches the server part of a TOOL pattern. */
const compileTargetSafe = (serverPattern: string, server: string): boolean => {
  try {
    return compileTarget(ActionType.TOOL, `${serverPattern}/x`).matches(`${server}/x`);
  } catch {
    return false;
  }
};

/** The servers a TOOL capability needs listed, from the configured ones. */
export const serversFor = (record: DescribedRecord, configured: readonly string[]): string[] => {
  if (record.actionType !== ActionType.TOOL) return [];
  const [serverPattern = ''] = record.target.split('/');
  return configured.filter(name => compileTargetSafe(serverPattern, name));
};
harden(serversFor);

/**
 * The methods of `record`'s caretaker (`exact`: its target names one
 * resource) and, for TOOL, a note on the tools not described.
 * `catalogue`: the tool listings of the servers its TOOL target names.
 */
export const describeMethods = (record: DescribedRecord, exact: boolean, catalogue: ReadonlyMap<string, ServerTools>): { methods: MethodDescription[]; note: string } => {
  switch (record.actionType) {
    case ActionType.READ:
      return { methods: describeRead(record, exact), note: '' };
    case ActionType.WRITE:
      return { methods: describeWrite(record, exact), note: '' };
    case ActionType.EXECUTE:
      return { methods: describeExecute(record), note: '' };
    case ActionType.NETWORK:
      return { methods: describeNetwork(record, exact), note: '' };
    case ActionType.TOOL:
      return describeTool(record, exact, catalogue);
  }
};
harden(describeMethods);
