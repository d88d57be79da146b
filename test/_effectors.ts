/**
 * Effector test helpers: an EffectContext built by hand (with a real
 * AbortController and a `recheck` that applies a real compiled capability
 * pattern, recording every hop), and small polling utilities with bounded
 * waits.
 */
import { ZtError, codeOf } from '../src/errors.js';
import type { EffectContext } from '../src/effectors/types.js';
import { compileTarget, normalizeTarget } from '../src/targets.js';
import type { ActionType, CapabilityConstraints } from '../src/types.js';

export interface CtxOptions {
  readonly actionType: ActionType;
  /** The capability's target pattern (recheck applies it); defaults to `target`. */
  readonly pattern?: string;
  readonly target: string;
  readonly args?: Record<string, unknown>;
  readonly effect?: Record<string, unknown>;
  readonly maxBytes?: number;
  readonly controller?: AbortController;
}

export const makeCtx = (opts: CtxOptions) => {
  const controller = opts.controller ?? new AbortController();
  const pattern = compileTarget(opts.actionType, opts.pattern ?? opts.target);
  const hops: Array<{ target: string; allowed: boolean; code?: string }> = [];
  const constraints: CapabilityConstraints = harden({
    ...(opts.effect ? { effect: JSON.parse(JSON.stringify(opts.effect)) as Record<string, unknown> } : {}),
  });
  const ctx: EffectContext = {
    target: normalizeTarget(opts.actionType, opts.target),
    args: harden({ ...(opts.args ?? {}) }),
    signal: controller.signal,
    maxBytes: opts.maxBytes ?? 1024 * 1024,
    constraints,
    recheck: async (hop: string) => {
      let target: string;
      try {
        target = normalizeTarget(opts.actionType, hop);
      } catch {
        hops.push({ target: hop, allowed: false, code: 'ZT_WRONG_TARGET' });
        return harden({ allowed: false, code: 'ZT_WRONG_TARGET' as const });
      }
      const allowed = pattern.matches(target);
      hops.push({ target, allowed, ...(allowed ? {} : { code: 'ZT_WRONG_TARGET' }) });
      return harden(allowed ? { allowed: true, target } : { allowed: false, code: 'ZT_WRONG_TARGET' as const });
    },
  };
  return { ctx, controller, hops };
};

/** Runs `fn`, returning the ZT code it rejects with (or 'RESOLVED'). */
export const codeOfRejection = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'RESOLVED';
  } catch (err) {
    return codeOf(err) ?? (err instanceof ZtError ? err.code : `NOT_ZT: ${String(err)}`);
  }
};

export const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms));

/** Polls `cond` every 20 ms for at most `ms`; resolves to its last value. */
export const waitFor = async (cond: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> => {
  const until = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > until) return false;
    await sleep(20);
  }
};
