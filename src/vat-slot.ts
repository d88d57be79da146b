/**
 * A started vat: a worker (or contained process), locked down, with its one
 * CapTP connection to the kernel.
 *
 * Invariants:
 * - A slot serves exactly one run and is never reused; once closed (or
 *   dead), no message from the vat reaches the kernel and none is sent to
 *   it.
 * - Every way a vat can die before its run ends (out of memory, a worker
 *   error, an exit) becomes exactly one failure with a code; a failure
 *   before a run is bound is kept and reported to the run that binds the
 *   slot, and the dead worker is terminated at once.
 * - The kernel's only facet offered to the vat is `log`; it reaches the run
 *   bound to the slot, or nobody.
 * - An unbound (pooled) slot never keeps the process alive: its worker is
 *   unreferenced and its output is not read until a run binds it.
 * - Nothing the vat sends is dispatched on arrival: each message is
 *   measured (vat-gate.ts), queued, and dispatched in the kernel's turn
 *   (vat-scheduler.ts), after the gate has checked it against the run's
 *   budgets. A message over its size, a queue over its bytes, or CapTP
 *   tables over theirs end the vat (ZT_VAT_LIMIT_EXCEEDED).
 */
import { harden } from './harden.js';
import { E, Far } from '@endo/far';
import { makeCapTP } from '@endo/captp';
import { ZtError, toAgentRefusal, type ErrorCode } from './errors.js';
import { DEFAULT_VAT_BUDGETS, type VatBudgets } from './vat-budget.js';
import { makeCountedTables, makeVatGate, measureMessage, type GateRun } from './vat-gate.js';
import type { VatScheduler } from './vat-scheduler.js';
import type { VatHostPowers, VatIsolation, WorkerLike } from './vat-host.js';

/** What a vat reports at the end of a run (unchecked: the vat could send anything). */
export type RunReport =
  | { status: 'returned'; value: unknown; digest?: string }
  | { status: 'failed'; code: ErrorCode; message: string; line?: number; column?: number };

/** The root object of an agent vat (vats/vat-agent.ts). */
export interface AgentVatRoot {
  run(spec: { entry: string; modules: unknown; imports?: unknown; caps: unknown; input: unknown }): Promise<RunReport>;
  prewarm(spec: { entry: string; modules: unknown; caps: unknown; input: unknown }): Promise<RunReport>;
  probe(): Promise<{ settled: boolean }>;
}

/** Where a slot's events go once a run is bound to it. */
export interface RunBinding extends GateRun {
  log(level: unknown, text: unknown): void;
  output(stream: 'stdout' | 'stderr', chunk: unknown): void;
  failed(code: ErrorCode, message: string): void;
}

export interface VatSlot {
  readonly memoryMb: number;
  readonly worker: WorkerLike;
  readonly captp: ReturnType<typeof makeCapTP>;
  readonly vatRoot: Promise<AgentVatRoot>;
  /** Resolves once the vat answered a first probe (lockdown done, connection up). */
  readonly ready: Promise<boolean>;
  /** Binds a run and the budgets it runs under. */
  bind(binding: RunBinding, budgets: VatBudgets): void;
  /** Ends the slot: no message reaches the kernel after this. */
  close(): Promise<unknown>;
  readonly isDead: () => boolean;
}

export interface VatSlotOptions {
  /** Names the CapTP connection (unique per vat host). */
  readonly name: string;
  readonly memoryMb: number;
  /** A spare that waits, unreferenced, for a run. */
  readonly pooled: boolean;
  readonly isolation?: VatIsolation;
  /** Dispatches the vat's messages in the kernel's turns (shared by every slot of a host). */
  readonly scheduler: VatScheduler;
}

export const startVatSlot = (powers: Pick<VatHostPowers, 'startAgentWorker'>, opts: VatSlotOptions): VatSlot => {
  const { name, memoryMb, pooled, isolation = 'worker', scheduler } = opts;
  let budgets: VatBudgets = DEFAULT_VAT_BUDGETS;
  const worker = powers.startAgentWorker(isolation === 'worker' ? { memoryMb } : { memoryMb, isolation });
  let binding: RunBinding | undefined;
  let dead = false;
  let early: { code: ErrorCode; message: string } | undefined;
  const failed = (code: ErrorCode, message: string) => {
    if (dead) return;
    if (binding) binding.failed(code, message);
    else {
      inbox.close();
      early = { code, message };
      dead = true;
      void worker.terminate().catch(() => 0);
    }
  };
  const kernelFacet = Far('KernelFacet', {
    log: (level: unknown, text: unknown) => binding?.log(level, text),
    // The gate lets `invoke` and `log` through to any target: here it is
    // refused as data (an Error would be logged by the kernel's marshal).
    invoke: () => Promise.reject(toAgentRefusal(new ZtError('ZT_NOT_IN_INTERFACE', 'the kernel facet answers log only'))),
  });
  const send = (message: unknown) => {
    if (!dead) worker.postMessage(message);
  };
  const overLimit = (reason: string) => failed('ZT_VAT_LIMIT_EXCEEDED', reason);
  const captp = makeCapTP(name, send, kernelFacet, {
    onReject: () => undefined,
    // Counted tables (vat-gate.ts): CapTP's own, with budgets.
    makeCapTPImportExportTables: makeCountedTables(() => budgets, overLimit),
  } as Parameters<typeof makeCapTP>[3]);
  const gate = makeVatGate(
    () => budgets,
    () => binding,
  );
  const inbox = scheduler.open(message => {
    if (dead) return;
    const verdict = gate.check(message);
    switch (verdict.kind) {
      case 'dispatch':
        captp.dispatch(message as Record<string, unknown>);
        return;
      case 'answer':
        send(verdict.reply);
        return;
      case 'end':
        overLimit(verdict.reason);
        return;
      case 'drop':
        return;
    }
  });
  worker.on('message', message => {
    if (dead) return;
    const size = measureMessage(message, budgets.messageBytes);
    if (size < 0) {
      overLimit(`a message from the vat is larger than ${budgets.messageBytes} or malformed`);
      return;
    }
    if (inbox.queuedBytes() + size > budgets.queuedBytes) {
      overLimit(`the vat's messages waiting for the kernel exceed ${budgets.queuedBytes} bytes`);
      return;
    }
    inbox.push(message, size);
  });
  worker.on('error', err => {
    const code = (err as { code?: unknown })?.code;
    if (code === 'ERR_WORKER_OUT_OF_MEMORY') failed('ZT_OUT_OF_MEMORY', `the agent exceeded its memory limit of ${memoryMb} MiB`);
    else if (err instanceof ZtError && code === 'ZT_VAT_PROTOCOL') failed('ZT_VAT_PROTOCOL', err.reason);
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
    bind: (b, runBudgets) => {
      binding = b;
      budgets = runBudgets;
      captureOutput(b);
      worker.ref?.();
      if (early) b.failed(early.code, early.message);
    },
    close: () => {
      dead = true;
      inbox.close();
      captp.abort(new ZtError('ZT_TERMINATED', 'the vat has ended'));
      return worker.terminate().catch(() => 0);
    },
    isDead: () => dead,
  };
};
harden(startVatSlot);
