/**
 * Re-checking live capabilities against a new policy version. When the
 * operator loads a new policy, every capability it would no longer grant
 * is listed here; the kernel revokes them (if so configured) and audits
 * each revocation with the decision that justifies it.
 */
import { harden } from '../harden.js';
import type { ActionType } from '../types.js';
import type { Decision, Policy } from './types.js';

export interface LiveGrant {
  readonly id: string;
  readonly holder: string;
  readonly actionType: ActionType;
  readonly target: string;
  readonly labels?: readonly string[];
}

/** The grants `policy` would refuse to issue today, each with the refusing decision. */
export const regrantCheck = (
  policy: Policy,
  grants: Iterable<LiveGrant>,
  time?: number,
): Array<{ readonly id: string; readonly decision: Decision }> => {
  const refused: Array<{ readonly id: string; readonly decision: Decision }> = [];
  for (const g of grants) {
    const decision = policy.decideGrant({
      holder: g.holder,
      actionType: g.actionType,
      target: g.target,
      ...(g.labels ? { labels: g.labels } : {}),
      ...(time === undefined ? {} : { time }),
    });
    if (!decision.allowed) refused.push(harden({ id: g.id, decision }));
  }
  return harden(refused);
};
harden(regrantCheck);
