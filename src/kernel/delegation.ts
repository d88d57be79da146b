/**
 * Capabilities made from capabilities: delegated by their holder to another
 * agent, or derived from grants an effector returns.
 *
 * Invariants:
 * - A delegated capability is bound to its recipient, no wider than the
 *   original (its target is the original's or one concrete target the
 *   original covers; every use is also checked against, and counted on, the
 *   original), carries the original's effector settings unchanged, and is
 *   revoked with it. It exists only if the policy explicitly permits this
 *   delegation; every refusal is recorded.
 * - An agent learns whether a recipient exists only after the policy named
 *   that recipient, so delegation cannot probe which ids are registered.
 * - A derived capability has the presenting capability's holder, is its
 *   child (revoked with it) and expires no later than it. A grant the
 *   policy refuses becomes `null` in the result.
 */
import { harden } from '../harden.js';
import { ZtError, codeOf, type ErrorCode } from '../errors.js';
import type { GrantBrands } from '../grants.js';
import type { Decision, Policy } from '../policy.js';
import { compileTarget, normalizeTarget } from '../targets.js';
import { Capability, type CapabilityConstraints } from '../types.js';
import type { AgentRegistry } from './agents.js';
import type { CapabilityTable, CapEntry } from './capability-table.js';
import type { CapabilityRecord, RecordLater } from './types.js';

/** Nesting beyond which an effector's result is not searched for grants. */
const MAX_GRANT_DEPTH = 32;

export interface DelegationRequest {
  from: string;
  capabilityId: string;
  to: string;
  target?: string;
  constraints?: CapabilityConstraints;
}

export interface DelegationPowers {
  readonly now: () => number;
  readonly recordLater: RecordLater;
  readonly currentPolicy: () => Policy;
  readonly agents: Pick<AgentRegistry, 'get'>;
  readonly table: Pick<CapabilityTable, 'entry' | 'issue'>;
  readonly brands: Pick<GrantBrands, 'isGrant' | 'makeDerivedRef'>;
}

const withoutEffect = (constraints: CapabilityConstraints | undefined): Omit<CapabilityConstraints, 'effect'> => {
  if (constraints === undefined || constraints === null || typeof constraints !== 'object') return {};
  const { effect: _ignored, ...rest } = constraints;
  return rest;
};

/** Is `target` the original's, or one concrete target its pattern covers? */
const narrows = (entry: CapEntry, target: string): boolean => {
  try {
    return target === entry.spec.target || (compileTarget(entry.spec.actionType, target).exact && entry.pattern.matches(normalizeTarget(entry.spec.actionType, target)));
  } catch {
    return false;
  }
};

export const makeDelegation = (powers: DelegationPowers) => {
  const { now, recordLater, currentPolicy, agents, table, brands } = powers;

  /**
   * The holder of `capabilityId` gives `to` a capability of its own.
   * Recorded by the table as `capability.delegated` (issuer
   * `delegated:<from>`, parent, holder), or here as
   * `capability.delegation-denied`.
   */
  let delegationCounter = 0;
  const delegate = (request: DelegationRequest): CapabilityRecord => {
    const { from, capabilityId, to } = request;
    const time = now();
    const refuse = (code: ErrorCode, message: string, rules: readonly string[] = []): never => {
      recordLater({ type: 'capability.delegation-denied', time, from, to: String(to), capabilityId, code, rules, policyHash: currentPolicy().hash });
      throw new ZtError(code, message);
    };
    const fromAgent = agents.get(from);
    if (!fromAgent || fromAgent.state !== 'live') return refuse('ZT_AGENT_REVOKED', `agent ${from} cannot delegate`);
    const entry = table.entry(capabilityId);
    if (!entry) return refuse('ZT_UNKNOWN_CAPABILITY', `no capability ${capabilityId}`);
    if (entry.spec.holder !== from) return refuse('ZT_WRONG_HOLDER', `capability ${capabilityId} is not held by ${from}`);
    if (entry.state !== 'live') return refuse('ZT_REVOKED', `capability ${capabilityId} has been revoked`);
    if (typeof to !== 'string') return refuse('ZT_BAD_ARGUMENT', 'the recipient must be an agent id');
    if (to === from) return refuse('ZT_BAD_ARGUMENT', 'an agent cannot delegate to itself');
    const target = request.target ?? entry.spec.target;
    if (!narrows(entry, target)) return refuse('ZT_WRONG_TARGET', 'a delegated target must be the original target or one path it covers');
    let decision: Decision | undefined;
    try {
      decision = currentPolicy().decideDelegation({ from, to, actionType: entry.spec.actionType, target });
    } catch {
      return refuse('ZT_POLICY_ERROR', 'the policy could not decide the delegation');
    }
    if (!decision || !decision.allowed) {
      return refuse(decision?.code ?? 'ZT_POLICY_DENIED', `the policy does not permit ${from} to delegate ${entry.spec.actionType} on ${target} to ${to}`, decision?.rules ?? []);
    }
    // Only after the policy named the recipient: an agent cannot probe which ids exist.
    const recipient = agents.get(to);
    if (!recipient) return refuse('ZT_UNKNOWN_AGENT', 'the recipient is not a registered agent');
    if (recipient.state !== 'live') return refuse('ZT_AGENT_REVOKED', `agent ${to} has been revoked`);
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
    return table.issue(cap, `delegated:${from}`, entry);
  };

  /**
   * Replaces every grant token in an effector's result with a derived
   * capability (same holder, parent = the presenting capability, expiring no
   * later than it) and a kernel-branded reference to it. A grant the policy
   * refuses becomes `null` in the result and is audited as refused.
   */
  let derivedCounter = 0;
  const deriveGrants = (parent: CapEntry, value: unknown, depth = 0): unknown => {
    if (value === null || typeof value !== 'object' || depth > MAX_GRANT_DEPTH) return value;
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
        const record = table.issue(cap, `derived:${parent.spec.id}`, parent);
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

  return harden({ delegate, deriveGrants });
};
harden(makeDelegation);

export type Delegation = ReturnType<typeof makeDelegation>;
