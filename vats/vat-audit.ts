/**
 * The audit vat: a worker thread whose only power is its append-only store.
 *
 * Perimeter: the first import locks the realm down. The vat opens the store
 * folder named in `workerData` (`{ dir, durability, checkpointIntervalMs }`)
 * and nothing else: no other file, no network. The folder holds the records,
 * the signed checkpoints and the Ed25519 checkpoint key (mode 0600), of which
 * this vat is the only holder. It talks to the kernel over exactly one CapTP
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
import { CHECKPOINTS_FILE, checkpointName, makeCheckpointer } from '../src/audit/checkpointer.js';
import { openFileStore } from '../src/audit/file-store.js';
import type { FileStore } from '../src/audit/file-store.js';
import {
  loadOrCreateSigningKey,
  makeNodeFileStorePowers,
  nodeEd25519Verify,
  nodeSha256,
} from '../src/audit/node-powers.js';
import { AUDIT_OPEN_FAILED } from '../src/audit/audit-vat-root.js';
import { codeOf } from '../src/errors.js';

const port = parentPort;
if (!port) throw Error('vat-audit must run in a worker thread');

const { dir, durability, checkpointIntervalMs = 60_000 } = (workerData ?? {}) as {
  dir?: unknown;
  durability?: unknown;
  checkpointIntervalMs?: unknown;
};

const open = async () => {
  const powers = makeNodeFileStorePowers();
  const opened: FileStore[] = [];
  try {
    const store = await openFileStore(powers, {
      dir: dir as string,
      durability: durability as 'durable' | 'relaxed',
    });
    opened.push(store);
    const log = await makeAuditLog({ store, sha256: nodeSha256 });
    const signer = await loadOrCreateSigningKey(dir as string, pub => checkpointName(nodeSha256, pub));
    const cpStore = await openFileStore(powers, { dir: dir as string, fileName: CHECKPOINTS_FILE });
    opened.push(cpStore);
    const checkpointer = await makeCheckpointer({
      log,
      store: cpStore,
      signer,
      sha256: nodeSha256,
      verify: nodeEd25519Verify,
      origin: signer.name,
      intervalMs: typeof checkpointIntervalMs === 'number' ? checkpointIntervalMs : 60_000,
      setTimer: powers.setTimer,
    });
    return { log, checkpointer };
  } catch (err) {
    for (const s of opened) await s.close().catch(() => {});
    throw err;
  }
};

try {
  const { log, checkpointer } = await open();
  const root = buildAuditVatRoot({
    log,
    checkpoint: checkpointer.checkpoint,
    beforeClose: checkpointer.close,
  });
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
