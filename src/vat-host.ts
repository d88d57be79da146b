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
 */
import { harden } from './harden.js';
import { E } from '@endo/far';
import { makeCapTP } from '@endo/captp';
import { Far } from '@endo/far';
import { ErrorCodes, ZtError, isErrorCode, type ErrorCode } from './errors.js';
import type { AgentBundle } from './agent-modules.js';
import type { FailureModes } from './failure-modes.js';
import type { Kernel } from './kernel.js';
import { makeMembrane } from './membrane.js';
import type { AuditRef } from './types.js';

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

export interface VatLimits {
  /** Wall-clock deadline for the whole run, from launch, in milliseconds. */
  readonly deadlineMs: number;
  /** V8 old-generation heap limit for the vat, in MiB. */
  readonly memoryMb: number;
}

export const DEFAULT_VAT_LIMITS: VatLimits = harden({ deadlineMs: 30_000, memoryMb: 128 });

export type VatIsolation = 'worker' | 'process' | 'process-weak';

export interface VatHostPowers {
  /** Starts a vat of the given isolation level (`worker` when absent). */
  startAgentWorker(options: { memoryMb: number; isolation?: VatIsolation }): WorkerLike;
  now(): number;
  /** Content digest of a passable result, for the audit record. */
  digest(value: unknown): string;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface RunOutcome {
  readonly agentId: string;
  readonly runId: string;
  readonly status: 'completed' | 'failed';
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: { readonly code: ErrorCode; readonly message: string };
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

type RunReport =
  | { status: 'returned'; value: unknown; digest?: string }
  | { status: 'failed'; code: ErrorCode; message: string };

/**
 * The vat's report is the agent's side of the membrane: a compromised vat
 * could send anything. Only a well-formed report whose value the kernel can
 * record (canonical JSON) is accepted; anything else is a failure with a code.
 */
const checkReport = (report: unknown, digest: (value: unknown) => string): RunReport => {
  const r = report as { status?: unknown; value?: unknown; code?: unknown; message?: unknown } | null;
  if (r !== null && typeof r === 'object' && r.status === 'failed' && isErrorCode(r.code) && typeof r.message === 'string') {
    return { status: 'failed', code: r.code, message: r.message.slice(0, 1024) };
  }
  if (r !== null && typeof r === 'object' && r.status === 'returned') {
    try {
      return { status: 'returned', value: r.value, digest: digest(r.value) };
    } catch {
      return { status: 'failed', code: 'ZT_AGENT_RESULT_NOT_PASSABLE', message: 'the agent must return JSON data' };
    }
  }
  return { status: 'failed', code: 'ZT_VAT_CRASHED', message: 'the vat sent a malformed report' };
};

const MAX_OUTPUT_BYTES = 64 * 1024;
const QUIESCENCE_DELAY_MS = 10;
const VAT_FAILURES: ReadonlySet<ErrorCode> = new Set(['ZT_DEADLINE', 'ZT_OUT_OF_MEMORY', 'ZT_VAT_CRASHED']);

/**
 * A started vat: a worker, locked down, with its one CapTP connection. A
 * slot serves exactly one run and is never reused; pooled slots wait,
 * unreferenced (they never keep the process alive), until a launch binds
 * them to a run.
 */
interface AgentVatRoot {
  run(spec: { entry: string; modules: unknown; caps: unknown; input: unknown }): Promise<RunReport>;
  prewarm(spec: { entry: string; modules: unknown; caps: unknown; input: unknown }): Promise<RunReport>;
  probe(): Promise<{ settled: boolean }>;
}

interface RunBinding {
  log(level: unknown, text: unknown): void;
  output(stream: 'stdout' | 'stderr', chunk: unknown): void;
  failed(code: ErrorCode, message: string): void;
}

interface VatSlot {
  readonly memoryMb: number;
  readonly worker: WorkerLike;
  readonly captp: ReturnType<typeof makeCapTP>;
  readonly vatRoot: Promise<AgentVatRoot>;
  /** Resolves once the vat answered a first probe (lockdown done, connection up). */
  readonly ready: Promise<boolean>;
  bind(binding: RunBinding): void;
  /** Ends the slot: no message reaches the kernel after this. */
  close(): Promise<unknown>;
  readonly isDead: () => boolean;
}

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
}

export const makeVatHost = (opts: VatHostOptions) => {
  const { kernel, powers, failureModes, poolSize = 0, poolMemoryMb = DEFAULT_VAT_LIMITS.memoryMb, prewarmBundle } = opts;
  const running = new Map<string, AgentHandle>();
  const pool: VatSlot[] = [];
  let runCounter = 0;
  let slotCounter = 0;
  let closed = false;

  const startSlot = (memoryMb: number, pooled: boolean, isolation: VatIsolation = 'worker'): VatSlot => {
    slotCounter += 1;
    const worker = powers.startAgentWorker(isolation === 'worker' ? { memoryMb } : { memoryMb, isolation });
    let binding: RunBinding | undefined;
    let dead = false;
    let early: { code: ErrorCode; message: string } | undefined;
    const failed = (code: ErrorCode, message: string) => {
      if (dead) return;
      if (binding) binding.failed(code, message);
      else {
        early = { code, message };
        dead = true;
        void worker.terminate().catch(() => 0);
      }
    };
    const kernelFacet = Far('KernelFacet', {
      log: (level: unknown, text: unknown) => binding?.log(level, text),
    });
    const captp = makeCapTP(
      `kernel-vat-${slotCounter}`,
      message => {
        if (!dead) worker.postMessage(message);
      },
      kernelFacet,
      { onReject: () => undefined },
    );
    worker.on('message', message => {
      if (!dead) captp.dispatch(message as Record<string, unknown>);
    });
    worker.on('error', err => {
      const code = (err as { code?: unknown })?.code;
      if (code === 'ERR_WORKER_OUT_OF_MEMORY') failed('ZT_OUT_OF_MEMORY', `the agent exceeded its memory limit of ${memoryMb} MiB`);
      else failed('ZT_VAT_CRASHED', 'the vat failed');
    });
    worker.on('exit', exitCode => failed('ZT_VAT_CRASHED', `the vat exited (code ${exitCode})`));
    // Output is read from binding on (the streams buffer until then): a
    // reading stream would keep an idle pooled vat, and the process, alive.
    const captureOutput = (b: RunBinding) => {
      worker.stdout?.on('data', chunk => b.output('stdout', chunk));
      worker.stderr?.on('data', chunk => b.output('stderr', chunk));
    };
    if (pooled) worker.unref?.();
    const vatRoot = captp.getBootstrap() as Promise<AgentVatRoot>;
    const ready = E(vatRoot)
      .probe()
      .then(
        () => true,
        () => false,
      );
    return {
      memoryMb,
      worker,
      captp,
      vatRoot,
      ready,
      bind: b => {
        binding = b;
        captureOutput(b);
        worker.ref?.();
        if (early) b.failed(early.code, early.message);
      },
      close: () => {
        dead = true;
        captp.abort(new ZtError('ZT_TERMINATED', 'the vat has ended'));
        return worker.terminate().catch(() => 0);
      },
      isDead: () => dead,
    };
  };

  const refill = () => {
    while (!closed && pool.length < poolSize) {
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

  const takeSlot = (memoryMb: number, isolation: VatIsolation): { slot: VatSlot; warm: boolean } => {
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

  const launch = (spec: {
    agentId: string;
    bundle: AgentBundle;
    capabilityIds: readonly string[];
    names?: Readonly<Record<string, string>>;
    input: unknown;
    limits: VatLimits;
    isolation?: VatIsolation;
  }): AgentHandle => {
    const { agentId, bundle, capabilityIds, names, input, limits, isolation = 'worker' } = spec;
    if (closed) throw new ZtError('ZT_SHUT_DOWN');
    if (running.has(agentId)) throw new ZtError('ZT_AGENT_BUSY', `agent ${agentId} already has a running vat`);
    runCounter += 1;
    const runId = `${agentId}#${runCounter}`;
    const membrane = makeMembrane({ kernel, agentId, capabilityIds, ...(names ? { names } : {}) });
    const { slot, warm } = takeSlot(limits.memoryMb, isolation);

    let finished = false;
    let resolveResult!: (outcome: RunOutcome) => void;
    const result = new Promise<RunOutcome>(resolve => {
      resolveResult = resolve;
    });
    let outputBytes = 0;

    const finish = (report: RunReport) => {
      if (finished) return;
      finished = true;
      powers.clearTimeout(deadline);
      membrane.cut();
      running.delete(agentId);
      const ended = slot.close();
      const failed = report.status === 'failed';
      const code = failed ? report.code : undefined;
      let revoked: string[] = [];
      if (code && VAT_FAILURES.has(code) && failureModes.vatFailure === 'revoke') {
        revoked = kernel.revokeAgentCapabilities(agentId, `vat ended: ${code}`);
      }
      // Calls the agent left running die with its vat: nobody is there to receive their results.
      const cut = kernel.abortCallsOf(agentId, code === 'ZT_DEADLINE' || code === 'ZT_TERMINATED' ? code : 'ZT_TERMINATED', 'the vat has ended');
      const rec = {
        type: 'agent.finished',
        time: powers.now(),
        agentId,
        runId,
        status: failed ? 'failed' : 'completed',
        ...(failed ? { code, message: report.message } : { resultDigest: report.digest }),
        revoked,
        inFlightCut: cut,
      };
      // The vat can no longer reach the kernel (the slot is closed); its
      // worker stops while the end of the run is recorded.
      void Promise.all([ended, kernel.record(rec).catch(() => undefined)])
        .then(([, ref]) => ref)
        .then(ref => {
          const outcome: RunOutcome = harden({
            agentId,
            runId,
            status: failed ? 'failed' : 'completed',
            ok: !failed,
            ...(failed ? { error: { code: report.code, message: report.message } } : { value: report.value }),
            ...(ref ? { audit: ref } : {}),
          });
          resolveResult(outcome);
          if (poolSize > 0) powers.setTimeout(refill, 0);
        });
    };
    const failWith = (code: ErrorCode, message: string = ErrorCodes[code]) => finish({ status: 'failed', code, message });

    slot.bind({
      log: (level, text) => {
        kernel.noteActivity(agentId);
        kernel.recordLater({
          type: 'agent.console',
          time: powers.now(),
          agentId,
          runId,
          level: typeof level === 'string' ? level.slice(0, 16) : 'log',
          text: typeof text === 'string' ? text.slice(0, 8192) : '',
        });
      },
      output: (stream, chunk) => {
        if (outputBytes >= MAX_OUTPUT_BYTES) return;
        const text = String(chunk).slice(0, MAX_OUTPUT_BYTES - outputBytes);
        outputBytes += text.length;
        kernel.recordLater({ type: 'vat.output', time: powers.now(), agentId, runId, stream, text });
      },
      failed: (code, message) => failWith(code, message),
    });

    const deadline = powers.setTimeout(
      () => failWith('ZT_DEADLINE', `the agent ran past its deadline of ${limits.deadlineMs} ms`),
      limits.deadlineMs,
    );

    const { vatRoot } = slot;
    kernel.recordLater({
      type: 'agent.launched',
      time: powers.now(),
      agentId,
      runId,
      module: bundle.folder,
      modules: Object.keys(bundle.modules).length,
      capabilities: [...capabilityIds],
      ...(names ? { names: { ...names } } : {}),
      limits: { deadlineMs: limits.deadlineMs, memoryMb: limits.memoryMb },
      isolation,
      warm,
    });

    E(vatRoot)
      .run(harden({ entry: bundle.entry, modules: bundle.modules, caps: membrane.caps, input }))
      .then(
        (report: unknown) => finish(checkReport(report, powers.digest)),
        () => failWith('ZT_VAT_CRASHED', 'the vat failed to run the agent'),
      );

    /**
     * Quiescence: when the agent has no request in flight, ask the vat
     * (after its microtasks drain) whether the agent has settled. If it has
     * not, and nothing reached the kernel since the probe was sent, nothing
     * can ever wake the agent: it has no clock, no timers, no I/O of its own.
     */
    const watch = async () => {
      while (!finished) {
        await kernel.whenIdle(agentId);
        // Let CapTP post the answers of the calls that just ended first, and
        // do not probe an agent that is busy calling the kernel.
        await new Promise<void>(resolve => powers.setTimeout(resolve, QUIESCENCE_DELAY_MS));
        if (finished) return;
        const before = kernel.agentActivity(agentId);
        if (!before || before.inFlight > 0) continue;
        let probe: { settled: boolean };
        try {
          probe = await E(vatRoot).probe();
        } catch {
          return; // the vat is gone; `finish` has been or will be called
        }
        if (finished) return;
        const after = kernel.agentActivity(agentId);
        if (!probe.settled && after && after.inFlight === 0 && after.epoch === before.epoch) {
          failWith('ZT_AGENT_UNSETTLED', 'the agent is waiting on a promise that nothing can resolve');
          return;
        }
        if (after && after.epoch === before.epoch && after.inFlight === 0) {
          // Settled: the run's answer is on its way.
          return;
        }
      }
    };
    void watch();

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
    const idle = pool.splice(0);
    await Promise.all([...running.values()].map(h => h.terminate(reason)));
    await Promise.all(idle.map(slot => slot.close()));
  };

  refill();

  return harden({ launch, terminate, terminateAll, isRunning: (agentId: string) => running.has(agentId) });
};
harden(makeVatHost);

export type VatHost = ReturnType<typeof makeVatHost>;
