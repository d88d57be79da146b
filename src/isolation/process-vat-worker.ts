/**
 * A started process vat as the vat host sees every vat: a `WorkerLike`
 * (messages over the IPC channel, `exit`, `error`, output streams,
 * `terminate()`), built over the child process the adapter spawned.
 *
 * Invariants:
 * - One `exit` per process, after its output has been read ('close', not
 *   'exit'), so an out-of-memory death is seen before the exit; nothing is
 *   delivered from a vat after it exited.
 * - A death of the memory limit (V8's heap limit or RLIMIT_AS) is reported
 *   as an `error` coded `ERR_WORKER_OUT_OF_MEMORY`, as a worker's is; the
 *   vat host turns it into ZT_OUT_OF_MEMORY.
 * - `terminate()` kills the sandbox's outermost process and resolves once
 *   it is gone; bubblewrap's `--die-with-parent` and the PID namespace take
 *   every process inside with it, and a kernel crash does the same.
 * - Output held before the vat host listens is bounded (64 KiB per stream).
 */
import { harden } from '../harden.js';
import type { WorkerLike } from '../vat-host.js';


/** The child process as the pure code sees it (built by the adapter over `child_process`). */
export interface ChildLike {
  readonly pid: number | undefined;
  send(message: unknown, callback: (err: Error | null) => void): void;
  on(event: 'message', listener: (message: unknown) => void): void;
  on(event: 'close', listener: (code: number | null, signal: string | null) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  on(event: 'disconnect', listener: () => void): void;
  readonly stdout: { on(event: 'data', listener: (chunk: unknown) => void): void } | null;
  readonly stderr: { on(event: 'data', listener: (chunk: unknown) => void): void } | null;
  kill(): void;
  ref(): void;
  unref(): void;
}

const MAX_BUFFERED_OUTPUT = 64 * 1024;
/** Output kept from one chunk to the next, so a message split across chunks is still recognized. */
const STDERR_OVERLAP = 256;
/** What V8 prints when the heap limit or RLIMIT_AS stops an allocation it cannot survive. */
const OOM_PATTERN = /JavaScript heap out of memory|Reached heap limit|Fatal (?:process|JavaScript) (?:OOM|out of memory)/;

/**
 * Output read from the start (so the kernel can tell an out-of-memory death
 * apart) and handed to the vat host once it listens; chunks before that are
 * buffered, up to 64 KiB.
 */
const makeBufferedStream = () => {
  const listeners: Array<(chunk: unknown) => void> = [];
  const buffered: unknown[] = [];
  let bufferedBytes = 0;
  const push = (chunk: unknown) => {
    if (listeners.length === 0) {
      const size = String(chunk).length;
      if (bufferedBytes + size <= MAX_BUFFERED_OUTPUT) {
        buffered.push(chunk);
        bufferedBytes += size;
      }
      return;
    }
    for (const l of listeners) l(chunk);
  };
  const stream = harden({
    on: (event: 'data', listener: (chunk: unknown) => void) => {
      if (event !== 'data') return;
      listeners.push(listener);
      for (const chunk of buffered.splice(0)) listener(chunk);
      bufferedBytes = 0;
    },
  });
  return { push, stream };
};

/**
 * Adapts a started child to the vat host's `WorkerLike`: messages over the
 * IPC channel, one `exit` per process, an `error` coded
 * `ERR_WORKER_OUT_OF_MEMORY` when the process died of its memory limit (the
 * vat host turns that into ZT_OUT_OF_MEMORY, as for workers), and a
 * `terminate()` that kills the sandbox and resolves once it is gone.
 */
export const makeProcessVatWorker = (child: ChildLike): WorkerLike => {
  const listeners = {
    message: [] as Array<(m: unknown) => void>,
    error: [] as Array<(err: Error) => void>,
    exit: [] as Array<(code: number) => void>,
  };
  let exitCode: number | undefined;
  let stderrTail = '';
  let outOfMemory = false;
  const waiting: Array<(code: number) => void> = [];
  const stdout = makeBufferedStream();
  const stderr = makeBufferedStream();

  child.stdout?.on('data', chunk => stdout.push(chunk));
  child.stderr?.on('data', chunk => {
    // Checked as it arrives: a dying Node (and each of its dying threads)
    // prints long native stack traces after the message.
    const text = stderrTail + String(chunk);
    if (OOM_PATTERN.test(text)) outOfMemory = true;
    stderrTail = text.slice(-STDERR_OVERLAP);
    stderr.push(chunk);
  });
  child.on('message', message => {
    if (exitCode !== undefined) return;
    for (const l of listeners.message) l(message);
  });
  const ended = (code: number) => {
    if (exitCode !== undefined) return;
    exitCode = code;
    if (outOfMemory) {
      const err = Object.assign(Error('the vat exceeded its memory limit'), { code: 'ERR_WORKER_OUT_OF_MEMORY' });
      for (const l of listeners.error) l(err);
    }
    for (const l of listeners.exit) l(code);
    for (const w of waiting.splice(0)) w(code);
  };
  // 'close', not 'exit': the process is gone *and* its output has been
  // read, so a dying message (out of memory) is seen before the exit.
  child.on('close', (code, signal) => ended(code ?? (signal ? 128 + signalNumber(signal) : 1)));
  child.on('error', err => {
    if (exitCode !== undefined) return;
    for (const l of listeners.error) l(err);
    // A child that could not be spawned never exits; one that could is killed.
    if (child.pid === undefined) ended(-1);
    else child.kill();
  });
  // A vat that closed its channel can no longer be reached; nothing more is
  // sent to it. It ends when it exits, or at the run's deadline.
  let disconnected = false;
  child.on('disconnect', () => {
    disconnected = true;
  });

  const worker: WorkerLike = {
    postMessage: message => {
      if (exitCode !== undefined || disconnected) return;
      try {
        child.send(message, () => undefined);
      } catch {
        child.kill();
      }
    },
    on: ((event: 'message' | 'error' | 'exit', listener: never) => {
      if (event === 'message' || event === 'error' || event === 'exit') (listeners[event] as unknown[]).push(listener);
    }) as WorkerLike['on'],
    stdout: stdout.stream,
    stderr: stderr.stream,
    terminate: () =>
      new Promise<number>(resolve => {
        if (exitCode !== undefined) {
          resolve(exitCode);
          return;
        }
        waiting.push(resolve);
        child.kill();
      }),
    ref: () => child.ref(),
    unref: () => child.unref(),
  };
  return harden(worker);
};
harden(makeProcessVatWorker);

const SIGNALS: Readonly<Record<string, number>> = harden({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15, SIGXCPU: 24, SIGXFSZ: 25, SIGSYS: 31 });
const signalNumber = (signal: string): number => SIGNALS[signal] ?? 0;
