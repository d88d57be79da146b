/**
 * Where a launch gets its vat: a warm spare from the pool, or a freshly
 * started one.
 *
 * Invariants:
 * - Only worker vats of the pool's heap limit are pooled; a launch with
 *   another limit or isolation level always gets a fresh vat.
 * - A spare is handed out at most once and only while it is alive; a dead
 *   spare is dropped and replaced, as is one that never answered its first
 *   probe.
 * - Spares never keep the process alive (they are unreferenced until bound;
 *   vat-slot.ts), and once the pool is drained nothing refills it.
 * - The pool is refilled after the current turn, never inside a launch:
 *   starting a worker blocks this thread for a few milliseconds.
 * - A spare may run one trivial agent first (`prewarmBundle`), in a
 *   Compartment of its own with no capabilities; its outcome is ignored.
 */
import { harden } from './harden.js';
import { E } from '@endo/far';
import type { AgentBundle } from './agent-modules.js';
import type { VatHostPowers, VatIsolation } from './vat-host.js';
import type { VatScheduler } from './vat-scheduler.js';
import { startVatSlot, type VatSlot } from './vat-slot.js';

export interface VatPoolOptions {
  /** Number of vats kept started and waiting (warm starts). */
  readonly poolSize: number;
  /** Heap limit of pooled vats. */
  readonly poolMemoryMb: number;
  /** A trivial agent each pooled vat runs once before it is needed (warms its run path). */
  readonly prewarmBundle?: Pick<AgentBundle, 'entry' | 'modules'> | Promise<Pick<AgentBundle, 'entry' | 'modules'>> | undefined;
  /** Dispatches every slot's messages in the kernel's turns. */
  readonly scheduler: VatScheduler;
}

export const makeVatPool = (powers: Pick<VatHostPowers, 'startAgentWorker' | 'setTimeout'>, opts: VatPoolOptions) => {
  const { poolSize, poolMemoryMb, prewarmBundle, scheduler } = opts;
  const pool: VatSlot[] = [];
  let slotCounter = 0;
  let drained = false;

  const startSlot = (memoryMb: number, pooled: boolean, isolation: VatIsolation = 'worker'): VatSlot => {
    slotCounter += 1;
    return startVatSlot(powers, { name: `kernel-vat-${slotCounter}`, memoryMb, pooled, isolation, scheduler });
  };

  /** Starts spares until the pool is full (nothing once drained). */
  const refill = () => {
    while (!drained && pool.length < poolSize) {
      const slot = startSlot(poolMemoryMb, true);
      pool.push(slot);
      void slot.ready.then(ok => {
        if (!ok) {
          const i = pool.indexOf(slot);
          if (i >= 0) pool.splice(i, 1);
          return;
        }
        // Warm the new vat's run path with a trivial agent, in a Compartment
        // of its own, with no capabilities. A launch that takes the slot
        // meanwhile runs beside it; its outcome does not matter (a vat that
        // fails it fails its real run the same way).
        if (!prewarmBundle) return;
        void Promise.resolve(prewarmBundle)
          .then(({ entry, modules }) => E(slot.vatRoot).prewarm(harden({ entry, modules, caps: {}, input: null })))
          .catch(() => undefined);
      });
    }
  };

  /** A vat for one run: a live spare when one fits (`warm`), else a fresh one. */
  const take = (memoryMb: number, isolation: VatIsolation): { slot: VatSlot; warm: boolean } => {
    if (isolation !== 'worker') return { slot: startSlot(memoryMb, false, isolation), warm: false };
    if (memoryMb === poolMemoryMb) {
      while (pool.length > 0) {
        const slot = pool.shift() as VatSlot;
        // A dead spare is dropped and replaced.
        if (slot.isDead()) powers.setTimeout(refill, 0);
        if (!slot.isDead()) {
          // Starting a worker blocks this thread for a few milliseconds, so
          // the pool is refilled when a run ends, or right after this turn
          // if no spare vat is left.
          if (pool.length === 0) powers.setTimeout(refill, 0);
          return { slot, warm: true };
        }
      }
    }
    return { slot: startSlot(memoryMb, false), warm: false };
  };

  /** After a run ends: refill after this turn, if there is a pool at all. */
  const refillLater = () => {
    if (poolSize > 0) powers.setTimeout(refill, 0);
  };

  /** Stops refilling and hands back the spares (the caller closes them). */
  const drain = (): VatSlot[] => {
    drained = true;
    return pool.splice(0);
  };

  return harden({ refill, refillLater, take, drain });
};
harden(makeVatPool);
