/**
 * Stable error codes, and errors as data.
 *
 * Every refusal or failure in ZT-AAS carries one of the codes below; the code
 * is the contract, the text is for people. A `ZtError` keeps three fields
 * apart:
 * - `code`: the stable code (`ZT_REVOKED`);
 * - `reason`: one sentence saying what went wrong, without the code. It is
 *   written so that whoever made the failing call may read it, and that
 *   caller may be an agent: a reason names only what the call itself named
 *   (its target, specifier, argument, limit) and fixed text;
 * - `details`: operator-only data — what the code found out on the host
 *   (resolved or real paths, configuration, OS messages, causes). Details
 *   never reach an agent.
 * `message` is `CODE: reason`, so logs and messages read as before.
 *
 * As with Endo's `Fail`/`q`, values are hidden unless deliberately shown:
 * putting a value in `reason` is the decision to show it (to the caller);
 * everything else about an error is hidden. One function, `toAgentRefusal`,
 * decides what an agent sees of any thrown value: a `ZtError` crosses as its
 * code and reason; anything else (a `TypeError`, an OS error, a string)
 * crosses as a code and that code's table text, so no host path, stack,
 * cause or foreign message ever reaches an agent. What crosses is a frozen
 * passable record `{ name: 'ZtError', code, message }`, never an Error.
 *
 * The table below is the one place codes are defined; docs/ERRORS.md is
 * generated from the same descriptions.
 */
import { harden } from './harden.js';

export const ErrorCodes = Object.freeze({
  // Input validation (operator API)
  ZT_BAD_ARGUMENT: 'an argument is missing, of the wrong type or malformed',
  ZT_NO_HOLDER: 'a capability was issued without naming the agent that holds it',
  ZT_DUPLICATE_AGENT: 'an agent with this id is already registered',
  ZT_DUPLICATE_CAPABILITY: 'a capability with this id already exists',
  ZT_SHUT_DOWN: 'the runtime has been shut down',
  ZT_NOT_RECORDABLE: 'an input holds text the audit log cannot record faithfully (a lone UTF-16 surrogate); the operation is refused and the refusal recorded with the input escaped',
  ZT_SHUTDOWN_FAILED: 'shutdown did not complete: a vat, an effector or the audit log could not be closed cleanly (for instance on a full disk); the kernel vat is ended all the same',
  ZT_KERNEL_UNAVAILABLE: 'the kernel vat is gone or did not answer in time; the runtime fails closed',

  // Request checks, in the order the kernel applies them
  ZT_UNKNOWN_AGENT: 'the request names an agent that is not registered',
  ZT_AGENT_REVOKED: 'the agent has been revoked or terminated',
  ZT_UNKNOWN_CAPABILITY: 'the request names a capability that does not exist',
  ZT_WRONG_HOLDER: 'the capability was issued to another agent',
  ZT_REVOKED: 'the capability has been revoked',
  ZT_EXPIRED: 'the capability has expired',
  ZT_EXHAUSTED: 'the capability has no uses left',
  ZT_WRONG_ACTION: 'the capability does not grant this action type',
  ZT_WRONG_TARGET: 'the capability does not grant this target',
  ZT_POLICY_DENIED: 'the policy does not permit this action',
  ZT_APPROVAL_DENIED: 'the policy permits this call only with a person\'s approval, and the approver denied it (or sent an answer the kernel could not read, which denies)',
  ZT_APPROVAL_TIMEOUT: 'the policy permits this call only with a person\'s approval, and no answer came before the rule\'s timeout',
  ZT_POLICY_ERROR: 'the policy could not be evaluated; failing closed',
  ZT_POLICY_TOO_LARGE: 'a policy file is larger than the limit (MAX_POLICY_FILE_BYTES); it is refused before it is read',
  ZT_NOT_REPLAYABLE: 'a recorded call cannot be replayed under the new policy: its rules read arguments the record does not hold',
  ZT_POLICY_INVALID: 'a policy document failed validation; the policy in force is unchanged',
  ZT_RATE_LIMITED: 'the capability was used too often within its rate window',
  ZT_BUDGET_EXHAUSTED: 'the capability has moved all the bytes its budget allows',
  ZT_ARGUMENT_DENIED: 'an argument falls outside what the capability allows',
  ZT_NOT_IN_INTERFACE: 'the method is not part of the capability interface',

  // Audit
  ZT_AUDIT_UNAVAILABLE: 'the audit log could not durably record the request',
  ZT_AUDIT_CORRUPT: 'the audit log failed verification',
  ZT_AUDIT_NOT_CANONICAL: 'a value cannot be encoded as canonical JSON',
  ZT_AUDIT_LOG_MISSING: 'the audit log was deleted or replaced: its key or a signed checkpoint vouches for records that are not there',
  ZT_AUDIT_UNSIGNED_TAIL: 'records after the last signed checkpoint were never vouched for; they are quarantined (moved to a records.unsigned-*.jsonl file and reported), not adopted',

  // Effectors
  ZT_NOT_FOUND: 'the target does not exist',
  ZT_ACCESS_DENIED: 'the operating system refused access to the target',
  ZT_TOO_LARGE: 'the data exceeds the byte limit',
  ZT_NOT_A_FILE: 'the target is not a regular file',
  ZT_NOT_A_DIRECTORY: 'the target (or a working directory) is not a directory',
  ZT_TOO_MANY_REDIRECTS: 'the redirect chain is longer than the capability allows',
  ZT_EFFECT_FAILED: 'the action failed',
  ZT_TIMEOUT: 'the action ran past its time bound and was stopped',
  ZT_FORBIDDEN_ADDRESS: 'the host resolves to an address the capability may not reach (loopback, link-local, private)',
  ZT_UNREACHABLE: 'the host could not be resolved or reached',
  ZT_TOOL_UNKNOWN: 'the tool server has no such tool',
  ZT_TOOL_FAILED: 'the tool server failed, crashed or did not answer',
  ZT_TOOL_SCHEMA_INVALID: 'the tool server announced an input schema that cannot be used',
  ZT_TOOL_CHANGED: 'the tool\'s definition (description, schemas, annotations) differs from the one the operator pinned, or it has no pin: it is withheld until the operator accepts it (`acceptTool`, or the pin in `mcpServers.<server>.pins`)',

  // Agent modules and vats
  ZT_MODULE_FORBIDDEN: 'an agent module (or a package it was given) imported a builtin, a package not on its list, or a CommonJS module',
  ZT_MODULE_OUTSIDE: 'an agent module imported a path outside its folder',
  ZT_MODULE_NOT_FOUND: 'an agent module imported a file that does not exist',
  ZT_MODULE_TOO_LARGE: 'an agent module (or the agent\'s modules together) is larger than the limit; refused before it is read',
  ZT_MODULE_SYNTAX: 'an agent module could not be parsed',
  ZT_MODULE_NO_MAIN: 'an agent module has no default-exported function',
  ZT_CODE_SYNTAX: 'submitted code (`runCode`) could not be parsed, or uses TypeScript syntax that cannot be erased (an enum, a namespace, a parameter property); the answer gives the line and column in the submitted source',
  ZT_AGENT_THREW: 'the agent threw synchronously',
  ZT_AGENT_REJECTED: 'the agent returned a promise that rejected',
  ZT_AGENT_UNSETTLED: 'the agent is waiting on nothing and can never finish',
  ZT_AGENT_RESULT_NOT_PASSABLE: 'the agent returned a value that cannot cross the membrane',
  ZT_DEADLINE: 'the agent ran past its wall-clock deadline',
  ZT_OUT_OF_MEMORY: 'the agent exceeded its memory limit',
  ZT_VAT_CRASHED: 'the vat ended unexpectedly',
  ZT_VAT_PROTOCOL: 'a process vat broke the wire protocol (a malformed, oversized or non-CapTP frame, or a wire left unread) and was ended',
  ZT_TERMINATED: 'the agent was terminated by the operator',
  ZT_AGENT_BUSY: 'the agent already has a running vat',
  ZT_ISOLATION_UNAVAILABLE: 'the requested isolation level cannot be established on this machine',

  // Per-vat budgets (README, "Limits"): the kernel trusts nothing a vat sends
  ZT_VAT_BUSY: 'the vat has as many calls in flight as its budget allows; this call was refused without being run',
  ZT_VAT_OVER_BUDGET: 'the run has spent a per-vat budget (calls per second, bytes of audit); this call or log line was refused',
  ZT_VAT_LIMIT_EXCEEDED: 'the vat was ended: a message, its queue or its CapTP tables outgrew a hard per-vat limit',
  ZT_VAT_BAD_REPORT: 'the vat reported an end of run only the kernel may record (or a malformed one); recorded as the vat\'s claim',

  // MCP gateway (docs/GATEWAY.md)
  ZT_CONFIG_INVALID: 'a gateway configuration file failed validation (every problem is listed); nothing was started',
  ZT_UNAUTHENTICATED: 'an MCP connection presented no bearer token, or one that maps to no agent; refused before any tool was listed, and recorded',
  ZT_GATEWAY_UNAVAILABLE: 'no gateway is running on this store (its control socket could not be reached)',
  ZT_TOO_MANY_SESSIONS: 'the gateway holds as many MCP sessions as it may (in all, or for this agent, none of them idle); the new session was refused and recorded',
} as const);

export type ErrorCode = keyof typeof ErrorCodes;

export const isErrorCode = (code: unknown): code is ErrorCode =>
  typeof code === 'string' && Object.hasOwn(ErrorCodes, code);

/**
 * An error with a stable code: `reason` for the caller (see the header),
 * `details` for the operator only.
 */
export class ZtError extends Error {
  readonly code: ErrorCode;
  readonly reason: string;
  readonly details: Readonly<Record<string, unknown>> | undefined;
  constructor(code: ErrorCode, reason: string = ErrorCodes[code], details?: Record<string, unknown>) {
    super(`${code}: ${reason}`);
    this.name = 'ZtError';
    this.code = code;
    this.reason = String(reason);
    this.details = details === undefined ? undefined : Object.freeze({ ...details });
  }
}
harden(ZtError);

export const ztError = (code: ErrorCode, reason?: string, details?: Record<string, unknown>): ZtError =>
  new ZtError(code, reason, details);
harden(ztError);

/**
 * Throws a ZtError with `code` unless `cond` holds.
 */
export function assertZt(
  cond: unknown,
  code: ErrorCode,
  reason?: string,
  details?: Record<string, unknown>,
): asserts cond {
  if (!cond) throw new ZtError(code, reason, details);
}
harden(assertZt);

/** Whether `err` is a ZtError; never throws (not even for a revoked proxy). */
const isZtError = (err: unknown): err is ZtError => {
  try {
    return err instanceof ZtError;
  } catch {
    return false;
  }
};

/** Reads the code of a ZtError, or of a redacted error whose message starts with one. */
export const codeOf = (err: unknown): ErrorCode | undefined => {
  if (isZtError(err)) return err.code;
  if (err !== null && typeof err === 'object') {
    const message = (err as { message?: unknown }).message;
    if (typeof message === 'string') {
      const match = /^(ZT_[A-Z_]+)\b/.exec(message);
      if (match && isErrorCode(match[1])) return match[1];
    }
  }
  return undefined;
};
harden(codeOf);

/**
 * The reason of a ZtError (its message without the code), or `undefined` for
 * any other value: the text of a foreign error is never taken for a reason.
 * Write `reasonOf(err) ?? fallback`.
 */
export const reasonOf = (err: unknown): string | undefined => (isZtError(err) ? err.reason : undefined);
harden(reasonOf);

/**
 * A refusal as it crosses the membrane to an agent: a frozen plain record
 * `{ name: 'ZtError', code, message }` rather than an Error, so it carries
 * no stack and no host object, and CapTP passes it as data. Agents read
 * `err.code` (or the `CODE: ` prefix of `err.message`).
 */
export interface AgentRefusal {
  readonly name: 'ZtError';
  readonly code: ErrorCode;
  readonly message: string;
}

/** Longest reason an agent is shown; a longer one is cut. */
export const MAX_AGENT_REASON = 1024;

/**
 * What an agent may see of `err`, whatever was thrown: the only place that
 * decides it. A ZtError crosses as its code and reason (never its details,
 * stack or cause); any other value as `fallback` and that code's table
 * text, without reading anything of it.
 */
export const toAgentRefusal = (err: unknown, fallback: ErrorCode = 'ZT_EFFECT_FAILED'): AgentRefusal => {
  if (isZtError(err) && isErrorCode(err.code) && typeof err.reason === 'string') {
    return harden({ name: 'ZtError', code: err.code, message: `${err.code}: ${err.reason.slice(0, MAX_AGENT_REASON)}` });
  }
  return harden({ name: 'ZtError', code: fallback, message: `${fallback}: ${ErrorCodes[fallback]}` });
};
harden(toAgentRefusal);
