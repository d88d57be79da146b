/**
 * ZT-AAS public surface. Explicit named exports only: adding one is a decision.
 * Import `ztaas/init` (or make this package's import your first) so the realm
 * is locked down before anything else runs.
 */
import './init.js';

export { SandboxRuntime } from './runtime.js';
export type { SandboxOptions, LaunchOptions, RuntimeLimits } from './runtime.js';
export { ActionType, Capability, ActionRequest } from './types.js';
export type {
  ActionArgs,
  ActionRequestInit,
  AuditRef,
  CapabilityConstraints,
  CapabilityInit,
  Outcome,
  OutcomeError,
  OutcomeStatus,
} from './types.js';
export { ErrorCodes, ZtError, codeOf } from './errors.js';
export type { ErrorCode } from './errors.js';
export { DEFAULT_FAILURE_MODES } from './failure-modes.js';
export type { FailureModes } from './failure-modes.js';
export { CAPABILITY_CEILING_POLICY, validatePolicyDocument } from './policy.js';
export type { PolicyDocument, PolicyRule, Decision } from './policy.js';
export type { CapabilityRecord, CapabilityState } from './kernel.js';
export type { AgentHandle, RunOutcome, VatLimits } from './vat-host.js';
export { PRODUCTION_LOCKDOWN_OPTIONS } from './lockdown-options.js';
