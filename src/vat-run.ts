/**
 * One run's side of its vat: what the vat says becomes records, within
 * the run's budgets, and the end of the run is written by the kernel.
 *
 * Invariants:
 * - The kernel writes the end of a run from what it observed: the agent's
 *   result or failure as the vat reports it only when it is one an agent
 *   can have (it returned, threw, rejected, returned something not
 *   passable, its modules failed); any other code the vat claims
 *   (ZT_TERMINATED, ZT_OUT_OF_MEMORY, ZT_DEADLINE, …) is the vat's claim:
 *   the run ends with ZT_VAT_BAD_REPORT, the claim is recorded as
 *   `claimed`, bounded, and nothing is revoked because of it. Deadlines,
 *   memory, crashes and termination come from the kernel's own timers and
 *   the worker's exit and errors (vat-host.ts, vat-slot.ts).
 * - A console line is recorded with a level from a fixed set; any other
 *   level is recorded as `log` with `levelRefused: ZT_BAD_ARGUMENT` and the
 *   claimed level as a bounded digest. Its text is cut on code points.
 * - Every line, every output chunk and every call is charged to the run's
 *   audit budget; over budget, lines are dropped and calls refused
 *   (vat-budget.ts). The first refusal per budget is recorded at once
 *   (`vat.over-budget`), the counts in `agent.finished`.
 */
import { harden } from './harden.js';
import { isErrorCode, type ErrorCode } from './errors.js';
import type { FailureModes } from './failure-modes.js';
import type { Kernel } from './kernel.js';
import { digestText, faithfulText, recordableString } from './plain-data.js';
import type { AuditRef } from './types.js';
import { LINE_RECORD_OVERHEAD, makeRunMeter, type RunMeter, type VatBudgets } from './vat-budget.js';
import type { VatHostPowers } from './vat-host.js';
import type { RunBinding, RunReport } from './vat-slot.js';

/** The levels a console line may have. */
export const CONSOLE_LEVELS: ReadonlySet<string> = new Set(['log', 'info', 'warn', 'error', 'debug']);

/** Longest console line recorded, in code points. */
export const MAX_LOG_TEXT = 8192;
/** Output (stdout, stderr) recorded per run, in UTF-16 units. */
export const MAX_OUTPUT_BYTES = 64 * 1024;

/** The failures a vat may report for its agent: its own doing, not the kernel's observation. */
const AGENT_FAILURES: ReadonlySet<ErrorCode> = new Set([
  'ZT_AGENT_THREW',
  'ZT_AGENT_REJECTED',
  'ZT_AGENT_RESULT_NOT_PASSABLE',
  'ZT_AGENT_BUSY',
  'ZT_MODULE_FORBIDDEN',
  'ZT_MODULE_OUTSIDE',
  'ZT_MODULE_NOT_FOUND',
  'ZT_MODULE_SYNTAX',
  'ZT_MODULE_NO_MAIN',
]);

/** Failures that revoke the agent's capabilities (failure mode `vatFailure`): each observed by the kernel. */
const VAT_FAILURES: ReadonlySet<ErrorCode> = new Set(['ZT_DEADLINE', 'ZT_OUT_OF_MEMORY', 'ZT_VAT_CRASHED', 'ZT_VAT_PROTOCOL', 'ZT_VAT_LIMIT_EXCEEDED']);

/** A line or column a vat reports: a positive integer below ten million. */
const isPosition = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x > 0 && x < 10_000_000;

/** A run's end as the kernel records it; `claimed` is what a vat said that the kernel did not take. */
export type RunEnd = RunReport & { readonly claimed?: Readonly<Record<string, unknown>>; readonly messageEscaped?: 'ZT_NOT_RECORDABLE' };

/**
 * The vat's report is the agent's side of the membrane: a compromised vat
 * could send anything. Only a well-formed report of something an agent can
 * do, whose value the kernel can record (canonical JSON), is taken as it
 * is; anything else is ZT_VAT_BAD_REPORT, with the claim kept, bounded.
 */
export const checkReport = (report: unknown, powers: Pick<VatHostPowers, 'digest' | 'sha256Hex'>): RunEnd => {
  const r = report as { status?: unknown; value?: unknown; code?: unknown; message?: unknown } | null;
  const text = (v: unknown) => (typeof v === 'string' ? (v.length <= 64 ? recordableString(v, 64) : digestText(v, powers.sha256Hex)) : typeof v);
  if (r !== null && typeof r === 'object' && r.status === 'failed' && isErrorCode(r.code) && typeof r.message === 'string') {
    if (AGENT_FAILURES.has(r.code)) {
      // What the agent threw, as it was; escaped (and marked) if it is not Unicode text.
      const thrown = faithfulText(r.message, 1024);
      // Where in its entry module, if the vat could tell: two small positive integers or nothing.
      const { line, column } = r as { line?: unknown; column?: unknown };
      const at = isPosition(line) ? { line, ...(isPosition(column) ? { column } : {}) } : {};
      return { status: 'failed', code: r.code, message: thrown.text, ...at, ...(thrown.escaped ? { messageEscaped: 'ZT_NOT_RECORDABLE' as const } : {}) };
    }
    return {
      status: 'failed',
      code: 'ZT_VAT_BAD_REPORT',
      message: 'the vat claimed an end of run only the kernel may record',
      claimed: harden({ code: r.code, message: recordableString(r.message, 256) }),
    };
  }
  if (r !== null && typeof r === 'object' && r.status === 'returned') {
    try {
      return { status: 'returned', value: r.value, digest: powers.digest(r.value) };
    } catch {
      return { status: 'failed', code: 'ZT_AGENT_RESULT_NOT_PASSABLE', message: 'the agent must return JSON data' };
    }
  }
  const claimed = r !== null && typeof r === 'object' ? { status: text(r.status), code: text(r.code) } : { status: typeof r };
  return { status: 'failed', code: 'ZT_VAT_BAD_REPORT', message: 'the vat sent a malformed report', claimed: harden(claimed) };
};
harden(checkReport);

export interface RunIds {
  readonly agentId: string;
  readonly runId: string;
}

/**
 * The run's side of its slot, and the meter of its budgets: the vat's
 * console lines and its output become audit records (output bounded per
 * run), its death a failure, its calls and lines are counted.
 */
export const makeRunBinding = (
  kernel: Kernel,
  powers: VatHostPowers,
  ids: RunIds,
  budgets: VatBudgets,
  failWith: (code: ErrorCode, message: string) => void,
  onConsole?: (level: string, text: string, admitted: boolean) => void,
): { binding: RunBinding; meter: RunMeter } => {
  const { agentId, runId } = ids;
  let outputBytes = 0;
  let notInInterface = 0;
  const meter = makeRunMeter(budgets, {
    now: () => powers.now(),
    firstRefusal: (budget, limit, code) => {
      kernel.recordLater({ type: 'vat.over-budget', time: powers.now(), agentId, runId, budget, limit, code });
    },
  });
  const binding: RunBinding = {
    log: (level, text) => {
      kernel.noteActivity(agentId);
      // What a vat sends is cut by code points and made encodable: no
      // lone surrogate of its can reach the log and close it for everyone.
      // Text that is not Unicode is recorded escaped (`\ud800`), marked
      // ZT_NOT_RECORDABLE: what the agent printed stays readable exactly.
      const { text: line, escaped } = faithfulText(typeof text === 'string' ? text : '', MAX_LOG_TEXT);
      const known = typeof level === 'string' && CONSOLE_LEVELS.has(level);
      if (!meter.admitLine(LINE_RECORD_OVERHEAD + line.length)) {
        onConsole?.(known ? level : 'log', line, false);
        return;
      }
      onConsole?.(known ? level : 'log', line, true);
      kernel.recordLater({
        type: 'agent.console',
        time: powers.now(),
        agentId,
        runId,
        level: known ? level : 'log',
        ...(known ? {} : { levelRefused: 'ZT_BAD_ARGUMENT', claimedLevel: typeof level === 'string' ? digestText(level, powers.sha256Hex) : typeof level }),
        text: line,
        ...(escaped ? { escaped: 'ZT_NOT_RECORDABLE' } : {}),
      });
    },
    output: (stream, chunk) => {
      if (outputBytes >= MAX_OUTPUT_BYTES) return;
      const text = recordableString(String(chunk), MAX_OUTPUT_BYTES - outputBytes);
      outputBytes += text.length;
      meter.chargeOutput(text.length);
      kernel.recordLater({ type: 'vat.output', time: powers.now(), agentId, runId, stream, text });
    },
    failed: (code, message) => failWith(code, message),
    precheck: kind => {
      // A call refused at the gate is still the vat at work: not an agent waiting on nothing.
      kernel.noteActivity(agentId);
      return meter.precheck(kind);
    },
    notInInterface: () => {
      notInInterface += 1;
      if (notInInterface === 1) {
        kernel.recordLater({ type: 'vat.refused', time: powers.now(), agentId, runId, code: 'ZT_NOT_IN_INTERFACE', reason: 'a call to a method the kernel does not answer' });
      }
    },
  };
  return { binding, meter: harden({ ...meter, summary: () => harden({ ...meter.summary(), ...(notInInterface > 0 ? { notInInterface } : {}) }) }) };
};
harden(makeRunBinding);

/**
 * The kernel's side of a run's end: on a deadline, memory, crash or limit
 * failure the agent's capabilities are revoked (failure mode
 * `vatFailure`), the calls it left running are cut, and `agent.finished`
 * is recorded with what the run cost. Resolves to the record's audit
 * reference, or undefined if it could not be recorded.
 */
export const recordRunEnd = (
  kernel: Kernel,
  powers: Pick<VatHostPowers, 'now'>,
  failureModes: FailureModes,
  ids: RunIds,
  report: RunEnd,
  cost: Readonly<Record<string, unknown>>,
): Promise<AuditRef | undefined> => {
  const { agentId, runId } = ids;
  const failed = report.status === 'failed';
  const code = failed ? report.code : undefined;
  let revoked: string[] = [];
  if (code && VAT_FAILURES.has(code) && failureModes.vatFailure === 'revoke') {
    revoked = kernel.revokeAgentCapabilities(agentId, `vat ended: ${code}`);
  }
  // Calls the agent left running die with its vat: nobody is there to receive their results.
  const cut = kernel.abortCallsOf(agentId, code === 'ZT_DEADLINE' || code === 'ZT_TERMINATED' ? code : 'ZT_TERMINATED', 'the vat has ended');
  const rec = {
    type: 'agent.finished',
    time: powers.now(),
    agentId,
    runId,
    status: failed ? 'failed' : 'completed',
    ...(failed
      ? {
          code,
          message: report.message,
          ...(report.messageEscaped ? { messageEscaped: report.messageEscaped } : {}),
          ...(report.line === undefined ? {} : { line: report.line, ...(report.column === undefined ? {} : { column: report.column }) }),
        }
      : { resultDigest: report.digest }),
    ...(report.claimed ? { claimed: report.claimed } : {}),
    revoked,
    inFlightCut: cut,
    cost,
  };
  return kernel.record(rec).catch(() => undefined);
};
harden(recordRunEnd);
