/**
 * The kernel's gate on what one vat sends over CapTP: measured on arrival,
 * checked before dispatch, and CapTP's tables counted.
 *
 * Threat: the vat's side of the wire is the attacker's. A message can be
 * huge or deeply nested, a call can name any method (an Error built for
 * an unknown method would be logged by the kernel's marshal, with the
 * vat's text in it, to the kernel's stdout), and every call, bootstrap or
 * slot the vat names grows a CapTP table of the kernel's for the
 * connection's life.
 *
 * Invariants:
 * - A message is measured once, on arrival, by a walk that stops at the
 *   budget: strings count their UTF-16 units, every value and key one more;
 *   deeper than 4 levels or larger than `messageBytes` and the vat is
 *   ended (ZT_VAT_LIMIT_EXCEEDED), never dispatched.
 * - A message whose `type` is not one CapTP knows is dropped unread.
 * - A call (`CTP_CALL`) reaches CapTP only if it calls `invoke` or `log`
 *   (the only methods the kernel's objects for a vat have) with an
 *   argument list, and only if the run can take it (`precheck`); anything
 *   else is answered here with a refusal record (plain data: nothing is
 *   logged), and never unserialized.
 * - Questions (calls and bootstrap requests) are counted per connection;
 *   imports and exports are counted by the tables CapTP is given
 *   (`makeCountedTables`). Past a budget the vat is ended.
 */
import { harden } from './harden.js';
import { Remotable } from '@endo/marshal';
import { isPromise } from '@endo/promise-kit';
import { ErrorCodes, type ErrorCode } from './errors.js';
import type { VatBudgets } from './vat-budget.js';

const CAPTP_TYPES: ReadonlySet<string> = new Set([
  'CTP_BOOTSTRAP',
  'CTP_DROP',
  'CTP_CALL',
  'CTP_RETURN',
  'CTP_RESOLVE',
  'CTP_DISCONNECT',
  'CTP_TRAP_ITERATE',
]);

const MAX_DEPTH = 4;

/**
 * The size of a message from a vat, or -1 when it is larger than `max` or
 * nested deeper than the wire format ever is. Reads own enumerable data
 * only (a structured clone has nothing else).
 */
export const measureMessage = (message: unknown, max: number): number => {
  let total = 0;
  const walk = (value: unknown, depth: number): boolean => {
    total += 1;
    if (typeof value === 'string') total += value.length;
    else if (value !== null && typeof value === 'object') {
      if (depth >= MAX_DEPTH) return false;
      if (Array.isArray(value)) {
        if (value.length > max - total) return false;
        for (const v of value) if (!walk(v, depth + 1)) return false;
      } else {
        for (const key of Object.keys(value)) {
          total += key.length + 1;
          if (!walk((value as Record<string, unknown>)[key], depth + 1)) return false;
          if (total > max) return false;
        }
      }
    }
    return total <= max;
  };
  try {
    return walk(message, 0) ? total : -1;
  } catch {
    return -1;
  }
};
harden(measureMessage);

/** What becomes of a message at the gate. */
export type GateVerdict =
  | { readonly kind: 'dispatch' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'answer'; readonly reply: Record<string, unknown> }
  | { readonly kind: 'end'; readonly reason: string };

const DISPATCH: GateVerdict = harden({ kind: 'dispatch' });
const DROP: GateVerdict = harden({ kind: 'drop' });

/** A refusal answered to the vat's question without CapTP: capdata of a plain record. */
const refusalReply = (questionID: string, code: ErrorCode, reason: string): Record<string, unknown> =>
  harden({
    type: 'CTP_RETURN',
    epoch: 0,
    answerID: questionID,
    exception: { body: JSON.stringify({ name: 'ZtError', code, message: `${code}: ${reason}` }), slots: [] },
  });

const INVOKE = '["invoke",[';
const LOG = '["log",[';
const QUESTION_ID = /^q-[0-9]{1,15}$/;

export interface GateRun {
  /** A call or line the run would refuse now (counted), or undefined to let it through. */
  precheck(kind: 'call' | 'line'): ErrorCode | undefined;
  /** A call to a method the kernel's objects do not have (counted). */
  notInInterface(): void;
}

/**
 * The gate of one connection. `limits()` reads the budgets in force (a
 * pooled vat's change when a run binds it); `run()` the run bound, if any.
 */
export const makeVatGate = (limits: () => VatBudgets, run: () => GateRun | undefined) => {
  let questions = 0;

  const check = (message: unknown): GateVerdict => {
    if (message === null || typeof message !== 'object') return DROP;
    const m = message as Record<string, unknown>;
    const type = m.type;
    if (typeof type !== 'string' || !CAPTP_TYPES.has(type)) return DROP;
    if (type !== 'CTP_CALL' && type !== 'CTP_BOOTSTRAP') return DISPATCH;
    questions += 1;
    if (questions > limits().captpQuestions) {
      return harden({ kind: 'end', reason: `the vat asked more than ${limits().captpQuestions} questions` });
    }
    if (type === 'CTP_BOOTSTRAP') return DISPATCH;
    const { questionID, method, trap } = m;
    if (typeof questionID !== 'string' || !QUESTION_ID.test(questionID)) return DROP;
    const body = method !== null && typeof method === 'object' ? (method as { body?: unknown }).body : undefined;
    const kind = typeof body !== 'string' || trap !== undefined ? undefined : body.startsWith(INVOKE) ? 'call' : body.startsWith(LOG) ? 'line' : undefined;
    const bound = run();
    if (kind === undefined) {
      bound?.notInInterface();
      return harden({ kind: 'answer', reply: refusalReply(questionID, 'ZT_NOT_IN_INTERFACE', 'the kernel answers invoke(method, args) only') });
    }
    const code = bound?.precheck(kind);
    if (code) return harden({ kind: 'answer', reply: refusalReply(questionID, code, ErrorCodes[code]) });
    return DISPATCH;
  };

  return harden({ check });
};
harden(makeVatGate);

/**
 * Import and export tables for the kernel's CapTP end that count what the
 * vat makes the kernel hold: `over(what)` is called when a table passes
 * its budget (the slot then ends the vat). Same behaviour as CapTP's own
 * tables without `gcImports`.
 */
export const makeCountedTables = (limits: () => VatBudgets, over: (what: string) => void) => {
  return (options: { makeRemoteKit: (slot: string) => { promise: unknown; settler: { resolveWithPresence(): unknown } } }) => {
    const exported = new Map<string, unknown>();
    const imported = new Map<string, unknown>();
    let lastExportID = 0;
    let lastPromiseID = 0;
    let imports = 0;
    return {
      makeSlotForValue: (val: unknown) => {
        if (isPromise(val)) {
          lastPromiseID += 1;
          return `p+${lastPromiseID}`;
        }
        lastExportID += 1;
        return `o+${lastExportID}`;
      },
      makeValueForSlot: (slot: string, iface: string | undefined) => {
        const { promise, settler } = options.makeRemoteKit(slot);
        if (slot[0] === 'o' || slot[0] === 't') {
          return { val: Remotable(iface as `Alleged: ${string}`, undefined, settler.resolveWithPresence() as never), settler };
        }
        if (slot[0] === 'p') return { val: promise, settler };
        throw Error('unknown slot type');
      },
      hasImport: (slot: string) => imported.has(slot),
      getImport: (slot: string) => imported.get(slot),
      markAsImported: (slot: string, val: unknown) => {
        // The kernel's own questions are imports too ('q-'): they are the kernel's, not the vat's.
        if (!imported.has(slot) && slot[0] !== 'q') {
          imports += 1;
          if (imports > limits().captpImports) over(`the vat sent more than ${limits().captpImports} objects and promises`);
        }
        imported.set(slot, val);
      },
      hasExport: (slot: string) => exported.has(slot),
      getExport: (slot: string) => exported.get(slot),
      markAsExported: (slot: string, val: unknown) => {
        exported.set(slot, val);
        if (exported.size > limits().captpExports) over(`the kernel would export more than ${limits().captpExports} objects and promises to the vat`);
      },
      deleteExport: (slot: string) => exported.delete(slot),
      didDisconnect: () => imported.clear(),
    };
  };
};
harden(makeCountedTables);

