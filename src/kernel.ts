/**
 * The kernel: the one place where requests are checked, decided, recorded
 * and carried out.
 *
 * Invariants:
 * - No action executes unless (1) the agent is registered and live, (2) the
 *   capability exists, is held by that agent, is live, unexpired and has uses
 *   left, (3) it grants this action type and target, (4) the policy permits
 *   it, and (5) the decision record is durable in the audit log.
 * - Checks run in one fixed order, so the same input always yields the same
 *   decision and code: unknown agent → agent revoked → unknown capability →
 *   wrong holder → revoked → expired → exhausted → wrong action → wrong
 *   target → policy → audit → execute.
 * - Every request yields exactly one decision record; every executed action
 *   one outcome record.
 * - Revoking a capability aborts its calls in flight at once: their callers
 *   get ZT_REVOKED and the effector's AbortSignal fires.
 * - Any error in a check, the policy or the audit path denies.
 */
import { harden } from './harden.js';
import { ZtError, ErrorCodes, codeOf, type ErrorCode } from './errors.js';
import type { Effector, GrantValidator } from './effectors/types.js';
import type { FailureModes } from './failure-modes.js';
import type { TargetPattern } from './paths.js';
import { compileTarget, normalizeTarget } from './targets.js';
import { makeGrantBrands, type GrantToken } from './grants.js';
import { argsAllowed, compileArgRules, type CompiledArgRules } from './kernel/arg-rules.js';
import { makeAuditRecorder } from './kernel/audit-recorder.js';
import type { CapabilityRecord, CapabilityShape, CapabilityState, KernelOptions, RequestVia } from './kernel/types.js';
import { makePolicy, regrantCheck, type Decision, type DecisionContext, type DecisionRequest, type Policy } from './policy.js';
import {
  ActionRequest,
  Capability,
  isValidId,
  type ActionType,
  type AuditRef,
  type CapabilityConstraints,
  type Outcome,
} from './types.js';

export type {
  CapabilityRecord,
  CapabilityShape,
  CapabilityState,
  KernelAuditSink,
  KernelOptions,
  KernelPowers,
  RequestVia,
} from './kernel/types.js';

interface InFlight {
  readonly requestId: string;
  readonly agentId: string;
  readonly controller: AbortController;
}

interface CapEntry {
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
  expiryTimer?: ReturnType<typeof setTimeout>;
  /** `capability.expired` has been recorded. */
  expiredRecorded?: boolean;
}

interface AgentEntry {
  readonly id: string;
  readonly labels: readonly string[];
  /** Taints acquired by executed requests (policy `taints`), in order. */
  readonly taints: Set<string>;
  state: 'live' | 'revoked';
  inFlight: number;
  /** Counts requests that reached the kernel; lets vat hosts detect quiescence. */
  epoch: number;
}

const DIGEST_THRESHOLD = 256;
/** setTimeout's largest delay; an expiry further away cannot be reached by one call. */
const MAX_TIMER_MS = 2 ** 31 - 1;


const withoutEffect = (constraints: CapabilityConstraints | undefined): Omit<CapabilityConstraints, 'effect'> => {
  if (constraints === undefined || constraints === null || typeof constraints !== 'object') return {};
  const { effect: _ignored, ...rest } = constraints;
  return rest;
};

const isPolicy = (x: unknown): x is Policy =>
  typeof x === 'object' && x !== null && typeof (x as Policy).decide === 'function' && typeof (x as Policy).hash === 'string';

const pickArgs = (args: Readonly<Record<string, unknown>>, names: readonly string[]): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  for (const name of names) if (Object.hasOwn(args, name)) out[name] = args[name];
  return out;
};

const utf8Length = (text: string): number => {
  let bytes = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      bytes += 4;
      i += 1;
    } else bytes += 3;
  }
  return bytes;
};

/** Bytes an action moved, for byte budgets: what was written, or what came back. */
const bytesMoved = (request: ActionRequest, result: unknown): number => {
  const { bytes } = (result ?? {}) as { bytes?: unknown };
  if (typeof bytes === 'number' && Number.isSafeInteger(bytes) && bytes >= 0) return bytes;
  if (typeof result === 'string') return request.args.encoding === 'base64' ? Math.floor((result.length * 3) / 4) : utf8Length(result);
  let total = 0;
  for (const key of ['body', 'stdout', 'stderr'] as const) {
    const value = (result as Record<string, unknown> | null)?.[key];
    if (typeof value === 'string') total += utf8Length(value);
  }
  return total;
};

export const makeKernel = (options: KernelOptions) => {
  const { powers, effectors, failureModes, maxBytes, onHalt, grantValidators = {}, durability = 'durable' } = options;
  const brands = makeGrantBrands();
  const agents = new Map<string, AgentEntry>();
  const caps = new Map<string, CapEntry>();
  const idleWaiters = new Map<string, Set<() => void>>();
  let policy: Policy = makePolicy(options.policy, powers.sha256Hex, powers.canonicalJson);
  const recorder = makeAuditRecorder({ now: () => powers.now(), sink: options.audit }, failureModes);
  const { record, recordLater } = recorder;
  let shutDown = false;

  const assertOpen = () => {
    if (shutDown) throw new ZtError('ZT_SHUT_DOWN');
  };

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

  const registerAgent = (agentId: string, options: { labels?: readonly string[] } = {}) => {
    assertOpen();
    if (!isValidId(agentId)) throw new ZtError('ZT_BAD_ARGUMENT', 'agent id must match [A-Za-z0-9][A-Za-z0-9._:@/~-]{0,127}');
    if (agents.has(agentId)) throw new ZtError('ZT_DUPLICATE_AGENT', `agent ${agentId} is already registered`);
    const labels = options?.labels ?? [];
    if (!Array.isArray(labels) || !labels.every(isValidId)) throw new ZtError('ZT_BAD_ARGUMENT', 'labels must be an array of ids');
    agents.set(agentId, { id: agentId, labels: harden([...labels]), taints: new Set(), state: 'live', inFlight: 0, epoch: 0 });
    recordLater({ type: 'agent.registered', time: powers.now(), agentId, labels: [...labels] });
  };

  /**
   * Issues `cap` after the policy allowed it; `parent` makes it a derived
   * capability (revoked with its parent). Records `capability.issued`,
   * `capability.derived` or `capability.issue-denied`.
   */
  const issue = (cap: Capability, issuer: string, parent: CapEntry | undefined): CapabilityRecord => {
    const agent = agents.get(cap.holder);
    if (!agent) throw new ZtError('ZT_UNKNOWN_AGENT', `holder ${cap.holder} is not a registered agent`);
    if (agent.state !== 'live') throw new ZtError('ZT_AGENT_REVOKED', `holder ${cap.holder} has been revoked`);
    if (caps.has(cap.id)) throw new ZtError('ZT_DUPLICATE_CAPABILITY', `capability ${cap.id} already exists`);
    const pattern = compileTarget(cap.actionType, cap.target);
    const argRules = compileArgRules(cap.constraints.args);
    grantValidators[cap.actionType]?.(cap.target, cap.constraints);
    let decision: Decision;
    try {
      decision = policy.decideGrant({ holder: cap.holder, actionType: cap.actionType, target: cap.target, labels: agent.labels, time: powers.now() });
    } catch {
      decision = harden({ allowed: false, code: 'ZT_POLICY_ERROR', rules: [], policyHash: policy.hash });
    }
    const time = powers.now();
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
      recordLater({ type: 'capability.issue-denied', ...base, code: decision.code });
      throw new ZtError(decision.code ?? 'ZT_POLICY_DENIED', `the policy would never permit ${cap.actionType} on ${cap.target} for ${cap.holder}`);
    }
    const entry: CapEntry = {
      spec: cap,
      pattern,
      shape: Object.freeze({ id: cap.id, holder: cap.holder, actionType: cap.actionType, target: cap.target, exact: pattern.exact }),
      argRules,
      issuer,
      issuedAt: time,
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
    };
    caps.set(cap.id, entry);
    parent?.children.add(cap.id);
    recordLater({ type: parent ? (entry.delegated ? 'capability.delegated' : 'capability.derived') : 'capability.issued', ...base });
    armExpiry(entry);
    return snapshot(entry);
  };

  const issueCapability = (cap: Capability, issuer = 'operator'): CapabilityRecord => {
    assertOpen();
    if (!(cap instanceof Capability)) {
      // Validate plain objects by constructing; this throws ZT_NO_HOLDER etc.
      cap = new Capability(cap as never);
    }
    if (cap.id.includes('~')) throw new ZtError('ZT_BAD_ARGUMENT', '"~" in a capability id is reserved for derived capabilities');
    return issue(cap, issuer, undefined);
  };

  /**
   * Delegation: the holder of `capabilityId` gives `to` a capability of its
   * own, bound to `to`, no wider than the original (every use is also
   * checked against and counted on the original), revoked with it, and only
   * if the policy explicitly permits this delegation. Audited either way.
   */
  let delegationCounter = 0;
  const delegate = (request: {
    from: string;
    capabilityId: string;
    to: string;
    target?: string;
    constraints?: CapabilityConstraints;
  }): CapabilityRecord => {
    assertOpen();
    const { from, capabilityId, to } = request;
    const time = powers.now();
    const refuse = (code: ErrorCode, message: string, rules: readonly string[] = []): never => {
      recordLater({ type: 'capability.delegation-denied', time, from, to: String(to), capabilityId, code, rules, policyHash: policy.hash });
      throw new ZtError(code, message);
    };
    const fromAgent = agents.get(from);
    if (!fromAgent || fromAgent.state !== 'live') return refuse('ZT_AGENT_REVOKED', `agent ${from} cannot delegate`);
    const entry = caps.get(capabilityId);
    if (!entry) return refuse('ZT_UNKNOWN_CAPABILITY', `no capability ${capabilityId}`);
    if (entry.spec.holder !== from) return refuse('ZT_WRONG_HOLDER', `capability ${capabilityId} is not held by ${from}`);
    if (entry.state !== 'live') return refuse('ZT_REVOKED', `capability ${capabilityId} has been revoked`);
    if (typeof to !== 'string') return refuse('ZT_BAD_ARGUMENT', 'the recipient must be an agent id');
    if (to === from) return refuse('ZT_BAD_ARGUMENT', 'an agent cannot delegate to itself');
    const target = request.target ?? entry.spec.target;
    let narrowed: boolean;
    try {
      narrowed = target === entry.spec.target || (compileTarget(entry.spec.actionType, target).exact && entry.pattern.matches(normalizeTarget(entry.spec.actionType, target)));
    } catch {
      narrowed = false;
    }
    if (!narrowed) return refuse('ZT_WRONG_TARGET', 'a delegated target must be the original target or one path it covers');
    let decision: Decision | undefined;
    try {
      decision = policy.decideDelegation({ from, to, actionType: entry.spec.actionType, target });
    } catch {
      return refuse('ZT_POLICY_ERROR', 'the policy could not decide the delegation');
    }
    if (!decision || !decision.allowed) {
      return refuse(decision?.code ?? 'ZT_POLICY_DENIED', `the policy does not permit ${from} to delegate ${entry.spec.actionType} on ${target} to ${to}`, decision?.rules ?? []);
    }
    // Only after the policy named the recipient: an agent cannot probe which ids exist.
    if (!agents.has(to)) return refuse('ZT_UNKNOWN_AGENT', 'the recipient is not a registered agent');
    if (agents.get(to)?.state !== 'live') return refuse('ZT_AGENT_REVOKED', `agent ${to} has been revoked`);
    delegationCounter += 1;
    let cap: Capability;
    try {
      cap = new Capability({
        id: `${capabilityId}~to~${to}~${delegationCounter}`,
        actionType: entry.spec.actionType,
        target,
        holder: to,
        // The effector settings are always the original's: a delegator can narrow
        // limits (checked on the chain), never change what the effector allows.
        constraints: {
          ...withoutEffect(request.constraints),
          ...(entry.spec.constraints.effect ? { effect: entry.spec.constraints.effect } : {}),
        },
      });
    } catch (err) {
      return refuse(codeOf(err) ?? 'ZT_BAD_ARGUMENT', 'the delegated constraints are invalid');
    }
    // Recorded by `issue` as `capability.delegated` (issuer `delegated:<from>`, parent, holder).
    return issue(cap, `delegated:${from}`, entry);
  };

  /** The frozen shape of a capability, without building a record (hot path). */
  const capabilityShape = (id: string): CapabilityShape | undefined => caps.get(id)?.shape;

  const getCapability = (id: string): CapabilityRecord | undefined => {
    const e = caps.get(id);
    return e && snapshot(e);
  };

  const listCapabilities = (filter: { agentId?: string; state?: CapabilityState } = {}): CapabilityRecord[] =>
    harden(
      [...caps.values()]
        .filter(e => (filter.agentId === undefined || e.spec.holder === filter.agentId) && (filter.state === undefined || e.state === filter.state))
        .map(snapshot),
    );

  const abortInFlight = (entry: CapEntry, code: ErrorCode, why: string): string[] => {
    const cut: string[] = [];
    for (const call of entry.inFlight) {
      cut.push(call.requestId);
      call.controller.abort(new ZtError(code, why));
    }
    entry.inFlight.clear();
    return cut;
  };

  /**
   * Records, once, that a live capability's `expiresAt` has passed: when its
   * timer fires, or when a request finds it expired (whichever is first; the
   * kernel clock decides).
   */
  const noteExpired = (entry: CapEntry): void => {
    if (entry.expiredRecorded || entry.state !== 'live') return;
    entry.expiredRecorded = true;
    clearTimeout(entry.expiryTimer);
    entry.expiryTimer = undefined;
    recordLater({
      type: 'capability.expired',
      time: powers.now(),
      capabilityId: entry.spec.id,
      holder: entry.spec.holder,
      expiresAt: entry.spec.constraints.expiresAt as number,
    });
  };

  const armExpiry = (entry: CapEntry): void => {
    const { expiresAt } = entry.spec.constraints;
    if (expiresAt === undefined || entry.state !== 'live' || shutDown) return;
    const left = expiresAt - powers.now();
    if (left <= 0) {
      noteExpired(entry);
      return;
    }
    // Far expiries take several timers; the kernel clock is asked each time.
    entry.expiryTimer = setTimeout(() => {
      entry.expiryTimer = undefined;
      armExpiry(entry);
    }, Math.min(left, MAX_TIMER_MS));
    (entry.expiryTimer as { unref?: () => void }).unref?.();
  };

  const revokeCapability = (id: string, reason = 'revoked by operator'): boolean => {
    const entry = caps.get(id);
    if (!entry) throw new ZtError('ZT_UNKNOWN_CAPABILITY', `no capability ${id}`);
    if (entry.state === 'revoked') return false;
    clearTimeout(entry.expiryTimer);
    entry.expiryTimer = undefined;
    entry.state = 'revoked';
    entry.revokedAt = powers.now();
    entry.revokedReason = reason;
    const inFlight = abortInFlight(entry, 'ZT_REVOKED', 'the capability was revoked');
    recordLater({ type: 'capability.revoked', time: entry.revokedAt, capabilityId: id, holder: entry.spec.holder, reason, inFlight });
    // Derived and delegated capabilities go with their parent.
    for (const child of entry.children) revokeCapability(child, `parent ${id} revoked`);
    return true;
  };

  /**
   * Aborts every call of an agent in flight (its vat ended): each is
   * rejected with `code` and its effect's signal fires. Returns the cut
   * request ids; the caller records them.
   */
  const abortCallsOf = (agentId: string, code: ErrorCode, why: string): string[] => {
    const cut: string[] = [];
    for (const entry of caps.values()) {
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

  const revokeAgentCapabilities = (agentId: string, reason: string): string[] => {
    const revoked: string[] = [];
    for (const entry of caps.values()) {
      if (entry.spec.holder === agentId && entry.state === 'live') {
        revokeCapability(entry.spec.id, reason);
        revoked.push(entry.spec.id);
      }
    }
    return revoked;
  };

  const revokeAgent = (agentId: string, reason = 'revoked by operator') => {
    const agent = agents.get(agentId);
    if (!agent) throw new ZtError('ZT_UNKNOWN_AGENT', `no agent ${agentId}`);
    if (agent.state === 'revoked') return false;
    agent.state = 'revoked';
    revokeAgentCapabilities(agentId, reason);
    recordLater({ type: 'agent.revoked', time: powers.now(), agentId, reason });
    return true;
  };

  /**
   * The checks one capability applies to a request, in order: revoked →
   * expired → exhausted → rate → budget → action → target → arguments.
   */
  const checkEntry = (entry: CapEntry, req: ActionRequest, target: string | undefined, now: number): ErrorCode | undefined => {
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
    if (target === undefined || !entry.pattern.matches(target)) return 'ZT_WRONG_TARGET';
    if (!argsAllowed(entry.argRules, req.args)) return 'ZT_ARGUMENT_DENIED';
    return undefined;
  };

  /** A capability and, for a delegated one, the ancestors it must also satisfy. */
  const chainOf = (entry: CapEntry): CapEntry[] => {
    const chain = [entry];
    let current = entry;
    while (current.delegated && current.parent !== null) {
      const parent = caps.get(current.parent);
      if (!parent) break;
      chain.push(parent);
      current = parent;
    }
    return chain;
  };

  /** The ordered checks. Returns a denial code, or the live entry. */
  const check = (req: ActionRequest, now: number): { code: ErrorCode; entry?: CapEntry } | { entry: CapEntry; target: string } => {
    const agent = agents.get(req.agentId);
    if (!agent) return { code: 'ZT_UNKNOWN_AGENT' };
    if (agent.state !== 'live') return { code: 'ZT_AGENT_REVOKED' };
    const entry = caps.get(req.capabilityId);
    if (!entry) return { code: 'ZT_UNKNOWN_CAPABILITY' };
    if (entry.spec.holder !== req.agentId) return { code: 'ZT_WRONG_HOLDER', entry };
    let target: string | undefined;
    try {
      target = normalizeTarget(req.actionType, req.target);
    } catch {
      target = undefined;
    }
    if (entry.delegated) {
      for (const link of chainOf(entry)) {
        const code = checkEntry(link, req, target, now);
        if (code) return { code, entry };
      }
    } else {
      const code = checkEntry(entry, req, target, now);
      if (code) return { code, entry };
    }
    return { entry, target: target as string };
  };

  /** Audit form of the arguments: large or content values are digested, never stored. */
  const summarizeArgs = (args: Readonly<Record<string, unknown>>): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    // Hot path: no arguments.
    let any = false;
    for (const _ in args) {
      any = true;
      break;
    }
    if (!any) return out;
    for (const [key, value] of Object.entries(args)) {
      if (typeof value === 'string' && (key === 'content' || value.length > DIGEST_THRESHOLD)) {
        out[key] = { sha256: powers.sha256Hex(value), length: value.length };
      } else {
        out[key] = value;
      }
    }
    // Throws ZT_AUDIT_NOT_CANONICAL for anything that is not plain data.
    powers.canonicalJson(out);
    return out;
  };

  const agentBusy = (agentId: string, delta: number) => {
    const agent = agents.get(agentId);
    if (!agent) return;
    agent.inFlight += delta;
    if (agent.inFlight === 0) {
      const waiters = idleWaiters.get(agentId);
      if (waiters) for (const w of [...waiters]) w();
    }
  };

  const outcomeOf = (
    requestId: string,
    status: Outcome['status'],
    audit: Outcome['audit'],
    extra: { result?: unknown; code?: ErrorCode; message?: string },
  ): Outcome =>
    harden({
      requestId,
      status,
      ok: status === 'succeeded',
      ...(status === 'succeeded'
        ? { result: extra.result }
        : { error: { code: extra.code ?? 'ZT_EFFECT_FAILED', message: extra.message ?? ErrorCodes[extra.code ?? 'ZT_EFFECT_FAILED'] } }),
      audit,
    });

  const halt = (agentId: string, code: ErrorCode) => {
    const agent = agents.get(agentId);
    if (!agent || agent.state !== 'live') return;
    revokeAgent(agentId, `halted by failure mode (${code})`);
    onHalt?.(agentId, code);
  };

  /**
   * Replaces every grant token in an effector's result with a derived
   * capability (same holder, parent = the presenting capability, expiring no
   * later than it) and a kernel-branded reference to it. A grant the policy
   * refuses becomes `null` in the result and is audited as refused.
   */
  let derivedCounter = 0;
  const deriveGrants = (parent: CapEntry, value: unknown, depth = 0): unknown => {
    if (value === null || typeof value !== 'object' || depth > 32) return value;
    if (brands.isGrant(value)) {
      derivedCounter += 1;
      const parentExpiry = parent.spec.constraints.expiresAt;
      const ownExpiry = value.constraints.expiresAt;
      const expiresAt = parentExpiry === undefined ? ownExpiry : Math.min(parentExpiry, ownExpiry ?? Infinity);
      try {
        const cap = new Capability({
          id: `${parent.spec.id}~${derivedCounter}`,
          actionType: value.actionType,
          target: value.target,
          holder: parent.spec.holder,
          constraints: { ...value.constraints, ...(expiresAt === undefined ? {} : { expiresAt }) },
        });
        const record = issue(cap, `derived:${parent.spec.id}`, parent);
        return brands.makeDerivedRef({ capabilityId: record.id, actionType: record.actionType, target: record.target });
      } catch {
        return null;
      }
    }
    if (Array.isArray(value)) return harden(value.map(v => deriveGrants(parent, v, depth + 1)));
    if (Object.getPrototypeOf(value) !== Object.prototype) return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = deriveGrants(parent, v, depth + 1);
    return harden(out);
  };

  /**
   * Re-checks a further target reached while carrying out an allowed
   * request (a redirect hop): same capability pattern, policy in force,
   * capability still live. Each hop is audited and durable before use.
   */
  const recheck = async (request: ActionRequest, entry: CapEntry, requestId: string, hop: string) => {
    let target: string | undefined;
    let code: ErrorCode | undefined;
    let rules: readonly string[] = [];
    try {
      target = normalizeTarget(request.actionType, hop);
      if (entry.state !== 'live') code = 'ZT_REVOKED';
      else if (!entry.pattern.matches(target)) code = 'ZT_WRONG_TARGET';
      else {
        const decision = policy.decide({
          agentId: request.agentId,
          actionType: request.actionType,
          target,
          args: request.args,
          ...(policy.needsContext ? { context: contextFor(request.agentId, entry, powers.now()) } : {}),
        });
        rules = decision.rules;
        if (!decision.allowed) code = decision.code ?? 'ZT_POLICY_DENIED';
      }
    } catch (err) {
      code = codeOf(err) === 'ZT_BAD_ARGUMENT' ? 'ZT_WRONG_TARGET' : 'ZT_POLICY_ERROR';
    }
    await record({
      type: 'request.hop',
      time: powers.now(),
      requestId,
      target: target ?? null,
      decision: code ? 'deny' : 'allow',
      ...(code ? { code } : {}),
      rules,
      policyHash: policy.hash,
    });
    return harden(code ? { allowed: false, code } : { allowed: true, target });
  };

  type Evaluation = {
    decision: { allowed: boolean; code?: ErrorCode; rules: readonly string[]; policyHash: string };
    entry: CapEntry | undefined;
    target: string;
    args: Record<string, unknown> | undefined;
    /** What the policy was asked, when the request got that far (recorded for replay). */
    decisionRequest?: DecisionRequest;
  };

  /**
   * The context the policy may read, all of it data the kernel records with
   * the decision: the clock, the agent's labels and taints, the capability's
   * use counts and the rate windows the policy asked for.
   */
  const contextFor = (agentId: string, presented: CapEntry, time: number): DecisionContext => {
    const agent = agents.get(agentId);
    // A delegated copy answers for its original: the root of its chain has
    // counted every use of every copy, so limits cannot be reset by delegating.
    const chain = presented.delegated ? chainOf(presented) : [presented];
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
    let entry: CapEntry | undefined;
    let target = request.target;
    let args: Record<string, unknown> | undefined;
    const deny = (code: ErrorCode) => ({ allowed: false, code, rules: [] as string[], policyHash: policy.hash });
    try {
      if (shutDown) return { decision: deny('ZT_SHUT_DOWN'), entry, target, args };
      const checked = check(request, time);
      entry = checked.entry;
      if ('code' in checked) return { decision: deny(checked.code), entry, target, args };
      target = checked.target;
      try {
        args = summarizeArgs(request.args);
      } catch {
        return { decision: deny('ZT_BAD_ARGUMENT'), entry, target, args };
      }
      const decisionRequest = {
        agentId: request.agentId,
        actionType: request.actionType,
        target,
        args: request.args,
        ...(policy.needsContext ? { context: contextFor(request.agentId, entry as CapEntry, time) } : {}),
      };
      return { decision: policy.decide(decisionRequest), entry, target, args, decisionRequest };
    } catch {
      return { decision: deny('ZT_POLICY_ERROR'), entry, target, args };
    }
  };

  /**
   * The whole mediated path for one request. Never rejects: every failure is
   * an outcome with a code.
   */
  const execute = async (request: ActionRequest, via: RequestVia): Promise<Outcome> => {
    if (!(request instanceof ActionRequest)) {
      try {
        request = new ActionRequest(request as never);
      } catch (err) {
        // Malformed: denied like any other request, and recorded with what could be read of it.
        const requestId = powers.makeRequestId();
        const raw = (request ?? {}) as unknown as Record<string, unknown>;
        const pick = (k: string) => (typeof raw[k] === 'string' ? String(raw[k]).slice(0, 256) : null);
        const ref = await record({
          type: 'request',
          time: powers.now(),
          requestId,
          via,
          agentId: pick('agentId'),
          capabilityId: pick('capabilityId'),
          actionType: pick('actionType'),
          target: pick('target'),
          decision: 'deny',
          code: 'ZT_BAD_ARGUMENT',
          decidedBy: 'kernel',
          rules: [],
          policyHash: policy.hash,
        }).catch(() => undefined);
        return outcomeOf(requestId, 'denied', ref ? { decision: ref } : {}, { code: 'ZT_BAD_ARGUMENT', message: err instanceof ZtError ? err.message.replace(/^ZT_[A-Z_]+: /, '') : ErrorCodes.ZT_BAD_ARGUMENT });
      }
    }
    const requestId = powers.makeRequestId();
    const time = powers.now();
    const agent = agents.get(request.agentId);
    if (agent) agent.epoch += 1;

    const { decision, entry, target, args, decisionRequest } = evaluate(request, time);
    if (decision.code === 'ZT_EXPIRED' && entry) {
      for (const link of entry.delegated ? chainOf(entry) : [entry]) {
        const { expiresAt } = link.spec.constraints;
        if (expiresAt !== undefined && time >= expiresAt) noteExpired(link);
      }
    }

    const requestRecord = {
      type: 'request',
      time,
      requestId,
      via,
      agentId: request.agentId,
      capabilityId: request.capabilityId,
      actionType: request.actionType,
      target,
      ...(args ? { args } : {}),
      decision: decision.allowed ? 'allow' : 'deny',
      ...(decision.code ? { code: decision.code } : {}),
      // Which stage decided: the kernel's capability checks, or the policy (replayable).
      decidedBy: decisionRequest ? 'policy' : 'kernel',
      rules: decision.rules,
      policyHash: decision.policyHash,
      ...(entry ? { uses: entry.uses } : {}),
      // What replay needs to re-ask the policy: its context, and verbatim the arguments its conditions read.
      ...(decisionRequest?.context ? { context: decisionRequest.context } : {}),
      ...(decisionRequest && policy.argNames.length > 0 ? { policyArgs: pickArgs(request.args, policy.argNames) } : {}),
    };

    if (!decision.allowed) {
      const code = decision.code ?? 'ZT_POLICY_DENIED';
      let ref: AuditRef | undefined;
      try {
        ref = await record(requestRecord);
      } catch {
        // The denial stands either way; the latched fault denies what follows.
      }
      if (code === 'ZT_POLICY_ERROR' && failureModes.policyError === 'halt') halt(request.agentId, code);
      return outcomeOf(requestId, 'denied', ref ? { decision: ref } : {}, { code, message: ErrorCodes[code] });
    }

    const live = entry as CapEntry;
    // Taints are acquired when the request is allowed, before it runs: a
    // read that fails half-way may still have shown the agent something.
    const newTaints: string[] = [];
    if (decisionRequest) {
      const holder = agents.get(request.agentId);
      for (const taint of policy.taintsFor(decisionRequest)) {
        if (holder && !holder.taints.has(taint)) {
          holder.taints.add(taint);
          newTaints.push(taint);
        }
      }
    }
    if (newTaints.length > 0) (requestRecord as Record<string, unknown>).taintsAcquired = newTaints;
    const chain = live.delegated ? chainOf(live) : [live];
    for (const link of chain) {
      link.uses += 1;
      if (link.spec.constraints.rate) link.useTimes.push(time);
      if (policy.rateWindows.length > 0) link.policyUseTimes.push(time);
    }
    const controller = new AbortController();
    const call: InFlight = { requestId, agentId: request.agentId, controller };
    live.inFlight.add(call);
    agentBusy(request.agentId, +1);
    try {
      let decisionRef: AuditRef | undefined;
      // Durable (default): the decision is on disk before the action runs.
      // Relaxed (opted into, and said in every record): the action starts
      // while the decision is on its way; the result is still withheld
      // unless both records are acknowledged.
      const pendingDecision = record(requestRecord);
      if (durability === 'durable') {
        try {
          decisionRef = await pendingDecision;
        } catch {
          if (failureModes.auditUnavailable === 'halt') halt(request.agentId, 'ZT_AUDIT_UNAVAILABLE');
          return outcomeOf(requestId, 'denied', {}, { code: 'ZT_AUDIT_UNAVAILABLE', message: ErrorCodes.ZT_AUDIT_UNAVAILABLE });
        }
      } else {
        pendingDecision.catch(() => undefined); // awaited below, before anything is returned
      }
      const effector = effectors[request.actionType];
      let status: Outcome['status'];
      let result: unknown;
      let code: ErrorCode | undefined;
      let message: string | undefined;
      let effectCompleted = false;
      const reservations: Array<[CapEntry, number]> = [];
      let expiryTimer: ReturnType<typeof setTimeout> | undefined;
      try {
        if (!effector) throw new ZtError('ZT_EFFECT_FAILED', `no effector is configured for ${request.actionType}`);
        let budgetLeft = Infinity;
        let expiresAt = Infinity;
        let budget = maxBytes;
        for (const link of chain) {
          const c = link.spec.constraints;
          if (c.bytesBudget !== undefined) budgetLeft = Math.min(budgetLeft, c.bytesBudget - link.bytes - link.reservedBytes);
          if (c.expiresAt !== undefined) expiresAt = Math.min(expiresAt, c.expiresAt);
          budget = Math.min(budget, c.maxBytes ?? Infinity);
        }
        budget = Math.max(0, Math.min(budget, budgetLeft));
        // Reserve the bytes this call may move on every budgeted link until it ends.
        for (const link of chain) {
          if (link.spec.constraints.bytesBudget !== undefined) {
            link.reservedBytes += budget;
            reservations.push([link, budget]);
          }
        }
        // Expired or revoked while the decision was being recorded: do not start.
        if (powers.now() >= expiresAt) controller.abort(new ZtError('ZT_EXPIRED', 'the capability expired before the action started'));
        controller.signal.throwIfAborted();
        const untilExpiry = Math.max(0, expiresAt - powers.now());
        if (untilExpiry <= MAX_TIMER_MS) {
          // Expiry reached mid-call behaves like revocation: the call is cut.
          expiryTimer = setTimeout(() => controller.abort(new ZtError('ZT_EXPIRED', 'the capability expired during the call')), untilExpiry);
        }
        result = await abortable(
          effector({
            // Effectors that derive capabilities read `grant` (see src/grants.ts, GrantingContext).
            ...({ grant: (init: { actionType: ActionType; target: string; constraints?: CapabilityConstraints }): GrantToken => brands.makeGrant(init) } as object),
            target,
            args: request.args,
            signal: controller.signal,
            maxBytes: budget,
            constraints: live.spec.constraints,
            recheck: hop => recheck(request, live, requestId, hop),
          }),
          controller.signal,
        );
        // Revoked after the effect finished but before its result was
        // delivered: the result is withheld (the record says the effect ran).
        if (controller.signal.aborted) {
          effectCompleted = true;
          throw controller.signal.reason;
        }
        const moved = bytesMoved(request, result);
        for (const link of chain) link.bytes += moved;

        result = deriveGrants(live, result);
        status = 'succeeded';
      } catch (err) {
        status = 'failed';
        code = controller.signal.aborted ? (codeOf(controller.signal.reason) ?? 'ZT_REVOKED') : (codeOf(err) ?? 'ZT_EFFECT_FAILED');
        // Too large for what is left of the byte budget: the budget is what ran out.
        if (code === 'ZT_TOO_LARGE' && chain.some(link => link.spec.constraints.bytesBudget !== undefined && link.spec.constraints.bytesBudget - link.bytes < Math.min(maxBytes, link.spec.constraints.maxBytes ?? Infinity))) {
          code = 'ZT_BUDGET_EXHAUSTED';
        }
        message = err instanceof ZtError ? err.message.replace(/^ZT_[A-Z_]+: /, '') : ErrorCodes[code];
        if (controller.signal.aborted) message = ErrorCodes[code];
      } finally {
        // The reservation gives way to the bytes actually moved (added above on success).
        for (const [link, reserved] of reservations) link.reservedBytes -= reserved;
      }
      clearTimeout(expiryTimer);
      // The result's digest is part of the record; a result that cannot be
      // encoded canonically is withheld, never returned unrecorded.
      let resultDigest: string | undefined;
      if (status === 'succeeded') {
        try {
          resultDigest = powers.sha256Hex(powers.canonicalJson(result ?? null));
        } catch {
          status = 'failed';
          code = 'ZT_EFFECT_FAILED';
          message = 'the action returned data that cannot be recorded';
          result = undefined;
        }
      }
      const outcomeRecord = {
        type: 'outcome',
        time: powers.now(),
        requestId,
        status,
        ...(code ? { code } : {}),
        ...(effectCompleted ? { effectCompleted } : {}),
        ...(status === 'succeeded' ? { bytes: live.bytes } : {}),
        ...(resultDigest !== undefined ? { resultDigest } : {}),
      };
      let outcomeRef: AuditRef;
      try {
        // Sent right away (after the decision, in order); in relaxed mode both acknowledgements are awaited together.
        const pendingOutcome = record(outcomeRecord);
        pendingOutcome.catch(() => undefined); // awaited on the next line but one
        decisionRef ??= await pendingDecision;
        outcomeRef = await pendingOutcome;
      } catch {
        // The effect happened but could not be recorded: withhold its result.
        if (failureModes.auditUnavailable === 'halt') halt(request.agentId, 'ZT_AUDIT_UNAVAILABLE');
        return outcomeOf(requestId, 'failed', decisionRef ? { decision: decisionRef } : {}, { code: 'ZT_AUDIT_UNAVAILABLE', message: ErrorCodes.ZT_AUDIT_UNAVAILABLE });
      }
      if (status === 'succeeded' && controller.signal.aborted) {
        // Revoked while the outcome was being recorded: the revocation record
        // lists this request as cut in flight, and its result is withheld.
        const cutCode = codeOf(controller.signal.reason) ?? 'ZT_REVOKED';
        return outcomeOf(requestId, 'failed', { decision: decisionRef, outcome: outcomeRef }, { code: cutCode, message: ErrorCodes[cutCode] });
      }
      return outcomeOf(requestId, status, { decision: decisionRef, outcome: outcomeRef }, { result, code, message });
    } finally {
      live.inFlight.delete(call);
      agentBusy(request.agentId, -1);
    }
  };

  /**
   * Records a call the membrane refused before it became a request (a
   * method outside the interface, arguments that are not plain data): one
   * decision record, like every other invocation.
   */
  const refuse = async (call: { agentId: string; capabilityId: string; method: string; code: ErrorCode }) => {
    const entry = caps.get(call.capabilityId);
    await record({
      type: 'request',
      time: powers.now(),
      requestId: powers.makeRequestId(),
      via: 'vat',
      agentId: call.agentId,
      capabilityId: call.capabilityId,
      method: call.method,
      ...(entry ? { actionType: entry.spec.actionType } : {}),
      decision: 'deny',
      code: call.code,
      rules: [],
      policyHash: policy.hash,
    }).catch(() => undefined);
  };

  /** Resolves when the agent has no request in flight. */
  const whenIdle = (agentId: string): Promise<void> =>
    new Promise(resolve => {
      const agent = agents.get(agentId);
      if (!agent || agent.inFlight === 0) {
        resolve();
        return;
      }
      let set = idleWaiters.get(agentId);
      if (!set) idleWaiters.set(agentId, (set = new Set()));
      const done = () => {
        set.delete(done);
        resolve();
      };
      set.add(done);
    });

  /** Marks that a vat reached the kernel on the agent's behalf (quiescence detection). */
  const noteActivity = (agentId: string) => {
    const agent = agents.get(agentId);
    if (agent) agent.epoch += 1;
  };

  const agentActivity = (agentId: string) => {
    const agent = agents.get(agentId);
    return agent ? harden({ inFlight: agent.inFlight, epoch: agent.epoch }) : undefined;
  };

  /**
   * Replaces the policy (the next decision uses it). A document that fails
   * validation throws ZT_POLICY_INVALID and the policy in force stays. With
   * `revokeRefused` (the default), live capabilities the new policy would no
   * longer grant are revoked, each audited with the refusing decision.
   */
  const setPolicy = (input: unknown, options: { revokeRefused?: boolean } = {}) => {
    const next = isPolicy(input) ? input : makePolicy(input, powers.sha256Hex, powers.canonicalJson);
    const time = powers.now();
    policy = next;
    recordLater({ type: 'policy.loaded', time, policyHash: next.hash, policy: next.document });
    const refused = regrantCheck(
      next,
      [...caps.values()]
        .filter(e => e.state === 'live')
        .map(e => ({ id: e.spec.id, holder: e.spec.holder, actionType: e.spec.actionType, target: e.spec.target, labels: agents.get(e.spec.holder)?.labels ?? [] })),
      time,
    );
    const revoked: string[] = [];
    if (options.revokeRefused ?? true) {
      for (const { id, decision } of refused) {
        if (revokeCapability(id, `policy ${next.hash} no longer grants it (${decision.code ?? 'ZT_POLICY_DENIED'}: ${decision.rules.join(', ') || 'no permit'})`)) revoked.push(id);
      }
    }
    return harden({ policyHash: next.hash, refused: refused.map(r => r.id), revoked });
  };

  const hasAgent = (agentId: string) => agents.get(agentId)?.state === 'live';

  const shutdown = async () => {
    if (shutDown) return;
    shutDown = true;
    for (const entry of caps.values()) {
      clearTimeout(entry.expiryTimer);
      entry.expiryTimer = undefined;
      abortInFlight(entry, 'ZT_SHUT_DOWN', 'the runtime is shutting down');
    }
    recordLater({ type: 'runtime.shutdown', time: powers.now() });
    await recorder.settle();
  };

  recordLater({ type: 'policy.loaded', time: powers.now(), policyHash: policy.hash, policy: policy.document });

  return harden({
    registerAgent,
    issueCapability,
    getCapability,
    capabilityShape,
    listCapabilities,
    revokeCapability,
    revokeAgent,
    revokeAgentCapabilities,
    abortCallsOf,
    /**
     * Brackets a whole call from a vat (checks, audit, effect, denial alike):
     * while any is open, the agent is not idle, so quiescence detection
     * cannot mistake a slow denial for an agent waiting on nothing.
     */
    beginCall: (agentId: string) => agentBusy(agentId, +1),
    endCall: (agentId: string) => agentBusy(agentId, -1),
    /** From now on, every record about `agentId` names this (weaker) isolation level. */
    markWeakIsolation: recorder.markWeakIsolation,
    delegate,
    execute,
    /**
     * Decides without consuming or recording (forensics, benchmarks). The
     * decision is hardened (the policy's own decisions already are, and are
     * shared between requests).
     */
    evaluate: (request: ActionRequest) => harden(evaluate(request, powers.now()).decision),
    whenIdle,
    refuse,
    isDerivedRef: brands.isDerivedRef,
    noteActivity,
    agentActivity,
    hasAgent,
    setPolicy,
    getPolicyHash: () => policy.hash,
    record,
    reattachAudit: recorder.reattach,
    recordLater,
    flush: recorder.flush,
    shutdown,
  });
};
harden(makeKernel);

export type Kernel = ReturnType<typeof makeKernel>;

/** Races `promise` against `signal`; the loser's rejection is observed, never left floating. */
export const abortable = <T>(promise: Promise<T>, signal: AbortSignal): Promise<T> => {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      value => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      err => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
};
harden(abortable);
