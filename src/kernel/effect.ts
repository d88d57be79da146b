/**
 * Performing one allowed action: the effector call, bounded by the
 * capability's byte budget and expiry and cut by its revocation.
 *
 * Invariants:
 * - An effector is handed the normalized target the checks and the policy
 *   approved, a byte limit no larger than the runtime's, the presenting
 *   capability's and what is left of every byte budget on its chain, and a
 *   signal that fires on revocation, expiry and shutdown.
 * - Bytes a call may move are reserved on every budgeted link while it runs,
 *   so concurrent calls cannot overspend a budget; the reservation gives way
 *   to the bytes actually moved.
 * - A call whose capability expired or was revoked before it started never
 *   starts; one cut while running, or after its effect finished but before
 *   its result was delivered, fails with the cutting code and its result is
 *   withheld.
 */
import { harden } from '../harden.js';
import { ZtError, ErrorCodes, codeOf, reasonOf, type ErrorCode } from '../errors.js';
import type { Effector, EffectContext } from '../effectors/types.js';
import type { GrantBrands, GrantToken } from '../grants.js';
import type { ParsedUrl } from '../targets.js';
import type { ActionRequest, ActionType, CapabilityConstraints, Outcome } from '../types.js';
import type { KernelTimers } from './types.js';
import { MAX_TIMER_MS, type CapEntry } from './capability-table.js';

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

/** What became of one effector call. */
export interface EffectRun {
  readonly status: Outcome['status'];
  readonly result?: unknown;
  readonly code?: ErrorCode;
  readonly message?: string;
  /** The effect finished, but the call was cut before its result was delivered. */
  readonly effectCompleted: boolean;
}

/** One allowed call, as the mediation path hands it over. */
export interface EffectCall {
  readonly request: ActionRequest;
  /** The presented capability, and the chain of capabilities it answers to (itself first). */
  readonly entry: CapEntry;
  readonly chain: readonly CapEntry[];
  /** The approved, normalized target. */
  readonly target: string;
  /** For NETWORK: the target as parsed by the checks. */
  readonly url: ParsedUrl | undefined;
  readonly controller: AbortController;
  readonly recheck: EffectContext['recheck'];
}

export interface EffectRunnerPowers extends Pick<KernelTimers, 'setTimeout' | 'clearTimeout'> {
  readonly now: () => number;
  readonly effectors: Partial<Record<ActionType, Effector>>;
  readonly makeGrant: GrantBrands['makeGrant'];
  /** Turns grant tokens in a result into derived capabilities (delegation.ts). */
  readonly deriveGrants: (parent: CapEntry, value: unknown) => unknown;
}

export interface EffectRunnerOptions {
  /** Upper bound on bytes any single action may move. */
  readonly maxBytes: number;
}

export const makeEffectRunner = (powers: EffectRunnerPowers, options: EffectRunnerOptions) => {
  const { now, effectors, makeGrant, deriveGrants, setTimeout, clearTimeout } = powers;
  const { maxBytes } = options;

  /**
   * The bytes this call may move (runtime limit ∩ every link's `maxBytes` ∩
   * what is left of every byte budget), reserved on every budgeted link, and
   * the earliest expiry on the chain.
   */
  const reserve = (chain: readonly CapEntry[]) => {
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
    const reservations: Array<[CapEntry, number]> = [];
    for (const link of chain) {
      if (link.spec.constraints.bytesBudget !== undefined) {
        link.reservedBytes += budget;
        reservations.push([link, budget]);
      }
    }
    const release = () => {
      for (const [link, reserved] of reservations) link.reservedBytes -= reserved;
    };
    return { budget, expiresAt, release };
  };

  /** The code and message of a failed or cut call. */
  const failure = (err: unknown, signal: AbortSignal, chain: readonly CapEntry[]): { code: ErrorCode; message: string } => {
    let code = signal.aborted ? (codeOf(signal.reason) ?? 'ZT_REVOKED') : (codeOf(err) ?? 'ZT_EFFECT_FAILED');
    // Too large for what is left of the byte budget: the budget is what ran out.
    if (code === 'ZT_TOO_LARGE' && chain.some(link => link.spec.constraints.bytesBudget !== undefined && link.spec.constraints.bytesBudget - link.bytes < Math.min(maxBytes, link.spec.constraints.maxBytes ?? Infinity))) {
      code = 'ZT_BUDGET_EXHAUSTED';
    }
    let message = reasonOf(err) ?? ErrorCodes[code];
    if (signal.aborted) message = ErrorCodes[code];
    return { code, message };
  };

  /** Calls the effector for one allowed request. Never rejects: a failure is a run with a code. */
  const run = async (call: EffectCall): Promise<EffectRun> => {
    const { request, entry, chain, target, url, controller } = call;
    const effector = effectors[request.actionType];
    let release: (() => void) | undefined;
    let expiryTimer: unknown;
    let effectCompleted = false;
    try {
      if (!effector) throw new ZtError('ZT_EFFECT_FAILED', `no effector is configured for ${request.actionType}`);
      const reserved = reserve(chain);
      release = reserved.release;
      // Expired or revoked while the decision was being recorded: do not start.
      if (now() >= reserved.expiresAt) controller.abort(new ZtError('ZT_EXPIRED', 'the capability expired before the action started'));
      controller.signal.throwIfAborted();
      const untilExpiry = Math.max(0, reserved.expiresAt - now());
      if (untilExpiry <= MAX_TIMER_MS) {
        // Expiry reached mid-call behaves like revocation: the call is cut.
        expiryTimer = setTimeout(() => controller.abort(new ZtError('ZT_EXPIRED', 'the capability expired during the call')), untilExpiry);
      }
      let result = await abortable(
        effector({
          // Effectors that derive capabilities read `grant` (see src/grants.ts, GrantingContext).
          ...({ grant: (init: { actionType: ActionType; target: string; constraints?: CapabilityConstraints }): GrantToken => makeGrant(init) } as object),
          target,
          ...(url === undefined ? {} : { url }),
          args: request.args,
          signal: controller.signal,
          maxBytes: reserved.budget,
          constraints: entry.spec.constraints,
          recheck: call.recheck,
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
      result = deriveGrants(entry, result);
      return { status: 'succeeded', result, effectCompleted };
    } catch (err) {
      return { status: 'failed', ...failure(err, controller.signal, chain), effectCompleted };
    } finally {
      // The reservation gives way to the bytes actually moved (added above on success).
      release?.();
      clearTimeout(expiryTimer);
    }
  };

  return harden({ run });
};
harden(makeEffectRunner);

export type EffectRunner = ReturnType<typeof makeEffectRunner>;
