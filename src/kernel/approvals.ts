/**
 * Human approval: the kernel's wait for a person's answer to a request the
 * policy permits only with one (a matched permit rule carries `approval`).
 *
 * Invariants:
 * - Nothing is consumed while a request waits: uses are counted and taints
 *   acquired only after a yes, when the request is decided again (mediation
 *   `commit`), so a request denied by approval, timed out or cut leaves the
 *   capability and the agent as they were. (The other order would let an
 *   approver's "no" spend a use, and a pile of unanswered requests exhaust a
 *   capability no call ever used.)
 * - What the approver is shown is recorded (`approval.requested`, durable)
 *   before anyone is asked; if it cannot be recorded, nobody is asked and
 *   the request is denied (ZT_AUDIT_UNAVAILABLE). The arguments are shown
 *   as the agent sent them and recorded in their audit form (src/kernel/
 *   decision.ts) with the digest of the full arguments (`argsDigest`), so
 *   the record binds exactly what was shown without holding content.
 * - The deadline is the kernel's: `expiresAt` on the kernel clock, kept by
 *   the kernel's timers. An answer that arrives after it is a timeout.
 * - A wait ends exactly once: answered, timed out, or cut (its signal
 *   fired: the capability or the agent revoked, the runtime shut down, the
 *   agent's vat ended); a cut ends the wait at once, with the signal's
 *   code. Later answers are ignored. The host is told when a wait ends
 *   (`closed`), so its list of pending approvals drops it.
 * - An answer is data from outside the kernel and is checked here
 *   (src/approval.ts `checkApprovalAnswer`); a malformed one denies
 *   (ZT_APPROVAL_DENIED, recorded as `malformed` with the problem), never
 *   approves.
 * - While it waits, the request is a call in flight on the capability it
 *   presented (so revocation cuts it) and the agent is busy (never idle).
 *
 * Powers: the clock, the timers, a durable record, the digest, and the
 * host's approval channel. No table, no policy: the capability entry a
 * wait is registered on is passed with the request.
 */
import { harden } from '../harden.js';
import { checkApprovalAnswer, type ApprovalRequest } from '../approval.js';
import { codeOf, type ErrorCode } from '../errors.js';
import type { ApprovalRequirement } from '../policy.js';
import type { ActionRequest } from '../types.js';
import type { AgentRegistry } from './agents.js';
import type { CapEntry, InFlight } from './capability-table.js';
import type { KernelTimers, RecordDurably } from './types.js';

/** The host end of approvals: asked to find an answer, told when a wait ends. */
export interface ApprovalHost {
  ask(request: ApprovalRequest): void;
  closed(approvalId: string): void;
}

/** How a wait ended. */
export type ApprovalAnswerKind = 'approved' | 'denied' | 'malformed' | 'timeout' | 'cut' | 'unrecorded';

/** The approval as the request's decision record holds it (under `approval`). */
export interface ApprovalRecord {
  readonly approvalId: string;
  readonly ruleIds: readonly string[];
  readonly timeoutMs: number;
  readonly requestedAt: number;
  readonly expiresAt: number;
  /** The `approval.requested` record's sequence number. */
  readonly requestedSeq?: number;
  readonly answer: ApprovalAnswerKind;
  readonly answeredAt: number;
  readonly by?: string;
  readonly via?: string;
  readonly note?: string;
  /** Why an answer was malformed. */
  readonly problem?: string;
  /** The code the request was denied with when the answer was not a yes. */
  readonly code?: ErrorCode;
}

export type ApprovalVerdict = { readonly approved: true; readonly record: ApprovalRecord } | { readonly approved: false; readonly code: ErrorCode; readonly record: ApprovalRecord };

export interface ApprovalsPowers extends Pick<KernelTimers, 'setTimeout' | 'clearTimeout'> {
  readonly now: () => number;
  readonly record: RecordDurably;
  readonly sha256Hex: (data: string) => string;
  readonly canonicalJson: (value: unknown) => string;
  readonly agents: Pick<AgentRegistry, 'busy'>;
  /** Absent: nobody is asked; a wait ends by `answer`, its timeout or a cut. */
  readonly host?: ApprovalHost;
}

/** What a wait is about: the request, decided and permitted with `need`. */
export interface ApprovalAsk {
  readonly request: ActionRequest;
  readonly requestId: string;
  /** The capability presented: the wait is a call in flight on it. */
  readonly entry: CapEntry;
  readonly target: string;
  /** The arguments' audit form (recorded instead of the arguments). */
  readonly recordedArgs: Record<string, unknown> | undefined;
  readonly need: ApprovalRequirement;
}

interface Waiter {
  readonly request: ApprovalRequest;
  /** Ends the wait with an answer from outside (checked here). */
  readonly answer: (raw: unknown) => void;
}

export const makeApprovals = (powers: ApprovalsPowers) => {
  const { now, record, host, agents } = powers;
  const waiting = new Map<string, Waiter>();

  /** Waits for the answer; resolves with the verdict, never rejects. */
  const waitFor = async (ask: ApprovalAsk, signal: AbortSignal): Promise<ApprovalVerdict> => {
    const { request, requestId, need } = ask;
    const requestedAt = now();
    const approvalRequest: ApprovalRequest = harden({
      approvalId: `approval-${requestId}`,
      requestId,
      agentId: request.agentId,
      capabilityId: request.capabilityId,
      actionType: request.actionType,
      target: ask.target,
      args: request.args,
      ruleIds: need.ruleIds,
      ...(need.prompt === undefined ? {} : { prompt: need.prompt }),
      timeoutMs: need.timeoutMs,
      expiresAt: requestedAt + need.timeoutMs,
    });
    const { approvalId, expiresAt } = approvalRequest;
    const base = { approvalId, ruleIds: need.ruleIds, timeoutMs: need.timeoutMs, requestedAt, expiresAt };
    const denied = (answer: ApprovalAnswerKind, code: ErrorCode, extra: Partial<ApprovalRecord> = {}): ApprovalVerdict =>
      harden({ approved: false, code, record: { ...base, ...extra, answer, answeredAt: now(), code } });
    const cutCode = (): ErrorCode => codeOf(signal.reason) ?? 'ZT_REVOKED';

    let requestedSeq: number;
    try {
      const { args, ...shown } = approvalRequest;
      const ref = await record({
        type: 'approval.requested',
        time: requestedAt,
        ...shown,
        ...(ask.recordedArgs === undefined ? {} : { args: ask.recordedArgs }),
        argsDigest: powers.sha256Hex(powers.canonicalJson(args)),
      });
      requestedSeq = ref.seq;
    } catch {
      return denied('unrecorded', 'ZT_AUDIT_UNAVAILABLE');
    }
    if (signal.aborted) return denied('cut', cutCode(), { requestedSeq });
    if (now() >= expiresAt) return denied('timeout', 'ZT_APPROVAL_TIMEOUT', { requestedSeq });

    return await new Promise<ApprovalVerdict>(resolve => {
      let timer: unknown;
      let done = false;
      const finish = (verdict: ApprovalVerdict) => {
        if (done) return;
        done = true;
        powers.clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        waiting.delete(approvalId);
        try {
          host?.closed(approvalId);
        } catch {
          // The host's list is the host's; the verdict stands.
        }
        resolve(verdict);
      };
      const onAbort = () => finish(denied('cut', cutCode(), { requestedSeq }));
      // The kernel clock decides: a timer that fires early is armed again.
      const arm = () => {
        const left = expiresAt - now();
        if (left <= 0) finish(denied('timeout', 'ZT_APPROVAL_TIMEOUT', { requestedSeq }));
        else timer = powers.setTimeout(arm, left);
      };
      const answer = (raw: unknown) => {
        if (now() >= expiresAt) {
          finish(denied('timeout', 'ZT_APPROVAL_TIMEOUT', { requestedSeq }));
          return;
        }
        const checked = checkApprovalAnswer(raw);
        if ('problem' in checked) {
          finish(denied('malformed', 'ZT_APPROVAL_DENIED', { requestedSeq, problem: checked.problem }));
          return;
        }
        const { approved, by, via, note } = checked.answer;
        const said = { requestedSeq, by, ...(via === undefined ? {} : { via }), ...(note === undefined ? {} : { note }) };
        if (approved) finish(harden({ approved: true, record: { ...base, ...said, answer: 'approved', answeredAt: now() } }));
        else finish(denied('denied', 'ZT_APPROVAL_DENIED', said));
      };
      waiting.set(approvalId, { request: approvalRequest, answer });
      signal.addEventListener('abort', onAbort, { once: true });
      arm();
      if (done) return;
      try {
        host?.ask(approvalRequest);
      } catch {
        // A host that cannot be asked leaves the request to its timeout.
      }
    });
  };

  /**
   * Waits for a person's answer to a request the policy permits only with
   * one. The wait is a call in flight on the presented capability (its
   * revocation cuts it) and keeps the agent busy. Never rejects.
   */
  const request = async (ask: ApprovalAsk): Promise<ApprovalVerdict> => {
    const controller = new AbortController();
    const call: InFlight = { requestId: ask.requestId, agentId: ask.request.agentId, controller };
    ask.entry.inFlight.add(call);
    agents.busy(ask.request.agentId, +1);
    try {
      return await waitFor(ask, controller.signal);
    } finally {
      ask.entry.inFlight.delete(call);
      agents.busy(ask.request.agentId, -1);
    }
  };

  /** Answers a pending approval (the answer is checked here). False when none is pending under that id. */
  const answer = (approvalId: unknown, raw: unknown): boolean => {
    const waiter = typeof approvalId === 'string' ? waiting.get(approvalId) : undefined;
    if (!waiter) return false;
    waiter.answer(raw);
    return true;
  };

  /** The approvals waiting now, as their approvers are shown them. */
  const pending = (): ApprovalRequest[] => harden([...waiting.values()].map(w => w.request));

  return harden({ request, answer, pending });
};
harden(makeApprovals);

export type Approvals = ReturnType<typeof makeApprovals>;
