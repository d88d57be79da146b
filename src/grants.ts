/**
 * Derived capabilities. An effector that hands back something the agent
 * should be able to act on later (a file found in a listing, a handle)
 * returns a grant token made here; the kernel turns each token into a new
 * capability, bound to the same holder, derived from (and revoked with) the
 * capability that was presented, after the policy allowed the grant.
 *
 * Invariant: only objects made by `makeGrant` (and, on the way out, by the
 * kernel's `makeDerivedRef`) are recognized, by identity (a WeakSet), never
 * by shape: data from outside (a file, an HTTP body, a tool's result) that
 * looks like a grant is just data.
 */
import { harden } from './harden.js';
import { assertZt } from './errors.js';
import { isActionType, type ActionType, type CapabilityConstraints } from './types.js';

export interface GrantToken {
  readonly actionType: ActionType;
  readonly target: string;
  readonly constraints: CapabilityConstraints;
}

export interface DerivedRef {
  readonly capabilityId: string;
  readonly actionType: ActionType;
  readonly target: string;
}

/** Brands for tokens and refs; one pair per kernel, so kernels cannot forge each other's. */
export const makeGrantBrands = () => {
  const tokens = new WeakSet<object>();
  const refs = new WeakSet<object>();
  const makeGrant = (init: { actionType: ActionType; target: string; constraints?: CapabilityConstraints }): GrantToken => {
    assertZt(isActionType(init.actionType), 'ZT_BAD_ARGUMENT', 'grant needs an action type');
    assertZt(typeof init.target === 'string' && init.target !== '', 'ZT_BAD_ARGUMENT', 'grant needs a target');
    const token = harden({ actionType: init.actionType, target: init.target, constraints: init.constraints ?? {} });
    tokens.add(token);
    return token;
  };
  const makeDerivedRef = (ref: DerivedRef): DerivedRef => {
    const frozen = harden({ ...ref });
    refs.add(frozen);
    return frozen;
  };
  return harden({
    makeGrant,
    makeDerivedRef,
    isGrant: (x: unknown): x is GrantToken => typeof x === 'object' && x !== null && tokens.has(x),
    isDerivedRef: (x: unknown): x is DerivedRef => typeof x === 'object' && x !== null && refs.has(x),
  });
};
harden(makeGrantBrands);

export type GrantBrands = ReturnType<typeof makeGrantBrands>;

/** What an effector that derives capabilities finds on its EffectContext. */
export interface GrantingContext {
  grant(init: { actionType: ActionType; target: string; constraints?: CapabilityConstraints }): GrantToken;
}
