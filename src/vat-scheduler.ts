/**
 * The kernel's turns over its vats' traffic: each vat's incoming messages
 * wait in its own queue, and the kernel dispatches them in bounded slices,
 * round-robin across vats, yielding to the event loop between rounds.
 *
 * Threat: a vat that sends tens of thousands of messages at once would
 * otherwise have them all dispatched back to back, in one turn of the
 * kernel's event loop: deadlines, other agents, the audit vat's answers
 * and the operator would wait until the flood was processed.
 *
 * Invariants:
 * - A slice dispatches at most `sliceMessages` messages or about
 *   `sliceBytes` bytes (always at least one message) of one vat; a round
 *   gives each vat with waiting messages one slice, in the order they
 *   became ready. Each message is dispatched in a callback of its own
 *   (`yieldTurn`, an injected `setImmediate`), so the microtasks one
 *   message starts run before the next is read, as CapTP expects; the
 *   round's callbacks run in one turn of the event loop and the next round
 *   in the turn after, so timers, I/O and every other vat are served
 *   between rounds whatever one vat sends.
 * - Messages of one vat are dispatched in the order they arrived; a closed
 *   queue drops what it holds and dispatches nothing more.
 * - The scheduler holds no timers or clocks of its own: it is given the
 *   one power it uses.
 */
import { harden } from './harden.js';

export interface VatSchedulerPowers {
  /** Runs `fn` after the event loop has served timers and I/O (Node: `setImmediate`). */
  readonly yieldTurn: (fn: () => void) => void;
}

export interface VatSchedulerOptions {
  /** Messages of one vat dispatched per slice. Default 64. */
  readonly sliceMessages?: number;
  /** Bytes (as measured on arrival) of one vat dispatched per slice. Default 1 MiB. */
  readonly sliceBytes?: number;
}

export interface VatInbox {
  /** Queues a message of `size` measured bytes for dispatch. */
  push(message: unknown, size: number): void;
  /** Drops what is queued; nothing more is dispatched. */
  close(): void;
  /** Bytes waiting. */
  readonly queuedBytes: () => number;
}

interface Queue {
  readonly deliver: (message: unknown) => void;
  readonly messages: unknown[];
  readonly sizes: number[];
  head: number;
  /** Messages from `head` on that a round has planned to deliver. */
  planned: number;
  bytes: number;
  ready: boolean;
  closed: boolean;
}

export const DEFAULT_SLICE_MESSAGES = 64;
export const DEFAULT_SLICE_BYTES = 1024 * 1024;

export const makeVatScheduler = (powers: VatSchedulerPowers, options: VatSchedulerOptions = {}) => {
  const { yieldTurn } = powers;
  const sliceMessages = options.sliceMessages ?? DEFAULT_SLICE_MESSAGES;
  const sliceBytes = options.sliceBytes ?? DEFAULT_SLICE_BYTES;
  let ready: Queue[] = [];
  let scheduled = false;

  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    yieldTurn(round);
  };

  /** Delivers the next message of `q` (one macrotask each: CapTP relies on microtasks running between messages). */
  const deliverOne = (q: Queue) => {
    if (q.closed || q.head >= q.messages.length) return;
    const i = q.head;
    const message = q.messages[i];
    q.messages[i] = undefined;
    q.head += 1;
    q.planned -= 1;
    q.bytes -= q.sizes[i] as number;
    if (q.head >= q.messages.length) {
      q.messages.length = 0;
      q.sizes.length = 0;
      q.head = 0;
    } else if (q.head > 4096 && q.head * 2 > q.messages.length) {
      // Compact now and then, so a long-lived queue does not keep delivered slots.
      q.messages.splice(0, q.head);
      q.sizes.splice(0, q.head);
      q.head = 0;
    }
    try {
      q.deliver(message);
    } catch {
      // A delivery's failure is the vat's own (its slot ends it); the round goes on.
    }
  };

  /** Plans one slice of `q` for this round; whether messages remain beyond it. */
  const slice = (q: Queue): boolean => {
    let n = 0;
    let bytes = 0;
    let i = q.head + q.planned;
    while (i < q.messages.length && n < sliceMessages && (n === 0 || bytes < sliceBytes)) {
      bytes += q.sizes[i] as number;
      n += 1;
      i += 1;
    }
    q.planned += n;
    for (let k = 0; k < n; k += 1) yieldTurn(() => deliverOne(q));
    return i < q.messages.length;
  };

  /**
   * A round: one slice of each ready queue, each message in its own
   * callback of the same turn; the next round is planned after them, so
   * timers and I/O run between rounds.
   */
  const round = () => {
    scheduled = false;
    const now = ready;
    ready = [];
    for (const q of now) {
      if (q.closed) {
        q.ready = false;
        continue;
      }
      if (slice(q)) ready.push(q);
      else q.ready = false;
    }
    if (ready.length > 0) schedule();
  };

  /** A queue for one vat; `deliver` is called with each message in its turn. */
  const open = (deliver: (message: unknown) => void): VatInbox => {
    const q: Queue = { deliver, messages: [], sizes: [], head: 0, planned: 0, bytes: 0, ready: false, closed: false };
    return harden({
      push: (message: unknown, size: number) => {
        if (q.closed) return;
        q.messages.push(message);
        q.sizes.push(size);
        q.bytes += size;
        if (!q.ready) {
          q.ready = true;
          ready.push(q);
        }
        schedule();
      },
      close: () => {
        q.closed = true;
        q.messages.length = 0;
        q.sizes.length = 0;
        q.head = 0;
        q.planned = 0;
        q.bytes = 0;
      },
      queuedBytes: () => q.bytes,
    });
  };

  return harden({ open });
};
harden(makeVatScheduler);

export type VatScheduler = ReturnType<typeof makeVatScheduler>;
