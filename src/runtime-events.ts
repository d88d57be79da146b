/**
 * Runtime events: what the kernel vat tells the host application, unasked,
 * about changes it may want to follow (a gateway's tool list, a UI).
 *
 * Invariant: an event is plain data and says only what happened; nothing a
 * listener does with it (throw, hang, ask back) can change the kernel.
 * Events are a view, the audit log is the record: a missed event never
 * loses anything the log holds.
 *
 * `capability.revoked` is sent for every capability that stops being
 * usable: revoked by the operator (`cause: 'api'`), with its parent
 * (`cascade`), with its agent (`agent`), by a policy reload (`policy`), or
 * past its `expiresAt` (`expired`: its state stays `live` in
 * `listCapabilities`, but every use is refused).
 */
import { harden } from './harden.js';

export type RevocationCause = 'api' | 'cascade' | 'policy' | 'agent' | 'expired';

export type RuntimeEvent =
  | {
      readonly type: 'capability.revoked';
      readonly capabilityId: string;
      readonly agentId: string;
      readonly reason?: string;
      readonly cause: RevocationCause;
    }
  | { readonly type: 'capability.issued'; readonly capabilityId: string; readonly agentId: string; readonly parent?: string }
  | { readonly type: 'agent.revoked'; readonly agentId: string; readonly reason?: string }
  | { readonly type: 'policy.loaded'; readonly policyHash: string }
  | { readonly type: 'tools.changed'; readonly server: string };

export type RuntimeEventType = RuntimeEvent['type'];

const EVENT_TYPES: ReadonlySet<string> = new Set<RuntimeEventType>(['capability.revoked', 'capability.issued', 'agent.revoked', 'policy.loaded', 'tools.changed']);

/** Whether `x` looks like a runtime event (a known type, string fields); the host checks what it is sent. */
export const isRuntimeEvent = (x: unknown): x is RuntimeEvent => {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return false;
  const { type } = x as { type?: unknown };
  if (typeof type !== 'string' || !EVENT_TYPES.has(type)) return false;
  return Object.values(x).every(v => typeof v === 'string');
};
harden(isRuntimeEvent);
