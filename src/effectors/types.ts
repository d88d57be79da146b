import type { ActionArgs } from '../types.js';

/** What the kernel hands an effector for one validated, authorized action. */
export interface EffectContext {
  /** The normalized absolute target the capability and policy approved. */
  readonly target: string;
  readonly args: ActionArgs;
  /** Aborted on revocation, deadline or shutdown; effectors must stop work. */
  readonly signal: AbortSignal;
  /** Largest number of bytes the action may move (capability ∩ runtime limit). */
  readonly maxBytes: number;
}

/** Performs one kind of real action. Resolves to passable data or throws a ZtError. */
export type Effector = (ctx: EffectContext) => Promise<unknown>;
