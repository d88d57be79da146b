/**
 * The audit vat's root object, built from its one power: an open audit log.
 *
 * Invariant: whatever crosses CapTP to the kernel is plain passable data
 * (numbers, hex strings, copies of records) or an error whose message starts
 * with a ZT_ code; no store internals, no host objects. Appends do not go
 * through this root: they travel beside CapTP as `AUDIT_APPEND` messages
 * (see `vat-audit`), answered only once the log reports the batch durable.
 */
import { harden } from '../harden.js';
import { Far } from '@endo/far';
import { codeOf, ztError } from '../errors.js';
import type { AuditLog } from './audit-log.js';

/** Message types beside CapTP on the vat's port: the vat could not open its store. */
export const AUDIT_OPEN_FAILED = 'ZTAAS_AUDIT_OPEN_FAILED';
/** Kernel → vat `{ type, id, joined }`: append the '\n'-joined record texts. */
export const AUDIT_APPEND = 'ZTAAS_AUDIT_APPEND';
/** Vat → kernel `{ type, id, first, leafHashes }`, or `{ type, id, code, message }` on failure. */
export const AUDIT_APPENDED = 'ZTAAS_AUDIT_APPENDED';

/** A checkpoint of the log: a tree head, and its signed note if any. */
export interface AuditCheckpoint {
  size: number;
  rootHash: string;
  /** C2SP signed note, when the vat holds a signing key. */
  note?: string;
}

export interface AuditVatRoot {
  read(fromSeq: number, count: number): Promise<Array<Record<string, unknown>>>;
  size(): number;
  rootHash(): string;
  inclusionProof(index: number, treeSize: number): string[];
  consistencyProof(size1: number, size2: number): string[];
  checkpoint(): Promise<AuditCheckpoint>;
  rotateKey(): Promise<AuditKeyRotation>;
  close(): Promise<void>;
}

/** The result of a checkpoint key rotation. */
export interface AuditKeyRotation {
  /** The new verifier key. */
  key: string;
  /** Size and root of the log at the handover, signed by both keys. */
  size: number;
  rootHash: string;
}

export interface AuditVatRootOptions {
  log: AuditLog;
  /** Makes (and persists) a checkpoint of durable records; default: unsigned head. */
  checkpoint?: () => Promise<AuditCheckpoint>;
  /** Rotates the checkpoint key; without it `rotateKey` is refused. */
  rotateKey?: () => Promise<AuditKeyRotation>;
  /** Runs after the log closes (e.g. a final signed checkpoint). */
  beforeClose?: () => Promise<void>;
}

/** Re-throws as a plain Error `CODE: message`, which marshals cleanly. */
const passable = (err: unknown): Error => {
  const code = codeOf(err) ?? 'ZT_AUDIT_UNAVAILABLE';
  const message = err instanceof Error ? err.message : String(err);
  return harden(Error(message.startsWith(`${code}:`) ? message : `${code}: ${message}`));
};

const guarded =
  <A extends unknown[], R>(fn: (...args: A) => R) =>
  async (...args: A): Promise<Awaited<R>> => {
    try {
      return await fn(...args);
    } catch (err) {
      throw passable(err);
    }
  };

export const buildAuditVatRoot = (options: AuditVatRootOptions) => {
  const { log, beforeClose } = options;
  const checkpoint =
    options.checkpoint ??
    (async () => {
      await log.sync();
      return harden({ size: log.size(), rootHash: log.rootHash() });
    });
  let closing: Promise<void> | undefined;
  return Far('AuditVat', {
    read: guarded((fromSeq: number, count: number) => log.read(fromSeq, count)),
    size: guarded(() => log.size()),
    rootHash: guarded(() => log.rootHash()),
    inclusionProof: guarded((index: number, treeSize: number) => log.inclusionProof(index, treeSize)),
    consistencyProof: guarded((size1: number, size2: number) => log.consistencyProof(size1, size2)),
    checkpoint: guarded(() => checkpoint()),
    rotateKey: guarded(() => {
      if (!options.rotateKey) throw ztError('ZT_BAD_ARGUMENT', 'this audit log has no checkpoint key to rotate');
      return options.rotateKey();
    }),
    close: guarded(() => {
      closing ??= (async () => {
        try {
          if (beforeClose) await beforeClose();
        } finally {
          // Closed (and its lock released) even if the final checkpoint fails.
          await log.close();
        }
      })();
      return closing;
    }),
  });
};
harden(buildAuditVatRoot);
