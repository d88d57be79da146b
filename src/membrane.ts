/**
 * The membrane between the kernel and an agent vat.
 *
 * Invariant: no raw host object ever reaches a vat. What crosses into a vat
 * is a caretaker (a hardened Far forwarder bound to one agent and one
 * capability id) or frozen plain data; what crosses back is accepted only as
 * plain data (no remotable, promise, error or tagged value), so no getter,
 * proxy, thenable or toString of the agent's is ever run in kernel context.
 * (CapTP has already turned the agent's values into fresh kernel-realm copies;
 * the check below refuses the shapes that would carry authority or
 * behaviour.)
 *
 * A caretaker holds no authority of its own: each call is a new request
 * through `kernel.execute`, which re-checks holder, state, limits and policy.
 * Cutting the membrane (vat terminated) makes every caretaker refuse at once.
 */
import { Far } from '@endo/far';
import { passStyleOf } from '@endo/pass-style';
import { ErrorCodes, ZtError, agentRefusal, type ErrorCode } from './errors.js';
import type { Kernel } from './kernel.js';
import { ActionRequest, ActionType, type ActionArgs } from './types.js';

const MAX_DEPTH = 16;

/** Throws ZT_BAD_ARGUMENT unless `value` is plain passable data. */
export const assertPlainData = (value: unknown, depth = 0): void => {
  if (depth > MAX_DEPTH) throw new ZtError('ZT_BAD_ARGUMENT', 'argument nests too deeply');
  let style: string;
  try {
    style = passStyleOf(value);
  } catch {
    throw new ZtError('ZT_BAD_ARGUMENT', 'argument is not passable data');
  }
  switch (style) {
    case 'undefined':
    case 'null':
    case 'boolean':
    case 'number':
    case 'string':
      return;
    case 'copyArray':
      for (const item of value as unknown[]) assertPlainData(item, depth + 1);
      return;
    case 'copyRecord':
      for (const item of Object.values(value as Record<string, unknown>)) assertPlainData(item, depth + 1);
      return;
    default:
      throw new ZtError('ZT_BAD_ARGUMENT', `a ${style} cannot be passed to a capability`);
  }
};
harden(assertPlainData);

const asAgentError = (code: ErrorCode, message?: string) => agentRefusal(code, message ?? ErrorCodes[code]);

type OptionsArg = { path?: unknown; encoding?: unknown } | undefined;

export interface MembraneOptions {
  readonly kernel: Kernel;
  readonly agentId: string;
  readonly capabilityIds: readonly string[];
}

export const makeMembrane = ({ kernel, agentId, capabilityIds }: MembraneOptions) => {
  let cut = false;

  const call = async (capabilityId: string, actionType: ActionType, target: string, args: ActionArgs) => {
    if (cut) throw asAgentError('ZT_TERMINATED');
    const outcome = await kernel.execute(new ActionRequest({ capabilityId, agentId, actionType, target, args }), 'vat');
    if (outcome.ok) return outcome.result;
    const { code, message } = outcome.error ?? { code: 'ZT_EFFECT_FAILED' as const, message: undefined };
    throw asAgentError(code, message);
  };

  /** Validates the agent's arguments and picks the target: the exact grant or a path the agent names. */
  const prepare = (capabilityId: string, options: OptionsArg, rest: unknown[]): { target: string; encoding?: string } => {
    kernel.noteActivity(agentId);
    if (cut) throw asAgentError('ZT_TERMINATED');
    try {
      for (const arg of [options, ...rest]) assertPlainData(arg);
    } catch (err) {
      throw asAgentError('ZT_BAD_ARGUMENT', err instanceof ZtError ? err.message.replace(/^ZT_[A-Z_]+: /, '') : undefined);
    }
    if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options))) {
      throw asAgentError('ZT_BAD_ARGUMENT', 'options must be a record');
    }
    const record = kernel.getCapability(capabilityId);
    const path = options?.path;
    if (path !== undefined && typeof path !== 'string') throw asAgentError('ZT_BAD_ARGUMENT', 'path must be a string');
    const encoding = options?.encoding;
    if (encoding !== undefined && typeof encoding !== 'string') throw asAgentError('ZT_BAD_ARGUMENT', 'encoding must be a string');
    const target = path ?? record?.target ?? '';
    return { target, ...(encoding === undefined ? {} : { encoding }) };
  };

  const describe = (capabilityId: string) => () => {
    kernel.noteActivity(agentId);
    if (cut) throw asAgentError('ZT_TERMINATED');
    const record = kernel.getCapability(capabilityId);
    if (!record || record.holder !== agentId) throw asAgentError('ZT_UNKNOWN_CAPABILITY');
    return harden({ id: record.id, actionType: record.actionType, target: record.target, state: record.state });
  };

  const makeCaretaker = (capabilityId: string) => {
    const record = kernel.getCapability(capabilityId);
    if (!record) throw new ZtError('ZT_UNKNOWN_CAPABILITY', `no capability ${capabilityId}`);
    if (record.holder !== agentId) throw new ZtError('ZT_WRONG_HOLDER', `capability ${capabilityId} is not held by ${agentId}`);
    const name = `Capability ${capabilityId}`;
    switch (record.actionType) {
      case ActionType.READ:
        return Far(name, {
          read: (options?: OptionsArg, ...rest: unknown[]) => {
            const { target, encoding } = prepare(capabilityId, options, rest);
            return call(capabilityId, ActionType.READ, target, encoding === undefined ? {} : { encoding });
          },
          describe: describe(capabilityId),
        });
      case ActionType.WRITE:
        return Far(name, {
          write: (content: unknown, options?: OptionsArg, ...rest: unknown[]) => {
            const { target, encoding } = prepare(capabilityId, options, [content, ...rest]);
            if (typeof content !== 'string') throw asAgentError('ZT_BAD_ARGUMENT', 'content must be a string');
            return call(capabilityId, ActionType.WRITE, target, encoding === undefined ? { content } : { content, encoding });
          },
          describe: describe(capabilityId),
        });
      default:
        throw new ZtError('ZT_BAD_ARGUMENT', `no caretaker for ${record.actionType} capabilities yet`);
    }
  };

  const caps: Record<string, unknown> = {};
  for (const id of capabilityIds) caps[id] = makeCaretaker(id);

  return harden({
    caps: harden(caps),
    cut: () => {
      cut = true;
    },
  });
};
harden(makeMembrane);
