/**
 * The agent registry: which agents exist, whether they are live, their
 * labels and acquired taints, and how busy they are.
 *
 * Invariants:
 * - An agent id is registered at most once and never reused; revocation is
 *   final (a revoked agent stays known, so its id cannot be taken again).
 * - Labels are fixed at registration; taints only ever grow.
 * - `inFlight` counts open calls and requests of the agent; `whenIdle`
 *   resolves only when it is zero, and `epoch` grows with every request that
 *   reached the kernel, so a vat host can tell a quiescent agent from one
 *   whose call is slow.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';
import { isValidId } from '../types.js';
import type { RecordLater } from './types.js';

/** An agent as the kernel's parts read it (the registry alone changes it). */
export interface AgentView {
  readonly id: string;
  readonly labels: readonly string[];
  /** Taints acquired by executed requests (policy `taints`), in order. */
  readonly taints: ReadonlySet<string>;
  readonly state: 'live' | 'revoked';
}

interface AgentEntry extends AgentView {
  readonly taints: Set<string>;
  state: 'live' | 'revoked';
  inFlight: number;
  /** Counts requests that reached the kernel; lets vat hosts detect quiescence. */
  epoch: number;
}

export interface AgentRegistryPowers {
  readonly now: () => number;
  readonly recordLater: RecordLater;
}

export const makeAgentRegistry = (powers: AgentRegistryPowers) => {
  const { now, recordLater } = powers;
  const agents = new Map<string, AgentEntry>();
  const idleWaiters = new Map<string, Set<() => void>>();

  /** Registers a live agent; records `agent.registered`. */
  const register = (agentId: string, options: { labels?: readonly string[] } = {}) => {
    if (!isValidId(agentId)) throw new ZtError('ZT_BAD_ARGUMENT', 'agent id must match [A-Za-z0-9][A-Za-z0-9._:@/~-]{0,127}');
    if (agents.has(agentId)) throw new ZtError('ZT_DUPLICATE_AGENT', `agent ${agentId} is already registered`);
    const labels = options?.labels ?? [];
    if (!Array.isArray(labels) || !labels.every(isValidId)) throw new ZtError('ZT_BAD_ARGUMENT', 'labels must be an array of ids');
    agents.set(agentId, { id: agentId, labels: harden([...labels]), taints: new Set(), state: 'live', inFlight: 0, epoch: 0 });
    recordLater({ type: 'agent.registered', time: now(), agentId, labels: [...labels] });
  };

  const get = (agentId: string): AgentView | undefined => agents.get(agentId);

  const isLive = (agentId: string) => agents.get(agentId)?.state === 'live';

  /**
   * Marks the agent revoked. Returns false when it already was; throws
   * ZT_UNKNOWN_AGENT for an id never registered. (Its capabilities are the
   * capability table's to revoke, and the event the kernel's to record.)
   */
  const markRevoked = (agentId: string): boolean => {
    const agent = agents.get(agentId);
    if (!agent) throw new ZtError('ZT_UNKNOWN_AGENT', `no agent ${agentId}`);
    if (agent.state === 'revoked') return false;
    agent.state = 'revoked';
    return true;
  };

  /** Adds `taints` to the agent's; returns those it did not have yet, in order. */
  const acquireTaints = (agentId: string, taints: readonly string[]): string[] => {
    const agent = agents.get(agentId);
    const added: string[] = [];
    for (const taint of taints) {
      if (agent && !agent.taints.has(taint)) {
        agent.taints.add(taint);
        added.push(taint);
      }
    }
    return added;
  };

  /** Opens (+1) or closes (-1) a call of the agent; wakes `whenIdle` at zero. */
  const busy = (agentId: string, delta: number) => {
    const agent = agents.get(agentId);
    if (!agent) return;
    agent.inFlight += delta;
    if (agent.inFlight === 0) {
      const waiters = idleWaiters.get(agentId);
      if (waiters) for (const w of [...waiters]) w();
    }
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

  /** Marks that a request or a vat reached the kernel on the agent's behalf (quiescence detection). */
  const noteActivity = (agentId: string) => {
    const agent = agents.get(agentId);
    if (agent) agent.epoch += 1;
  };

  const activity = (agentId: string) => {
    const agent = agents.get(agentId);
    return agent ? harden({ inFlight: agent.inFlight, epoch: agent.epoch }) : undefined;
  };

  return harden({ register, get, isLive, markRevoked, acquireTaints, busy, whenIdle, noteActivity, activity });
};
harden(makeAgentRegistry);

export type AgentRegistry = ReturnType<typeof makeAgentRegistry>;
