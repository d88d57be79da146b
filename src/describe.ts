/**
 * Typed capabilities the model can read: from capability records (and, for
 * TOOL capabilities, the upstream tool catalogue), the methods an agent can
 * call on each caretaker, as JSON Schemas and as a TypeScript declaration
 * (`declare const caps: { notes: { read(opts?: { … }): Promise<string> } }`).
 *
 * Invariants:
 * - Pure: this module computes text and data from what it is given; it
 *   reaches for nothing (the caller lists tools and picks the records).
 * - It says only what the holder may know: the capability's own id, kind,
 *   target, limits and the settings that shape its calls (READ ops, EXECUTE
 *   argument patterns, allowed environment names and working directory,
 *   NETWORK methods, TOOL narrowing). Never the values of an EXECUTE
 *   capability's fixed environment, an MCP server's configuration or
 *   another agent's capabilities.
 * - The signatures are the membrane's (src/membrane.ts `toRequest`): what
 *   is described is what a call with those arguments sends to the kernel.
 * - Upstream text is untrusted. Tool schemas go through `schemaToTs` and
 *   `boundSchema` (src/schema-ts.ts: bounded, escaped); tool names and
 *   descriptions appear in TypeScript only inside doc comments or JSON
 *   string literals. A tool that is not pinned (`changed`, `unpinned`) is
 *   described as withheld: its new schema and text are not repeated.
 *
 * Naming. A capability is described under the name the agent sees it by:
 * the key of `launchAgent({ capabilities: { notes: 'cap-id' } })`. Without
 * names, `capabilityName` makes one from the id: every character outside
 * `[A-Za-z0-9_$]` becomes `_`, a leading digit gets a `_` before it, a
 * reserved word a `_` after it, and a name already taken gets `_2`, `_3`, …
 * (in the order the capabilities were issued). The description's `names`
 * record (name → id) is what to pass as `launchAgent`'s `capabilities` so
 * that the agent holds them under exactly those names.
 */
import { harden } from './harden.js';
import { ZtError, type ErrorCode } from './errors.js';
import type { ToolListing } from './effectors/mcp.js';
import { IDENTIFIER, RESERVED_WORDS, boundSchema, commentText, docComment, propertyKey, schemaToTs } from './schema-ts.js';
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

export interface CapabilityDescription {
  readonly name: string;
  readonly capabilityId: string;
  readonly actionType: ActionType;
  readonly target: string;
  readonly description: string;
  readonly methods: readonly MethodDescription[];
  /** This capability as a member of `declare const caps: { … }`. */
  readonly typescript: string;
}

export interface CapabilitySetDescription {
  readonly agentId: string;
  readonly capabilities: readonly CapabilityDescription[];
  /** Name → capability id: pass it as `launchAgent({ capabilities })`. */
  readonly names: Readonly<Record<string, string>>;
  /** `declare const caps: { … };` for all of them. */
  readonly typescript: string;
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

/** The name `capabilityId` is described under when none is given (see the module header); `taken` is updated. */
export const capabilityName = (capabilityId: string, taken: Set<string>): string => {
  let base = capabilityId.replace(/[^A-Za-z0-9_$]/g, '_');
  if (base === '' || /^[0-9]/.test(base)) base = `_${base}`;
  if (RESERVED_WORDS.has(base) || base === '__proto__') base = `${base}_`;
  let name = base;
  for (let n = 2; taken.has(name); n += 1) name = `${base}_${n}`;
  taken.add(name);
  return name;
};
harden(capabilityName);

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

const isExact = (record: DescribedRecord): boolean => {
  try {
    return compileTarget(record.actionType, record.target).exact;
  } catch {
    return false;
  }
};

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

const limitsText = (c: CapabilityConstraints): string => {
  const parts: string[] = [];
  if (c.maxUses !== undefined) parts.push(`at most ${c.maxUses} uses in all`);
  if (c.rate !== undefined) parts.push(`at most ${c.rate.max} uses per ${c.rate.windowMs} ms`);
  if (c.maxBytes !== undefined) parts.push(`at most ${c.maxBytes} bytes per call`);
  if (c.bytesBudget !== undefined) parts.push(`at most ${c.bytesBudget} bytes in all`);
  if (c.expiresAt !== undefined) parts.push(`expires at ${new Date(c.expiresAt).toISOString()}`);
  return parts.join('; ');
};

const KIND_TEXT: Record<ActionType, string> = {
  READ: 'Reads',
  WRITE: 'Writes',
  EXECUTE: 'Runs the program',
  NETWORK: 'HTTP requests to',
  TOOL: 'MCP tool',
};

/** A method's TypeScript signature, indented by `indent`. */
const methodTs = (method: MethodDescription, indent: string): string => {
  const doc = docComment(method.description, indent);
  const result = `Promise<${schemaToTs(method.result, { indent })}>`;
  const params = isRecord(method.params) && Array.isArray(method.params.prefixItems) ? (method.params.prefixItems as unknown[]) : [];
  const min = isRecord(method.params) && typeof method.params.minItems === 'number' ? method.params.minItems : 0;
  const list = params.map((p, i) => {
    const title = isRecord(p) && typeof p.title === 'string' && IDENTIFIER.test(p.title) && !RESERVED_WORDS.has(p.title) ? p.title : `arg${i}`;
    return `${title}${i < min ? '' : '?'}: ${schemaToTs(p, { indent })}`;
  });
  if (isRecord(method.params) && method.params.items !== undefined && method.params.items !== false) {
    list.push(`...rest: ${schemaToTs({ type: 'array', items: method.params.items }, { indent })}`);
  }
  return `${doc}${indent}${method.name}(${list.join(', ')}): ${result};\n`;
};

/**
 * Describes one capability, held under `name`. `catalogue`: the tool
 * listings of the servers its TOOL target names (see `serversFor`).
 */
export const describeCapability = (name: string, record: DescribedRecord, catalogue: ReadonlyMap<string, ServerTools> = new Map()): CapabilityDescription => {
  const exact = isExact(record);
  let methods: MethodDescription[];
  let note = '';
  switch (record.actionType) {
    case ActionType.READ:
      methods = describeRead(record, exact);
      break;
    case ActionType.WRITE:
      methods = describeWrite(record, exact);
      break;
    case ActionType.EXECUTE:
      methods = describeExecute(record);
      break;
    case ActionType.NETWORK:
      methods = describeNetwork(record, exact);
      break;
    case ActionType.TOOL:
      ({ methods, note } = describeTool(record, exact, catalogue));
      break;
  }
  const description = [`${KIND_TEXT[record.actionType]} ${record.target}${exact ? '' : ' (a pattern: name the target in each call)'}`, limitsText(record.constraints), note].filter(Boolean).join('. ');
  const indent = '  ';
  const members = [
    ...methods.map(m => methodTs(m, `${indent}  `)),
    `${indent}  /** This description. Not a use of the capability, and not recorded. */\n${indent}  describe(): Promise<object>;\n`,
  ];
  const typescript = `${docComment(`${record.actionType} (${commentText(record.id, 128)}): ${description}`, indent)}${indent}${propertyKey(name)}: {\n${members.join('')}${indent}};\n`;
  return harden({ name, capabilityId: record.id, actionType: record.actionType, target: record.target, description, methods, typescript });
};
harden(describeCapability);

/** Wraps members into the whole declaration. */
export const capsDeclaration = (capabilities: readonly Pick<CapabilityDescription, 'typescript'>[]): string =>
  `declare const caps: {\n${capabilities.map(c => c.typescript).join('')}};\n`;
harden(capsDeclaration);

/**
 * Lists, once each, the servers these records need, as `ServerTools`:
 * a server that cannot be listed is recorded with its code, never thrown.
 */
export const listCatalogue = async (
  records: readonly DescribedRecord[],
  configured: readonly string[],
  listTools: ((server: string) => Promise<readonly ToolListing[]>) | undefined,
): Promise<Map<string, ServerTools>> => {
  const needed = new Set(records.flatMap(r => serversFor(r, configured)));
  const out = new Map<string, ServerTools>();
  await Promise.all(
    [...needed].map(async server => {
      if (!listTools) {
        out.set(server, harden({ ok: false, code: 'ZT_TOOL_FAILED' }));
        return;
      }
      try {
        out.set(server, harden({ ok: true, tools: await listTools(server) }));
      } catch (err) {
        const code = (err as { code?: unknown })?.code;
        out.set(server, harden({ ok: false, code: (typeof code === 'string' ? code : 'ZT_TOOL_FAILED') as ErrorCode }));
      }
    }),
  );
  // Insertion order follows the configuration, whatever order the listings came back in.
  return new Map([...configured].filter(s => out.has(s)).map(s => [s, out.get(s) as ServerTools]));
};
harden(listCatalogue);

/** Describes a set of capabilities under their names (name → record, in order). */
export const describeCapabilitySet = (agentId: string, held: ReadonlyArray<readonly [string, DescribedRecord]>, catalogue: ReadonlyMap<string, ServerTools>): CapabilitySetDescription => {
  const capabilities = held.map(([name, record]) => describeCapability(name, record, catalogue));
  const names: Record<string, string> = {};
  for (const c of capabilities) names[c.name] = c.capabilityId;
  return harden({ agentId, capabilities, names, typescript: capsDeclaration(capabilities) });
};
harden(describeCapabilitySet);

/** What the describer reads of the kernel: the capability table and the agent registry. */
export interface DescriberPowers {
  getCapability(id: string): (DescribedRecord & { readonly holder: string; readonly state: string }) | undefined;
  listCapabilities(filter: { agentId: string; state: 'live' }): ReadonlyArray<DescribedRecord & { readonly holder: string; readonly state: string }>;
  /** A registered agent (live or revoked): anything else is ZT_UNKNOWN_AGENT. */
  isKnownAgent(agentId: string): boolean;
  now(): number;
  /** The configured MCP servers' names. */
  readonly servers: readonly string[];
  /** A server's tool catalogue (`listTools`). */
  listTools?(server: string): Promise<readonly ToolListing[]>;
}

const NAME = /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/;

/**
 * The kernel's describer: `describeCapabilities` for the operator, and
 * `describeOne` for a caretaker's `describe()`. Only live, unexpired
 * capabilities the agent holds are described; neither records anything or
 * counts as a use.
 */
export const makeCapabilityDescriber = (powers: DescriberPowers) => {
  const usable = (r: { readonly state: string; readonly constraints: CapabilityConstraints }) =>
    r.state === 'live' && (r.constraints.expiresAt === undefined || r.constraints.expiresAt > powers.now());

  const describeHeld = async (agentId: string, held: ReadonlyArray<readonly [string, DescribedRecord]>): Promise<CapabilitySetDescription> => {
    const catalogue = await listCatalogue(
      held.map(([, r]) => r),
      powers.servers,
      powers.listTools ? s => (powers.listTools as (server: string) => Promise<readonly ToolListing[]>)(s) : undefined,
    );
    return describeCapabilitySet(agentId, held, catalogue);
  };

  /**
   * `names`: name → id, as `launchAgent`'s record form (a name is an
   * identifier, or the capability's own id as an array launch gives it);
   * every id must be held by `agentId`, live and unexpired. Without names,
   * every live capability the agent holds, named by `capabilityName`.
   */
  const describeCapabilities = async (agentId: string, options: { readonly names?: Readonly<Record<string, string>> } = {}): Promise<CapabilitySetDescription> => {
    if (typeof agentId !== 'string' || !powers.isKnownAgent(agentId)) throw new ZtError('ZT_UNKNOWN_AGENT', `no agent ${String(agentId)}`);
    const { names } = options;
    let held: Array<readonly [string, DescribedRecord]>;
    if (names !== undefined) {
      if (!isRecord(names)) throw new ZtError('ZT_BAD_ARGUMENT', 'names must be a record of names to capability ids');
      held = Object.entries(names).map(([name, id]) => {
        if (typeof id !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', `names.${name} must be a capability id`);
        if ((!NAME.test(name) && name !== id) || name === '__proto__') throw new ZtError('ZT_BAD_ARGUMENT', `capability name ${JSON.stringify(name)} must be an identifier (or the capability's own id)`);
        const record = powers.getCapability(id);
        if (!record) throw new ZtError('ZT_UNKNOWN_CAPABILITY', `no capability ${id}`);
        if (record.holder !== agentId) throw new ZtError('ZT_WRONG_HOLDER', `capability ${id} is held by another agent`);
        if (record.state !== 'live') throw new ZtError('ZT_REVOKED', `capability ${id} has been revoked`);
        if (!usable(record)) throw new ZtError('ZT_EXPIRED', `capability ${id} has expired`);
        return [name, record] as const;
      });
    } else {
      const taken = new Set<string>();
      held = powers
        .listCapabilities({ agentId, state: 'live' })
        .filter(usable)
        .map(record => [capabilityName(record.id, taken), record] as const);
    }
    return describeHeld(agentId, held);
  };

  /** One capability held by `agentId`, under `name`: ZT_REVOKED / ZT_EXPIRED when it is no longer usable. */
  const describeOne = async (agentId: string, capabilityId: string, name: string): Promise<CapabilityDescription> => {
    const record = powers.getCapability(capabilityId);
    if (!record || record.holder !== agentId) throw new ZtError('ZT_UNKNOWN_CAPABILITY', 'no such capability');
    if (record.state !== 'live') throw new ZtError('ZT_REVOKED');
    if (!usable(record)) throw new ZtError('ZT_EXPIRED');
    const { capabilities } = await describeHeld(agentId, [[name, record]]);
    return capabilities[0] as CapabilityDescription;
  };

  return harden({ describeCapabilities, describeOne });
};
harden(makeCapabilityDescriber);

export type CapabilityDescriber = ReturnType<typeof makeCapabilityDescriber>;
