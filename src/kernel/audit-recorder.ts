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
 * - A slow append that lands is not an outage. An append that only ran past
 *   `auditTimeoutMs` is still awaited: its request was denied (fail closed)
 *   and so is every request meanwhile, but once every such append has been
 *   confirmed durable — no refusal, nothing over the bound, so the history
 *   has no hole — the recorder resumes by itself: it writes what it held
 *   (not the timed-out records, which landed), then a
 *   `failure-mode.resumed` record saying how long the log was unavailable
 *   (`unavailableMs`), and only then serves requests again. Any refusal
 *   leaves the fault latched until an operator's `reattach`.
 * - No single record can stop the log. A record the log refuses as
 *   malformed (ZT_AUDIT_NOT_CANONICAL, ZT_BAD_ARGUMENT: a lone surrogate, a
 *   NaN), which the log refuses before writing anything, does not latch the
 *   fault: it is written escaped (`escaped: true`, every string that is not
 *   Unicode text replaced by its JSON escape), or, if even that is refused,
 *   replaced by an `audit.unrecordable` record naming its type. The same
 *   holds for records written late, so recovery never loops on one.
 * - Every record about an agent that runs under an explicitly weaker
 *   isolation level names that level.
 */
import { harden } from '../harden.js';
import { ZtError, codeOf, type ErrorCode } from '../errors.js';
import { escapeText } from '../plain-data.js';
import type { FailureModes } from '../failure-modes.js';
import type { AuditRef } from '../types.js';
import { canonicalJson } from '../audit/canonical.js';
import type { KernelAuditSink, KernelTimers } from './types.js';

/** Records kept while the audit log is down, to write when it is back. */
const MAX_HELD_RECORDS = 10_000;

/** The log refused the record itself (before writing anything), not the log's health. */
const isMalformedRecord = (err: unknown): boolean => {
  const code = codeOf(err);
  return code === 'ZT_AUDIT_NOT_CANONICAL' || code === 'ZT_BAD_ARGUMENT';
};

/** A copy of `v` the log can encode: non-text strings escaped, non-finite numbers and other values named. */
const escapedValue = (v: unknown, depth: number): unknown => {
  switch (typeof v) {
    case 'string':
      return escapeText(v);
    case 'number':
      return Number.isFinite(v) ? v : String(v);
    case 'boolean':
      return v;
    case 'object': {
      if (v === null) return null;
      if (depth > 64) return '[too deep]';
      if (Array.isArray(v)) return Array.from({ length: Math.min(v.length, 65_536) }, (_, i) => escapedValue((v as unknown[])[i], depth + 1));
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v)) {
        const e = (v as Record<string, unknown>)[key];
        if (e !== undefined) Object.defineProperty(out, escapeText(key), { value: escapedValue(e, depth + 1), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    default:
      return `[${typeof v}]`;
  }
};

/** What is written instead of a malformed record: first escaped, then (if still refused) a stub. */
const escapedRecord = (rec: Record<string, unknown>): Record<string, unknown> => {
  try {
    return { ...(escapedValue(rec, 0) as Record<string, unknown>), escaped: true };
  } catch {
    return unrecordableStub(rec);
  }
};
const unrecordableStub = (rec: Record<string, unknown>): Record<string, unknown> => {
  let type: unknown;
  let time: unknown;
  try {
    ({ type, time } = rec);
  } catch {
    // unreadable: named as such below
  }
  return {
    type: 'audit.unrecordable',
    time: typeof time === 'number' && Number.isFinite(time) ? time : 0,
    recordType: typeof type === 'string' ? escapeText(type.slice(0, 128)) : null,
    code: 'ZT_AUDIT_NOT_CANONICAL',
  };
};

/**
 * Appends `rec` with `append`; a record the log refuses as malformed is
 * appended escaped, and failing that as a stub. Any other failure rejects.
 */
const appendWhole = async (append: (r: Record<string, unknown>) => Promise<AuditRef>, rec: Record<string, unknown>): Promise<AuditRef> => {
  try {
    return await append(rec);
  } catch (err) {
    if (!isMalformedRecord(err)) throw err;
  }
  try {
    return await append(escapedRecord(rec));
  } catch (err) {
    if (!isMalformedRecord(err)) throw err;
  }
  return append(unrecordableStub(rec));
};

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

  /**
   * A record held while the log is down. `sent`: its append timed out and
   * is still awaited ('pending'), was confirmed after all ('landed': it is
   * in the log and is not written again) or was refused ('failed').
   */
  interface Held {
    readonly rec: Record<string, unknown>;
    /** The record as it was sent, for a record that may have landed unconfirmed. */
    readonly original?: Record<string, unknown>;
    sent?: 'pending' | 'landed' | 'failed' | 'unknown';
  }
  const heldWhileDown: Held[] = [];
  let heldOverflow = 0;
  /** When the fault was latched (the recorder's clock). */
  let faultSince = 0;
  /** Set by any refusal: only an operator's `reattach` may resume then. */
  let refused = false;
  const hold = (rec: Record<string, unknown>, sent?: 'pending' | 'unknown'): Held | undefined => {
    if (heldWhileDown.length >= MAX_HELD_RECORDS) {
      heldOverflow += 1;
      return undefined;
    }
    const late = { ...rec, recordedLate: true };
    const entry: Held = sent ? { rec: late, original: rec, sent } : { rec: late };
    heldWhileDown.push(entry);
    return entry;
  };
  /** The highest seq the log confirmed to this recorder (-1: none yet). */
  let lastConfirmed = -1;
  const confirmed = (ref: AuditRef): AuditRef => {
    if (typeof ref?.seq === 'number' && ref.seq > lastConfirmed) lastConfirmed = ref.seq;
    return ref;
  };

  /**
   * Before held records are written again: which of those sent but never
   * confirmed (the vat died between writing and answering) are in the log
   * after all. They can only be its last records, after the last one
   * confirmed, in the order they were sent; each found is marked landed and
   * not written twice. A sink that cannot be read leaves them all to be
   * written (marked late): a duplicate, never a loss.
   */
  const markLanded = async (target: KernelAuditSink): Promise<void> => {
    const maybe = heldWhileDown.filter(e => (e.sent === 'unknown' || e.sent === 'failed') && e.original !== undefined);
    if (maybe.length === 0 || typeof target.size !== 'function' || typeof target.read !== 'function') return;
    const size = await target.size();
    const from = Math.max(lastConfirmed + 1, size - maybe.length);
    if (!(size > from)) return;
    const tail = await target.read(from, size - from);
    const same = (sent: Record<string, unknown>, landed: Record<string, unknown>) => {
      const { seq: _seq, ...rest } = landed;
      try {
        return canonicalJson(rest) === canonicalJson(sent);
      } catch {
        return false;
      }
    };
    let i = 0;
    for (const landed of tail) {
      while (i < maybe.length && !same(maybe[i]!.original!, landed)) i += 1;
      if (i === maybe.length) break;
      maybe[i]!.sent = 'landed';
      i += 1;
    }
  };
  const unavailable = () =>
    new ZtError('ZT_AUDIT_UNAVAILABLE', 'the audit log is unavailable; this runtime denies everything until it is back');

  /** `sink.append(rec)` bounded by `auditTimeoutMs`; `onLate` gets the append when the bound passes first. */
  const bounded = async (target: KernelAuditSink, rec: Record<string, unknown>, onLate?: (appended: Promise<AuditRef>) => void): Promise<AuditRef> => {
    let timer: unknown;
    const appended = target.append(rec);
    try {
      return await Promise.race([
        appended,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            onLate?.(appended);
            reject(new ZtError('ZT_AUDIT_UNAVAILABLE', `no durable confirmation within ${options.auditTimeoutMs} ms`));
          }, options.auditTimeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };

  /** Writes the held records that are not in the log yet, in order, each once durable. */
  const writeHeld = async (target: KernelAuditSink): Promise<number> => {
    let written = 0;
    while (heldWhileDown.length > 0) {
      const entry = heldWhileDown[0]!;
      if (entry.sent !== 'landed') {
        confirmed(await appendWhole(r => bounded(target, r), entry.rec));
        written += 1;
      }
      heldWhileDown.shift();
    }
    return written;
  };

  let resuming: Promise<void> | undefined;
  /**
   * Resumes by itself once every timed-out append has landed and nothing
   * was refused or dropped: the history has no hole.
   */
  const resumeIfWhole = (): void => {
    if (!auditFault || resuming || refused || heldOverflow > 0) return;
    if (heldWhileDown.some(e => e.sent === 'pending')) return;
    const target = sink;
    resuming = (async () => {
      try {
        let written = await writeHeld(target);
        const time = now();
        await bounded(target, {
          type: 'failure-mode.resumed',
          time,
          code: 'ZT_AUDIT_UNAVAILABLE',
          since: faultSince,
          unavailableMs: time - faultSince,
          heldRecords: written,
        });
        // Held while that was written: written too, before anything runs.
        written += await writeHeld(target);
        auditFault = undefined;
      } catch {
        // The log failed again: an operator recovers it.
        refused = true;
      } finally {
        resuming = undefined;
      }
    })();
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
      throw unavailable();
    }
    let late: Promise<AuditRef> | undefined;
    try {
      return confirmed(
        await appendWhole(
          r =>
            bounded(sink, r, appended => {
              late = appended;
            }),
          rec,
        ),
      );
    } catch (err) {
      const error = err instanceof ZtError ? err : new ZtError('ZT_AUDIT_UNAVAILABLE', 'the audit log refused the record');
      if (!auditFault) {
        auditFault = 'ZT_AUDIT_UNAVAILABLE';
        faultSince = now();
        hold({ type: 'failure-mode', time: faultSince, code: 'ZT_AUDIT_UNAVAILABLE', mode: options.auditUnavailable, reason: error.message });
      }
      if (!late) {
        // Refused: the record may or may not have landed. It is kept, and
        // written again (marked late) when an operator brings the log back,
        // unless the log then shows it landed.
        refused = true;
        hold(rec, 'unknown');
        throw error;
      }
      // Only slow: still awaited. Landed, it is not written again and may
      // let the runtime resume; refused, it is written late on `reattach`.
      const entry = hold(rec, 'pending');
      late.then(
        ref => {
          confirmed(ref);
          if (entry) entry.sent = 'landed';
          resumeIfWhole();
        },
        () => {
          if (entry) entry.sent = 'failed';
          refused = true;
        },
      );
      throw error;
    }
  };

  /**
   * The log is back (a new sink on the same store): writes what was held,
   * in order, then resumes. If more was held than the bound allows, records
   * the gap and stays closed. Returns whether the runtime resumed.
   */
  const reattach = async (next: KernelAuditSink): Promise<{ resumed: boolean; written: number; lost: number }> => {
    // A resumption under way on the old sink finishes (or fails) first.
    await resuming;
    sink = next;
    await markLanded(next);
    let written = 0;
    // One at a time, in order; a record leaves the buffer only once it is
    // durable. A timed-out record confirmed meanwhile is not written again.
    while (heldWhileDown.length > 0) {
      const entry = heldWhileDown[0]!;
      if (entry.sent !== 'landed') {
        confirmed(await appendWhole(r => next.append(r), entry.rec));
        written += 1;
      }
      heldWhileDown.shift();
    }
    const lost = heldOverflow;
    if (lost > 0) {
      await next.append({ type: 'failure-mode.gap', time: now(), lost, recordedLate: true });
      return harden({ resumed: false, written, lost });
    }
    const time = now();
    await next.append({
      type: 'failure-mode.recovered',
      time,
      code: 'ZT_AUDIT_UNAVAILABLE',
      heldRecords: written,
      ...(auditFault ? { since: faultSince, unavailableMs: time - faultSince } : {}),
    });
    auditFault = undefined;
    refused = false;
    return harden({ resumed: true, written, lost: 0 });
  };

  /**
   * Records a lifecycle event without making the caller wait. A failure
   * latches the audit fault, so every later request is denied: nothing that
   * depends on an unrecorded event can proceed.
   */
  const pending = new Set<Promise<unknown>>();
  /** As `recordLater`, resolving with the record's reference (undefined if it was not recorded); never rejects. */
  const recordLaterRef = (rec: Record<string, unknown>): Promise<AuditRef | undefined> => {
    const p = record(rec).then(
      ref => ref,
      () => undefined, // latched in `record`; the next request reports it
    );
    pending.add(p);
    void p.finally(() => pending.delete(p));
    return p;
  };
  const recordLater = (rec: Record<string, unknown>): void => {
    void recordLaterRef(rec);
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

  return harden({ record, recordLater, recordLaterRef, flush, settle, reattach, markWeakIsolation });
};
harden(makeAuditRecorder);

export type AuditRecorder = ReturnType<typeof makeAuditRecorder>;
