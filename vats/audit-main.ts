/**
 * The audit vat's shell: a process of its own, started by the kernel
 * (src/audit/audit-vat-node-powers.ts) with its parameters as its one
 * argument (`{ dir, durability, checkpointIntervalMs }`, JSON) and its wire
 * at fd 3. Its first import establishes the perimeter (production
 * lockdown); then it binds the powers of the one store folder, builds the
 * audit vat on them and serves the kernel over the wire, in order:
 * - CapTP (reads, proofs, checkpoints, key rotation, close);
 * - appends, the hot path, one AUDIT_APPEND frame in and one AUDIT_APPENDED
 *   frame out, never through CapTP.
 *
 * If the store cannot be opened (unavailable, or ZT_AUDIT_CORRUPT on
 * recovery), the shell reports AUDIT_OPEN_FAILED with its code and exits,
 * so the kernel fails closed instead of waiting for a timeout. When the
 * kernel's end of the wire closes (the kernel ended, or crashed), the vat
 * closes its log — a last checkpoint over everything durable — and exits.
 */
import '../src/init.js';
import { Socket } from 'node:net';
import { makeCapTP } from '@endo/captp';
import {
  AUDIT_APPEND,
  AUDIT_APPENDED,
  AUDIT_MAX_FRAME_BYTES,
  AUDIT_OPEN_FAILED,
  AUDIT_WIRE_FD,
  isAuditWireMessage,
  type AuditVatParams,
} from '../src/audit/audit-vat-protocol.js';
import { makeNodeAuditVatPowers } from '../src/audit/node-powers.js';
import { codeOf, reasonOf } from '../src/errors.js';
import { encodeFrame, makeFrameDecoder } from '../src/isolation/wire.js';
import { buildRootObject } from './vat-audit.js';

/** Exit status when the kernel sent a frame this vat cannot decode. */
const BAD_FRAME_EXIT = 76;

let wire: Socket;
try {
  wire = new Socket({ fd: AUDIT_WIRE_FD, readable: true, writable: true });
} catch {
  process.stderr.write(`audit-main must be started by the kernel with its wire at fd ${AUDIT_WIRE_FD}\n`);
  process.exit(70);
}
const send = (message: Record<string, unknown>) => {
  wire.write(encodeFrame(message, AUDIT_MAX_FRAME_BYTES, isAuditWireMessage));
};

/** `{ code, reason }` of a failure, for the kernel. */
const failure = (err: unknown) => ({
  code: codeOf(err) ?? 'ZT_AUDIT_UNAVAILABLE',
  reason: reasonOf(err) ?? (err instanceof Error ? err.message : String(err)),
});

const params = (() => {
  try {
    return JSON.parse(process.argv[2] ?? '') as Partial<AuditVatParams>;
  } catch {
    return {};
  }
})();

try {
  const root = await buildRootObject(makeNodeAuditVatPowers(params.dir as string), {
    durability: params.durability as AuditVatParams['durability'],
    checkpointIntervalMs: params.checkpointIntervalMs as number,
  });
  const { dispatch } = makeCapTP('audit', send, root, { onReject: () => undefined });
  const append = (m: Record<string, unknown>) => {
    // (If even the answer cannot be sent, the kernel's timeout fails closed.)
    void root
      .append(m.joined as string)
      .then(
        ref => send({ type: AUDIT_APPENDED, id: m.id, first: ref.first, leafHashes: ref.leafHashes }),
        (err: unknown) => send({ type: AUDIT_APPENDED, id: m.id, ...failure(err) }),
      )
      .catch(() => {});
  };
  const decoder = makeFrameDecoder({ maxFrameBytes: AUDIT_MAX_FRAME_BYTES, accepts: isAuditWireMessage });
  wire.on('data', (chunk: Buffer) => {
    let messages: Array<Record<string, unknown>>;
    try {
      messages = decoder.push(chunk);
    } catch {
      process.exit(BAD_FRAME_EXIT);
    }
    for (const message of messages) {
      if (message.type === AUDIT_APPEND) append(message);
      else if (message.type !== AUDIT_APPENDED && message.type !== AUDIT_OPEN_FAILED) dispatch(message);
    }
  });
  let ending = false;
  const endOfKernel = () => {
    if (ending) return;
    ending = true;
    // Everything the kernel sent has been read: close the log (its last
    // checkpoint) and go. A close already made by the kernel is the same close.
    void root.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  wire.on('end', endOfKernel);
  wire.on('error', endOfKernel);
} catch (err) {
  send({ type: AUDIT_OPEN_FAILED, ...failure(err) });
  wire.end();
  process.exitCode = 1;
}
