/**
 * The kernel's public types: what its maker is given (powers, options) and
 * what it hands out about capabilities (shapes and records).
 *
 * Invariant: every type here describes data. A `CapabilityRecord` is a
 * hardened snapshot that never aliases the kernel's own state, and a
 * `CapabilityShape` holds only what cannot change after issue, so neither can
 * be used to steer the kernel.
 */
import type { Effector, GrantValidator } from '../effectors/types.js';
import type { ApprovalHost } from './approvals.js';
import type { ErrorCode } from '../errors.js';
import type { FailureModes } from '../failure-modes.js';
import type { RuntimeEvent } from '../runtime-events.js';
import type { ActionType, AuditRef, CapabilityConstraints } from '../types.js';

export interface KernelAuditSink {
  /** Resolves once the record is durable; rejects if it cannot be. */
  append(record: Record<string, unknown>): Promise<AuditRef>;
  /** The log's size; with `read`, lets a reattach see which unconfirmed records landed. */
  size?(): Promise<number>;
  read?(fromSeq: number, count: number): Promise<Array<Record<string, unknown>>>;
}

/** The kernel's timers (the clock's companions): injected, never the globals. */
export interface KernelTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  /** A timer that never keeps its thread alive on its own (capability expiry). */
  setBackgroundTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface KernelPowers extends KernelTimers {
  now(): number;
  makeRequestId(): string;
  sha256Hex(data: string): string;
  canonicalJson(value: unknown): string;
}

export interface KernelOptions {
  readonly powers: KernelPowers;
  readonly audit: KernelAuditSink;
  readonly policy: unknown;
  readonly effectors: Partial<Record<ActionType, Effector>>;
  /** Issue-time checks of targets and `effect` settings, per action type. */
  readonly grantValidators?: Partial<Record<ActionType, GrantValidator>>;
  readonly failureModes: FailureModes;
  /** Upper bound on bytes any single action may move. */
  readonly maxBytes: number;
  /** Called when a failure mode says the agent must be halted. */
  readonly onHalt?: (agentId: string, code: ErrorCode) => void;
  /**
   * `durable` (default): a decision record is acknowledged durable before its
   * action starts. `relaxed`: the action starts while the record is on its
   * way (the store marks every record it writes in this mode).
   */
  readonly durability?: 'durable' | 'relaxed';
  /**
   * Where a request that needs a person's approval is announced (and its
   * end); absent, such a request waits for `answerApproval` or its timeout.
   */
  readonly approvalHost?: ApprovalHost;
  /**
   * Told of capability issues and revocations, agent revocations and policy
   * loads, as they happen (runtime events). A listener that throws is
   * ignored: it can never break the kernel.
   */
  readonly onEvent?: (event: RuntimeEvent) => void;
}

export type CapabilityState = 'live' | 'revoked';

/** What never changes about a capability: read on every mediated call without copying. */
export interface CapabilityShape {
  readonly id: string;
  readonly holder: string;
  readonly actionType: ActionType;
  readonly target: string;
  /** The target names exactly one concrete target (not a pattern). */
  readonly exact: boolean;
}

/** A capability as the kernel tracks it. Queryable snapshots are hardened copies. */
export interface CapabilityRecord {
  readonly id: string;
  readonly holder: string;
  readonly actionType: ActionType;
  readonly target: string;
  readonly constraints: CapabilityConstraints;
  readonly issuer: string;
  readonly issuedAt: number;
  readonly parent: string | null;
  readonly state: CapabilityState;
  readonly uses: number;
  readonly bytes: number;
  readonly children: readonly string[];
  readonly revokedAt?: number;
  readonly revokedReason?: string;
}

export type RequestVia = 'api' | 'vat';

/** Appends a record and resolves once it is durable (see audit-recorder.ts). */
export type RecordDurably = (rec: Record<string, unknown>) => Promise<AuditRef>;
/** Records a lifecycle event without making the caller wait (see audit-recorder.ts). */
export type RecordLater = (rec: Record<string, unknown>) => void;
