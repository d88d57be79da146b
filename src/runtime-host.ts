/**
 * The host end of `SandboxRuntime` (src/runtime.ts), apart from the class:
 * how the caller's arguments are read and copied before they cross to the
 * kernel vat (`input`, `requestData`, `assertSink`), the outcome of a
 * request the kernel never answered, the approval desk (pending requests,
 * handlers, answers) and the event hub. Nothing here locks down or patches
 * the host realm; only plain data crosses.
 */
import { harden } from './harden.js';
import type { AuditSink } from './audit/audit-client.js';
import { checkApprovalAnswer, type ApprovalAnswer, type ApprovalHandler, type ApprovalRequest } from './approval.js';
import { ZtError, codeOf, reasonOf } from './errors.js';
import { copyOperatorInput, readField } from './operator-input.js';
import { PLAIN_DATA_LIMITS } from './plain-data.js';
import { isRuntimeEvent, type RuntimeEvent } from './runtime-events.js';
import type { Outcome } from './types.js';

const isFunction = (x: unknown): x is (...args: never[]) => unknown => typeof x === 'function';

const SINK_METHODS = ['append', 'read', 'size', 'rootHash', 'close'] as const;

/** The sink's methods, read once (a getter or a Proxy trap that throws is ZT_BAD_ARGUMENT). */
export const assertSink = (sink: unknown): AuditSink => {
  const bad = () => new ZtError('ZT_BAD_ARGUMENT', 'an audit sink must have append, read, size, rootHash and close');
  if (sink === null || typeof sink !== 'object') throw bad();
  const methods: Record<string, (...args: never[]) => unknown> = {};
  for (const name of SINK_METHODS) {
    const field = readField(sink, name);
    if (!field.ok || !isFunction(field.value)) throw bad();
    const fn = field.value;
    methods[name] = (...args: never[]) => Reflect.apply(fn, sink, args);
  }
  return methods as unknown as AuditSink;
};
harden(assertSink);

/**
 * The caller's arguments as the kernel will see them: checked and copied
 * (`copyOperatorInput`) before anything else, so nothing a caller passes —
 * a sparse giant array, a getter, a Proxy — reaches structured clone or the
 * kernel. Throws ZT_BAD_ARGUMENT. Strings that are not Unicode text pass:
 * the kernel vat refuses them (ZT_NOT_RECORDABLE) and records the refusal.
 */
export const input = (operation: string, args: readonly unknown[]): unknown[] => [...copyOperatorInput(operation, args).args];
harden(input);

/** The fields of a class instance or record, each read once, getters and traps contained. */
export const pickFields = (operation: string, value: unknown, keys: readonly string[]): Record<string, unknown> => {
  if (value === null || typeof value !== 'object') throw new ZtError('ZT_BAD_ARGUMENT', `${operation} needs an object`);
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const field = readField(value, key);
    if (!field.ok) throw new ZtError('ZT_BAD_ARGUMENT', `${operation}: ${key} could not be read (a getter or a proxy threw)`);
    if (field.value !== undefined) out[key] = field.value;
  }
  return out;
};
harden(pickFields);

/** `Array.isArray`, true as well for a revoked Proxy (which it would throw on). */
export const isArrayOrUnreadable = (x: unknown): boolean => {
  try {
    return Array.isArray(x);
  } catch {
    return true;
  }
};
harden(isArrayOrUnreadable);

export const optionsOrEmpty = (operation: string, options: unknown): unknown => (options === undefined ? {} : input(operation, [options])[0]);
harden(optionsOrEmpty);

/** A request as it crosses to the kernel: its own fields, nothing inherited. */
const REQUEST_FIELDS = ['capabilityId', 'agentId', 'actionType', 'target', 'args'] as const;

/**
 * A request as it crosses to the kernel: its own fields, each read once and
 * copied as plain data. Never throws: a field that cannot be read or is not
 * plain data crosses as a marker the kernel denies and records (a request
 * is always answered with an outcome). Strings that are not Unicode text
 * cross as they are, for the kernel to refuse and record.
 */
export const requestData = (request: unknown): Record<string, unknown> => {
  if (request === null || typeof request !== 'object') return { request: '[not a request]' };
  const out: Record<string, unknown> = {};
  for (const key of REQUEST_FIELDS) {
    const field = readField(request, key);
    if (!field.ok) {
      out[key] = '[unreadable]';
      continue;
    }
    if (field.value === undefined) continue;
    // The hot path: a string crosses as it is (the kernel checks that it is
    // Unicode text, ZT_NOT_RECORDABLE); only one too long to be plain data
    // and objects (the arguments) are copied here first.
    if (typeof field.value === 'string' && field.value.length <= PLAIN_DATA_LIMITS.maxStringLength) {
      out[key] = field.value;
      continue;
    }
    try {
      out[key] = copyOperatorInput('executeAction', [field.value], { cloneInstances: key === 'args' }).args[0];
    } catch {
      out[key] = '[not plain data]';
    }
  }
  return out;
};
harden(requestData);

let unrecorded = 0;
/**
 * The outcome of a request the kernel did not answer: made after the kernel
 * vat was gone, it never ran; in flight when it died, it may have (the log
 * holds whatever was recorded up to then). No audit reference either way.
 */
export const unrecordedOutcome = (err: unknown): Outcome => {
  unrecorded += 1;
  const code = codeOf(err) ?? 'ZT_KERNEL_UNAVAILABLE';
  const message = reasonOf(err) ?? 'the kernel vat could not be asked';
  return harden({ requestId: `unrecorded-${unrecorded}`, status: code === 'ZT_KERNEL_UNAVAILABLE' ? 'failed' : 'denied', ok: false, error: { code, message }, audit: {} });
};
harden(unrecordedOutcome);

/** A request for approval as the kernel sent it: kept if it names itself, hardened. */
const approvalRequestOf = (raw: unknown): ApprovalRequest | undefined => {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return undefined;
  const { approvalId } = raw as { approvalId?: unknown };
  return typeof approvalId === 'string' ? harden(raw as ApprovalRequest) : undefined;
};

/**
 * A handler's answer as it crosses to the kernel: a plain-data copy (or a
 * marker the kernel refuses, which denies), naming the channel when the
 * handler did not.
 */
const handlerAnswer = (answer: unknown): unknown => {
  let copy: unknown;
  try {
    copy = copyOperatorInput('an approval answer', [answer]).args[0];
  } catch {
    return '[not plain data]';
  }
  if (copy !== null && typeof copy === 'object' && !Array.isArray(copy) && !Object.hasOwn(copy, 'via')) return { ...copy, via: 'onApproval' };
  return copy;
};

/** The host's end of approvals: pending requests, handlers, and answers sent to the kernel. */
export const makeApprovalDesk = (send: (approvalId: string, answer: unknown) => boolean) => {
  /** Handlers, each registration its own entry (the same function may be registered twice). */
  const handlers = new Set<{ handler: ApprovalHandler }>();
  /** Approvals the kernel waits for, by id: dropped when answered here or when the kernel ends the wait. */
  const pending = new Map<string, ApprovalRequest>();

  /**
   * Asks one handler, on a later turn: its first definite answer goes to
   * the kernel; `undefined`, a throw or a rejection leaves the request
   * pending (never approves, never reaches the caller).
   */
  const offer = (entry: { handler: ApprovalHandler }, request: ApprovalRequest) => {
    void Promise.resolve()
      .then(() => entry.handler(request))
      .then(
        answer => {
          if (answer === undefined || !pending.has(request.approvalId)) return;
          pending.delete(request.approvalId);
          send(request.approvalId, handlerAnswer(answer));
        },
        () => undefined,
      );
  };

  return harden({
    requested: (raw: unknown) => {
      const request = approvalRequestOf(raw);
      if (!request) return;
      pending.set(request.approvalId, request);
      for (const entry of handlers) offer(entry, request);
    },
    closed: (approvalId: unknown) => {
      if (typeof approvalId === 'string') pending.delete(approvalId);
    },
    clear: () => pending.clear(),
    onApproval: (handler: ApprovalHandler): (() => void) => {
      if (typeof handler !== 'function') throw new ZtError('ZT_BAD_ARGUMENT', 'onApproval needs a function');
      const entry = { handler };
      handlers.add(entry);
      for (const request of pending.values()) offer(entry, request);
      return () => {
        handlers.delete(entry);
      };
    },
    pending: (): ApprovalRequest[] => harden([...pending.values()]),
    answer: (approvalId: string, answer: ApprovalAnswer): boolean => {
      const [id, raw] = input('answerApproval', [approvalId, answer]);
      if (typeof id !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'answerApproval needs an approval id');
      const checked = checkApprovalAnswer(raw);
      if ('problem' in checked) throw new ZtError('ZT_BAD_ARGUMENT', `answerApproval: ${checked.problem}`);
      if (!pending.has(id)) return false;
      pending.delete(id);
      return send(id, checked.answer);
    },
  });
};
harden(makeApprovalDesk);

/** Runtime events to their listeners (`onEvent`). */
export const makeEventHub = () => {
  /** Listeners, each in its own wrapper (the same function twice is two subscriptions). */
  const listeners = new Set<{ readonly listener: (event: RuntimeEvent) => void }>();
  return harden({
    /**
     * Hands an event to every listener, in order of subscription; a listener
     * that throws (or returns a promise that rejects) is contained: the
     * others still hear the event and the kernel never knows.
     */
    dispatch: (raw: unknown) => {
      if (!isRuntimeEvent(raw) || listeners.size === 0) return;
      const event = harden({ ...raw }) as RuntimeEvent;
      for (const entry of [...listeners]) {
        if (!listeners.has(entry)) continue;
        try {
          const result: unknown = entry.listener(event);
          if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
            (result as Promise<unknown>).then(undefined, () => undefined);
          }
        } catch {
          // contained: one listener's failure is not another's
        }
      }
    },
    subscribe: (listener: (event: RuntimeEvent) => void): (() => void) => {
      if (typeof listener !== 'function') throw new ZtError('ZT_BAD_ARGUMENT', 'onEvent needs a function');
      const entry = Object.freeze({ listener });
      listeners.add(entry);
      return () => {
        listeners.delete(entry);
      };
    },
  });
};
harden(makeEventHub);
