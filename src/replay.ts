/**
 * Decision replay. Every `request` record that reached the policy carries
 * what the policy was asked (agent, action, target, the context the kernel
 * supplied, and verbatim the arguments the policy's conditions read) and
 * what it answered (allowed or the code, the deciding rules, the policy
 * hash). Replay asks the policy again:
 * - against the policy recorded in the log (`policy.loaded` records carry
 *   the document): any difference is a failure of determinism or of the log;
 * - against another policy: the decisions that would change.
 *
 * Pure: records in, report out; the policy constructor is passed in.
 */
import { harden } from './harden.js';
import type { Decision, DecisionRequest, Policy } from './policy.js';

export interface ReplayDifference {
  readonly seq: number;
  readonly agentId: string;
  readonly actionType: string;
  readonly target: string;
  readonly recorded: { readonly decision: string; readonly code?: string; readonly rules: readonly string[] };
  readonly replayed: { readonly decision: string; readonly code?: string; readonly rules: readonly string[] };
}

/** A decision the record cannot replay under the policy asked: its rules read arguments the record does not hold. */
export interface NotReplayable {
  readonly seq: number;
  readonly code: 'ZT_NOT_REPLAYABLE';
  /** The top-level arguments the policy reads that the policy in force then did not (so were not recorded). */
  readonly arguments: readonly string[];
}

export interface ReplayReport {
  readonly records: number;
  /** Decisions that reached the policy and were asked again. */
  readonly replayed: number;
  readonly differences: readonly ReplayDifference[];
  /**
   * Decisions not asked again: the policy replayed against reads arguments
   * that the policy in force at the time did not, so the record does not
   * hold them (asking without them would report a difference that is not one).
   */
  readonly notReplayable: readonly NotReplayable[];
  /** Problems with the log itself (a policy whose hash does not match, a decision with no policy). */
  readonly problems: readonly string[];
}

/** A request record whose decision came from the policy (not from an earlier capability check). */
const reachedPolicy = (r: Record<string, unknown>) => r.type === 'request' && r.decidedBy === 'policy';

const summary = (d: Pick<Decision, 'allowed' | 'code' | 'rules'>) => ({
  decision: d.allowed ? 'allow' : 'deny',
  ...(d.allowed ? {} : { code: d.code ?? 'ZT_POLICY_DENIED' }),
  rules: [...d.rules].sort(),
});

export const replayDecisions = (
  records: Iterable<Record<string, unknown>>,
  makePolicyFor: (document: unknown) => Policy,
  against?: Policy,
): ReplayReport => {
  let current: Policy | undefined;
  let count = 0;
  let replayed = 0;
  const differences: ReplayDifference[] = [];
  const notReplayable: NotReplayable[] = [];
  const problems: string[] = [];
  for (const r of records) {
    count += 1;
    const seq = Number(r.seq);
    if (r.type === 'policy.loaded') {
      try {
        current = makePolicyFor(r.policy);
        if (current.hash !== r.policyHash) problems.push(`record ${seq}: the recorded policy hashes to ${current.hash}, not ${String(r.policyHash)}`);
      } catch (err) {
        current = undefined;
        problems.push(`record ${seq}: the recorded policy cannot be loaded (${String((err as Error)?.message ?? err)})`);
      }
      continue;
    }
    if (!reachedPolicy(r)) continue;
    const policy = against ?? current;
    if (!policy) {
      problems.push(`record ${seq}: a decision with no recorded policy before it`);
      continue;
    }
    if (!against && r.policyHash !== policy.hash) {
      problems.push(`record ${seq}: decided under ${String(r.policyHash)} but the policy in force was ${policy.hash}`);
      continue;
    }
    if (against) {
      // Arguments the policy then in force did not read were not recorded:
      // whether the call had them is unknown.
      const recordedNames = new Set(current?.argNames ?? []);
      const unknown = against.argNames.filter(name => !recordedNames.has(name));
      if (unknown.length > 0) {
        notReplayable.push(harden({ seq, code: 'ZT_NOT_REPLAYABLE', arguments: unknown }));
        continue;
      }
    }
    if (r.policyArgsDigested === true) {
      problems.push(`record ${seq}: the arguments the policy read were too large to record verbatim (digested); not replayed`);
      continue;
    }
    const request: DecisionRequest = {
      agentId: String(r.agentId),
      actionType: r.actionType as DecisionRequest['actionType'],
      target: String(r.target),
      args: (r.policyArgs as Record<string, unknown> | undefined) ?? {},
      ...(r.context ? { context: r.context as DecisionRequest['context'] } : {}),
    } as DecisionRequest;
    let now: ReturnType<typeof summary>;
    try {
      now = summary(policy.decide(harden(request)));
    } catch {
      now = { decision: 'deny', code: 'ZT_POLICY_ERROR', rules: [] };
    }
    replayed += 1;
    const then = {
      decision: String(r.decision),
      ...(r.decision === 'allow' ? {} : { code: String(r.code) }),
      rules: [...((r.rules as string[] | undefined) ?? [])].sort(),
    };
    if (JSON.stringify(then) !== JSON.stringify(now)) {
      differences.push(
        harden({ seq, agentId: request.agentId, actionType: request.actionType, target: request.target, recorded: then, replayed: now }),
      );
    }
  }
  return harden({ records: count, replayed, differences, notReplayable, problems });
};
harden(replayDecisions);
