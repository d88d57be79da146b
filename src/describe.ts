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
 * The methods of each kind (their JSON Schemas, narrowed by the
 * capability's settings and argument rules) are src/describe-kinds.ts;
 * this module names the capabilities, renders them as TypeScript, lists
 * the tool catalogue they need and checks what the describer is asked.
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
import { IDENTIFIER, RESERVED_WORDS, commentText, docComment, propertyKey, schemaToTs } from './schema-ts.js';
import { describeMethods, isExact, serversFor, type DescribedRecord, type MethodDescription, type ServerTools } from './describe-kinds.js';
import type { ActionType, CapabilityConstraints } from './types.js';

export { MAX_DESCRIBED_TOOLS, serversFor } from './describe-kinds.js';
export type { DescribedRecord, JsonSchema, MethodDescription, ServerTools } from './describe-kinds.js';

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

const isRecord = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

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
  const { methods, note } = describeMethods(record, exact, catalogue);
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
