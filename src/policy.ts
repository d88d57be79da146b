/**
 * The policy engine: declarative `permit` / `forbid` rules over agent, action
 * type and target, evaluated on every invocation and at issue time.
 *
 * Invariants:
 * - default deny: no matching `permit` means deny;
 * - a matching `forbid` always wins over any `permit`;
 * - a rule that throws while being evaluated counts as a matching `forbid`
 *   (never as "skip"), so an erroring rule can only ever deny;
 * - a decision depends only on (policy, request), never on ambient state,
 *   and names the rule(s) that decided it and the policy's content hash.
 */
import { ZtError, type ErrorCode } from './errors.js';
import { compileTargetPattern, normalizePath, type TargetPattern } from './paths.js';
import { compileTarget } from './targets.js';
import { isActionType, isValidId, type ActionType } from './types.js';

export type RuleEffect = 'permit' | 'forbid';

export interface PolicyRule {
  readonly id: string;
  readonly effect: RuleEffect;
  readonly description?: string;
  /** Agent ids this rule applies to; omitted or `['*']` means every agent. */
  readonly agents?: readonly string[];
  /** Action types; omitted means every action type. */
  readonly actions?: readonly ActionType[];
  /** Target patterns (see `compileTargetPattern`); omitted means every target. */
  readonly targets?: readonly string[];
}

export interface PolicyDocument {
  readonly version: 1;
  readonly rules: readonly PolicyRule[];
}

export interface DecisionRequest {
  readonly agentId: string;
  readonly actionType: ActionType;
  /** A normalized absolute path. */
  readonly target: string;
}

export interface Decision {
  readonly allowed: boolean;
  /** Set when denied. */
  readonly code?: ErrorCode;
  /** Ids of the rules that decided: the matching forbids, or the matching permits. */
  readonly rules: readonly string[];
  readonly policyHash: string;
}

export interface Policy {
  readonly hash: string;
  readonly document: PolicyDocument;
  decide(request: DecisionRequest): Decision;
  /**
   * At issue time: could this grant ever be used? Denies when no `permit`
   * can match it, or a `forbid` covers all of it.
   */
  decideGrant(grant: { holder: string; actionType: ActionType; target: string }): Decision;
}

/**
 * The policy in force when the operator supplies none: everything a live
 * capability grants is permitted, nothing else. The capability itself is the
 * explicit authorization; a policy can only narrow it.
 */
export const CAPABILITY_CEILING_POLICY: PolicyDocument = harden({
  version: 1,
  rules: [
    {
      id: 'default:capability-grants',
      effect: 'permit',
      description: 'no operator policy: a live capability is the whole authorization',
    },
  ],
});

const problem = (where: string, what: string) => `${where}: ${what}`;

/**
 * Validates a policy document, listing every problem with its location.
 * Throws ZT_BAD_ARGUMENT with all problems; the caller's policy in force is
 * untouched.
 */
export const validatePolicyDocument = (doc: unknown): PolicyDocument => {
  const problems: string[] = [];
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ZtError('ZT_BAD_ARGUMENT', 'policy must be an object with version and rules', { problems: ['/: not an object'] });
  }
  const { version, rules, ...rest } = doc as Record<string, unknown>;
  for (const key of Object.keys(rest)) problems.push(problem(`/${key}`, 'unknown property'));
  if (version !== 1) problems.push(problem('/version', 'must be 1'));
  if (!Array.isArray(rules)) {
    problems.push(problem('/rules', 'must be an array'));
  } else {
    const seen = new Set<string>();
    rules.forEach((rule: unknown, i: number) => {
      const at = `/rules/${i}`;
      if (rule === null || typeof rule !== 'object' || Array.isArray(rule)) {
        problems.push(problem(at, 'must be an object'));
        return;
      }
      const { id, effect, description, agents, actions, targets, ...extra } = rule as Record<string, unknown>;
      for (const key of Object.keys(extra)) problems.push(problem(`${at}/${key}`, 'unknown property'));
      if (!isValidId(id)) problems.push(problem(`${at}/id`, 'must be an id ([A-Za-z0-9._:@/-], 1-128 chars)'));
      else if (seen.has(id)) problems.push(problem(`${at}/id`, `duplicate rule id ${JSON.stringify(id)}`));
      else seen.add(id);
      if (effect !== 'permit' && effect !== 'forbid') problems.push(problem(`${at}/effect`, 'must be "permit" or "forbid"'));
      if (description !== undefined && typeof description !== 'string') problems.push(problem(`${at}/description`, 'must be a string'));
      const checkList = (name: string, value: unknown, ok: (x: unknown) => string | undefined) => {
        if (value === undefined) return;
        if (!Array.isArray(value) || value.length === 0) {
          problems.push(problem(`${at}/${name}`, 'must be a non-empty array (omit it to match everything)'));
          return;
        }
        value.forEach((x, j) => {
          const why = ok(x);
          if (why) problems.push(problem(`${at}/${name}/${j}`, why));
        });
      };
      checkList('agents', agents, x => (x === '*' || isValidId(x) ? undefined : 'must be an agent id or "*"'));
      checkList('actions', actions, x => (isActionType(x) ? undefined : 'must be an action type'));
      checkList('targets', targets, x => {
        try {
          compileTargetPattern(x as string);
          return undefined;
        } catch (err) {
          return err instanceof ZtError ? err.message.replace(/^ZT_[A-Z_]+: /, '') : 'invalid pattern';
        }
      });
    });
  }
  if (problems.length > 0) {
    throw new ZtError('ZT_BAD_ARGUMENT', `policy rejected: ${problems.join('; ')}`, { problems });
  }
  return doc as PolicyDocument;
};
harden(validatePolicyDocument);

interface CompiledRule {
  readonly id: string;
  readonly effect: RuleEffect;
  readonly agents: ReadonlySet<string> | undefined;
  readonly actions: ReadonlySet<string> | undefined;
  readonly targets: readonly TargetPattern[] | undefined;
}

/** The literal directory prefix of a pattern: its segments before the first wildcard. */
const literalPrefix = (pattern: string): string[] => {
  const out: string[] = [];
  for (const seg of pattern.split('/').slice(1)) {
    if (/[*?]/.test(seg)) break;
    out.push(seg);
  }
  return out;
};
const isSegmentPrefix = (a: readonly string[], b: readonly string[]) =>
  a.length <= b.length && a.every((s, i) => s === b[i]);

/** Conservative: true unless the two patterns certainly share no path. */
const mayOverlap = (a: TargetPattern, b: TargetPattern): boolean => {
  if (a.exact) return b.matches(normalizePath(a.source));
  if (b.exact) return a.matches(normalizePath(b.source));
  const pa = literalPrefix(a.source);
  const pb = literalPrefix(b.source);
  return isSegmentPrefix(pa, pb) || isSegmentPrefix(pb, pa);
};

/** True when every path `inner` can match is certainly matched by `outer`. */
const covers = (outer: TargetPattern, inner: TargetPattern): boolean => {
  if (inner.exact) return outer.matches(normalizePath(inner.source));
  const segs = outer.source.split('/').slice(1);
  if (segs[segs.length - 1] !== '**' || segs.slice(0, -1).some(s => /[*?]/.test(s))) return false;
  return isSegmentPrefix(segs.slice(0, -1), literalPrefix(inner.source));
};

export const makePolicy = (
  document: unknown,
  digest: (text: string) => string,
  canonicalize: (value: unknown) => string,
): Policy => {
  const doc = validatePolicyDocument(document);
  const hash = `sha256:${digest(canonicalize(doc))}`;
  const rules: CompiledRule[] = doc.rules.map(r => ({
    id: r.id,
    effect: r.effect,
    agents: r.agents && !r.agents.includes('*') ? new Set(r.agents) : undefined,
    actions: r.actions ? new Set(r.actions) : undefined,
    targets: r.targets?.map(compileTargetPattern),
  }));
  const deny = (code: ErrorCode, ids: string[]): Decision =>
    harden({ allowed: false, code, rules: ids, policyHash: hash });

  const decide = (req: DecisionRequest): Decision => {
    const forbids: string[] = [];
    const errored: string[] = [];
    const permits: string[] = [];
    for (const rule of rules) {
      let matched: boolean;
      try {
        matched =
          (rule.agents === undefined || rule.agents.has(req.agentId)) &&
          (rule.actions === undefined || rule.actions.has(req.actionType)) &&
          (rule.targets === undefined || rule.targets.some(p => p.matches(req.target)));
      } catch {
        errored.push(rule.id);
        continue;
      }
      if (!matched) continue;
      (rule.effect === 'forbid' ? forbids : permits).push(rule.id);
    }
    if (errored.length > 0) return deny('ZT_POLICY_ERROR', errored);
    if (forbids.length > 0) return deny('ZT_POLICY_DENIED', forbids);
    if (permits.length === 0) return deny('ZT_POLICY_DENIED', []);
    return harden({ allowed: true, rules: permits, policyHash: hash });
  };

  const decideGrant = (grant: { holder: string; actionType: ActionType; target: string }): Decision => {
    const capPattern = compileTarget(grant.actionType, grant.target);
    const forbids: string[] = [];
    const permits: string[] = [];
    for (const rule of rules) {
      if (rule.agents !== undefined && !rule.agents.has(grant.holder)) continue;
      if (rule.actions !== undefined && !rule.actions.has(grant.actionType)) continue;
      if (rule.effect === 'forbid') {
        if (rule.targets === undefined || rule.targets.some(p => covers(p, capPattern))) forbids.push(rule.id);
      } else if (rule.targets === undefined || rule.targets.some(p => mayOverlap(p, capPattern))) {
        permits.push(rule.id);
      }
    }
    if (forbids.length > 0) return deny('ZT_POLICY_DENIED', forbids);
    if (permits.length === 0) return deny('ZT_POLICY_DENIED', []);
    return harden({ allowed: true, rules: permits, policyHash: hash });
  };

  return harden({ hash, document: doc, decide, decideGrant });
};
harden(makePolicy);
