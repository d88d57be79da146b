/**
 * Resource policy follows the resource, whatever the channel: a TOOL call
 * whose arguments name a file or a URL is also decided as the READ, WRITE,
 * EXECUTE or NETWORK request it amounts to.
 *
 * The threat: an agent holding the filesystem MCP server's `read_file`
 * tool asks it for `/data/secrets/id_rsa`, a path a `forbid` denies to
 * READ. The tool call is TOOL `fs/read_file`; without this module no file
 * rule ever sees the path.
 *
 * Invariants:
 * - the policy's `toolResources` declare, per tool pattern, which of the
 *   call's `arguments` are targets of which action type. For a TOOL call
 *   that the rules allow, every declared argument's value (a string, or
 *   each string of a list) is normalized as a target of its action type
 *   and decided as a request of that type by the same agent, with the same
 *   context; the call is allowed only if every one of them is. The first
 *   denial is the call's decision (its code and rules);
 * - a declared argument that is absent, not a string or list of strings,
 *   longer than MAX_RESOURCES, or not a valid target of its kind (a
 *   relative path, `~/…`, a non-http URL) denies with ZT_ARGUMENT_DENIED:
 *   what cannot be checked is not allowed;
 * - the derived requests' taints are the call's taints too;
 * - nothing here changes a decision for any call no declaration matches.
 */
import { harden } from '../harden.js';
import { reasonOf, ZtError, type ErrorCode } from '../errors.js';
import { normalizeTarget, normalizeUrlTarget, type ParsedUrl } from '../targets.js';
import type { CondSink } from './conditions.js';
import { compileToolPattern, isNormalPath, type ToolPattern } from './patterns.js';
import type { Decision, DecisionRequest, Explanation, ResourceAction, ToolResourceDeclaration } from './types.js';

/** Most targets one call's declared arguments may name. */
export const MAX_RESOURCES = 256;

const MAX_CACHED_DECISIONS = 4096;

interface CompiledToolResource {
  readonly targets: readonly ToolPattern[];
  readonly args: ReadonlyArray<readonly [string, ResourceAction]>;
}

/** Compiles the declarations; problems (malformed tool patterns) go to the sink with their pointers. */
export const compileToolResources = (decls: readonly ToolResourceDeclaration[], sink: CondSink): readonly CompiledToolResource[] => {
  // The kernel records the arguments the policy reads, verbatim, for replay.
  if (decls.length > 0) sink.argNames.add('arguments');
  return harden(
    decls.map((d, i) => {
      const targets = d.targets.flatMap((source, j) => {
        try {
          return [compileToolPattern(source)];
        } catch (err) {
          sink.problems.push({ pointer: `/toolResources/${i}/targets/${j}`, message: `invalid tool pattern: ${reasonOf(err) ?? 'malformed'}` });
          return [];
        }
      });
      return { targets, args: Object.entries(d.args) };
    }),
  );
};
harden(compileToolResources);

const isRecord = (x: unknown): x is Readonly<Record<string, unknown>> => x !== null && typeof x === 'object' && !Array.isArray(x);

const refuse = (message: string): never => {
  throw new ZtError('ZT_ARGUMENT_DENIED', message);
};

/**
 * The requests a TOOL call amounts to, by the declarations its target
 * matches; empty when none does. Throws ZT_ARGUMENT_DENIED when a declared
 * argument cannot be read as a target.
 */
const deriveRequests = (entries: readonly CompiledToolResource[], req: DecisionRequest): DecisionRequest[] => {
  const declared: Array<readonly [string, ResourceAction]> = [];
  for (const e of entries) if (e.targets.some(p => p.matches(req.target))) declared.push(...e.args);
  if (declared.length === 0) return [];
  const args: unknown = req.args;
  const toolArgs: unknown = isRecord(args) && Object.hasOwn(args, 'arguments') ? args.arguments : {};
  if (!isRecord(toolArgs)) return refuse('the tool arguments are not a record');
  const out: DecisionRequest[] = [];
  for (const [name, action] of declared) {
    const value = Object.hasOwn(toolArgs, name) ? toolArgs[name] : undefined;
    if (value === undefined) refuse(`argument ${name} names a resource (${action}) and is absent`);
    const values: readonly unknown[] = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if (typeof v !== 'string') refuse(`argument ${name} names a resource (${action}) and is not a string`);
      if (out.length >= MAX_RESOURCES) refuse(`the call names more than ${MAX_RESOURCES} resources`);
      let target: string;
      let parsedUrl: ParsedUrl | undefined;
      try {
        if (action === 'NETWORK') {
          parsedUrl = normalizeUrlTarget(v as string);
          target = parsedUrl.href;
        } else {
          // Already normal (the usual case): nothing to rewrite; otherwise normalize, or refuse.
          target = isNormalPath(v as string) && (v as string).length <= 4096 ? (v as string) : normalizeTarget(action, v as string);
        }
      } catch {
        return refuse(`argument ${name} is not a valid ${action === 'NETWORK' ? 'http(s) URL' : 'absolute path'}`);
      }
      // Plain (not hardened) on the hot path: it never leaves this module but inside a hardened explanation.
      const derived: DecisionRequest = { agentId: req.agentId, actionType: action, target, ...(parsedUrl ? { parsedUrl } : {}), ...(req.context === undefined ? {} : { context: req.context }) };
      out.push(derived);
    }
  }
  return out;
};

interface Deciders {
  decide(req: DecisionRequest): Decision;
  explain(req: DecisionRequest): Explanation;
  taintsFor(req: DecisionRequest): readonly string[];
}

/** Wraps the rules' deciders so declared tool arguments are decided as the requests they amount to. */
export const withToolResources = (entries: readonly CompiledToolResource[], base: Deciders, policyHash: string): Deciders => {
  if (entries.length === 0) return base;
  const applies = (req: DecisionRequest) => req !== null && typeof req === 'object' && req.actionType === 'TOOL' && typeof req.target === 'string';
  /** The derived requests, or the denial when they cannot be derived. */
  const derive = (req: DecisionRequest): DecisionRequest[] | Decision => {
    try {
      return deriveRequests(entries, req);
    } catch (err) {
      const code: ErrorCode = err instanceof ZtError ? err.code : 'ZT_POLICY_ERROR';
      return harden({ allowed: false, code, rules: harden([]), policyHash });
    }
  };

  const decide = (req: DecisionRequest): Decision => {
    const first = base.decide(req);
    if (!first.allowed || !applies(req)) return first;
    const derived = derive(req);
    if (!Array.isArray(derived)) return derived;
    if (derived.length === 0) return first;
    const rules = [...first.rules];
    for (const r of derived) {
      const d = base.decide(r);
      if (!d.allowed) return d;
      for (const id of d.rules) if (!rules.includes(id)) rules.push(id);
    }
    return allowing(rules);
  };

  /** Allowed decisions are built once per set of rules (a bounded cache: hardening one costs microseconds). */
  const allowed = new Map<string, Decision>();
  const allowing = (rules: string[]): Decision => {
    const key = rules.join('\0');
    const known = allowed.get(key);
    if (known !== undefined) return known;
    const made: Decision = harden({ allowed: true, rules: harden(rules), policyHash });
    if (allowed.size < MAX_CACHED_DECISIONS) allowed.set(key, made);
    return made;
  };

  const taintsFor = (req: DecisionRequest): readonly string[] => {
    const own = base.taintsFor(req);
    if (!applies(req)) return own;
    const derived = derive(req);
    if (!Array.isArray(derived) || derived.length === 0) return own;
    const all = new Set(own);
    for (const r of derived) for (const t of base.taintsFor(r)) all.add(t);
    return all.size === own.length ? own : harden([...all]);
  };

  const explain = (req: DecisionRequest): Explanation => {
    const own = base.explain(req);
    if (!applies(req)) return own;
    const derived = derive(req);
    const resources = Array.isArray(derived) ? derived.map(r => base.explain(r)) : [];
    return harden({ ...own, decision: decide(req), taints: taintsFor(req), ...(resources.length > 0 ? { resources } : {}) });
  };

  return harden({ decide, explain, taintsFor });
};
harden(withToolResources);
