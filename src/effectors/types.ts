import type { ErrorCode } from '../errors.js';
import type { ParsedUrl } from '../targets.js';
import type { ActionArgs, CapabilityConstraints } from '../types.js';

/** What the kernel hands an effector for one validated, authorized action. */
export interface EffectContext {
  /** The normalized absolute target the capability and policy approved. */
  readonly target: string;
  /** For NETWORK: `target` as the kernel parsed it (its `href` is `target`), so the effector need not parse it again. */
  readonly url?: ParsedUrl;
  readonly args: ActionArgs;
  /** Aborted on revocation, deadline or shutdown; effectors must stop work. */
  readonly signal: AbortSignal;
  /** Largest number of bytes the action may move (capability ∩ runtime limit). */
  readonly maxBytes: number;
  /** The presenting capability's constraints (its `effect` settings among them). */
  readonly constraints: CapabilityConstraints;
  /**
   * Re-checks another concrete target (a redirect hop, a resolved path)
   * against the same capability and the policy in force, as if requested
   * now; recorded in the audit log. Effectors call it before touching any
   * target other than `target`.
   */
  recheck(target: string): Promise<{ readonly allowed: boolean; readonly code?: ErrorCode; readonly target?: string; readonly url?: ParsedUrl }>;
}

/**
 * Checks, when a capability is issued, that its target and `effect` settings
 * make sense for this effector; throws ZT_BAD_ARGUMENT otherwise.
 */
export type GrantValidator = (target: string, constraints: CapabilityConstraints) => void;

/** Performs one kind of real action. Resolves to passable data or throws a ZtError. */
export type Effector = (ctx: EffectContext) => Promise<unknown>;
