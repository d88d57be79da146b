/**
 * What the kernel and the audit vat agree on: the vat root's interface
 * (calls over CapTP) and the append messages, both carried by the audit
 * vat's wire — a plain pipe at fd 3 of the audit vat's own process, with
 * length-prefixed JSON frames (src/isolation/wire.ts), in order.
 *
 * Invariant: whatever crosses the wire to the kernel is plain data
 * (numbers, hex strings, copies of records) or a `{ code, reason }`
 * failure; no store internals, no host objects.
 */

/** Vat → kernel `{ type, code, reason }` on the append port: the vat could not open its store and exits. */
export const AUDIT_OPEN_FAILED = 'ZTAAS_AUDIT_OPEN_FAILED';
/** Kernel → vat `{ type, id, joined }` on the append port: append the '\n'-joined record texts. */
export const AUDIT_APPEND = 'ZTAAS_AUDIT_APPEND';
/** Vat → kernel `{ type, id, first, leafHashes }`, or `{ type, id, code, reason }` on failure. */
export const AUDIT_APPENDED = 'ZTAAS_AUDIT_APPENDED';

/** The audit vat's end of its wire. */
export const AUDIT_WIRE_FD = 3;

/**
 * The largest frame on the audit wire (256 MiB): a batch of records on its
 * way in, or a range of them read back. Both ends are the runtime's own code;
 * the limit bounds what either holds for one message.
 */
export const AUDIT_MAX_FRAME_BYTES = 256 * 1024 * 1024;

const CAPTP_TYPE = /^CTP_[A-Z_]{1,64}$/;
const AUDIT_TYPES: ReadonlySet<unknown> = new Set([AUDIT_OPEN_FAILED, AUDIT_APPEND, AUDIT_APPENDED]);

/** The messages of the audit wire: CapTP's, and the three of the append path. */
export const isAuditWireMessage = (message: unknown): message is Record<string, unknown> => {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) return false;
  const { type } = message as { type?: unknown };
  return typeof type === 'string' && (AUDIT_TYPES.has(type) || CAPTP_TYPE.test(type));
};

/** What the audit vat's process is started with (its one argument, as JSON). */
export interface AuditVatParams {
  readonly dir: string;
  readonly durability: 'durable' | 'relaxed';
  readonly checkpointIntervalMs: number;
}

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
