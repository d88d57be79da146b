/**
 * The kernel's audit recorder: the one way the kernel's parts write to the
 * audit log.
 *
 * Invariants:
 * - `record` resolves only once the sink confirms the record durable, within
 *   `auditTimeoutMs`; anything else (a refusal, a timeout) rejects with
 *   ZT_AUDIT_UNAVAILABLE and latches the audit fault. While the fault is
 *   latched every `record` rejects at once, so every request that needs a
 *   decision record is denied: the kernel never acts unrecorded.
 * - What could not be written while the log was down is held, in order and
 *   bounded, led by the failure event itself, and written (marked
 *   `recordedLate`) when the log is back (`reattach`). A record leaves the
 *   buffer only once it is durable. If more was held than the bound, the
 *   gap is recorded and the fault stays latched: a history with a hole is
 *   never resumed.
 * - Every record about an agent that runs under an explicitly weaker
 *   isolation level names that level.
 */
import { harden } from '../harden.js';
import { ZtError, type ErrorCode } from '../errors.js';
import type { FailureModes } from '../failure-modes.js';
import type { AuditRef } from '../types.js';
import type { KernelAuditSink, KernelTimers } from './types.js';

/** Records kept while the audit log is down, to write when it is back. */
const MAX_HELD_RECORDS = 10_000;

export interface AuditRecorderPowers extends Pick<KernelTimers, 'setTimeout' | 'clearTimeout'> {
  readonly now: () => number;
  /** The sink written to until `reattach` replaces it. */
  readonly sink: KernelAuditSink;
}

export type AuditRecorderOptions = Pick<FailureModes, 'auditTimeoutMs' | 'auditUnavailable'>;

export const makeAuditRecorder = (powers: AuditRecorderPowers, options: AuditRecorderOptions) => {
  const { now, setTimeout, clearTimeout } = powers;
  let sink = powers.sink;
  let auditFault: ErrorCode | undefined;
  /** Agents whose operator chose a named weaker isolation level, and that level. */
  const weakIsolation = new Map<string, string>();

  const heldWhileDown: Array<Record<string, unknown>> = [];
  let heldOverflow = 0;
  const hold = (rec: Record<string, unknown>) => {
    if (heldWhileDown.length < MAX_HELD_RECORDS) heldWhileDown.push({ ...rec, recordedLate: true });
    else heldOverflow += 1;
  };

  /**
   * Appends a record, bounded by `auditTimeoutMs`. Any failure latches the
   * audit fault: every later request is denied until the log is back.
   */
  const record = async (rec: Record<string, unknown>): Promise<AuditRef> => {
    const weak = typeof rec.agentId === 'string' ? weakIsolation.get(rec.agentId) : undefined;
    if (weak !== undefined && rec.isolation === undefined) rec = { ...rec, isolation: weak };
    if (auditFault) {
      hold(rec);
      throw new ZtError('ZT_AUDIT_UNAVAILABLE', 'the audit log is unavailable; this runtime denies everything until it is back');
    }
    let timer: unknown;
    try {
      return await Promise.race([
        sink.append(rec),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new ZtError('ZT_AUDIT_UNAVAILABLE', `no durable confirmation within ${options.auditTimeoutMs} ms`)),
            options.auditTimeoutMs,
          );
        }),
      ]);
    } catch (err) {
      const error = err instanceof ZtError ? err : new ZtError('ZT_AUDIT_UNAVAILABLE', 'the audit log refused the record');
      if (!auditFault) {
        auditFault = 'ZT_AUDIT_UNAVAILABLE';
        hold({ type: 'failure-mode', time: now(), code: 'ZT_AUDIT_UNAVAILABLE', mode: options.auditUnavailable, reason: error.message });
      }
      // The record may or may not have landed: it is kept, and written again (marked late) if the log comes back.
      hold(rec);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  };

  /**
   * The log is back (a new sink on the same store): writes what was held,
   * in order, then resumes. If more was held than the bound allows, records
   * the gap and stays closed. Returns whether the runtime resumed.
   */
  const reattach = async (next: KernelAuditSink): Promise<{ resumed: boolean; written: number; lost: number }> => {
    sink = next;
    let written = 0;
    // One at a time, in order; a record leaves the buffer only once it is durable.
    while (heldWhileDown.length > 0) {
      await next.append(heldWhileDown[0] as Record<string, unknown>);
      heldWhileDown.shift();
      written += 1;
    }
    const lost = heldOverflow;
    if (lost > 0) {
      await next.append({ type: 'failure-mode.gap', time: now(), lost, recordedLate: true });
      return harden({ resumed: false, written, lost });
    }
    await next.append({ type: 'failure-mode.recovered', time: now(), code: 'ZT_AUDIT_UNAVAILABLE', heldRecords: written });
    auditFault = undefined;
    return harden({ resumed: true, written, lost: 0 });
  };

  /**
   * Records a lifecycle event without making the caller wait. A failure
   * latches the audit fault, so every later request is denied: nothing that
   * depends on an unrecorded event can proceed.
   */
  const pending = new Set<Promise<unknown>>();
  const recordLater = (rec: Record<string, unknown>) => {
    const p = record(rec).then(
      () => undefined,
      () => undefined, // latched in `record`; the next request reports it
    );
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };

  /** Waits for every `recordLater`; rejects when the audit fault is latched. */
  const flush = async () => {
    await Promise.all([...pending]);
    if (auditFault) throw new ZtError(auditFault);
  };

  /** Waits for every `recordLater`, whatever became of them. */
  const settle = async () => {
    await Promise.all([...pending]);
  };

  /** From now on, every record about `agentId` names this (weaker) isolation level. */
  const markWeakIsolation = (agentId: string, level: string) => {
    weakIsolation.set(agentId, level);
  };

  return harden({ record, recordLater, flush, settle, reattach, markWeakIsolation });
};
harden(makeAuditRecorder);

export type AuditRecorder = ReturnType<typeof makeAuditRecorder>;
