/**
 * Human approval of a call, as data: what a person is asked
 * (`ApprovalRequest`), what they answer (`ApprovalAnswer`), and the one
 * check of an answer (`approvalAnswerProblem`), used by the host's
 * `SandboxRuntime.answerApproval` (ZT_BAD_ARGUMENT) and again, trusting
 * nothing the host sent, by the kernel (a malformed answer denies).
 *
 * A policy rule that carries `approval` permits a matching call only once a
 * person said yes (src/kernel/approvals.ts holds the kernel's wait).
 *
 * No `node:` import and no lockdown: this module runs in the host realm too.
 */
import { harden } from './harden.js';
import { isWellFormedString } from './plain-data.js';
import type { ActionType } from './types.js';

/** Most characters of who answered (`by`). */
export const MAX_APPROVER_LENGTH = 256;
/** Most characters of the approver's note. */
export const MAX_APPROVAL_NOTE_LENGTH = 1000;
/** Most characters of the channel the answer came through (`via`). */
export const MAX_APPROVAL_VIA_LENGTH = 64;
/** Most characters of a rule's `approval.prompt`. */
export const MAX_APPROVAL_PROMPT_LENGTH = 1000;
/** Longest `approval.timeoutMs` a rule may set: one day. */
export const MAX_APPROVAL_TIMEOUT_MS = 86_400_000;

/** What a person is asked (and what `approval.requested` records). Plain data. */
export interface ApprovalRequest {
  readonly approvalId: string;
  readonly requestId: string;
  readonly agentId: string;
  readonly capabilityId: string;
  readonly actionType: ActionType;
  /** The checked, normalized target. */
  readonly target: string;
  /** The call's arguments, as the agent sent them. */
  readonly args: Readonly<Record<string, unknown>>;
  /** The permit rules that asked for approval, in document order. */
  readonly ruleIds: readonly string[];
  /** The first of those rules' prompts, if any has one. */
  readonly prompt?: string;
  /** How long the kernel waits for an answer (the smallest of those rules' timeouts). */
  readonly timeoutMs: number;
  /** Kernel clock, ms since the epoch: no answer by then denies (ZT_APPROVAL_TIMEOUT). */
  readonly expiresAt: number;
}

/** A person's answer. */
export interface ApprovalAnswer {
  readonly approved: boolean;
  /** Who answered (a user name, an e-mail address): recorded. */
  readonly by: string;
  /** Why, in their words: recorded. */
  readonly note?: string;
  /** The channel the answer came through (`elicitation`, `cli`, `onApproval`, …): recorded. */
  readonly via?: string;
}

/** A handler of approval requests (`SandboxRuntime.onApproval`): an answer, or `undefined` to leave the request pending. */
export type ApprovalHandler = (request: ApprovalRequest) => ApprovalAnswer | undefined | Promise<ApprovalAnswer | undefined>;

const ANSWER_KEYS = new Set(['approved', 'by', 'note', 'via']);

const textProblem = (name: string, value: unknown, max: number, required: boolean): string | undefined => {
  if (value === undefined) return required ? `${name} is required` : undefined;
  if (typeof value !== 'string') return `${name} must be a string`;
  if (required && value.length === 0) return `${name} must not be empty`;
  if (value.length > max) return `${name} is longer than ${max} characters`;
  if (!isWellFormedString(value)) return `${name} is not Unicode text (a lone surrogate)`;
  return undefined;
};

/**
 * Checks a would-be answer: an object of own data properties `approved` (a
 * boolean), `by` (1 to 256 characters), optionally `note` (at most 1000)
 * and `via` (at most 64), nothing else, all Unicode text. Returns a fresh
 * hardened copy, or why it is not an answer. Reads each property once,
 * through its descriptor (no getter runs); never throws.
 */
export const checkApprovalAnswer = (raw: unknown): { readonly answer: ApprovalAnswer } | { readonly problem: string } => {
  const problem = (text: string) => harden({ problem: text });
  try {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return problem('an answer must be an object { approved, by, note?, via? }');
    const proto = Object.getPrototypeOf(raw) as unknown;
    if (proto !== Object.prototype && proto !== null) return problem('an answer must be a plain object');
    const fields: Record<string, unknown> = {};
    for (const key of Reflect.ownKeys(raw)) {
      if (typeof key !== 'string' || !ANSWER_KEYS.has(key)) return problem(`an answer has an unknown property ${typeof key === 'string' ? JSON.stringify(key.slice(0, 64)) : '(a symbol)'}`);
      const desc = Object.getOwnPropertyDescriptor(raw, key);
      if (!desc || !('value' in desc)) return problem(`${key} must be a data property`);
      fields[key] = desc.value;
    }
    const { approved, by, note, via } = fields;
    if (typeof approved !== 'boolean') return problem('approved must be true or false');
    const found = textProblem('by', by, MAX_APPROVER_LENGTH, true) ?? textProblem('note', note, MAX_APPROVAL_NOTE_LENGTH, false) ?? textProblem('via', via, MAX_APPROVAL_VIA_LENGTH, false);
    if (found !== undefined) return problem(found);
    const answer: ApprovalAnswer = {
      approved,
      by: by as string,
      ...(note === undefined ? {} : { note: note as string }),
      ...(via === undefined ? {} : { via: via as string }),
    };
    return harden({ answer: harden(answer) });
  } catch {
    return problem('an answer could not be read');
  }
};
harden(checkApprovalAnswer);
