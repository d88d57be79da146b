/**
 * The policy in force.
 *
 * Invariants:
 * - Every policy that comes into force is recorded (`policy.loaded`, with
 *   its hash and document), the first one as the kernel starts.
 * - A document that fails validation throws ZT_POLICY_INVALID and the
 *   policy in force stays.
 * - The kernel's parts read the policy through `current()` each time they
 *   decide, so a replacement applies from the next decision on.
 */
import { harden } from '../harden.js';
import { makePolicy, type Policy } from '../policy.js';
import type { RuntimeEvent } from '../runtime-events.js';
import type { RecordLater } from './types.js';

const isPolicy = (x: unknown): x is Policy =>
  typeof x === 'object' && x !== null && typeof (x as Policy).decide === 'function' && typeof (x as Policy).hash === 'string';

export interface PolicySlotPowers {
  readonly now: () => number;
  readonly sha256Hex: (data: string) => string;
  readonly canonicalJson: (value: unknown) => string;
  readonly recordLater: RecordLater;
  /** Told of every policy that comes into force (runtime events); never throws. */
  readonly notify?: (event: RuntimeEvent) => void;
}

/** `initial` is a policy document, or a policy already compiled by `makePolicy`. */
export const makePolicySlot = (powers: PolicySlotPowers, initial: unknown) => {
  const { now, sha256Hex, canonicalJson, recordLater, notify } = powers;
  let policy: Policy = makePolicy(initial, sha256Hex, canonicalJson);

  const current = (): Policy => policy;

  /** Puts `input` in force; returns it, with the time it took effect. */
  const replace = (input: unknown): { policy: Policy; time: number } => {
    const next = isPolicy(input) ? input : makePolicy(input, sha256Hex, canonicalJson);
    const time = now();
    policy = next;
    recordLater({ type: 'policy.loaded', time, policyHash: next.hash, policy: next.document });
    notify?.({ type: 'policy.loaded', policyHash: next.hash });
    return { policy: next, time };
  };

  recordLater({ type: 'policy.loaded', time: now(), policyHash: policy.hash, policy: policy.document });
  return harden({ current, replace });
};
harden(makePolicySlot);

export type PolicySlot = ReturnType<typeof makePolicySlot>;
