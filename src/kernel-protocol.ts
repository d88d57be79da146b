/**
 * The messages between the host application's `SandboxRuntime` and the
 * kernel vat. Plain data only (structured clone); no object of one realm
 * ever reaches the other.
 *
 * On the worker's port:
 * - host → kernel: `call` (answered by a `reply`), `sync` (answered on the
 *   sync port, see below), `sink-reply` (the answer to a `sink` request),
 *   `approval-reply` (a person's answer to an `approval`, by its
 *   `approvalId`; the kernel checks it and ignores one for nothing pending);
 * - kernel → host: `reply`, `busy` (whether the runtime has work on its way,
 *   numbered so that a late report never overrides a newer one), `run-ended`
 *   (the outcome of a launched agent's run), `sink` (a request to the
 *   audit sink the host supplied, when it supplied one), `approval` (a
 *   request that needs a person's approval: an `ApprovalRequest`),
 *   `approval-closed` (its wait ended: answered, timed out or cut) and
 *   `event` (a runtime event, plain data, never answered).
 *
 * Synchronous operations of the seed API (`registerAgent`,
 * `issueCapability`, …) travel as `sync` messages on the same port, so they
 * stay in order with everything sent before them; the kernel answers on a
 * port of their own and wakes the host thread through a shared flag
 * (`Atomics.notify`), which waits for it (`Atomics.wait`), bounded.
 */
import { harden } from './harden.js';
import { ErrorCodes, ZtError, isErrorCode, type ErrorCode } from './errors.js';

export const CALL = 'call';
export const SYNC = 'sync';
export const REPLY = 'reply';
export const BUSY = 'busy';
export const RUN_ENDED = 'run-ended';
export const SINK = 'sink';
export const SINK_REPLY = 'sink-reply';
export const APPROVAL = 'approval';
export const APPROVAL_REPLY = 'approval-reply';
export const APPROVAL_CLOSED = 'approval-closed';
/** kernel → host: a runtime event (`{ type: 'event', event }`, see runtime-events.ts); never answered. */
export const EVENT = 'event';

/** An error as data: the code and reason apart, details for the operator. */
export interface ErrorData {
  readonly name: string;
  readonly code?: ErrorCode;
  readonly reason: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface ReplyData {
  readonly id: number;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: ErrorData;
}

/** A sync answer also says whether the kernel has work on its way (`busy`, numbered by `seq`). */
export interface SyncReplyData extends ReplyData {
  readonly busy: boolean;
  readonly seq: number;
}

export const errorToData = (err: unknown): ErrorData => {
  if (err instanceof ZtError) {
    return harden({
      name: 'ZtError',
      code: err.code,
      reason: err.reason,
      ...(err.details === undefined ? {} : { details: { ...err.details } }),
    });
  }
  if (err instanceof Error) return harden({ name: err.name, reason: err.message });
  return harden({ name: 'Error', reason: String(err) });
};
harden(errorToData);

/** Rebuilds an error in this realm: a `ZtError` for a coded one. */
export const errorFromData = (data: unknown): Error => {
  const d = (data ?? {}) as Partial<ErrorData>;
  const reason = typeof d.reason === 'string' ? d.reason : 'the kernel failed';
  if (isErrorCode(d.code)) {
    const details = d.details !== null && typeof d.details === 'object' ? d.details : undefined;
    return new ZtError(d.code, reason, details);
  }
  const err = new Error(reason);
  if (typeof d.name === 'string' && d.name !== 'Error') err.name = d.name;
  return err;
};
harden(errorFromData);

/** What the host reports when the kernel vat is gone or does not answer. */
export const kernelUnavailable = (reason: string = ErrorCodes.ZT_KERNEL_UNAVAILABLE): ZtError =>
  new ZtError('ZT_KERNEL_UNAVAILABLE', reason);
harden(kernelUnavailable);

/** The seed API's synchronous methods: answered on the sync port. */
export type SyncMethod =
  | 'init'
  | 'registerAgent'
  | 'issueCapability'
  | 'getCapability'
  | 'listCapabilities'
  | 'revokeCapability'
  | 'revokeAgent'
  | 'loadPolicy'
  | 'policyHash';

/** The asynchronous ones: answered with a `reply`. */
export type AsyncMethod =
  | 'execute'
  | 'launchAgent'
  | 'runCode'
  | 'terminateRun'
  | 'loadPolicyFile'
  | 'recoverAudit'
  | 'rotateAuditKey'
  | 'auditRead'
  | 'auditSize'
  | 'auditRootHash'
  | 'flush'
  | 'recordGatewayEvent'
  | 'shutdown'
  | 'listTools'
  | 'acceptTool'
  | 'describeCapabilities';

/** Operations on an audit sink the host supplied. */
export type SinkOp = 'append' | 'read' | 'size' | 'rootHash' | 'close';
