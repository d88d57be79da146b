/**
 * The kernel: the one place where requests are checked, decided, recorded
 * and carried out. This module only wires its parts together, each with the
 * powers it uses and nothing more:
 *
 * | part                 | job                                                            |
 * | -------------------- | -------------------------------------------------------------- |
 * | audit-recorder.ts    | every write to the audit log; the outage buffer                |
 * | policy-slot.ts       | the policy in force                                            |
 * | agents.ts            | agents, their labels, taints and activity                      |
 * | capability-table.ts  | capabilities, their state, expiry, revocation and calls        |
 * | arg-rules.ts         | `constraints.args`, compiled and checked                       |
 * | decision.ts          | the ordered checks, then the policy (consumes nothing)         |
 * | delegation.ts        | capabilities delegated by holders, derived from grants         |
 * | effect.ts            | one effector call: byte budget, expiry, abort                  |
 * | approvals.ts         | the wait for a person's answer to a call that needs approval   |
 * | mediation.ts         | decide → commit → perform → settle, one record each            |
 *
 * Invariants (the parts' headers say how each is kept):
 * - No action executes unless (1) the agent is registered and live, (2) the
 *   capability exists, is held by that agent, is live, unexpired and has uses
 *   left, (3) it grants this action type and target, (4) the policy permits
 *   it, and (5) the decision record is durable in the audit log.
 * - What enters is checked once, at the boundary: a request from the seed
 *   API by `execute` (mediation.ts `admit`), an agent's call by the
 *   membrane, against one definition of plain data (src/plain-data.ts).
 *   Nothing after the boundary checks it again.
 * - Checks run in one fixed order, so the same input always yields the same
 *   decision and code: bad argument → unknown agent → agent revoked → unknown capability →
 *   wrong holder → revoked → expired → exhausted → rate → budget → wrong
 *   action → wrong target → arguments → policy → audit → execute.
 * - Every request yields exactly one decision record; every executed action
 *   one outcome record.
 * - Revoking a capability aborts its calls in flight at once: their callers
 *   get ZT_REVOKED and the effector's AbortSignal fires. A call waiting for
 *   a person's approval is in flight too, and its wait is cut.
 * - Any error in a check, the policy or the audit path denies.
 * - Once shut down, the kernel issues, registers and delegates nothing and
 *   denies every request with ZT_SHUT_DOWN.
 */
import { harden } from '../harden.js';
import { ZtError, type ErrorCode } from '../errors.js';
import { boundaryCodeOf } from '../plain-data.js';
import { makeGrantBrands } from '../grants.js';
import { Capability, type ActionRequest } from '../types.js';
import { makeAgentRegistry } from './agents.js';
import { makeApprovals } from './approvals.js';
import { makeAuditRecorder } from './audit-recorder.js';
import { makeCapabilityTable } from './capability-table.js';
import { makeDecider } from './decision.js';
import { makeDelegation, type DelegationRequest } from './delegation.js';
import { makeEffectRunner } from './effect.js';
import { admit, makeMediation } from './mediation.js';
import { makePolicySlot } from './policy-slot.js';
import type { RuntimeEvent } from '../runtime-events.js';
import type { CapabilityRecord, KernelOptions } from './types.js';

/** A facet of a part: only the named operations. A part given a facet can reach nothing else. */
const facet = <T extends object, K extends keyof T>(part: T, ...keys: K[]): Pick<T, K> => {
  const out = {} as Pick<T, K>;
  for (const key of keys) out[key] = part[key];
  return harden(out);
};

/** The kernel's parts, wired; `makeKernel` puts its API on top. */
const makeKernelParts = (options: KernelOptions) => {
  const { powers, effectors, failureModes, maxBytes, onHalt, grantValidators = {}, durability = 'durable' } = options;
  // Called as the caller's methods, never detached from them.
  const now = () => powers.now();
  const makeRequestId = () => powers.makeRequestId();
  const sha256Hex = (data: string) => powers.sha256Hex(data);
  const canonicalJson = (value: unknown) => powers.canonicalJson(value);
  let open = true;
  const isOpen = () => open;
  const brands = makeGrantBrands();
  const { setTimeout, setBackgroundTimeout, clearTimeout } = powers;
  const recorder = makeAuditRecorder({ now, setTimeout, clearTimeout, sink: options.audit }, failureModes);
  const { recordLater } = recorder;
  /** Runtime events: hardened, and a listener that throws is contained. */
  const notify = (event: RuntimeEvent) => {
    if (!options.onEvent) return;
    try {
      options.onEvent(harden(event));
    } catch {
      // a listener never breaks the kernel
    }
  };
  const policy = makePolicySlot({ now, sha256Hex, canonicalJson, recordLater, notify }, options.policy);
  const currentPolicy = policy.current;
  const agents = makeAgentRegistry({ now, recordLater });
  const agentLookup = facet(agents, 'get');
  const table = makeCapabilityTable({ now, setBackgroundTimeout, clearTimeout, recordLater, currentPolicy, agents: agentLookup, isOpen, notify }, { grantValidators });
  const decider = makeDecider({ sha256Hex, canonicalJson, currentPolicy, agents: agentLookup, table: facet(table, 'entry', 'chainOf'), isOpen });
  const delegation = makeDelegation({
    now,
    recordLater,
    currentPolicy,
    agents: agentLookup,
    table: facet(table, 'entry', 'issue'),
    brands: facet(brands, 'isGrant', 'makeDerivedRef'),
  });
  const effects = makeEffectRunner({ now, setTimeout, clearTimeout, effectors, makeGrant: brands.makeGrant, deriveGrants: delegation.deriveGrants }, { maxBytes });
  const approvals = makeApprovals({
    now,
    setTimeout,
    clearTimeout,
    record: recorder.record,
    sha256Hex,
    canonicalJson,
    agents: facet(agents, 'busy'),
    ...(options.approvalHost === undefined ? {} : { host: options.approvalHost }),
  });

  const revokeAgent = (agentId: string, reason = 'revoked by operator') => {
    if (!agents.markRevoked(agentId)) return false;
    table.revokeHeldBy(agentId, reason, 'agent');
    recordLater({ type: 'agent.revoked', time: now(), agentId, reason });
    notify({ type: 'agent.revoked', agentId, reason });
    return true;
  };

  const halt = (agentId: string, code: ErrorCode) => {
    if (!agents.isLive(agentId)) return;
    revokeAgent(agentId, `halted by failure mode (${code})`);
    onHalt?.(agentId, code);
  };

  const mediation = makeMediation(
    {
      now,
      makeRequestId,
      sha256Hex,
      canonicalJson,
      record: recorder.record,
      currentPolicy,
      decider,
      table: facet(table, 'entry', 'chainOf', 'noteExpired'),
      agents: facet(agents, 'noteActivity', 'acquireTaints', 'busy'),
      effects,
      approvals: facet(approvals, 'request'),
      halt,
    },
    { failureModes, durability },
  );

  const shutdown = async () => {
    if (!open) return;
    open = false;
    table.close();
    recordLater({ type: 'runtime.shutdown', time: now() });
    await recorder.settle();
  };

  const assertOpen = () => {
    if (!open) throw new ZtError('ZT_SHUT_DOWN');
  };

  return { now, brands, recorder, policy, agents, table, decider, delegation, mediation, approvals, revokeAgent, shutdown, assertOpen };
};

export const makeKernel = (options: KernelOptions) => {
  const { now, brands, recorder, policy, agents, table, decider, delegation, mediation, approvals, revokeAgent, shutdown, assertOpen } = makeKernelParts(options);

  const issueCapability = (cap: Capability, issuer = 'operator'): CapabilityRecord => {
    assertOpen();
    if (!(cap instanceof Capability)) {
      // Validate plain objects by constructing; this throws ZT_NO_HOLDER etc.
      cap = new Capability(cap as never);
    }
    if (cap.id.includes('~')) throw new ZtError('ZT_BAD_ARGUMENT', '"~" in a capability id is reserved for derived capabilities');
    return table.issue(cap, issuer, undefined);
  };

  /**
   * Replaces the policy (the next decision uses it). A document that fails
   * validation throws ZT_POLICY_INVALID and the policy in force stays. With
   * `revokeRefused` (the default), live capabilities the new policy would no
   * longer grant are revoked, each audited with the refusing decision.
   */
  const setPolicy = (input: unknown, options: { revokeRefused?: boolean } = {}) => {
    const { policy: next, time } = policy.replace(input);
    const { refused, revoked } = table.regrant(next, time, options.revokeRefused ?? true);
    return harden({ policyHash: next.hash, refused, revoked });
  };

  return harden({
    registerAgent: (agentId: string, options: { labels?: readonly string[] } = {}) => {
      assertOpen();
      agents.register(agentId, options);
    },
    issueCapability,
    getCapability: table.snapshot,
    capabilityShape: table.shape,
    listCapabilities: table.list,
    revokeCapability: table.revoke,
    revokeAgent,
    revokeAgentCapabilities: table.revokeHeldBy,
    abortCallsOf: table.abortCallsOf,
    /**
     * Brackets a whole call from a vat (checks, audit, effect, denial alike):
     * while any is open, the agent is not idle, so quiescence detection
     * cannot mistake a slow denial for an agent waiting on nothing.
     */
    beginCall: (agentId: string) => agents.busy(agentId, +1),
    endCall: (agentId: string) => agents.busy(agentId, -1),
    /** From now on, every record about `agentId` names this (weaker) isolation level. */
    markWeakIsolation: recorder.markWeakIsolation,
    /**
     * Delegation: the holder of `capabilityId` gives `to` a capability of its
     * own, bound to `to`, no wider than the original (every use is also
     * checked against and counted on the original), revoked with it, and only
     * if the policy explicitly permits this delegation. Audited either way.
     */
    delegate: (request: DelegationRequest): CapabilityRecord => {
      assertOpen();
      return delegation.delegate(request);
    },
    /** Runs a request from outside the kernel: checked at the boundary, then mediated. */
    execute: mediation.execute,
    /**
     * Runs a request the membrane has already checked at the vat boundary
     * (its arguments are a plain-data copy): mediated, not checked again.
     */
    executeChecked: mediation.executeChecked,
    /**
     * Decides without consuming or recording (forensics, benchmarks). The
     * decision is hardened (the policy's own decisions already are, and are
     * shared between requests).
     */
    evaluate: (request: ActionRequest) => {
      let admitted: ActionRequest;
      try {
        admitted = admit(request);
      } catch (err) {
        return harden({ allowed: false, code: boundaryCodeOf(err), rules: [], policyHash: policy.current().hash });
      }
      return harden(decider.evaluate(admitted, now()).decision);
    },
    /**
     * A person's answer to a pending approval, from the host (checked here:
     * a malformed answer denies). False when nothing is pending under that id.
     */
    answerApproval: approvals.answer,
    /** The approvals waiting for an answer now. */
    pendingApprovals: approvals.pending,
    whenIdle: agents.whenIdle,
    refuse: mediation.refuse,
    isDerivedRef: brands.isDerivedRef,
    noteActivity: agents.noteActivity,
    agentActivity: agents.activity,
    hasAgent: agents.isLive,
    setPolicy,
    getPolicyHash: () => policy.current().hash,
    record: recorder.record,
    reattachAudit: recorder.reattach,
    recordLater: recorder.recordLater,
    /** `recordLater`, with the record's reference (undefined if it was not recorded). */
    recordLaterRef: recorder.recordLaterRef,
    flush: recorder.flush,
    shutdown,
  });
};
harden(makeKernel);

export type Kernel = ReturnType<typeof makeKernel>;
