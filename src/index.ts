/**
 * ZT-AAS public surface. Explicit named exports only: adding one is a decision.
 *
 * Importing it changes nothing in the host application's realm: no
 * lockdown, no frozen intrinsics, no replaced globals. The kernel and every
 * vat lock down their own realms (`ztaas/init` is their first import).
 */

export { SandboxRuntime } from './runtime.js';
export { makeNodeKernelLinkPowers } from './kernel-link-node-powers.js';
export type { KernelLinkPowers, KernelWorker, SyncChannel } from './kernel-link.js';
export type { SandboxOptions, LaunchOptions, RuntimeLimits, CodeRunOptions, CodeLanguage, CodeRunError, CodeRunResult, ConsoleLine } from './runtime.js';
export type { PackagesOption, PackagePolicy, PackageRecord } from './agent-packages.js';
export type { ApprovalAnswer, ApprovalHandler, ApprovalRequest } from './approval.js';
export type { RuntimeEvent, RevocationCause, ToolListing, ToolStatus } from './runtime.js';
export type { CapabilityDescription, CapabilitySetDescription, MethodDescription, JsonSchema } from './runtime.js';
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
export type { PolicyDocument, PolicyRule, RuleApproval, Decision } from './policy.js';
export type { CapabilityRecord, CapabilityState } from './kernel.js';
export type { AgentHandle, RunOutcome, VatLimits } from './vat-host.js';
export { DEFAULT_VAT_BUDGETS } from './vat-budget.js';
export type { VatBudgets } from './vat-budget.js';
export { PRODUCTION_LOCKDOWN_OPTIONS } from './lockdown-options.js';
