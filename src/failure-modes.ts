/**
 * What happens when a part of the runtime fails. One typed surface, closed
 * defaults, and every mode deterministic: the same failure always yields the
 * same outcome code and the same audit record.
 */
import { harden } from './harden.js';
import { ZtError } from './errors.js';

export interface FailureModes {
  /**
   * The policy could not be evaluated (a rule threw). `deny`: the request is
   * denied with ZT_POLICY_ERROR. `halt`: denied, and the agent is halted
   * (its vat terminated, its capabilities revoked).
   */
  readonly policyError: 'deny' | 'halt';
  /**
   * The audit log could not durably record a request within
   * `auditTimeoutMs`, or failed. `deny`: the request is denied with
   * ZT_AUDIT_UNAVAILABLE, and so is every later request until the log is
   * whole again: by itself when every late append lands (a
   * `failure-mode.resumed` record says how long it was unavailable), or
   * once `recoverAudit()` has written what happened meanwhile (a history
   * with a hole is never resumed). `halt`: the same, and the agent is halted.
   */
  readonly auditUnavailable: 'deny' | 'halt';
  /** Bound on a durable audit append, in milliseconds. */
  readonly auditTimeoutMs: number;
  /**
   * An agent's vat crashed, ran out of memory or ran past its deadline.
   * `revoke`: every capability the agent holds is revoked. `keep`: the run
   * ends but the agent's grants stay live for a later launch.
   */
  readonly vatFailure: 'revoke' | 'keep';
  /**
   * Bound on a synchronous call from the host to the kernel vat (the first
   * one includes the kernel vat's start), in milliseconds. Past it the
   * kernel vat is ended and every later call fails with
   * ZT_KERNEL_UNAVAILABLE: a kernel whose state is unknown is never trusted
   * to resume.
   */
  readonly kernelTimeoutMs: number;
}

export const DEFAULT_FAILURE_MODES: FailureModes = harden({
  policyError: 'deny',
  auditUnavailable: 'deny',
  auditTimeoutMs: 5_000,
  vatFailure: 'revoke',
  kernelTimeoutMs: 30_000,
});

export const resolveFailureModes = (given: Partial<FailureModes> = {}): FailureModes => {
  const modes = { ...DEFAULT_FAILURE_MODES, ...given };
  const bad = (name: string, allowed: string) => {
    throw new ZtError('ZT_BAD_ARGUMENT', `failureModes.${name} must be ${allowed}`);
  };
  for (const key of Object.keys(given)) {
    if (!Object.hasOwn(DEFAULT_FAILURE_MODES, key)) bad(key, 'a known failure mode (unknown key)');
  }
  if (modes.policyError !== 'deny' && modes.policyError !== 'halt') bad('policyError', '"deny" or "halt"');
  if (modes.auditUnavailable !== 'deny' && modes.auditUnavailable !== 'halt') bad('auditUnavailable', '"deny" or "halt"');
  if (modes.vatFailure !== 'revoke' && modes.vatFailure !== 'keep') bad('vatFailure', '"revoke" or "keep"');
  if (!Number.isSafeInteger(modes.auditTimeoutMs) || modes.auditTimeoutMs <= 0) bad('auditTimeoutMs', 'a positive integer');
  if (!Number.isSafeInteger(modes.kernelTimeoutMs) || modes.kernelTimeoutMs <= 0) bad('kernelTimeoutMs', 'a positive integer');
  return harden(modes);
};
harden(resolveFailureModes);
