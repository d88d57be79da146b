/**
 * The policy engine: a validated document compiled into per-action,
 * per-agent indexes, deciding each request synchronously in well under a
 * microsecond for typical policies.
 *
 * Invariants:
 * - default deny: no matching `permit` means deny;
 * - a matching `forbid` always wins over any `permit`;
 * - a rule whose evaluation throws counts as a denial (ZT_POLICY_ERROR),
 *   never as "skip", whatever its effect; so does any malformed request;
 * - a decision depends only on (policy, request): the clock, counters and
 *   taints come in `request.context`, recorded by the kernel, so replaying
 *   a recorded request gives the same decision;
 * - `decide` and `explain` agree on every request (a property test holds
 *   them together); the indexes only skip rules that cannot match.
 *
 * Index: for each action type, for each agent named by some rule (plus one
 * bucket for every other agent), the rules in scope; path rules sit in a
 * trie keyed by the literal leading segments of their patterns, so a
 * request visits only rules whose prefix it lies under.
 */
import { harden } from '../harden.js';
import { ZtError, type ErrorCode } from '../errors.js';
import { compileTarget, targetKindOf } from '../targets.js';
import { compileDelegation, makeDecideDelegation } from './delegations.js';
import { compileToolResources, withToolResources } from './tool-resources.js';
import { isActionType, type ActionType } from '../types.js';
import { explainCondition, type CondNode } from './conditions.js';
import { ALL_ACTIONS, compileRule, compileTaint, makeSink, scopeAdmits, type CompiledRule, type CompiledScope, type CompiledTaint } from './compile.js';
import {
  compilePattern,
  isNormalPath,
  isParsedUrl,
  parseUrlTarget,
  patternCovers,
  patternsOverlap,
  type AnyPattern,
  type ParsedUrl,
} from './patterns.js';
import { sharedPolicyValidator, type PolicyValidator } from './validate.js';
import { normalizePath } from '../paths.js';
import type {
  ApprovalRequirement,
  Decision,
  DecisionContext,
  DecisionRequest,
  Explanation,
  GrantRequest,
  Policy,
  PolicyDocument,
  PolicyRule,
  RuleTrace,
  Truth,
} from './types.js';

/**
 * One rule as it sits in an index: tested against the target (unless the
 * index position already proves the match), then its condition.
 */
interface Entry {
  readonly rule: CompiledRule;
  /** Set when the index position alone does not prove a target match. */
  readonly test: ((target: string, url: ParsedUrl | undefined) => boolean) | undefined;
  /** Exact path patterns: the normalized path (compared instead of calling `test`). */
  readonly exact: string | undefined;
  /** The path pattern's literal prefix (for placing it in the trie). */
  readonly prefix: readonly string[];
  /** True when the rule has more than one target pattern (so it may be reached twice). */
  readonly multi: boolean;
}

interface TrieNode {
  readonly entries: Entry[];
  children: Map<string, TrieNode> | undefined;
}

interface Bucket {
  /** For path actions. */
  readonly trie: TrieNode | undefined;
  /** For URL and tool actions: entries in document order. */
  readonly list: readonly Entry[];
}

interface ActionIndex {
  readonly byAgent: ReadonlyMap<string, Bucket>;
  readonly others: Bucket;
}

const newNode = (): TrieNode => ({ entries: [], children: undefined });

const buildBucket = (action: ActionType, rules: readonly CompiledRule[]): Bucket => {
  const kind = targetKindOf(action);
  const entries: Entry[] = [];
  for (const rule of rules) {
    if (!rule.actions.has(action)) continue;
    const t = rule.targets;
    if (t === undefined) {
      entries.push({ rule, test: undefined, exact: undefined, prefix: [], multi: false });
      continue;
    }
    const multi = t.path.length + t.url.length + t.tool.length > 1;
    if (kind === 'path') {
      for (const p of t.path) {
        const exact = p.exact ? `/${p.prefix.join('/')}` : undefined;
        entries.push({ rule, test: p.exact || p.subtree ? undefined : (path: string) => p.matches(path), exact, prefix: p.prefix, multi });
      }
    } else if (kind === 'url') {
      for (const p of t.url) entries.push({ rule, test: (_t, u) => p.matches(u as ParsedUrl), exact: undefined, prefix: [], multi });
    } else {
      for (const p of t.tool) entries.push({ rule, test: (tool: string) => p.matches(tool), exact: undefined, prefix: [], multi });
    }
  }
  if (kind !== 'path') return { trie: undefined, list: entries };
  const root = newNode();
  for (const entry of entries) {
    let node = root;
    for (const seg of entry.prefix) {
      node.children ??= new Map();
      let next = node.children.get(seg);
      if (!next) node.children.set(seg, (next = newNode()));
      node = next;
    }
    node.entries.push(entry);
  }
  return { trie: root, list: [] };
};

const buildIndex = (rules: readonly CompiledRule[]): ReadonlyMap<ActionType, ActionIndex> => {
  const named = new Set<string>();
  for (const r of rules) if (r.agents) for (const a of r.agents) named.add(a);
  const index = new Map<ActionType, ActionIndex>();
  for (const action of ALL_ACTIONS) {
    const byAgent = new Map<string, Bucket>();
    for (const agent of named) byAgent.set(agent, buildBucket(action, rules.filter(r => r.agents === undefined || r.agents.has(agent))));
    index.set(action, { byAgent, others: buildBucket(action, rules.filter(r => r.agents === undefined)) });
  }
  return index;
};

/** Per-decision scratch state (one allocation per decision; never shared). */
interface Scratch {
  readonly req: DecisionRequest;
  ctx: DecisionContext | undefined;
  target: string;
  url: ParsedUrl | undefined;
  forbids: CompiledRule[] | undefined;
  permits: CompiledRule[] | undefined;
  errors: CompiledRule[] | undefined;
  unmet: CompiledRule[] | undefined;
  /** Multi-target rules already evaluated for this request. */
  seen: CompiledRule[] | undefined;
}

/** Tests each entry's target and condition, sorting rules into the scratch lists. Never throws. */
const visit = (st: Scratch, entries: readonly Entry[]): void => {
  for (let i = 0; i < entries.length; i += 1) {
    const e = entries[i] as Entry;
    const rule = e.rule;
    if (e.multi) {
      if (st.seen !== undefined && st.seen.includes(rule)) continue;
    }
    if (e.exact !== undefined) {
      if (st.target !== e.exact) continue;
    } else if (e.test !== undefined) {
      let hit: boolean;
      try {
        hit = e.test(st.target, st.url);
      } catch {
        (st.errors ??= []).push(rule);
        if (e.multi) (st.seen ??= []).push(rule);
        continue;
      }
      if (!hit) continue;
    }
    if (e.multi) (st.seen ??= []).push(rule);
    const cond = rule.cond;
    if (cond !== undefined) {
      let ok: boolean;
      try {
        ok = cond.test(st.req, st.ctx, st.url);
      } catch {
        (st.errors ??= []).push(rule);
        continue;
      }
      if (!ok) {
        if (rule.effect === 'permit') (st.unmet ??= []).push(rule);
        continue;
      }
    }
    if (rule.effect === 'forbid') (st.forbids ??= []).push(rule);
    else (st.permits ??= []).push(rule);
  }
};

const byIndex = (a: CompiledRule, b: CompiledRule) => a.index - b.index;
const EMPTY: readonly string[] = harden([]);

export interface MakePolicyOptions {
  /** Reuse a validator (and its compiled schema) across many loads. */
  readonly validator?: PolicyValidator;
}

/**
 * Validates and compiles a policy document. Throws ZT_POLICY_INVALID (with
 * every problem located) when it is not valid; otherwise returns the policy.
 * The document is copied and hardened: later changes by the caller have no effect.
 */
export const makePolicy = (
  document: unknown,
  digest: (text: string) => string,
  canonicalize: (value: unknown) => string,
  options: MakePolicyOptions = {},
): Policy => {
  const validator = options.validator ?? sharedPolicyValidator();
  validator.validate(document);
  // A private copy: the caller keeps no handle on what is enforced.
  const doc = harden(JSON.parse(JSON.stringify(document)) as PolicyDocument);
  const hash = `sha256:${digest(canonicalize(doc))}`;
  const sink = makeSink();
  const rules = doc.rules.map((r, i) => compileRule(r, i, sink));
  const taints = (doc.taints ?? []).map((t, i) => compileTaint(t, i, sink));
  const delegations = (doc.delegations ?? []).map((d, i) => compileDelegation(d, i, sink.problems));
  const toolResources = compileToolResources(doc.toolResources ?? [], sink);
  if (sink.problems.length > 0) throw new ZtError('ZT_POLICY_INVALID', 'policy rejected', { problems: harden(sink.problems) });
  const index = buildIndex(rules);
  const rateWindows = harden([...sink.rateWindows].sort((a, b) => a - b));
  const argNames = harden([...sink.argNames].sort());
  const needsContext = rules.some(r => r.cond?.usesContext === true);

  // Decisions that name one rule are built once.
  const allowOne = rules.map(r => harden({ allowed: true, rules: harden([r.id]), policyHash: hash }) as Decision);
  const forbidOne = rules.map(r => harden({ allowed: false, code: 'ZT_POLICY_DENIED', rules: harden([r.id]), policyHash: hash }) as Decision);
  const errorOne = rules.map(r => harden({ allowed: false, code: 'ZT_POLICY_ERROR', rules: harden([r.id]), policyHash: hash }) as Decision);
  const defaultDeny: Decision = harden({ allowed: false, code: 'ZT_POLICY_DENIED', rules: EMPTY, policyHash: hash });
  const malformed: Decision = harden({ allowed: false, code: 'ZT_POLICY_ERROR', rules: EMPTY, policyHash: hash });
  const ruleIds = (list: CompiledRule[]) => harden(list.sort(byIndex).map(r => r.id));
  const build = (allowed: boolean, code: ErrorCode | undefined, list: CompiledRule[]): Decision =>
    harden(allowed ? { allowed, rules: ruleIds(list), policyHash: hash } : { allowed, code, rules: ruleIds(list), policyHash: hash });

  /** The request's target, normalized, and its parsed URL for NETWORK. Throws when malformed. */
  const prepare = (req: DecisionRequest): { action: ActionType; target: string; url: ParsedUrl | undefined } => {
    if (req === null || typeof req !== 'object') throw new ZtError('ZT_POLICY_ERROR', 'the request is not an object');
    const action = req.actionType;
    if (!isActionType(action)) throw new ZtError('ZT_POLICY_ERROR', 'the request has no valid action type');
    if (typeof req.agentId !== 'string') throw new ZtError('ZT_POLICY_ERROR', 'the request has no agent id');
    let target = req.target;
    if (typeof target !== 'string' || target.length === 0 || target.length > 4096) throw new ZtError('ZT_POLICY_ERROR', 'the request has no valid target');
    let url: ParsedUrl | undefined;
    switch (targetKindOf(action)) {
      case 'path':
        if (!isNormalPath(target)) target = normalizePath(target);
        break;
      case 'url': {
        // The kernel's parse of this very target, if it sent one (made by
        // parseUrlTarget, not a look-alike); otherwise parse here.
        const given = req.parsedUrl;
        url = isParsedUrl(given) && given.href === target ? given : parseUrlTarget(target);
        target = url.href;
        break;
      }
      case 'tool':
        break;
    }
    return { action, target, url };
  };

  /** Finds the first failing test of the first permit in scope whose condition failed. */
  const unmetCode = (rule: CompiledRule, req: DecisionRequest, url: ParsedUrl | undefined): ErrorCode => {
    try {
      const r = explainCondition(rule.cond as CondNode, req, req.context, url);
      return r.failed?.code ?? 'ZT_POLICY_DENIED';
    } catch {
      return 'ZT_POLICY_DENIED';
    }
  };

  const decide = (req: DecisionRequest): Decision => {
    const st: Scratch = { req, ctx: undefined, target: '', url: undefined, forbids: undefined, permits: undefined, errors: undefined, unmet: undefined, seen: undefined };
    try {
      // Inlined `prepare` for the common case; anything unusual takes the general path.
      const action = req.actionType;
      const target = req.target;
      let ai: ActionIndex | undefined;
      if ((action === 'READ' || action === 'WRITE' || action === 'EXECUTE') && typeof target === 'string' && target.length <= 4096 && isNormalPath(target) && typeof req.agentId === 'string') {
        ai = index.get(action);
        st.target = target;
      } else {
        const prepared = prepare(req);
        ai = index.get(prepared.action);
        st.target = prepared.target;
        st.url = prepared.url;
      }
      st.ctx = req.context;
      const bucket = (ai as ActionIndex).byAgent.get(req.agentId) ?? (ai as ActionIndex).others;
      const trie = bucket.trie;
      if (trie !== undefined) {
        const path = st.target;
        let node: TrieNode | undefined = trie;
        if (node.entries.length > 0) visit(st, node.entries);
        let from = 1;
        while (node.children !== undefined && from < path.length) {
          let to = path.indexOf('/', from);
          if (to < 0) to = path.length;
          node = node.children.get(path.slice(from, to));
          if (node === undefined) break;
          if (node.entries.length > 0) visit(st, node.entries);
          from = to + 1;
        }
      } else {
        visit(st, bucket.list);
      }
    } catch {
      return malformed;
    }
    const { errors, forbids, permits, unmet, url } = st;
    if (errors !== undefined) return errors.length === 1 ? (errorOne[(errors[0] as CompiledRule).index] as Decision) : build(false, 'ZT_POLICY_ERROR', errors);
    if (forbids !== undefined) return forbids.length === 1 ? (forbidOne[(forbids[0] as CompiledRule).index] as Decision) : build(false, 'ZT_POLICY_DENIED', forbids);
    if (permits !== undefined) return permits.length === 1 ? (allowOne[(permits[0] as CompiledRule).index] as Decision) : build(true, undefined, permits);
    if (unmet !== undefined) {
      unmet.sort(byIndex);
      return build(false, unmetCode(unmet[0] as CompiledRule, req, url), unmet);
    }
    return defaultDeny;
  };

  /** The same decision as `decide`, walking every rule in document order and saying why each did or did not apply. */
  const explain = (req: DecisionRequest): Explanation => {
    const trace: RuleTrace[] = [];
    const decision = decide(req);
    let prepared: ReturnType<typeof prepare> | undefined;
    let prepError: string | undefined;
    try {
      prepared = prepare(req);
    } catch (err) {
      prepError = err instanceof Error ? err.message : 'malformed request';
    }
    for (const rule of rules) {
      const base = { rule: rule.id, effect: rule.effect };
      if (prepared === undefined) {
        trace.push({ ...base, stage: 'error', error: prepError ?? 'malformed request' });
        continue;
      }
      if (rule.agents !== undefined && !rule.agents.has(req.agentId)) {
        trace.push({ ...base, stage: 'agent' });
        continue;
      }
      if (!rule.actions.has(prepared.action)) {
        trace.push({ ...base, stage: 'action' });
        continue;
      }
      if (rule.targets !== undefined) {
        const kind = targetKindOf(prepared.action);
        let hit = false;
        try {
          if (kind === 'path') hit = rule.targets.path.some(p => p.matches(prepared.target));
          else if (kind === 'url') hit = rule.targets.url.some(p => p.matches(prepared.url as ParsedUrl));
          else hit = rule.targets.tool.some(p => p.matches(prepared.target));
        } catch (err) {
          trace.push({ ...base, stage: 'error', at: `${rule.pointer}/targets`, error: err instanceof Error ? err.message : 'target test failed' });
          continue;
        }
        if (!hit) {
          trace.push({ ...base, stage: 'target' });
          continue;
        }
      }
      if (rule.cond !== undefined) {
        try {
          const r = explainCondition(rule.cond, req, req.context, prepared.url);
          if (!r.holds) {
            trace.push({ ...base, stage: 'condition', at: r.failed?.at ?? rule.cond.at, code: r.failed?.code ?? 'ZT_POLICY_DENIED' });
            continue;
          }
        } catch (err) {
          trace.push({ ...base, stage: 'error', at: rule.cond.at, error: err instanceof Error ? err.message : 'condition failed' });
          continue;
        }
      }
      trace.push({ ...base, stage: 'match' });
    }
    return harden({ decision, request: req, trace, taints: taintsFor(req) });
  };

  const taintsFor = (req: DecisionRequest): readonly string[] => {
    if (taints.length === 0) return EMPTY;
    let prepared: ReturnType<typeof prepare>;
    try {
      prepared = prepare(req);
    } catch {
      // A request that cannot be read acquires every taint: fail toward more restriction.
      return harden(taints.map(t => t.id));
    }
    const out: string[] = [];
    for (const t of taints) {
      try {
        if (scopeMatches(t, req.agentId, prepared.action, prepared.target, prepared.url)) out.push(t.id);
      } catch {
        out.push(t.id);
      }
    }
    return out.length === 0 ? EMPTY : harden(out);
  };

  const decideGrant = (grant: GrantRequest): Decision => {
    try {
      if (grant === null || typeof grant !== 'object' || !isActionType(grant.actionType) || typeof grant.holder !== 'string' || typeof grant.target !== 'string') {
        return malformed;
      }
      const kind = targetKindOf(grant.actionType);
      // Validates the capability's pattern exactly as the kernel does.
      compileTarget(grant.actionType, grant.target);
      const cap: AnyPattern = compilePattern(kind, grant.target);
      const knowledge = { ...(Array.isArray(grant.labels) ? { labels: grant.labels } : {}), ...(typeof grant.time === 'number' ? { time: grant.time } : {}) };
      const forbids: CompiledRule[] = [];
      const permits: CompiledRule[] = [];
      for (const rule of rules) {
        if (!scopeAdmits(rule, grant.holder, grant.actionType)) continue;
        const patterns: readonly AnyPattern[] | undefined = rule.targets === undefined ? undefined : rule.targets[kind];
        const truth: Truth = rule.cond ? rule.cond.staticTruth(knowledge) : 'yes';
        if (rule.effect === 'forbid') {
          if (truth === 'yes' && (patterns === undefined || patterns.some(p => patternCovers(p, cap)))) forbids.push(rule);
        } else if (truth !== 'no' && (patterns === undefined || patterns.some(p => patternsOverlap(p, cap)))) {
          permits.push(rule);
        }
      }
      if (forbids.length > 0) return build(false, 'ZT_POLICY_DENIED', forbids);
      if (permits.length === 0) return defaultDeny;
      return build(true, undefined, permits);
    } catch {
      return malformed;
    }
  };

  const decideDelegation = makeDecideDelegation(delegations, hash, malformed);

  // Permit rules that ask for a person's approval, by id (validation refuses `approval` on a forbid).
  const approvals = new Map<string, { index: number; timeoutMs: number; prompt?: string }>();
  doc.rules.forEach((r, index) => {
    if (r.effect === 'permit' && r.approval !== undefined) approvals.set(r.id, { index, ...r.approval });
  });
  const approvalFor = (decision: Decision): ApprovalRequirement | undefined => {
    if (approvals.size === 0 || decision === null || typeof decision !== 'object' || decision.allowed !== true) return undefined;
    const asking = decision.rules.flatMap(id => approvals.get(id) ?? []).sort((a, b) => a.index - b.index);
    const first = asking[0];
    if (first === undefined) return undefined;
    const prompt = asking.find(a => a.prompt !== undefined)?.prompt;
    return harden({
      ruleIds: asking.map(a => (doc.rules[a.index] as PolicyRule).id),
      timeoutMs: Math.min(...asking.map(a => a.timeoutMs)),
      ...(prompt === undefined ? {} : { prompt }),
    });
  };

  // Declared tool arguments are decided as the file and URL requests they amount to (src/policy/tool-resources.ts).
  const deciders = withToolResources(toolResources, { decide, explain, taintsFor }, hash);
  return harden({ hash, document: doc, rateWindows, argNames, needsContext, ...deciders, decideGrant, decideDelegation, approvalFor });
};
harden(makePolicy);

/** Does a scope (rule or taint) match this prepared request on agent, action and target? Throws like the target tests. */
const scopeMatches = (s: CompiledScope, agentId: string, action: ActionType, target: string, url: ParsedUrl | undefined): boolean => {
  if (!scopeAdmits(s, agentId, action)) return false;
  if (s.targets === undefined) return true;
  switch (targetKindOf(action)) {
    case 'path':
      return s.targets.path.some(p => p.matches(target));
    case 'url':
      return s.targets.url.some(p => p.matches(url as ParsedUrl));
    case 'tool':
      return s.targets.tool.some(p => p.matches(target));
  }
};

export type { CompiledRule, CompiledTaint };
