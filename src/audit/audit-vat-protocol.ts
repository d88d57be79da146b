/**
 * What the kernel and the audit vat agree on: the vat root's interface
 * (calls over CapTP, which owns the worker's `parentPort`) and the messages
 * of the vat's append port (a MessageChannel of its own, one end transferred
 * to the worker in `workerData.appendPort`).
 *
 * Invariant: whatever crosses either port to the kernel is plain data
 * (numbers, hex strings, copies of records) or an error whose message starts
 * with a ZT_ code; no store internals, no host objects.
 */

/** Vat → kernel `{ type, code, reason }` on the append port: the vat could not open its store and exits. */
export const AUDIT_OPEN_FAILED = 'ZTAAS_AUDIT_OPEN_FAILED';
/** Kernel → vat `{ type, id, joined }` on the append port: append the '\n'-joined record texts. */
export const AUDIT_APPEND = 'ZTAAS_AUDIT_APPEND';
/** Vat → kernel `{ type, id, first, leafHashes }`, or `{ type, id, code, reason }` on failure. */
export const AUDIT_APPENDED = 'ZTAAS_AUDIT_APPENDED';

/** A checkpoint of the log: a tree head, and its signed note if any. */
export interface AuditCheckpoint {
  size: number;
  rootHash: string;
  /** C2SP signed note, when the vat holds a signing key. */
  note?: string;
}

/** The result of a checkpoint key rotation. */
export interface AuditKeyRotation {
  /** The new verifier key. */
  key: string;
  /** Size and root of the log at the handover, signed by both keys. */
  size: number;
  rootHash: string;
}

/** The audit vat's root object. Every method rejects with an Error whose message starts with its ZT_ code. */
export interface AuditVatRoot {
  /**
   * Appends the '\n'-joined canonical record texts as one batch; resolves
   * once the log reports it durable. The kernel calls it through the append
   * port, not CapTP.
   */
  append(joined: string): Promise<{ first: number; leafHashes: string }>;
  read(fromSeq: number, count: number): Promise<Array<Record<string, unknown>>>;
  size(): Promise<number>;
  rootHash(): Promise<string>;
  inclusionProof(index: number, treeSize: number): Promise<string[]>;
  consistencyProof(size1: number, size2: number): Promise<string[]>;
  checkpoint(): Promise<AuditCheckpoint>;
  rotateKey(): Promise<AuditKeyRotation>;
  close(): Promise<void>;
}
