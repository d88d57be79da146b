/**
 * Deciding a request: the kernel's ordered checks, then the policy. Nothing
 * here consumes a use, records anything or starts an effect; the mediation
 * path (mediation.ts) acts on what is decided here.
 *
 * Invariants:
 * - Checks run in one fixed order, so the same input always yields the same
 *   decision and code: shut down → unknown agent → agent revoked → unknown
 *   capability → wrong holder → (for each link of a delegated chain)
 *   revoked → expired → exhausted → rate → budget → wrong action → wrong
 *   target → arguments → policy.
 * - A request reaches the decider checked at the boundary (mediation.ts
 *   `admit`, or the membrane): its arguments are plain data the audit log
 *   can encode, and nothing here checks them again.
 * - Any error in a check or in the policy denies (ZT_POLICY_ERROR).
 * - The policy sees the concrete, normalized target, and reads only data
 *   the kernel records with the decision (`context`), so a decision can be
 *   replayed.
 * - A permitting decision whose matched permit rules ask for a person's
 *   approval says so (`approval`); the mediation path waits for the answer
 *   (approvals.ts) before anything is consumed.
 * - The target is normalized once, here: a URL is parsed once per request
 *   and that parsed form is what every link's pattern, the policy and the
 *   effector read (src/targets.ts).
 */
import type { ErrorCode } from '../errors.js';
import { harden } from '../harden.js';
import type { ApprovalRequirement, DecisionContext, DecisionRequest, Policy } from '../policy.js';
import { checkTarget, patternMatches, type CheckedTarget, type ParsedUrl } from '../targets.js';
import { digestText, recordableArgs, type TextDigest } from '../plain-data.js';
import type { ActionRequest } from '../types.js';
import type { AgentRegistry } from './agents.js';
import { argsAllowed } from './arg-rules.js';
import type { CapabilityTable, CapEntry } from './capability-table.js';

/** String arguments longer than this are recorded as a digest. */
const DIGEST_THRESHOLD = 256;

export interface Evaluation {
  readonly decision: { allowed: boolean; code?: ErrorCode; rules: readonly string[]; policyHash: string };
  readonly entry: CapEntry | undefined;
  readonly target: string;
  /**
   * The target as the decision record holds it: the checked target, or
   * one that failed its checks as it was sent if it is short, else as a
   * bounded digest (a refused input never inflates the log).
   */
  readonly recordedTarget: string | TextDigest;
  /** A NETWORK target parsed (its href is `target`), when the request passed the checks. */
  readonly url?: ParsedUrl;
  /** The audit form of the arguments, when the request got that far. */
  readonly args: Record<string, unknown> | undefined;
  /** What the policy was asked, when the request got that far (recorded for replay). */
  readonly decisionRequest?: DecisionRequest;
  /** The policy permits, but only with a person's approval (its matched permit rules ask for one). */
  readonly approval?: ApprovalRequirement;
}

/**
 * The checks one capability applies to a request, in order: revoked →
 * expired → exhausted → rate → budget → action → target → arguments.
 * (Drops use times that fell out of the rate window.)
 */
const checkEntry = (entry: CapEntry, req: ActionRequest, target: CheckedTarget | undefined, now: number): ErrorCode | undefined => {
  if (entry.state !== 'live') return 'ZT_REVOKED';
  const { expiresAt, maxUses, rate, bytesBudget } = entry.spec.constraints;
  if (expiresAt !== undefined && now >= expiresAt) return 'ZT_EXPIRED';
  if (maxUses !== undefined && entry.uses >= maxUses) return 'ZT_EXHAUSTED';
  if (rate !== undefined) {
    const times = entry.useTimes;
    while (times.length > 0 && (times[0] as number) <= now - rate.windowMs) times.shift();
    if (times.length >= rate.max) return 'ZT_RATE_LIMITED';
  }
  if (bytesBudget !== undefined && entry.bytes + entry.reservedBytes >= bytesBudget) return 'ZT_BUDGET_EXHAUSTED';
  if (entry.spec.actionType !== req.actionType) return 'ZT_WRONG_ACTION';
  if (target === undefined || !patternMatches(entry.pattern, target)) return 'ZT_WRONG_TARGET';
  if (!argsAllowed(entry.argRules, req.args)) return 'ZT_ARGUMENT_DENIED';
  return undefined;
};

export interface DeciderPowers {
  readonly sha256Hex: (data: string) => string;
  readonly canonicalJson: (value: unknown) => string;
  readonly currentPolicy: () => Policy;
  readonly agents: Pick<AgentRegistry, 'get'>;
  readonly table: Pick<CapabilityTable, 'entry' | 'chainOf'>;
  /** False once the kernel is shutting down: everything is denied then. */
  readonly isOpen: () => boolean;
}

/**
 * Audit form of the arguments: content is only ever digested; a string over
 * 256 characters, or any field over its share of the record, is recorded
 * as a bounded digest (src/plain-data.ts `recordableArgs`), never raw.
 */
const summarizeArgs = (
  powers: Pick<DeciderPowers, 'sha256Hex' | 'canonicalJson'>,
  args: Readonly<Record<string, unknown>>,
): Record<string, unknown> => {
  // Hot path: no arguments.
  let any = false;
  for (const _ in args) {
    any = true;
    break;
  }
  if (!any) return {};
  const rest: Record<string, unknown> = {};
  const digested: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(args)) {
    if (typeof value === 'string' && key === 'content') digested[key] = { sha256: powers.sha256Hex(value), length: value.length };
    else if (typeof value === 'string' && value.length > DIGEST_THRESHOLD) digested[key] = digestText(value, powers.sha256Hex);
    else rest[key] = value;
  }
  return { ...recordableArgs(rest, powers), ...digested };
};

export const makeDecider = (powers: DeciderPowers) => {
  const { currentPolicy, agents, table, isOpen } = powers;

  /** The ordered checks. Returns a denial code, or the live entry. */
  const check = (req: ActionRequest, now: number): { code: ErrorCode; entry?: CapEntry } | { entry: CapEntry; target: CheckedTarget } => {
    const agent = agents.get(req.agentId);
    if (!agent) return { code: 'ZT_UNKNOWN_AGENT' };
    if (agent.state !== 'live') return { code: 'ZT_AGENT_REVOKED' };
    const entry = table.entry(req.capabilityId);
    if (!entry) return { code: 'ZT_UNKNOWN_CAPABILITY' };
    if (entry.spec.holder !== req.agentId) return { code: 'ZT_WRONG_HOLDER', entry };
    let target: CheckedTarget | undefined;
    try {
      target = checkTarget(req.actionType, req.target);
    } catch {
      target = undefined;
    }
    if (entry.delegated) {
      for (const link of table.chainOf(entry)) {
        const code = checkEntry(link, req, target, now);
        if (code) return { code, entry };
      }
    } else {
      const code = checkEntry(entry, req, target, now);
      if (code) return { code, entry };
    }
    return { entry, target: target as CheckedTarget };
  };

  /**
   * The context the policy may read, all of it data the kernel records with
   * the decision: the clock, the agent's labels and taints, the capability's
   * use counts and the rate windows the policy asked for.
   */
  const contextFor = (agentId: string, presented: CapEntry, time: number): DecisionContext => {
    const policy = currentPolicy();
    const agent = agents.get(agentId);
    // A delegated copy answers for its original: the root of its chain has
    // counted every use of every copy, so limits cannot be reset by delegating.
    const chain = presented.delegated ? table.chainOf(presented) : [presented];
    const entry = chain[chain.length - 1] as CapEntry;
    const rates: Record<string, number> = {};
    const times = entry.policyUseTimes;
    const longest = policy.rateWindows.length > 0 ? (policy.rateWindows[policy.rateWindows.length - 1] as number) : 0;
    while (times.length > 0 && (times[0] as number) <= time - longest) times.shift();
    for (const windowMs of policy.rateWindows) {
      let n = 0;
      for (let i = times.length - 1; i >= 0 && (times[i] as number) > time - windowMs; i -= 1) n += 1;
      rates[String(windowMs)] = n;
    }
    return harden({
      time,
      agentLabels: agent ? [...agent.labels] : [],
      agentTaints: agent ? [...agent.taints] : [],
      capability: { id: entry.spec.id, uses: entry.uses, bytes: entry.bytes, issuedAt: entry.issuedAt },
      rates,
    });
  };

  /**
   * Decides a request without consuming anything or recording it: the
   * ordered checks, then the policy. Any error denies.
   */
  const evaluate = (request: ActionRequest, time: number): Evaluation => {
    const policy = currentPolicy();
    let entry: CapEntry | undefined;
    let target = request.target;
    let args: Record<string, unknown> | undefined;
    const deny = (code: ErrorCode) => ({ allowed: false, code, rules: [] as string[], policyHash: policy.hash });
    const refusedTarget = () => (target.length <= DIGEST_THRESHOLD ? target : digestText(target, powers.sha256Hex));
    try {
      if (!isOpen()) return { decision: deny('ZT_SHUT_DOWN'), entry, target, recordedTarget: refusedTarget(), args };
      const checked = check(request, time);
      entry = checked.entry;
      if ('code' in checked) return { decision: deny(checked.code), entry, target, recordedTarget: refusedTarget(), args };
      const { url } = checked.target;
      target = checked.target.target;
      const recordedTarget = target;
      args = summarizeArgs(powers, request.args);
      const decisionRequest = {
        agentId: request.agentId,
        actionType: request.actionType,
        target,
        ...(url === undefined ? {} : { parsedUrl: url }),
        args: request.args,
        ...(policy.needsContext ? { context: contextFor(request.agentId, entry as CapEntry, time) } : {}),
      };
      const decision = policy.decide(decisionRequest);
      const approval = decision.allowed ? policy.approvalFor(decision) : undefined;
      return { decision, entry, target, recordedTarget, ...(url === undefined ? {} : { url }), args, decisionRequest, ...(approval === undefined ? {} : { approval }) };
    } catch {
      return { decision: deny('ZT_POLICY_ERROR'), entry, target, recordedTarget: refusedTarget(), args };
    }
  };

  return harden({ evaluate, contextFor });
};
harden(makeDecider);

export type Decider = ReturnType<typeof makeDecider>;
