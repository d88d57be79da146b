/**
 * Per-vat budgets: what one agent vat may cost the kernel, whatever it
 * sends.
 *
 * Threat: a vat whose realm or process the attacker owns can send anything
 * the wire carries — calls in a tight loop, huge messages, endless log
 * lines, fresh CapTP slots — and the kernel must still serve deadlines,
 * other agents and the operator on time, keep its descriptors, and keep an
 * audit log the agent cannot grow at will.
 *
 * Invariants:
 * - Every budget has a default (`DEFAULT_VAT_BUDGETS`, documented in the
 *   README under "Limits") and may be set per launch (`limits`) or per
 *   runtime; a value that is not a positive safe integer, or a name that is
 *   not a budget, is refused with ZT_BAD_ARGUMENT (a typo never silently
 *   keeps the default).
 * - A budget that a single call can be refused within refuses that call
 *   with its own code, cheaply, before it reaches the policy, the audit log
 *   or an effector: ZT_VAT_BUSY (calls in flight), ZT_VAT_OVER_BUDGET
 *   (calls per second, bytes of audit). A log line over budget is dropped.
 *   Refusals are counted per budget; the first of each is recorded at once
 *   (`vat.over-budget`), the counts in the run's `agent.finished` record,
 *   so a flood of refusals costs the log a bounded number of records.
 * - A budget no call can be refused within (message size, queued bytes,
 *   CapTP tables) ends the vat with ZT_VAT_LIMIT_EXCEEDED (vat-gate.ts).
 * - Effects run at most `effectsInFlight` at a time per vat; the rest wait
 *   their turn (bounded by `callsInFlight`), so one agent cannot take the
 *   kernel's descriptors.
 *
 * This module is pure: the clock arrives as a power.
 */
import { harden } from './harden.js';
import { ZtError, type ErrorCode } from './errors.js';

export interface VatBudgets {
  /** Calls from the vat open at once (checks, audit, effect). Over: ZT_VAT_BUSY. */
  readonly callsInFlight: number;
  /** Effects of the vat's calls running at once; further calls wait their turn. */
  readonly effectsInFlight: number;
  /** Calls and log lines the vat may make per second. Over: ZT_VAT_OVER_BUDGET. */
  readonly callsPerSecond: number;
  /** Bytes of audit records the run may cause (estimated per call and line). Over: ZT_VAT_OVER_BUDGET. */
  readonly auditBytes: number;
  /** Largest single message from the vat, in UTF-16 units of its strings. Over: vat ended. */
  readonly messageBytes: number;
  /** Bytes of the vat's messages waiting for the kernel. Over: vat ended. */
  readonly queuedBytes: number;
  /** Objects and promises of the vat the kernel's CapTP end holds. Over: vat ended. */
  readonly captpImports: number;
  /** Objects and promises the kernel's CapTP end exports to the vat. Over: vat ended. */
  readonly captpExports: number;
  /** Questions the vat may ask in one run (CapTP keeps every answer for the connection's life). Over: vat ended. */
  readonly captpQuestions: number;
}

export const DEFAULT_VAT_BUDGETS: VatBudgets = harden({
  callsInFlight: 64,
  effectsInFlight: 16,
  callsPerSecond: 2_000,
  auditBytes: 16 * 1024 * 1024,
  messageBytes: 20 * 1024 * 1024,
  queuedBytes: 64 * 1024 * 1024,
  captpImports: 4_096,
  captpExports: 4_096,
  captpQuestions: 200_000,
});

export const VAT_BUDGET_NAMES: readonly (keyof VatBudgets)[] = harden(Object.keys(DEFAULT_VAT_BUDGETS) as (keyof VatBudgets)[]);

const isBudgetName = (name: string): name is keyof VatBudgets => (VAT_BUDGET_NAMES as readonly string[]).includes(name);

/**
 * The budgets of a launch: each named one checked (a positive safe
 * integer), the others from `defaults`. Keys in `others` are the other
 * limits the caller reads itself (deadlineMs, memoryMb); any other key is
 * refused.
 */
export const resolveVatBudgets = (raw: unknown, defaults: VatBudgets, others: readonly string[], where = 'limits'): VatBudgets => {
  if (raw === undefined) return defaults;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ZtError('ZT_BAD_ARGUMENT', `${where} must be an object`);
  const out: Record<string, number> = { ...defaults };
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (others.includes(name) || value === undefined) continue;
    if (!isBudgetName(name)) throw new ZtError('ZT_BAD_ARGUMENT', `${where}.${name.slice(0, 64)} is not a limit (see the README, "Limits")`);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      throw new ZtError('ZT_BAD_ARGUMENT', `${where}.${name} must be a positive integer`);
    }
    out[name] = value;
  }
  if (out.effectsInFlight > out.callsInFlight) out.effectsInFlight = out.callsInFlight;
  if (out.queuedBytes < out.messageBytes) throw new ZtError('ZT_BAD_ARGUMENT', `${where}.queuedBytes must be at least messageBytes`);
  return harden(out as unknown as VatBudgets);
};
harden(resolveVatBudgets);

/** The budgets a call or line can be refused within, by the name recorded. */
export type RefusableBudget = 'callsInFlight' | 'callsPerSecond' | 'auditBytes';

export const REFUSAL_CODES: Readonly<Record<RefusableBudget, ErrorCode>> = harden({
  callsInFlight: 'ZT_VAT_BUSY',
  callsPerSecond: 'ZT_VAT_OVER_BUDGET',
  auditBytes: 'ZT_VAT_OVER_BUDGET',
});

export interface RunMeterPowers {
  readonly now: () => number;
  /** Called once per budget, at its first refusal in the run (the caller records it). */
  readonly firstRefusal: (budget: RefusableBudget, limit: number, code: ErrorCode) => void;
}

/** Estimated audit bytes of a call's two records besides what the agent chose (ids, codes, hashes). */
export const CALL_RECORD_OVERHEAD = 768;
/** Estimated audit bytes of a console record besides its text. */
export const LINE_RECORD_OVERHEAD = 192;

/**
 * One run's meter: counts what the vat costs and says when a call or a
 * line is over budget. Calls are admitted with `admitCall` (paired with
 * `endCall`), effects with `acquireEffect`/`releaseEffect`.
 */
export const makeRunMeter = (budgets: VatBudgets, powers: RunMeterPowers) => {
  const { now, firstRefusal } = powers;
  let inFlight = 0;
  let windowStart = now();
  let windowCount = 0;
  let auditBytes = 0;
  let effects = 0;
  let stopped: ZtError | undefined;
  const waiting: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  const refused: Partial<Record<RefusableBudget, number>> = {};
  let peakInFlight = 0;

  const refuse = (budget: RefusableBudget): ErrorCode => {
    const code = REFUSAL_CODES[budget];
    const n = (refused[budget] ?? 0) + 1;
    refused[budget] = n;
    if (n === 1) firstRefusal(budget, budgets[budget], code);
    return code;
  };

  /** Counts one call or line against the rate; whether it fits. */
  const withinRate = (): boolean => {
    const t = now();
    if (t - windowStart >= 1000 || t < windowStart) {
      windowStart = t;
      windowCount = 0;
    }
    windowCount += 1;
    return windowCount <= budgets.callsPerSecond;
  };

  const withinAudit = (bytes: number): boolean => {
    if (auditBytes + bytes > budgets.auditBytes) return false;
    auditBytes += bytes;
    return true;
  };

  /**
   * Admits a call of estimated audit cost `bytes`, or returns the code it
   * is refused with (counted; nothing else is charged for it).
   */
  const admitCall = (bytes: number): ErrorCode | undefined => {
    if (inFlight >= budgets.callsInFlight) return refuse('callsInFlight');
    if (!withinRate()) return refuse('callsPerSecond');
    if (!withinAudit(bytes)) return refuse('auditBytes');
    inFlight += 1;
    if (inFlight > peakInFlight) peakInFlight = inFlight;
    return undefined;
  };

  /**
   * At the gate, before the call or line is even read: the code it would
   * surely be refused with (counted), or undefined. Charges nothing.
   */
  const precheck = (kind: 'call' | 'line'): ErrorCode | undefined => {
    if (kind === 'call' && inFlight >= budgets.callsInFlight) return refuse('callsInFlight');
    const t = now();
    if (t - windowStart < 1000 && t >= windowStart && windowCount >= budgets.callsPerSecond) return refuse('callsPerSecond');
    if (auditBytes >= budgets.auditBytes) return refuse('auditBytes');
    return undefined;
  };

  const endCall = () => {
    inFlight -= 1;
  };

  /** Whether a log line of `bytes` may be recorded; counted either way. */
  const admitLine = (bytes: number): boolean => {
    if (!withinRate()) {
      refuse('callsPerSecond');
      return false;
    }
    if (!withinAudit(bytes)) {
      refuse('auditBytes');
      return false;
    }
    return true;
  };

  /** Charges output the vat wrote (already bounded per run by the host). */
  const chargeOutput = (bytes: number) => {
    auditBytes += bytes;
  };

  /** Waits for an effect slot; rejects once the meter is stopped (the run ended). */
  const acquireEffect = (): Promise<void> => {
    if (stopped) return Promise.reject(stopped);
    if (effects < budgets.effectsInFlight) {
      effects += 1;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      waiting.push({ resolve, reject });
    });
  };

  const releaseEffect = () => {
    const next = waiting.shift();
    if (next) next.resolve();
    else effects -= 1;
  };

  /** The run ended: every call still waiting for an effect slot is refused with `err`. */
  const stop = (err: ZtError) => {
    stopped = err;
    for (const w of waiting.splice(0)) w.reject(err);
  };

  /** What the run cost, for its `agent.finished` record. */
  const summary = () =>
    harden({
      auditBytes,
      peakCallsInFlight: peakInFlight,
      ...(Object.keys(refused).length > 0 ? { refused: { ...refused } } : {}),
    });

  return harden({ admitCall, precheck, endCall, admitLine, chargeOutput, acquireEffect, releaseEffect, stop, summary });
};
harden(makeRunMeter);

export type RunMeter = ReturnType<typeof makeRunMeter>;
