/**
 * The capability table: every capability the kernel issued, its state, its
 * use counts, its calls in flight and its place in the derivation tree.
 *
 * Invariants:
 * - A capability is issued only to a registered, live holder, only under an
 *   id never used before, only with a target and constraints that compile,
 *   and only if the policy in force could ever permit it; every issue and
 *   every refusal to issue is recorded.
 * - Revocation is final and cascades: revoking a capability revokes every
 *   capability derived from or delegated out of it, and aborts its calls in
 *   flight at once (their callers get ZT_REVOKED and the effector's
 *   AbortSignal fires).
 * - A live capability's expiry is recorded once, by its timer or by the
 *   first request that finds it expired, whichever is first; timers never
 *   keep the process alive and stop at revocation and shutdown.
 * - What leaves the table is a hardened snapshot (`CapabilityRecord`) or a
 *   shape frozen at issue (`CapabilityShape`), never an entry.
 */
import { harden } from '../harden.js';
import { ZtError, type ErrorCode } from '../errors.js';
import type { GrantValidator } from '../effectors/types.js';
import type { TargetPattern } from '../paths.js';
import type { Decision, Policy } from '../policy.js';
import { regrantCheck } from '../policy.js';
import { compileTarget } from '../targets.js';
import type { ActionType, Capability } from '../types.js';
import type { RevocationCause, RuntimeEvent } from '../runtime-events.js';
import type { AgentRegistry } from './agents.js';
import { compileArgRules, type CompiledArgRules } from './arg-rules.js';
import type { CapabilityRecord, CapabilityShape, CapabilityState, KernelTimers, RecordLater } from './types.js';

/** setTimeout's largest delay; an expiry further away cannot be reached by one call. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A mediated call in flight on a capability. */
export interface InFlight {
  readonly requestId: string;
  readonly agentId: string;
  readonly controller: AbortController;
}

/** A capability as the table tracks it; only the kernel's parts see one. */
export interface CapEntry {
  readonly spec: Capability;
  readonly pattern: TargetPattern;
  /** The immutable facts a caretaker needs on every call, frozen once at issue. */
  readonly shape: CapabilityShape;
  readonly argRules: CompiledArgRules;
  readonly issuer: string;
  readonly issuedAt: number;
  readonly parent: string | null;
  /** Delegated: every use is also checked against, and counted on, its parent chain. */
  readonly delegated: boolean;
  readonly children: Set<string>;
  state: CapabilityState;
  uses: number;
  bytes: number;
  /** Bytes promised to calls in flight (byte budgets): concurrent calls cannot overspend. */
  reservedBytes: number;
  /** Kernel-clock times of allowed uses inside the rate window (oldest first). */
  readonly useTimes: number[];
  /** The same, kept for the policy's rate windows. */
  readonly policyUseTimes: number[];
  revokedAt?: number;
  revokedReason?: string;
  readonly inFlight: Set<InFlight>;
  /** Fires at `expiresAt` to record the expiry (unref'd; cleared on revocation and shutdown). */
  expiryTimer?: unknown;
  /** `capability.expired` has been recorded. */
  expiredRecorded?: boolean;
}

export interface CapabilityTablePowers extends Pick<KernelTimers, 'setBackgroundTimeout' | 'clearTimeout'> {
  readonly now: () => number;
  readonly recordLater: RecordLater;
  readonly currentPolicy: () => Policy;
  readonly agents: Pick<AgentRegistry, 'get'>;
  /** False once the kernel is shutting down: no expiry timer is armed then. */
  readonly isOpen: () => boolean;
  /** Told of every issue, revocation and expiry (runtime events); never throws. */
  readonly notify?: (event: RuntimeEvent) => void;
}

export interface CapabilityTableOptions {
  /** Issue-time checks of targets and `effect` settings, per action type. */
  readonly grantValidators?: Partial<Record<ActionType, GrantValidator>>;
}

const snapshot = (e: CapEntry): CapabilityRecord =>
  harden({
    id: e.spec.id,
    holder: e.spec.holder,
    actionType: e.spec.actionType,
    target: e.spec.target,
    constraints: e.spec.constraints,
    issuer: e.issuer,
    issuedAt: e.issuedAt,
    parent: e.parent,
    state: e.state,
    uses: e.uses,
    bytes: e.bytes,
    children: [...e.children],
    ...(e.revokedAt === undefined ? {} : { revokedAt: e.revokedAt, revokedReason: e.revokedReason }),
  });

const newEntry = (
  cap: Capability,
  compiled: { readonly pattern: TargetPattern; readonly argRules: CompiledArgRules },
  issuer: string,
  issuedAt: number,
  parent: CapEntry | undefined,
): CapEntry => ({
  spec: cap,
  pattern: compiled.pattern,
  shape: Object.freeze({ id: cap.id, holder: cap.holder, actionType: cap.actionType, target: cap.target, exact: compiled.pattern.exact }),
  argRules: compiled.argRules,
  issuer,
  issuedAt,
  parent: parent ? parent.spec.id : null,
  delegated: issuer.startsWith('delegated:'),
  children: new Set(),
  state: 'live',
  uses: 0,
  bytes: 0,
  reservedBytes: 0,
  useTimes: [],
  policyUseTimes: [],
  inFlight: new Set(),
});

/** The table's state and powers, read by each operation. */
interface Table extends CapabilityTablePowers {
  readonly caps: Map<string, CapEntry>;
  readonly grantValidators: Partial<Record<ActionType, GrantValidator>>;
}

/**
 * Issues `cap` after the policy allowed it; `parent` makes it a derived
 * capability (revoked with its parent). Records `capability.issued`,
 * `capability.derived`, `capability.delegated` or `capability.issue-denied`.
 */
const issue = (t: Table, cap: Capability, issuer: string, parent: CapEntry | undefined): CapabilityRecord => {
  const agent = t.agents.get(cap.holder);
  if (!agent) throw new ZtError('ZT_UNKNOWN_AGENT', `holder ${cap.holder} is not a registered agent`);
  if (agent.state !== 'live') throw new ZtError('ZT_AGENT_REVOKED', `holder ${cap.holder} has been revoked`);
  if (t.caps.has(cap.id)) throw new ZtError('ZT_DUPLICATE_CAPABILITY', `capability ${cap.id} already exists`);
  const pattern = compileTarget(cap.actionType, cap.target);
  const argRules = compileArgRules(cap.constraints.args);
  t.grantValidators[cap.actionType]?.(cap.target, cap.constraints);
  const policy = t.currentPolicy();
  let decision: Decision;
  try {
    decision = policy.decideGrant({ holder: cap.holder, actionType: cap.actionType, target: cap.target, labels: agent.labels, time: t.now() });
  } catch {
    decision = harden({ allowed: false, code: 'ZT_POLICY_ERROR', rules: [], policyHash: policy.hash });
  }
  const time = t.now();
  const base = {
    time,
    capabilityId: cap.id,
    holder: cap.holder,
    actionType: cap.actionType,
    target: cap.target,
    constraints: cap.constraints,
    issuer,
    ...(parent ? { parent: parent.spec.id } : {}),
    rules: decision.rules,
    policyHash: decision.policyHash,
  };
  if (!decision.allowed) {
    t.recordLater({ type: 'capability.issue-denied', ...base, code: decision.code });
    throw new ZtError(decision.code ?? 'ZT_POLICY_DENIED', `the policy would never permit ${cap.actionType} on ${cap.target} for ${cap.holder}`);
  }
  const entry = newEntry(cap, { pattern, argRules }, issuer, time, parent);
  t.caps.set(cap.id, entry);
  parent?.children.add(cap.id);
  t.recordLater({ type: parent ? (entry.delegated ? 'capability.delegated' : 'capability.derived') : 'capability.issued', ...base });
  t.notify?.({ type: 'capability.issued', capabilityId: cap.id, agentId: cap.holder, ...(parent ? { parent: parent.spec.id } : {}) });
  armExpiry(t, entry);
  return snapshot(entry);
};

/**
 * Records, once, that a live capability's `expiresAt` has passed: when its
 * timer fires, or when a request finds it expired (whichever is first; the
 * kernel clock decides).
 */
const noteExpired = (t: Table, entry: CapEntry): void => {
  if (entry.expiredRecorded || entry.state !== 'live') return;
  entry.expiredRecorded = true;
  t.clearTimeout(entry.expiryTimer);
  entry.expiryTimer = undefined;
  t.recordLater({
    type: 'capability.expired',
    time: t.now(),
    capabilityId: entry.spec.id,
    holder: entry.spec.holder,
    expiresAt: entry.spec.constraints.expiresAt as number,
  });
  t.notify?.({ type: 'capability.revoked', capabilityId: entry.spec.id, agentId: entry.spec.holder, reason: 'expired', cause: 'expired' });
};

const armExpiry = (t: Table, entry: CapEntry): void => {
  const { expiresAt } = entry.spec.constraints;
  if (expiresAt === undefined || entry.state !== 'live' || !t.isOpen()) return;
  const left = expiresAt - t.now();
  if (left <= 0) {
    noteExpired(t, entry);
    return;
  }
  // Far expiries take several timers; the kernel clock is asked each time.
  entry.expiryTimer = t.setBackgroundTimeout(() => {
    entry.expiryTimer = undefined;
    armExpiry(t, entry);
  }, Math.min(left, MAX_TIMER_MS));
};

const abortInFlight = (entry: CapEntry, code: ErrorCode, why: string): string[] => {
  const cut: string[] = [];
  for (const call of entry.inFlight) {
    cut.push(call.requestId);
    call.controller.abort(new ZtError(code, why));
  }
  entry.inFlight.clear();
  return cut;
};

const revoke = (t: Table, id: string, reason: string, cause: RevocationCause): boolean => {
  const entry = t.caps.get(id);
  if (!entry) throw new ZtError('ZT_UNKNOWN_CAPABILITY', `no capability ${id}`);
  if (entry.state === 'revoked') return false;
  t.clearTimeout(entry.expiryTimer);
  entry.expiryTimer = undefined;
  entry.state = 'revoked';
  entry.revokedAt = t.now();
  entry.revokedReason = reason;
  const inFlight = abortInFlight(entry, 'ZT_REVOKED', 'the capability was revoked');
  t.recordLater({ type: 'capability.revoked', time: entry.revokedAt, capabilityId: id, holder: entry.spec.holder, reason, inFlight });
  t.notify?.({ type: 'capability.revoked', capabilityId: id, agentId: entry.spec.holder, reason, cause });
  // Derived and delegated capabilities go with their parent.
  for (const child of entry.children) revoke(t, child, `parent ${id} revoked`, 'cascade');
  return true;
};

/** Revokes every live capability `agentId` holds; returns their ids. */
const revokeHeldBy = (t: Table, agentId: string, reason: string, cause: RevocationCause = 'agent'): string[] => {
  const revoked: string[] = [];
  for (const entry of t.caps.values()) {
    if (entry.spec.holder === agentId && entry.state === 'live') {
      revoke(t, entry.spec.id, reason, cause);
      revoked.push(entry.spec.id);
    }
  }
  return revoked;
};

/**
 * Aborts every call of an agent in flight (its vat ended): each is
 * rejected with `code` and its effect's signal fires. Returns the cut
 * request ids; the caller records them.
 */
const abortCallsOf = (t: Table, agentId: string, code: ErrorCode, why: string): string[] => {
  const cut: string[] = [];
  for (const entry of t.caps.values()) {
    if (entry.spec.holder !== agentId) continue;
    for (const call of [...entry.inFlight]) {
      if (call.agentId !== agentId) continue;
      cut.push(call.requestId);
      entry.inFlight.delete(call);
      call.controller.abort(new ZtError(code, why));
    }
  }
  return cut;
};

/** A capability and, for a delegated one, the ancestors it must also satisfy. */
const chainOf = (t: Table, entry: CapEntry): CapEntry[] => {
  const chain = [entry];
  let current = entry;
  while (current.delegated && current.parent !== null) {
    const parent = t.caps.get(current.parent);
    if (!parent) break;
    chain.push(parent);
    current = parent;
  }
  return chain;
};

/**
 * Asks `policy` whether it would still grant each live capability; with
 * `revokeRefused`, revokes those it would not, each with the refusing
 * decision as its reason.
 */
const regrant = (t: Table, policy: Policy, time: number, revokeRefused: boolean) => {
  const refused = regrantCheck(
    policy,
    [...t.caps.values()]
      .filter(e => e.state === 'live')
      .map(e => ({ id: e.spec.id, holder: e.spec.holder, actionType: e.spec.actionType, target: e.spec.target, labels: t.agents.get(e.spec.holder)?.labels ?? [] })),
    time,
  );
  const revoked: string[] = [];
  if (revokeRefused) {
    for (const { id, decision } of refused) {
      if (revoke(t, id, `policy ${policy.hash} no longer grants it (${decision.code ?? 'ZT_POLICY_DENIED'}: ${decision.rules.join(', ') || 'no permit'})`, 'policy')) revoked.push(id);
    }
  }
  return { refused: refused.map(r => r.id), revoked };
};

/** Shutdown: stops every expiry timer and aborts every call in flight with ZT_SHUT_DOWN. */
const close = (t: Table) => {
  for (const entry of t.caps.values()) {
    t.clearTimeout(entry.expiryTimer);
    entry.expiryTimer = undefined;
    abortInFlight(entry, 'ZT_SHUT_DOWN', 'the runtime is shutting down');
  }
};

const list = (t: Table, filter: { agentId?: string; state?: CapabilityState }): CapabilityRecord[] =>
  harden(
    [...t.caps.values()]
      .filter(e => (filter.agentId === undefined || e.spec.holder === filter.agentId) && (filter.state === undefined || e.state === filter.state))
      .map(snapshot),
  );

export const makeCapabilityTable = (powers: CapabilityTablePowers, options: CapabilityTableOptions = {}) => {
  const t: Table = { ...powers, caps: new Map(), grantValidators: options.grantValidators ?? {} };
  return harden({
    issue: (cap: Capability, issuer: string, parent: CapEntry | undefined): CapabilityRecord => issue(t, cap, issuer, parent),
    /** The entry itself, for the kernel's parts. */
    entry: (id: string): CapEntry | undefined => t.caps.get(id),
    /** The frozen shape of a capability, without building a record (hot path). */
    shape: (id: string): CapabilityShape | undefined => t.caps.get(id)?.shape,
    snapshot: (id: string): CapabilityRecord | undefined => {
      const e = t.caps.get(id);
      return e && snapshot(e);
    },
    list: (filter: { agentId?: string; state?: CapabilityState } = {}): CapabilityRecord[] => list(t, filter),
    chainOf: (entry: CapEntry): CapEntry[] => chainOf(t, entry),
    noteExpired: (entry: CapEntry): void => noteExpired(t, entry),
    revoke: (id: string, reason = 'revoked by operator', cause: RevocationCause = 'api'): boolean => revoke(t, id, reason, cause),
    revokeHeldBy: (agentId: string, reason: string, cause: RevocationCause = 'agent'): string[] => revokeHeldBy(t, agentId, reason, cause),
    abortCallsOf: (agentId: string, code: ErrorCode, why: string): string[] => abortCallsOf(t, agentId, code, why),
    regrant: (policy: Policy, time: number, revokeRefused: boolean) => regrant(t, policy, time, revokeRefused),
    close: () => close(t),
  });
};
harden(makeCapabilityTable);

export type CapabilityTable = ReturnType<typeof makeCapabilityTable>;
