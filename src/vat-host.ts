/**
 * Starts, watches and ends agent vats.
 *
 * Invariants:
 * - One worker per run, one CapTP connection to it, nothing else: the vat
 *   has an empty environment, captured stdout/stderr and resource limits.
 * - A run ends exactly once, with exactly one `agent.finished` record, for
 *   one of: the agent returned, threw, rejected, returned a non-passable
 *   value, can never settle (quiescent while waiting on nothing), ran past
 *   its deadline, ran out of memory, crashed, or was terminated.
 * - When a run ends the worker is terminated and the membrane cut, so no
 *   caretaker of that run answers again; on a deadline, memory or crash
 *   failure the agent's capabilities are revoked (failure mode `vatFailure`).
 *
 * - Each run has budgets (vat-budget.ts): over one, a call is refused with
 *   its code or the vat is ended; the vat's traffic is dispatched in
 *   bounded slices, round-robin with every other vat (vat-scheduler.ts).
 * - The end of a run is the kernel's to write, from what it observed
 *   (vat-run.ts): a vat's claim of how it ended is recorded as a claim.
 *
 * A started vat and its one connection are a slot (vat-slot.ts); where a
 * launch gets its slot, warm or fresh, is the pool's job (vat-pool.ts).
 * This module binds a slot to a run, records the run's start, and watches
 * for a run that can never settle; the run's records are vat-run.ts's.
 */
import { harden } from './harden.js';
import { E } from '@endo/far';
import { ErrorCodes, ZtError, type ErrorCode } from './errors.js';
import type { AgentBundle } from './agent-modules.js';
import type { FailureModes } from './failure-modes.js';
import type { Kernel } from './kernel.js';
import { makeMembrane } from './membrane.js';
import type { AuditRef } from './types.js';
import { DEFAULT_VAT_BUDGETS, type VatBudgets } from './vat-budget.js';
import { makeVatPool } from './vat-pool.js';
import { checkReport, makeRunBinding, recordRunEnd, type RunEnd, type RunIds } from './vat-run.js';
import { makeVatScheduler } from './vat-scheduler.js';
import type { AgentVatRoot } from './vat-slot.js';

export interface WorkerLike {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  on(event: 'exit', listener: (code: number) => void): void;
  readonly stdout: { on(event: 'data', listener: (chunk: unknown) => void): void } | null;
  readonly stderr: { on(event: 'data', listener: (chunk: unknown) => void): void } | null;
  terminate(): Promise<number>;
  ref?(): void;
  unref?(): void;
}

export interface VatLimits extends VatBudgets {
  /** Wall-clock deadline for the whole run, from launch, in milliseconds. */
  readonly deadlineMs: number;
  /** V8 old-generation heap limit for the vat, in MiB. */
  readonly memoryMb: number;
}

export const DEFAULT_VAT_LIMITS: VatLimits = harden({ deadlineMs: 30_000, memoryMb: 128, ...DEFAULT_VAT_BUDGETS });

export type VatIsolation = 'worker' | 'process' | 'process-weak';

export interface VatHostPowers {
  /** Starts a vat of the given isolation level (`worker` when absent). */
  startAgentWorker(options: { memoryMb: number; isolation?: VatIsolation }): WorkerLike;
  now(): number;
  /** Content digest of a passable result, for the audit record. */
  digest(value: unknown): string;
  /** SHA-256 (hex) of a text's UTF-8 encoding: digests of what a vat sent. */
  sha256Hex(text: string): string;
  /** Runs `fn` once timers and I/O have been served (Node: `setImmediate`): the kernel's turns over vat traffic. */
  setImmediate(fn: () => void): void;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface RunOutcome {
  readonly agentId: string;
  readonly runId: string;
  readonly status: 'completed' | 'failed';
  readonly ok: boolean;
  readonly value?: unknown;
  /**
   * `line` and `column` (1-based): where in the entry module the agent's
   * error was made (the topmost frame of its stack there), when the vat
   * could tell.
   */
  readonly error?: { readonly code: ErrorCode; readonly message: string; readonly line?: number; readonly column?: number };
  readonly audit?: AuditRef;
}

export interface AgentHandle {
  readonly agentId: string;
  readonly runId: string;
  /** Resolves once the run has ended and its record is durable. Never rejects. */
  readonly result: Promise<RunOutcome>;
  /** Ends the run now (ZT_TERMINATED unless it already ended). */
  terminate(reason?: string): Promise<RunOutcome>;
}

/** How long a broken run waits for its vat's end to say why (see `run`). */
const VAT_END_GRACE_MS = 500;
const QUIESCENCE_DELAY_MS = 10;

/** What a launch's caller may watch of its run (the code runner collects its console this way). */
export interface RunObserver {
  /** Each console line, as recorded (level checked, text cut); `admitted` is false for a line the run's audit budget dropped. */
  readonly console?: (level: string, text: string, admitted: boolean) => void;
  /** The reference of the run's `agent.launched` record (undefined if it could not be recorded). */
  readonly launched?: (ref: Promise<AuditRef | undefined>) => void;
}

/** The position fields of a failure, when it has them. */
const positionOf = (report: { line?: number; column?: number }) =>
  report.line === undefined ? {} : { line: report.line, ...(report.column === undefined ? {} : { column: report.column }) };

export interface VatHostOptions {
  readonly kernel: Kernel;
  readonly powers: VatHostPowers;
  readonly failureModes: FailureModes;
  /** Number of vats kept started and waiting (warm starts). Default 0. */
  readonly poolSize?: number;
  /** Heap limit of pooled vats; a launch with another limit starts a fresh vat. */
  readonly poolMemoryMb?: number;
  /** A trivial agent each pooled vat runs once before it is needed (warms its run path). */
  readonly prewarmBundle?: Pick<AgentBundle, 'entry' | 'modules'> | Promise<Pick<AgentBundle, 'entry' | 'modules'>>;
  /** Describes an agent's capability for its caretaker's `describe()` (src/describe.ts). */
  readonly describeCapability?: (agentId: string, capabilityId: string, name: string) => Promise<unknown>;
}

/**
 * Quiescence: when the agent has no request in flight, ask the vat (after
 * its microtasks drain) whether the agent has settled. If it has not, and
 * nothing reached the kernel since the probe was sent, nothing can ever
 * wake the agent: it has no clock, no timers, no I/O of its own — then
 * `unsettled()` is called, once. Returns when the run has finished, the
 * agent settled, or the vat is gone.
 */
const watchQuiescence = async (
  kernel: Kernel,
  powers: VatHostPowers,
  watched: { readonly agentId: string; readonly vatRoot: Promise<AgentVatRoot>; isFinished(): boolean; unsettled(): void },
) => {
  const { agentId, vatRoot, isFinished } = watched;
  while (!isFinished()) {
    await kernel.whenIdle(agentId);
    // Let CapTP post the answers of the calls that just ended first, and
    // do not probe an agent that is busy calling the kernel.
    await new Promise<void>(resolve => powers.setTimeout(resolve, QUIESCENCE_DELAY_MS));
    if (isFinished()) return;
    const before = kernel.agentActivity(agentId);
    if (!before || before.inFlight > 0) continue;
    let probe: { settled: boolean };
    try {
      probe = await E(vatRoot).probe();
    } catch {
      return; // the vat is gone; `finish` has been or will be called
    }
    if (isFinished()) return;
    const after = kernel.agentActivity(agentId);
    if (!probe.settled && after && after.inFlight === 0 && after.epoch === before.epoch) {
      watched.unsettled();
      return;
    }
    if (after && after.epoch === before.epoch && after.inFlight === 0) {
      // Settled: the run's answer is on its way.
      return;
    }
  }
};

export const makeVatHost = (opts: VatHostOptions) => {
  const { kernel, powers, failureModes, poolSize = 0, poolMemoryMb = DEFAULT_VAT_LIMITS.memoryMb, prewarmBundle } = opts;
  const running = new Map<string, AgentHandle>();
  const scheduler = makeVatScheduler({ yieldTurn: fn => powers.setImmediate(fn) });
  const pool = makeVatPool(powers, { poolSize, poolMemoryMb, prewarmBundle, scheduler });
  let runCounter = 0;
  let closed = false;

  const launch = (spec: {
    agentId: string;
    bundle: AgentBundle;
    capabilityIds: readonly string[];
    names?: Readonly<Record<string, string>>;
    input: unknown;
    limits: VatLimits;
    isolation?: VatIsolation;
    /** More fields for the `agent.launched` record (they never replace its own). */
    launchRecord?: Readonly<Record<string, unknown>>;
    observer?: RunObserver;
  }): AgentHandle => {
    const { agentId, bundle, capabilityIds, names, input, limits, isolation = 'worker', launchRecord, observer } = spec;
    if (closed) throw new ZtError('ZT_SHUT_DOWN');
    if (running.has(agentId)) throw new ZtError('ZT_AGENT_BUSY', `agent ${agentId} already has a running vat`);
    runCounter += 1;
    const runId = `${agentId}#${runCounter}`;
    const ids: RunIds = { agentId, runId };
    const { binding, meter } = makeRunBinding(kernel, powers, ids, limits, (code, message) => failWith(code, message), observer?.console);
    const { describeCapability } = opts;
    const membrane = makeMembrane({
      kernel,
      agentId,
      runId,
      capabilityIds,
      meter,
      ...(names ? { names } : {}),
      ...(describeCapability ? { describe: (capabilityId: string, name: string) => describeCapability(agentId, capabilityId, name) } : {}),
    });
    const { slot, warm } = pool.take(limits.memoryMb, isolation);

    let finished = false;
    let resolveResult!: (outcome: RunOutcome) => void;
    const result = new Promise<RunOutcome>(resolve => {
      resolveResult = resolve;
    });

    const finish = (report: RunEnd) => {
      if (finished) return;
      finished = true;
      powers.clearTimeout(deadline);
      membrane.cut();
      meter.stop(new ZtError('ZT_TERMINATED', 'the vat has ended'));
      running.delete(agentId);
      const ended = slot.close();
      const failed = report.status === 'failed';
      // The vat can no longer reach the kernel (the slot is closed); its
      // worker stops while the end of the run is recorded.
      void Promise.all([ended, recordRunEnd(kernel, powers, failureModes, ids, report, meter.summary())])
        .then(([, ref]) => ref)
        .then(ref => {
          const outcome: RunOutcome = harden({
            agentId,
            runId,
            status: failed ? 'failed' : 'completed',
            ok: !failed,
            ...(failed ? { error: { code: report.code, message: report.message, ...positionOf(report) } } : { value: report.value }),
            ...(ref ? { audit: ref } : {}),
          });
          resolveResult(outcome);
          pool.refillLater();
        });
    };
    const failWith = (code: ErrorCode, message: string = ErrorCodes[code]) => finish({ status: 'failed', code, message });

    slot.bind(binding, limits);

    const deadline = powers.setTimeout(
      () => failWith('ZT_DEADLINE', `the agent ran past its deadline of ${limits.deadlineMs} ms`),
      limits.deadlineMs,
    );

    const { vatRoot } = slot;
    const launched = kernel.recordLaterRef({
      ...launchRecord,
      type: 'agent.launched',
      time: powers.now(),
      agentId,
      runId,
      module: bundle.folder,
      modules: Object.keys(bundle.modules).length,
      ...(bundle.packages ? { packages: bundle.packages.map(p => ({ ...p })) } : {}),
      capabilities: [...capabilityIds],
      ...(names ? { names: { ...names } } : {}),
      limits: { ...limits },
      isolation,
      warm,
    });
    observer?.launched?.(launched);

    E(vatRoot)
      .run(harden({ entry: bundle.entry, modules: bundle.modules, ...(bundle.imports ? { imports: bundle.imports } : {}), caps: membrane.caps, input }))
      .then(
        (report: unknown) => finish(checkReport(report, powers)),
        // The run's promise breaks when the vat's connection does; the vat's
        // own end (a wire violation, out of memory, its exit), which follows
        // within moments, names the cause better: given a moment first.
        () => powers.setTimeout(() => failWith('ZT_VAT_CRASHED', 'the vat failed to run the agent'), VAT_END_GRACE_MS),
      );

    void watchQuiescence(kernel, powers, {
      agentId,
      vatRoot,
      isFinished: () => finished,
      unsettled: () => failWith('ZT_AGENT_UNSETTLED', 'the agent is waiting on a promise that nothing can resolve'),
    });

    const handle: AgentHandle = harden({
      agentId,
      runId,
      result,
      terminate: (reason = 'terminated by operator') => {
        failWith('ZT_TERMINATED', reason);
        return result;
      },
    });
    running.set(agentId, handle);
    return handle;
  };

  const terminate = (agentId: string, reason?: string) => running.get(agentId)?.terminate(reason);

  const terminateAll = async (reason: string) => {
    closed = true;
    const idle = pool.drain();
    await Promise.all([...running.values()].map(h => h.terminate(reason)));
    await Promise.all(idle.map(slot => slot.close()));
  };

  pool.refill();

  return harden({ launch, terminate, terminateAll, isRunning: (agentId: string) => running.has(agentId) });
};
harden(makeVatHost);

export type VatHost = ReturnType<typeof makeVatHost>;
