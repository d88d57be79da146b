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
 * A person's answer to a call that needed approval is part of the
 * decision's context: the decision record holds it (`approval`). A call the
 * policy (still) permits only with approval replays as permitted when the
 * recorded answer was a yes covering the rules that ask for it, and as the
 * recorded denial (ZT_APPROVAL_DENIED, ZT_APPROVAL_TIMEOUT, a cut) when it
 * was not; with no answer recorded it replays as `approval: 'required'`.
 * Every decision replayed with a recorded answer is listed (`approvals`).
 *
 * Pure: records in, report out; the policy constructor is passed in.
 */
import { harden } from './harden.js';
import type { Decision, DecisionRequest, Policy } from './policy.js';

/** A decision as replay compares it. `approval`: the recorded answer it was replayed with, or `required` when the policy asks for one and none is recorded. */
export interface ReplayedDecision {
  readonly decision: string;
  readonly code?: string;
  readonly rules: readonly string[];
  readonly approval?: string;
}

export interface ReplayDifference {
  readonly seq: number;
  readonly agentId: string;
  readonly actionType: string;
  readonly target: string;
  readonly recorded: ReplayedDecision;
  readonly replayed: ReplayedDecision;
}

/** A decision replayed with the approval answer its record holds. */
export interface ReplayedApproval {
  readonly seq: number;
  readonly approvalId: string;
  /** `approved`, `denied`, `malformed`, `timeout`, `cut` or `unrecorded`. */
  readonly answer: string;
  readonly by?: string;
  readonly via?: string;
  readonly replayed: ReplayedDecision;
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
  /** The decisions replayed with a recorded approval answer. */
  readonly approvals: readonly ReplayedApproval[];
}

/** A request record whose decision came from the policy (not from an earlier capability check). */
const reachedPolicy = (r: Record<string, unknown>) => r.type === 'request' && r.decidedBy === 'policy';

const summary = (d: Pick<Decision, 'allowed' | 'code' | 'rules'>): ReplayedDecision => ({
  decision: d.allowed ? 'allow' : 'deny',
  ...(d.allowed ? {} : { code: d.code ?? 'ZT_POLICY_DENIED' }),
  rules: [...d.rules].sort(),
});

/** The approval a decision record holds, read defensively. */
interface RecordedApproval {
  readonly approvalId?: unknown;
  readonly answer?: unknown;
  readonly code?: unknown;
  readonly ruleIds?: unknown;
  readonly by?: unknown;
  readonly via?: unknown;
}

const approvalOf = (r: Record<string, unknown>): RecordedApproval | undefined =>
  r.approval !== null && typeof r.approval === 'object' ? (r.approval as RecordedApproval) : undefined;

/** The policy's decision with the recorded answer applied (see the header). */
const withApproval = (policy: Policy, decision: Decision, recorded: RecordedApproval | undefined): ReplayedDecision => {
  const plain = summary(decision);
  const need = decision.allowed && typeof policy.approvalFor === 'function' ? policy.approvalFor(decision) : undefined;
  if (!recorded) return need ? { ...plain, approval: 'required' } : plain;
  const answer = String(recorded.answer);
  if (!need) return { ...plain, approval: answer };
  const denied = (code: string): ReplayedDecision => ({ decision: 'deny', code, rules: plain.rules, approval: answer });
  if (answer !== 'approved') return denied(typeof recorded.code === 'string' ? recorded.code : 'ZT_APPROVAL_DENIED');
  const asked = Array.isArray(recorded.ruleIds) ? (recorded.ruleIds as unknown[]) : [];
  return need.ruleIds.every(id => asked.includes(id)) ? { ...plain, approval: answer } : denied('ZT_APPROVAL_DENIED');
};

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
  const approvals: ReplayedApproval[] = [];
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
    const recordedApproval = approvalOf(r);
    let now: ReplayedDecision;
    try {
      now = withApproval(policy, policy.decide(harden(request)), recordedApproval);
    } catch {
      now = { decision: 'deny', code: 'ZT_POLICY_ERROR', rules: [] };
    }
    replayed += 1;
    const then: ReplayedDecision = {
      decision: String(r.decision),
      ...(r.decision === 'allow' ? {} : { code: String(r.code) }),
      rules: [...((r.rules as string[] | undefined) ?? [])].sort(),
      ...(recordedApproval ? { approval: String(recordedApproval.answer) } : {}),
    };
    if (recordedApproval) {
      const { approvalId, answer, by, via } = recordedApproval;
      approvals.push(harden({ seq, approvalId: String(approvalId), answer: String(answer), ...(typeof by === 'string' ? { by } : {}), ...(typeof via === 'string' ? { via } : {}), replayed: now }));
    }
    if (JSON.stringify(then) !== JSON.stringify(now)) {
      differences.push(
        harden({ seq, agentId: request.agentId, actionType: request.actionType, target: request.target, recorded: then, replayed: now }),
      );
    }
  }
  return harden({ records: count, replayed, differences, notReplayable, problems, approvals });
};
harden(replayDecisions);
