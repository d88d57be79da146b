/**
 * Process vats: an agent vat as a child process that the operating system
 * contains, so that even a complete escape from the agent's Compartment (an
 * SES or V8 bug) reaches nothing: no network, no file system beyond the
 * read-only files Node and the vat code need, no writes, no new processes,
 * no view of the kernel or other vats, and OS-enforced resource limits.
 *
 * Invariants (each kept by the part named):
 * - Fail closed: a level that cannot be established on this machine is
 *   refused with ZT_ISOLATION_UNAVAILABLE naming what is missing; nothing is
 *   started half-contained. A weaker level runs only when named explicitly
 *   (levels.ts, process-vat-plan.ts).
 * - The wire (fd 3: a plain pipe of length-prefixed JSON frames, no Node
 *   IPC channel) is the vat's only link to the kernel, and nothing of the
 *   kernel's command line or environment reaches the vat (process-vat-plan.ts,
 *   wire.ts).
 * - Whatever a vat writes on its wire, the worst it causes is its own end
 *   (ZT_VAT_PROTOCOL; process-vat-worker.ts, wire.ts).
 * - `terminate()` kills the sandbox's outermost process and everything in
 *   it; nothing is left behind (process-vat-worker.ts).
 * - A level is reported available only after a real sandbox of it showed
 *   its containment (probe.ts).
 *
 * This module is the one import path for all of it:
 * - levels.ts: the levels, probe reports, `assertIsolationAvailable`;
 * - process-vat-plan.ts: the command line, environment and limits;
 * - wire.ts: the frames of the wire, encoded and decoded;
 * - process-vat-worker.ts: a started child as the vat host's `WorkerLike`;
 * - probe.ts: which levels this machine can establish, by trial.
 *
 * Pure: every fact about the host and every power (spawning) is passed in
 * by `process-vat-node-powers.ts`.
 */
export { DEFAULT_ISOLATION, ISOLATION_LEVELS, assertIsolationAvailable, isIsolationLevel } from './levels.js';
export type { IsolationLevel, IsolationProbe, LevelReport, ProcessIsolationLevel } from './levels.js';
export {
  ADDRESS_SPACE_OVERHEAD_MB,
  DEFAULT_CPU_SECONDS,
  DEFAULT_OPEN_FILES,
  ESCAPE_HOOK_FLAG,
  SECCOMP_FD,
  VAT_ENV,
  VAT_UID,
  VAT_WIRE_FD,
  addressSpaceOverheadMb,
  permissionFlags,
  planProcessVat,
  staticGaps,
  staticMissing,
} from './process-vat-plan.js';
export type { ProcessVatHost, ProcessVatOptions, ProcessVatPlan } from './process-vat-plan.js';
export { MAX_UNREAD_BYTES, makeProcessVatWorker } from './process-vat-worker.js';
export type { ChildLike, WirePipe } from './process-vat-worker.js';
export { FRAME_HEADER_BYTES, MAX_FRAME_BYTES, encodeFrame, isWireMessage, makeFrameDecoder } from './wire.js';
export type { FrameDecoder } from './wire.js';
export { TRIAL_TIMEOUT_MS, probeIsolation, probeScript } from './probe.js';
export type { ProbePowers } from './probe.js';
export type { Gap, TrialResult } from './explain.js';
