/**
 * A started process vat as the vat host sees every vat: a `WorkerLike`
 * (messages over the vat's wire, `exit`, `error`, output streams,
 * `terminate()`), built over the child process the adapter spawned.
 *
 * Invariants:
 * - Messages travel as frames of the wire (wire.ts) over a plain pipe: the
 *   child has no IPC channel. The first violation of the wire — a bad
 *   frame, a partial frame when the pipe ends, a message the kernel cannot
 *   take, or more than `MAX_UNREAD_BYTES` the vat left unread — ends the
 *   vat: one `error` coded ZT_VAT_PROTOCOL (a `ZtError`, so a worker
 *   thread's thrown error cannot pass for it), then the kill and its
 *   `exit`. Nothing from the vat is delivered after that; only this vat
 *   ends, and nothing of it is thrown into the kernel's event loop.
 * - One `exit` per process, after its output has been read ('close', not
 *   'exit'), so an out-of-memory death is seen before the exit; nothing is
 *   delivered from a vat after it exited.
 * - A death of the memory limit (V8's heap limit or RLIMIT_AS) is reported
 *   as an `error` coded `ERR_WORKER_OUT_OF_MEMORY`, as a worker's is; the
 *   vat host turns it into ZT_OUT_OF_MEMORY.
 * - `terminate()` kills the sandbox's outermost process and resolves once
 *   it is gone; bubblewrap's `--die-with-parent` (or, for `process-weak`,
 *   the parent-death signal set by `setpriv`) and the PID namespace take
 *   every process inside with it, and a kernel crash does the same.
 * - Output held before the vat host listens is bounded (64 KiB per stream).
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';
import type { WorkerLike } from '../vat-host.js';
import { encodeFrame, makeFrameDecoder, MAX_FRAME_BYTES, FRAME_HEADER_BYTES } from './wire.js';

/** The kernel's end of the vat's wire (a pipe; the adapter wraps Node's socket). */
export interface WirePipe {
  write(bytes: Uint8Array): void;
  /** Bytes written but not yet taken by the operating system. */
  writableLength(): number;
  on(event: 'data', listener: (chunk: Uint8Array) => void): void;
  on(event: 'end', listener: () => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
}

/** The child process as the pure code sees it (built by the adapter over `child_process`). */
export interface ChildLike {
  readonly pid: number | undefined;
  /** The kernel's end of the wire (fd 3 of the vat). */
  readonly wire: WirePipe | null;
  on(event: 'close', listener: (code: number | null, signal: string | null) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  readonly stdout: { on(event: 'data', listener: (chunk: unknown) => void): void } | null;
  readonly stderr: { on(event: 'data', listener: (chunk: unknown) => void): void } | null;
  kill(): void;
  ref(): void;
  unref(): void;
}

/**
 * Bytes the kernel may have queued for a vat that does not read them (two
 * largest frames). A vat that keeps calling while leaving its answers
 * unread would otherwise grow the kernel's memory without bound.
 */
export const MAX_UNREAD_BYTES = 2 * (FRAME_HEADER_BYTES + MAX_FRAME_BYTES);

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
 * Adapts a started child to the vat host's `WorkerLike`: messages as frames
 * of the vat's wire, one `exit` per process, an `error` coded
 * ZT_VAT_PROTOCOL when the vat broke the wire (it is then killed) or
 * `ERR_WORKER_OUT_OF_MEMORY` when the process died of its memory limit (the
 * vat host turns that into ZT_OUT_OF_MEMORY, as for workers), and a
 * `terminate()` that kills the sandbox and resolves once it is gone.
 */
export const makeProcessVatWorker = (child: ChildLike, options: { readonly maxFrameBytes?: number } = {}): WorkerLike => {
  const maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
  const maxUnread = 2 * (FRAME_HEADER_BYTES + maxFrameBytes);
  const listeners = {
    message: [] as Array<(m: unknown) => void>,
    error: [] as Array<(err: Error) => void>,
    exit: [] as Array<(code: number) => void>,
  };
  let exitCode: number | undefined;
  let stderrTail = '';
  let outOfMemory = false;
  /** The vat broke the wire: it is being killed, and nothing of it is heard again. */
  let broken = false;
  const waiting: Array<(code: number) => void> = [];
  const stdout = makeBufferedStream();
  const stderr = makeBufferedStream();
  const decoder = makeFrameDecoder({ maxFrameBytes });

  const emitError = (err: Error) => {
    for (const l of listeners.error) {
      try {
        l(err);
      } catch {
        // a listener's fault is not the vat's; the vat still ends
      }
    }
  };
  const protocolError = (err: unknown) => {
    if (broken || exitCode !== undefined) return;
    broken = true;
    const coded = err instanceof ZtError && err.code === 'ZT_VAT_PROTOCOL' ? err : new ZtError('ZT_VAT_PROTOCOL', 'the vat broke the wire protocol');
    emitError(coded);
    child.kill();
  };

  child.stdout?.on('data', chunk => stdout.push(chunk));
  child.stderr?.on('data', chunk => {
    // Checked as it arrives: a dying Node (and each of its dying threads)
    // prints long native stack traces after the message.
    const text = stderrTail + String(chunk);
    if (OOM_PATTERN.test(text)) outOfMemory = true;
    stderrTail = text.slice(-STDERR_OVERLAP);
    stderr.push(chunk);
  });

  // A vat whose wire ended (or failed) can no longer be reached; nothing
  // more is sent to it. It ends when it exits, or at the run's deadline.
  let disconnected = false;
  const { wire } = child;
  wire?.on('data', chunk => {
    if (broken || exitCode !== undefined) return;
    let messages: Array<Record<string, unknown>>;
    try {
      messages = decoder.push(chunk);
    } catch (err) {
      protocolError(err);
      return;
    }
    for (const message of messages) {
      if (broken || exitCode !== undefined) return;
      for (const l of listeners.message) {
        try {
          l(message);
        } catch {
          protocolError(new ZtError('ZT_VAT_PROTOCOL', 'the kernel could not take a message of the vat'));
          return;
        }
      }
    }
  });
  /** The wire is over, however it ended: a frame left incomplete is the vat's violation. */
  const wireOver = () => {
    try {
      decoder.end();
    } catch (err) {
      protocolError(err);
    }
    disconnected = true;
  };
  wire?.on('end', wireOver);
  // The vat closed its end, or died (a reset instead of an end when the
  // kernel was writing): its exit follows.
  wire?.on('error', wireOver);

  const ended = (code: number) => {
    if (exitCode !== undefined) return;
    // Whichever event came first, half a frame is reported as what it is.
    wireOver();
    exitCode = code;
    if (outOfMemory && !broken) {
      emitError(Object.assign(Error('the vat exceeded its memory limit'), { code: 'ERR_WORKER_OUT_OF_MEMORY' }));
    }
    for (const l of listeners.exit) l(code);
    for (const w of waiting.splice(0)) w(code);
  };
  // 'close', not 'exit': the process is gone *and* its output has been
  // read, so a dying message (out of memory) is seen before the exit.
  child.on('close', (code, signal) => ended(code ?? (signal ? 128 + signalNumber(signal) : 1)));
  child.on('error', err => {
    if (exitCode !== undefined) return;
    emitError(err);
    // A child that could not be spawned never exits; one that could is killed.
    if (child.pid === undefined) ended(-1);
    else child.kill();
  });

  const worker: WorkerLike = {
    postMessage: message => {
      if (exitCode !== undefined || disconnected || broken || !wire) return;
      let frame: Uint8Array;
      try {
        frame = encodeFrame(message, maxFrameBytes);
      } catch {
        protocolError(new ZtError('ZT_VAT_PROTOCOL', `the kernel cannot send the vat a message of more than ${maxFrameBytes} bytes`));
        return;
      }
      try {
        wire.write(frame);
      } catch {
        child.kill();
        return;
      }
      if (wire.writableLength() > maxUnread) protocolError(new ZtError('ZT_VAT_PROTOCOL', `the vat left more than ${maxUnread} bytes of its wire unread`));
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
