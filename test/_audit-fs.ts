/**
 * Test helpers for the audit store: temporary folders and instrumented
 * file-system powers that count syncs, hold syncs at a gate and inject
 * errors such as ENOSPC.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { FileStorePowers, StoreFileHandle } from '../src/audit/file-store.js';
import { makeNodeFileStorePowers } from '../src/audit/node-powers.js';

/** A fresh folder under the OS temp dir, removed when the test ends. */
export const tempDir = async (t: ExecutionContext): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), 'ztaas-audit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
};

export const errnoError = (code: string): Error =>
  Object.assign(Error(`${code}: simulated`), { code });

export interface Instrumented {
  powers: FileStorePowers;
  counts: { writes: number; datasyncs: number; truncates: number };
  /** While held, every datasync waits until `release()`. */
  hold(): void;
  release(): void;
  /** Makes the next write fail with this errno code (after `afterBytes` bytes). */
  failNextWrite(code: string, afterBytes?: number): void;
  failNextDatasync(code: string): void;
  /** Timers run only when the test calls `runTimers()`. */
  runTimers(): void;
  pendingTimers(): number;
}

export const instrumentedPowers = (opts: { manualTimers?: boolean } = {}): Instrumented => {
  const real = makeNodeFileStorePowers();
  const counts = { writes: 0, datasyncs: 0, truncates: 0 };
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  let writeFault: { code: string; afterBytes: number } | undefined;
  let syncFault: string | undefined;
  const timers = new Set<() => void>();

  const wrap = (fh: StoreFileHandle): StoreFileHandle => ({
    ...fh,
    write: async (bytes, position) => {
      counts.writes += 1;
      const fault = writeFault;
      if (fault) {
        writeFault = undefined;
        if (fault.afterBytes > 0) {
          // A short write of the first bytes; the next attempt hits the error.
          writeFault = { code: fault.code, afterBytes: 0 };
          return fh.write(bytes.subarray(0, Math.min(fault.afterBytes, bytes.length)), position);
        }
        throw errnoError(fault.code);
      }
      return fh.write(bytes, position);
    },
    datasync: async () => {
      counts.datasyncs += 1;
      if (gate) await gate;
      if (syncFault) {
        const code = syncFault;
        syncFault = undefined;
        throw errnoError(code);
      }
      return fh.datasync();
    },
    truncate: async length => {
      counts.truncates += 1;
      return fh.truncate(length);
    },
  });

  const powers: FileStorePowers = {
    makeDir: real.makeDir,
    openFile: async (dir, name, options) => wrap(await real.openFile(dir, name, options)),
    createFile: real.createFile!,
    setTimer: opts.manualTimers
      ? (fn, _ms) => {
          timers.add(fn);
          return () => timers.delete(fn);
        }
      : real.setTimer,
  };
  return {
    powers,
    counts,
    hold: () => {
      gate = new Promise(resolve => {
        open = resolve;
      });
    },
    release: () => {
      gate = undefined;
      open?.();
    },
    failNextWrite: (code, afterBytes = 0) => {
      writeFault = { code, afterBytes };
    },
    failNextDatasync: code => {
      syncFault = code;
    },
    runTimers: () => {
      const due = [...timers];
      timers.clear();
      for (const fn of due) fn();
    },
    pendingTimers: () => timers.size,
  };
};

/** Lets queued promise jobs and pending I/O callbacks run. */
export const settle = (ms = 20): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));

/** Polls `cond` until it holds (or fails the wait after `ms`). */
export const until = async (cond: () => boolean, ms = 5_000): Promise<boolean> => {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise(resolve => setTimeout(resolve, 2));
  }
  return true;
};

/** Tracks whether a promise has settled, without affecting it. */
export const track = <T>(p: Promise<T>) => {
  const state = { settled: false, value: undefined as T | undefined, error: undefined as unknown };
  p.then(
    v => {
      state.settled = true;
      state.value = v;
    },
    e => {
      state.settled = true;
      state.error = e;
    },
  );
  return state;
};
