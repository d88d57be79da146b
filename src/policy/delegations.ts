/**
 * The policy's `delegations`: which holders may give which agents their own
 * copy of a capability. Default deny: only an explicit entry permits.
 *
 * Invariants:
 * - a delegation target is compiled exactly as a capability's target
 *   (`compileTarget`), per action type it may apply to; a pattern that fits
 *   none of them, or uses glob syntax the matcher does not support, is a
 *   load-time problem, never a pattern that silently matches nothing;
 * - any error while deciding denies (ZT_POLICY_ERROR).
 */
import { harden } from '../harden.js';
import { globSyntaxProblem } from '../glob.js';
import type { TargetPattern } from '../paths.js';
import { compileTarget } from '../targets.js';
import type { ActionType } from '../types.js';
import { ALL_ACTIONS } from './compile.js';
import type { Decision, DelegationRequest, DelegationRule, PolicyProblem } from './types.js';

/** A delegation entry, compiled: sets of agents and actions, target patterns per action type. */
export interface CompiledDelegation {
  readonly id: string;
  readonly from: ReadonlySet<string> | undefined;
  readonly to: ReadonlySet<string> | undefined;
  readonly actions: ReadonlySet<ActionType> | undefined;
  readonly targets: ReadonlyMap<ActionType, readonly TargetPattern[]> | undefined;
}

export const compileDelegation = (d: DelegationRule, i: number, problems: PolicyProblem[]): CompiledDelegation => {
  const agentSet = (list: readonly string[]) => (list.includes('*') ? undefined : new Set(list));
  const actions = d.actions ? new Set(d.actions) : undefined;
  let targets: Map<ActionType, TargetPattern[]> | undefined;
  if (d.targets) {
    targets = new Map();
    for (const [j, pattern] of d.targets.entries()) {
      const syntax = globSyntaxProblem(pattern);
      if (syntax !== undefined) {
        problems.push(harden({ pointer: `/delegations/${i}/targets/${j}`, message: `unsupported glob syntax: ${syntax}` }));
        continue;
      }
      let fits = 0;
      for (const action of d.actions ?? ALL_ACTIONS) {
        try {
          const compiled = compileTarget(action, pattern);
          targets.set(action, [...(targets.get(action) ?? []), compiled]);
          fits += 1;
        } catch {
          // Not a target of this action type.
        }
      }
      if (fits === 0) problems.push(harden({ pointer: `/delegations/${i}/targets/${j}`, message: 'is not a target pattern of any of its actions' }));
    }
  }
  return harden({ id: d.id, from: agentSet(d.from), to: agentSet(d.to), actions, targets });
};
harden(compileDelegation);

/** `policy.decideDelegation` over compiled entries: the first entry that admits the request permits. */
export const makeDecideDelegation = (delegations: readonly CompiledDelegation[], hash: string, malformed: Decision) => {
  const denied: Decision = harden({ allowed: false, code: 'ZT_POLICY_DENIED', rules: harden([]), policyHash: hash });
  return (request: DelegationRequest): Decision => {
    try {
      for (const d of delegations) {
        if (d.from !== undefined && !d.from.has(request.from)) continue;
        if (d.to !== undefined && !d.to.has(request.to)) continue;
        if (d.actions !== undefined && !d.actions.has(request.actionType)) continue;
        if (d.targets !== undefined) {
          const patterns = d.targets.get(request.actionType);
          if (!patterns || !patterns.some(p => p.matches(request.target) || p.source === request.target)) continue;
        }
        return harden({ allowed: true, rules: harden([d.id]), policyHash: hash });
      }
      return denied;
    } catch {
      return malformed;
    }
  };
};
harden(makeDecideDelegation);
