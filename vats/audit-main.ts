/**
 * The audit worker's shell. Its first import establishes the perimeter
 * (production lockdown); then it binds the powers of the one store folder
 * named in `workerData` (`{ dir, durability, checkpointIntervalMs,
 * appendPort }`), builds the audit vat on them and connects it to the kernel
 * over two ports that lead only to the kernel:
 * - `parentPort`: CapTP alone (reads, proofs, checkpoints, key rotation, close);
 * - `appendPort`, the kernel's end of a MessageChannel of its own: appends,
 *   the hot path, one message in and one answer out, never through CapTP.
 *
 * If the store cannot be opened (unavailable, or ZT_AUDIT_CORRUPT on
 * recovery), the shell reports AUDIT_OPEN_FAILED with its code on the append
 * port and exits, so the kernel fails closed instead of waiting for a timeout.
 */
import '../src/init.js';
import { parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { makeCapTP } from '@endo/captp';
import { AUDIT_APPEND, AUDIT_APPENDED, AUDIT_OPEN_FAILED } from '../src/audit/audit-vat-protocol.js';
import type { Durability } from '../src/audit/file-store.js';
import { makeNodeAuditVatPowers } from '../src/audit/node-powers.js';
import { codeOf, reasonOf } from '../src/errors.js';
import { buildRootObject } from './vat-audit.js';

const port = parentPort;
const { dir, durability, checkpointIntervalMs, appendPort } = (workerData ?? {}) as {
  dir?: unknown;
  durability?: unknown;
  checkpointIntervalMs?: unknown;
  appendPort?: MessagePort;
};
if (!port || !appendPort) throw Error('audit-main must be started by startAuditVat');

/** `{ code, reason }` of a failure, for the kernel. */
const failure = (err: unknown) => ({
  code: codeOf(err) ?? 'ZT_AUDIT_UNAVAILABLE',
  reason: reasonOf(err) ?? (err instanceof Error ? err.message : String(err)),
});

try {
  const root = await buildRootObject(makeNodeAuditVatPowers(dir as string), {
    durability: durability as Durability,
    checkpointIntervalMs: checkpointIntervalMs as number,
  });
  const { dispatch } = makeCapTP('audit', message => port.postMessage(message), root, {
    onReject: () => undefined,
  });
  port.on('message', message => {
    dispatch(message as Record<string, unknown>);
  });
  appendPort.on('message', message => {
    const m = message as { type?: unknown; id?: unknown; joined?: unknown };
    if (!m || m.type !== AUDIT_APPEND) return;
    // (If even the answer cannot be posted, the kernel's timeout fails closed.)
    void root
      .append(m.joined as string)
      .then(
        ref => appendPort.postMessage({ type: AUDIT_APPENDED, id: m.id, first: ref.first, leafHashes: ref.leafHashes }),
        (err: unknown) => appendPort.postMessage({ type: AUDIT_APPENDED, id: m.id, ...failure(err) }),
      )
      .catch(() => {});
  });
} catch (err) {
  appendPort.postMessage({ type: AUDIT_OPEN_FAILED, ...failure(err) });
  appendPort.close();
  port.close();
  process.exitCode = 1;
}
