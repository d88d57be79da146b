/**
 * The kernel vat's shell: the worker the host's `SandboxRuntime` starts.
 * Its first import establishes the perimeter (production lockdown) in this
 * worker's realm only — the host application's realm is never touched.
 * Then it builds the kernel vat's root and serves the host's messages (see
 * src/kernel-protocol.ts): `call`s answered with `reply`, `sync` calls
 * answered on the sync port with the shared flag raised, and `busy` reports
 * whenever the runtime starts or stops having work on its way.
 */
import '../src/init.js';
import { harden } from '../src/harden.js';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { AuditSink } from '../src/audit/audit-client.js';
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
  type ReplyData,
  type SinkOp,
} from '../src/kernel-protocol.js';
import { makeNodeSandboxPowers } from '../src/sandbox-node-powers.js';
import { buildRootObject } from './vat-kernel.js';

const port = parentPort;
if (!port) throw Error('kernel-main must run in a worker thread');
const { syncPort, syncFlag } = (workerData ?? {}) as { syncPort?: MessagePort; syncFlag?: SharedArrayBuffer };
if (!syncPort || !(syncFlag instanceof SharedArrayBuffer)) throw Error('kernel-main needs its sync port and flag');
const flag = new Int32Array(syncFlag);

/**
 * How often the kernel looks again, while busy, whether it has become idle.
 * An idle report only lets the host process exit; reporting it a few
 * milliseconds late costs nothing, while each look and each report wakes a
 * thread that a busy runtime needs for its calls.
 */
const IDLE_POLL_MS = 20;

let busySeq = 0;
let reportedBusy = false;
let idlePoll: ReturnType<typeof setInterval> | undefined;

const post = (message: unknown) => {
  try {
    port.postMessage(message);
  } catch (err) {
    // An answer that cannot be cloned is an error answer, never a silent one.
    const { id } = message as { id?: unknown };
    if (typeof id === 'number') port.postMessage({ type: REPLY, id, ok: false, error: errorToData(err) });
  }
};

// Requests to the audit sink the host supplied, by id.
let sinkCounter = 0;
const sinkWaiters = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
const askHostSink = (gen: number, op: SinkOp, args: unknown[]): Promise<never> =>
  new Promise((resolve, reject) => {
    sinkCounter += 1;
    const id = sinkCounter;
    sinkWaiters.set(id, { resolve: resolve as (v: unknown) => void, reject });
    try {
      port.postMessage({ type: SINK, id, gen, op, args });
    } catch (err) {
      sinkWaiters.delete(id);
      reject(err);
    }
  });
const makeHostSink = (gen: number): AuditSink =>
  harden({
    append: (record: Record<string, unknown>) => askHostSink(gen, 'append', [record]),
    read: (from: number, count: number) => askHostSink(gen, 'read', [from, count]),
    size: () => askHostSink(gen, 'size', []),
    rootHash: () => askHostSink(gen, 'rootHash', []),
    close: () => askHostSink(gen, 'close', []),
  });

const root = buildRootObject({
  sandbox: makeNodeSandboxPowers(),
  notifyRunEnded: (runId, outcome) => post({ type: RUN_ENDED, runId, outcome }),
  makeHostSink,
  approvalHost: harden({
    ask: request => post({ type: APPROVAL, request }),
    closed: approvalId => post({ type: APPROVAL_CLOSED, approvalId }),
  }),
  notifyEvent: event => post({ type: EVENT, event }),
});

/**
 * The busy state the host sees. A call waiting for its answer already holds
 * the host process; what the kernel reports is the work that goes on after
 * an answer (an audit append, a running agent, a shutdown). The state rides
 * on every answer; on its own only when it changes between answers (found
 * by looking again, while busy, every few milliseconds).
 */
const noteState = (): { busy: boolean; seq: number } => {
  const busy = root.isBusy();
  if (busy !== reportedBusy) {
    reportedBusy = busy;
    busySeq += 1;
  }
  if (busy && !idlePoll) {
    idlePoll = setInterval(poll, IDLE_POLL_MS);
  } else if (!busy && idlePoll) {
    clearInterval(idlePoll);
    idlePoll = undefined;
  }
  return { busy: reportedBusy, seq: busySeq };
};
const poll = () => {
  const seq = busySeq;
  const state = noteState();
  if (state.seq !== seq) port.postMessage({ type: BUSY, ...state });
};

const answerSync = (id: number, method: string, args: unknown[]) => {
  let reply: ReplyData;
  try {
    const fn = Object.hasOwn(root.sync, method) ? root.sync[method as keyof typeof root.sync] : undefined;
    if (typeof fn !== 'function') throw Error(`unknown operation ${String(method)}`);
    reply = { id, ok: true, value: fn(...args) };
  } catch (err) {
    reply = { id, ok: false, error: errorToData(err) };
  }
  // The busy state rides on the answer, so the host holds on to the
  // process before its caller goes on (a record made just before the host
  // ends is still written).
  const state = noteState();
  try {
    syncPort.postMessage({ ...reply, ...state });
  } catch (err) {
    syncPort.postMessage({ id, ok: false, error: errorToData(err), ...state });
  }
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
};

const answerAsync = (id: number, method: string, args: unknown[]) => {
  const fn = Object.hasOwn(root.async, method) ? root.async[method as keyof typeof root.async] : undefined;
  const settle = (reply: ReplyData) => post({ type: REPLY, ...reply, ...noteState() });
  if (typeof fn !== 'function') {
    settle({ id, ok: false, error: errorToData(Error(`unknown operation ${String(method)}`)) });
    return;
  }
  let p: Promise<unknown>;
  try {
    p = fn(...args);
  } catch (err) {
    settle({ id, ok: false, error: errorToData(err) });
    return;
  }
  p.then(
    value => settle({ id, ok: true, value }),
    err => settle({ id, ok: false, error: errorToData(err) }),
  );
};

port.on('message', (message: unknown) => {
  const m = message as { type?: unknown; id?: unknown; method?: unknown; args?: unknown; ok?: unknown; value?: unknown; error?: unknown; approvalId?: unknown; answer?: unknown };
  if (m !== null && typeof m === 'object' && m.type === APPROVAL_REPLY) {
    root.answerApproval(m.approvalId, m.answer);
    return;
  }
  if (m === null || typeof m !== 'object' || typeof m.id !== 'number') return;
  const args = Array.isArray(m.args) ? (m.args as unknown[]) : [];
  switch (m.type) {
    case SYNC:
      answerSync(m.id, String(m.method), args);
      return;
    case CALL:
      answerAsync(m.id, String(m.method), args);
      return;
    case SINK_REPLY: {
      const waiter = sinkWaiters.get(m.id);
      if (!waiter) return;
      sinkWaiters.delete(m.id);
      if (m.ok === true) waiter.resolve(m.value);
      else waiter.reject(errorFromData(m.error));
      return;
    }
    default:
  }
});
