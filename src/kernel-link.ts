/**
 * The host application's link to its kernel vat (see kernel-protocol.ts).
 *
 * Invariants:
 * - Fail closed: once the kernel vat has crashed, exited or let a
 *   synchronous call go unanswered past `timeoutMs`, the link is dead: the
 *   vat is terminated, every waiting and later call fails with
 *   ZT_KERNEL_UNAVAILABLE, and nothing is retried in a kernel whose state
 *   is unknown.
 * - The host process stays alive exactly while something is on its way: a
 *   call waiting for its answer, or work the kernel reports as busy (an
 *   audit append, a running agent). An idle runtime never keeps it alive.
 * - Nothing here locks down or patches the host realm.
 */
import { harden } from './harden.js';
import {
  APPROVAL,
  APPROVAL_CLOSED,
  APPROVAL_REPLY,
  BUSY,
  CALL,
  EVENT,
  REPLY,
  RUN_ENDED,
  SINK,
  SINK_REPLY,
  SYNC,
  errorFromData,
  errorToData,
  kernelUnavailable,
  type AsyncMethod,
  type SinkOp,
  type SyncMethod,
  type SyncReplyData,
} from './kernel-protocol.js';
import { ZtError } from './errors.js';

/** The kernel vat as the host sees it: a worker thread in Node. */
export interface KernelWorker {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  on(event: 'exit', listener: (code: number) => void): void;
  terminate(): Promise<number>;
  ref(): void;
  unref(): void;
}

/** The host end of the sync channel. */
export interface SyncChannel {
  /** Lowers the flag before a call. */
  reset(): void;
  /** Blocks until the kernel raises the flag; false when `timeoutMs` passed first. */
  wait(timeoutMs: number): boolean;
  /** The next answer on the sync port, if any. */
  receive(): unknown;
}

export interface KernelLinkPowers {
  /** Starts the kernel vat; the sync channel's far end travels with it. */
  startKernel(): { worker: KernelWorker; sync: SyncChannel };
}

export interface KernelLinkHandlers {
  runEnded(runId: string, outcome: unknown): void;
  /** A request to the audit sink of generation `gen` the host supplied. */
  sink(gen: number, op: SinkOp, args: readonly unknown[]): Promise<unknown>;
  /** A request that needs a person's approval (as the kernel sent it: the host checks it). */
  approval(request: unknown): void;
  /** The kernel ended the wait for an approval (answered, timed out or cut). */
  approvalClosed(approvalId: unknown): void;
  /** The kernel vat is gone (called once). */
  died(error: ZtError): void;
  /** A runtime event the kernel sent (unchecked data: the handler checks it). */
  event?(event: unknown): void;
}

const isCloneError = (err: unknown) => (err as { name?: unknown })?.name === 'DataCloneError';

export const makeKernelLink = (powers: KernelLinkPowers, options: { timeoutMs: number; handlers: KernelLinkHandlers }) => {
  const { timeoutMs, handlers } = options;
  const { worker, sync } = powers.startKernel();
  let counter = 0;
  let dead: ZtError | undefined;
  let kernelBusy = false;
  let busySeq = 0;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();

  /** Set while `close` waits for the worker to end: `await shutdown()` must return. */
  let closing = false;
  const updateRef = () => {
    if (closing || (!dead && (waiting.size > 0 || kernelBusy))) worker.ref();
    else worker.unref();
  };
  const noteBusy = (seq: unknown, busy: unknown) => {
    if (typeof seq !== 'number' || seq <= busySeq) return;
    busySeq = seq;
    kernelBusy = busy === true;
    updateRef();
  };

  const die = (error: ZtError) => {
    if (dead) return;
    dead = error;
    for (const waiter of waiting.values()) waiter.reject(error);
    waiting.clear();
    void worker.terminate().catch(() => 0);
    updateRef();
    handlers.died(error);
  };

  worker.on('message', message => {
    const m = message as { type?: unknown; id?: unknown; ok?: unknown; value?: unknown; error?: unknown; seq?: unknown; busy?: unknown; runId?: unknown; outcome?: unknown; gen?: unknown; op?: unknown; args?: unknown; request?: unknown; approvalId?: unknown };
    if (m === null || typeof m !== 'object') return;
    switch (m.type) {
      case REPLY: {
        noteBusy(m.seq, m.busy);
        const waiter = waiting.get(m.id as number);
        if (!waiter) return;
        waiting.delete(m.id as number);
        if (m.ok === true) waiter.resolve(m.value);
        else waiter.reject(errorFromData(m.error));
        updateRef();
        return;
      }
      case BUSY:
        noteBusy(m.seq, m.busy);
        return;
      case RUN_ENDED:
        if (typeof m.runId === 'string') handlers.runEnded(m.runId, m.outcome);
        return;
      case APPROVAL:
        handlers.approval(m.request);
        return;
      case APPROVAL_CLOSED:
        handlers.approvalClosed(m.approvalId);
        return;
      case EVENT:
        handlers.event?.((m as { event?: unknown }).event);
        return;
      case SINK: {
        const { id } = m;
        void handlers.sink(m.gen as number, m.op as SinkOp, Array.isArray(m.args) ? m.args : []).then(
          value => {
            if (!dead) worker.postMessage({ type: SINK_REPLY, id, ok: true, value });
          },
          (err: unknown) => {
            if (dead) return;
            worker.postMessage({ type: SINK_REPLY, id, ok: false, error: errorToData(err) });
          },
        );
        return;
      }
      default:
    }
  });
  worker.on('error', err => die(kernelUnavailable(`the kernel vat failed: ${err.message}`)));
  worker.on('exit', code => die(kernelUnavailable(`the kernel vat exited (code ${code})`)));
  updateRef();

  /** Calls a synchronous operation: blocks this thread until the kernel answers, bounded. */
  const callSync = (method: SyncMethod, args: readonly unknown[] = []): unknown => {
    if (dead) throw dead;
    counter += 1;
    const id = counter;
    sync.reset();
    try {
      worker.postMessage({ type: SYNC, id, method, args });
    } catch (err) {
      if (isCloneError(err)) throw new ZtError('ZT_BAD_ARGUMENT', `the arguments of ${method} must be plain data`);
      throw err;
    }
    for (;;) {
      if (!sync.wait(timeoutMs)) {
        const error = kernelUnavailable(`the kernel did not answer ${method} within ${timeoutMs} ms`);
        die(error);
        throw error;
      }
      const reply = sync.receive() as SyncReplyData | undefined;
      if (reply === undefined) {
        sync.reset();
        continue;
      }
      if (reply.id !== id) continue; // an answer nobody waits for any more
      noteBusy(reply.seq, reply.busy);
      if (reply.ok) return reply.value;
      throw errorFromData(reply.error);
    }
  };

  /** Calls an asynchronous operation. */
  const call = (method: AsyncMethod, args: readonly unknown[] = []): Promise<unknown> => {
    if (dead) return Promise.reject(dead);
    counter += 1;
    const id = counter;
    try {
      worker.postMessage({ type: CALL, id, method, args });
    } catch (err) {
      return Promise.reject(isCloneError(err) ? new ZtError('ZT_BAD_ARGUMENT', `the arguments of ${method} must be plain data`) : err);
    }
    const answer = new Promise<unknown>((resolve, reject) => waiting.set(id, { resolve, reject }));
    updateRef();
    return answer;
  };

  /** Sends a person's answer to a pending approval (the kernel checks it). False once the kernel vat is gone. */
  const answerApproval = (approvalId: string, answer: unknown): boolean => {
    if (dead) return false;
    try {
      worker.postMessage({ type: APPROVAL_REPLY, approvalId, answer });
    } catch {
      return false;
    }
    return true;
  };

  /** Ends the kernel vat (after `shutdown`): later calls fail with ZT_KERNEL_UNAVAILABLE. */
  const close = async () => {
    if (dead) return;
    dead = kernelUnavailable('the runtime has been shut down');
    closing = true;
    updateRef();
    await worker.terminate().catch(() => 0);
    closing = false;
    updateRef();
  };

  return harden({ callSync, call, answerApproval, close, isDead: () => dead !== undefined });
};
harden(makeKernelLink);

export type KernelLink = ReturnType<typeof makeKernelLink>;
