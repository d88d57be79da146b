/**
 * The membrane between the kernel and an agent vat.
 *
 * Invariants:
 * - No raw host object ever reaches a vat. What crosses into a vat is a
 *   caretaker (a hardened Far forwarder bound to one agent and one
 *   capability id) or frozen plain data. A derived capability in a result
 *   crosses as its own caretaker, bound to the same holder.
 * - Identity is preserved: one caretaker per capability per vat connection,
 *   so the same capability always reaches the vat as the same presence, and
 *   a caretaker the vat sends back is recognized by identity, never by shape.
 * - What crosses back is accepted only as plain data, checked and copied
 *   once, here, by `copyArgumentList` (src/plain-data.ts, the one
 *   definition): no remotable, promise, error or tagged value, nothing the
 *   audit log cannot encode, nothing past the bounds. So no getter, proxy,
 *   thenable or toString of the agent's is ever run in kernel context, and
 *   the kernel trusts the copy without checking it again. (CapTP has already
 *   turned the agent's values into fresh kernel-realm copies.) The agent
 *   vat runs the same check before sending; when it refuses, it sends a
 *   marker in place of the argument list, so the refusal is recorded here
 *   like any other.
 * - A method name is the agent's too: it is recorded cut to 64 code points,
 *   with any lone surrogate replaced, so it can always be recorded.
 * - A caretaker holds no authority of its own: each call is a new request
 *   through the kernel, which re-checks holder, state, limits and policy.
 *   A call to a method outside the capability's interface, or with bad
 *   arguments, is refused and audited like any other request.
 * - Cutting the membrane (vat ended) makes every caretaker refuse at once.
 * - With a run's meter (vat-budget.ts), a call is admitted against the
 *   run's budgets before anything else is done for it: over budget it is
 *   refused with ZT_VAT_BUSY or ZT_VAT_OVER_BUDGET, unread, unrecorded but
 *   counted; its effect waits for one of the run's effect slots, so one
 *   agent never holds more than `effectsInFlight` effects (and their
 *   descriptors) at once.
 * - Every error crosses to the vat through `toAgentRefusal` (src/errors.ts):
 *   as a frozen record of a code and an agent-safe reason, never with the
 *   error's details, stack or a foreign error's message.
 *
 * - `describe` (src/describe.ts) says only what this capability is and how
 *   to call it, under the name the agent holds it by: it is mediated (the
 *   holder and state are checked, a revoked capability answers ZT_REVOKED)
 *   and metered like any call, but it is not a use of the capability
 *   (never counted against `maxUses`, `rate` or budgets) and not recorded.
 *
 * Caretakers expose one method, `invoke(method, args)`; the agent vat wraps
 * each presence so agents write `E(cap).read()` (see vats/vat-agent.ts).
 */
import { harden } from './harden.js';
import { Far } from '@endo/far';
import { ZtError, reasonOf, toAgentRefusal } from './errors.js';
import type { Kernel } from './kernel.js';
import { boundaryCodeOf, boundedSize, copyArgumentList, cutCodePoints } from './plain-data.js';
import { CALL_RECORD_OVERHEAD, type RunMeter } from './vat-budget.js';
import { ActionRequest, ActionType, type ActionArgs } from './types.js';
import { capabilityName, describeCapability } from './describe.js';

/** The methods each kind of capability answers, besides `describe`. */
export const CAPABILITY_INTERFACES: Readonly<Record<ActionType, readonly string[]>> = harden({
  READ: ['read', 'stat', 'list'],
  WRITE: ['write'],
  EXECUTE: ['run'],
  NETWORK: ['fetch'],
  TOOL: ['call'],
});

type Options = Readonly<Record<string, unknown>>;


/** A refusal at the boundary, with its code (`boundaryCodeOf`). */
const boundaryError = (err: unknown): ZtError => new ZtError(boundaryCodeOf(err), reasonOf(err) ?? 'not plain data');

const optionsOf = (value: unknown): Options => {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ZtError('ZT_BAD_ARGUMENT', 'options must be a record');
  }
  return value as Options;
};

const optionalString = (options: Options, key: string): string | undefined => {
  const value = options[key];
  if (value !== undefined && typeof value !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', `${key} must be a string`);
  return value as string | undefined;
};

/** Only the keys that are present: absent options never reach the kernel as `undefined`. */
const present = (record: Record<string, unknown>): ActionArgs => {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) if (v !== undefined) out[k] = v;
  return harden(out);
};

/**
 * Maps a method call to (target, args) for the kernel. `grantTarget` is the
 * capability's own target, used when the agent names none.
 */
const toRequest = (
  actionType: ActionType,
  method: string,
  grantTarget: string | undefined,
  params: readonly unknown[],
): { target: string; args: ActionArgs } => {
  const named = (target: string | undefined): string => {
    if (target !== undefined) return target;
    if (grantTarget === undefined) throw new ZtError('ZT_BAD_ARGUMENT', 'this capability covers several targets: name one');
    return grantTarget;
  };
  switch (actionType) {
    case ActionType.READ: {
      const o = optionsOf(params[0]);
      // `stat` and `list` are READ operations on the same target (see docs/EFFECTORS.md).
      const op = method === 'read' ? undefined : method;
      return { target: named(optionalString(o, 'path')), args: present({ op, encoding: optionalString(o, 'encoding') }) };
    }
    case ActionType.WRITE: {
      const [content, raw] = params;
      if (typeof content !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'content must be a string');
      const o = optionsOf(raw);
      if (o.append !== undefined && typeof o.append !== 'boolean') throw new ZtError('ZT_BAD_ARGUMENT', 'append must be a boolean');
      return {
        target: named(optionalString(o, 'path')),
        args: present({ content, encoding: optionalString(o, 'encoding'), append: o.append }),
      };
    }
    case ActionType.EXECUTE: {
      const [argv, raw] = params;
      if (!Array.isArray(argv) || !argv.every(a => typeof a === 'string')) throw new ZtError('ZT_BAD_ARGUMENT', 'argv must be an array of strings');
      const o = optionsOf(raw);
      return { target: named(undefined), args: present({ argv, stdin: optionalString(o, 'stdin'), env: o.env, cwd: optionalString(o, 'cwd') }) };
    }
    case ActionType.NETWORK: {
      const [url, raw] = params;
      if (url !== undefined && typeof url !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'url must be a string');
      const o = optionsOf(raw);
      return {
        target: named(url as string | undefined),
        args: present({ method: optionalString(o, 'method'), headers: o.headers, body: optionalString(o, 'body') }),
      };
    }
    case ActionType.TOOL: {
      const [toolArgs, raw] = params;
      const o = optionsOf(raw);
      if (toolArgs !== undefined && (toolArgs === null || typeof toolArgs !== 'object' || Array.isArray(toolArgs))) {
        throw new ZtError('ZT_BAD_ARGUMENT', 'tool arguments must be a record');
      }
      return { target: named(optionalString(o, 'tool')), args: present({ arguments: toolArgs ?? {} }) };
    }
  }
};

export interface MembraneOptions {
  readonly kernel: Kernel;
  readonly agentId: string;
  /** Capability ids to hand over; keyed by id in `caps`. */
  readonly capabilityIds: readonly string[];
  /** Optional names (petnames) for them: `caps[name]` instead of `caps[id]`. */
  readonly names?: Readonly<Record<string, string>>;
  /** The run's budgets; without one, calls are not metered (the kernel's own tests). */
  readonly meter?: Pick<RunMeter, 'admitCall' | 'endCall' | 'acquireEffect' | 'releaseEffect'>;
  /**
   * Describes a capability of this agent under `name` (the runtime's
   * describer, which lists upstream tools); without one, described from the
   * capability record alone (TOOL schemas then unknown).
   */
  readonly describe?: (capabilityId: string, name: string) => Promise<unknown>;
  /** The run these capabilities serve: every decision record of the vat's calls carries it. */
  readonly runId?: string;
}

/** Most bytes of a call's arguments charged to the audit budget (what its records can hold of them). */
const MAX_CALL_CHARGE = 8 * 1024;

export const makeMembrane = ({ kernel, agentId, capabilityIds, names, meter, describe, runId }: MembraneOptions) => {
  let cut = false;
  const caretakers = new Map<string, object>();
  /** The name the agent holds each capability by (the first, if given twice); derived ones get `capabilityName`. */
  const nameOf = new Map<string, string>();

  const describeFor = async (capabilityId: string): Promise<unknown> => {
    const record = kernel.getCapability(capabilityId);
    if (!record || record.holder !== agentId) throw new ZtError('ZT_UNKNOWN_CAPABILITY', 'no such capability');
    if (record.state !== 'live') throw new ZtError('ZT_REVOKED');
    const name = nameOf.get(capabilityId) ?? capabilityName(capabilityId, new Set());
    return describe ? describe(capabilityId, name) : describeCapability(name, record);
  };

  /** Records a call refused before it became a request, then rejects it with what the agent may see. */
  const refuse = async (capabilityId: string, method: string, err: ZtError): Promise<never> => {
    await kernel.refuse({ agentId, capabilityId, method: cutCodePoints(method, 64), code: err.code });
    throw toAgentRefusal(err);
  };

  /** Replaces kernel-branded derived references in a result by their caretakers. */
  const exportResult = (value: unknown, depth = 0): unknown => {
    if (value === null || typeof value !== 'object' || depth > 32) return value;
    if (kernel.isDerivedRef(value)) return caretakerFor(value.capabilityId);
    if (Array.isArray(value)) return harden(value.map(v => exportResult(v, depth + 1)));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = exportResult(v, depth + 1);
    return harden(out);
  };

  /** Every call from the vat, from arrival to answer, counts as in flight. */
  const invoke = async (capabilityId: string, method: unknown, params: unknown): Promise<unknown> => {
    kernel.noteActivity(agentId);
    if (meter) {
      const refused = meter.admitCall(CALL_RECORD_OVERHEAD + Math.min(boundedSize(params, MAX_CALL_CHARGE), MAX_CALL_CHARGE));
      if (refused) throw toAgentRefusal(new ZtError(refused));
    }
    kernel.beginCall(agentId);
    try {
      return await dispatch(capabilityId, method, params);
    } finally {
      kernel.endCall(agentId);
      meter?.endCall();
    }
  };

  /** Runs the request once one of the run's effect slots is free. */
  const executeMetered = async (request: ActionRequest) => {
    if (!meter) return kernel.executeChecked(request, 'vat', runId);
    try {
      await meter.acquireEffect();
    } catch {
      throw toAgentRefusal(new ZtError('ZT_TERMINATED'));
    }
    try {
      return await kernel.executeChecked(request, 'vat', runId);
    } finally {
      meter.releaseEffect();
    }
  };

  const dispatch = async (capabilityId: string, method: unknown, params: unknown): Promise<unknown> => {
    if (cut) throw toAgentRefusal(new ZtError('ZT_TERMINATED'));
    const record = kernel.capabilityShape(capabilityId);
    if (typeof method !== 'string' || !record) return refuse(capabilityId, typeof method === 'string' ? method : typeof method, new ZtError('ZT_NOT_IN_INTERFACE'));
    if (method === 'describe') {
      // Not a use, not recorded (see the header): no request reaches the kernel's mediation.
      try {
        return harden(await describeFor(capabilityId));
      } catch (err) {
        throw toAgentRefusal(err);
      }
    }
    if (method === 'delegate') return delegate(capabilityId, params);
    if (!CAPABILITY_INTERFACES[record.actionType].includes(method)) {
      return refuse(capabilityId, method, new ZtError('ZT_NOT_IN_INTERFACE', `${record.actionType} capabilities answer ${[...CAPABILITY_INTERFACES[record.actionType], 'describe'].join(', ')}`));
    }
    let request: { target: string; args: ActionArgs };
    try {
      const list = copyArgumentList(params);
      // A pattern grant covers many targets: the agent must name one.
      const grantTarget = record.exact ? record.target : undefined;
      request = toRequest(record.actionType, method, grantTarget, list);
    } catch (err) {
      return refuse(capabilityId, method, boundaryError(err));
    }
    // Checked above: the kernel takes it as it is.
    const outcome = await executeMetered(
      new ActionRequest({ capabilityId, agentId, actionType: record.actionType, target: request.target, args: request.args }),
    );
    if (outcome.ok) return exportResult(outcome.result);
    // The outcome holds the code and reason of the ZtError that ended the
    // call, or the table text for anything else: never its details.
    const { code, message } = outcome.error ?? { code: 'ZT_EFFECT_FAILED' as const, message: undefined };
    throw toAgentRefusal(new ZtError(code, message));
  };

  /**
   * `E(cap).delegate(recipient, { target, constraints })`: asks the kernel
   * to give `recipient` its own capability, no wider than this one. Only
   * data comes back (the new capability's id): the recipient receives it
   * when it is launched with it.
   */
  const delegate = async (capabilityId: string, params: unknown): Promise<unknown> => {
    let to: string;
    let options: Options;
    try {
      const [recipient, raw] = copyArgumentList(params);
      if (typeof recipient !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'the recipient must be an agent id');
      to = recipient;
      options = optionsOf(raw);
    } catch (err) {
      return refuse(capabilityId, 'delegate', boundaryError(err));
    }
    try {
      const target = optionalString(options, 'target');
      const record = kernel.delegate({
        from: agentId,
        capabilityId,
        to,
        ...(target === undefined ? {} : { target }),
        ...(options.constraints === undefined ? {} : { constraints: options.constraints as never }),
      });
      return harden({ capabilityId: record.id, holder: record.holder, actionType: record.actionType, target: record.target });
    } catch (err) {
      throw toAgentRefusal(err, 'ZT_POLICY_ERROR');
    }
  };

  const caretakerFor = (capabilityId: string): object => {
    let caretaker = caretakers.get(capabilityId);
    if (!caretaker) {
      caretaker = Far(`Capability ${capabilityId}`, {
        invoke: (method: unknown, params: unknown) => invoke(capabilityId, method, params),
        // The wire lets `log` through to any target (vat-gate.ts): refused here as data, never as an Error.
        // (Not recorded: it never was a call of the capability's interface, and the gate meters it as a line.)
        log: () => Promise.reject(toAgentRefusal(new ZtError('ZT_NOT_IN_INTERFACE', 'capabilities answer invoke(method, args)'))),
      });
      caretakers.set(capabilityId, caretaker);
    }
    return caretaker;
  };

  const caps: Record<string, unknown> = {};
  const entries: Array<[string, string]> = names ? Object.entries(names) : capabilityIds.map(id => [id, id]);
  for (const [name, id] of entries) {
    const record = kernel.getCapability(id);
    if (!record) throw new ZtError('ZT_UNKNOWN_CAPABILITY', `no capability ${id}`);
    if (record.holder !== agentId) throw new ZtError('ZT_WRONG_HOLDER', `capability ${id} is not held by ${agentId}`);
    caps[name] = caretakerFor(id);
    if (!nameOf.has(id)) nameOf.set(id, name);
  }

  return harden({
    caps: harden(caps),
    cut: () => {
      cut = true;
    },
  });
};
harden(makeMembrane);
