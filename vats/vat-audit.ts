/**
 * The audit vat: a worker thread whose only power is its append-only store.
 *
 * Perimeter: the first import locks the realm down. The vat opens the store
 * folder named in `workerData` (`{ dir, durability }`) and nothing else: no
 * other file, no network. It talks to the kernel over exactly one CapTP
 * connection on `parentPort`; its bootstrap object is the `AuditVat` root.
 *
 * If the store cannot be opened (unavailable, or ZT_AUDIT_CORRUPT on
 * recovery) the vat reports `{ type: AUDIT_OPEN_FAILED, message }` and
 * exits, so the kernel fails closed instead of waiting for a timeout.
 */
import '../src/init.js';
import { parentPort, workerData } from 'node:worker_threads';
import { makeCapTP } from '@endo/captp';
import { makeAuditLog } from '../src/audit/audit-log.js';
import { buildAuditVatRoot } from '../src/audit/audit-vat-root.js';
import { openFileStore } from '../src/audit/file-store.js';
import { makeNodeFileStorePowers, nodeSha256 } from '../src/audit/node-powers.js';
import { AUDIT_OPEN_FAILED } from '../src/audit/audit-vat-root.js';
import { codeOf } from '../src/errors.js';

const port = parentPort;
if (!port) throw Error('vat-audit must run in a worker thread');

const { dir, durability } = (workerData ?? {}) as { dir?: unknown; durability?: unknown };

const open = async () => {
  const store = await openFileStore(makeNodeFileStorePowers(), {
    dir: dir as string,
    durability: durability as 'durable' | 'relaxed',
  });
  try {
    return await makeAuditLog({ store, sha256: nodeSha256 });
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
};

try {
  const log = await open();
  const root = buildAuditVatRoot({ log });
  const { dispatch } = makeCapTP('audit', message => port.postMessage(message), root, {
    onReject: () => undefined,
  });
  port.on('message', message => {
    dispatch(message as Record<string, unknown>);
  });
} catch (err) {
  const code = codeOf(err) ?? 'ZT_AUDIT_UNAVAILABLE';
  const message = err instanceof Error ? err.message : String(err);
  port.postMessage({ type: AUDIT_OPEN_FAILED, code, message });
  port.close();
  process.exitCode = 1;
}
