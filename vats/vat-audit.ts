/**
 * The audit vat: a worker thread whose only power is its append-only store.
 *
 * Perimeter: the first import locks the realm down. The vat opens the store
 * folder named in `workerData` (`{ dir, durability, checkpointIntervalMs }`)
 * and nothing else: no other file, no network. The folder holds the records,
 * the signed checkpoints, the checkpoint key chain and the current Ed25519
 * checkpoint key (mode 0600), of which this vat is the only holder; it can
 * rotate that key (`rotateKey`). It talks to the kernel over exactly one CapTP
 * connection on `parentPort`; its bootstrap object is the `AuditVat` root.
 * Appends, the hot path, travel beside CapTP on the same port as plain
 * `AUDIT_APPEND` / `AUDIT_APPENDED` messages.
 *
 * If the store cannot be opened (unavailable, or ZT_AUDIT_CORRUPT on
 * recovery) the vat reports `{ type: AUDIT_OPEN_FAILED, message }` and
 * exits, so the kernel fails closed instead of waiting for a timeout.
 */
import '../src/init.js';
import { harden } from '../src/harden.js';
import { parentPort, workerData } from 'node:worker_threads';
import { makeCapTP } from '@endo/captp';
import { makeAuditLog } from '../src/audit/audit-log.js';
import { buildAuditVatRoot } from '../src/audit/audit-vat-root.js';
import { CHECKPOINTS_FILE, checkpointName, makeCheckpointer } from '../src/audit/checkpointer.js';
import { openFileStore } from '../src/audit/file-store.js';
import type { FileStore } from '../src/audit/file-store.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { KEY_CHAIN_FILE, openChainCheckpoint, openKeyChain } from '../src/audit/keychain.js';
import {
  activateNextSigningKey,
  createNextSigningKey,
  discardNextSigningKey,
  loadNextSigningKey,
  loadOrCreateSigningKey,
  makeNodeFileStorePowers,
  nodeEd25519Verify,
  nodeSha256,
} from '../src/audit/node-powers.js';
import { AUDIT_APPEND, AUDIT_APPENDED, AUDIT_OPEN_FAILED } from '../src/audit/audit-vat-root.js';
import { codeOf, ztError } from '../src/errors.js';

const port = parentPort;
if (!port) throw Error('vat-audit must run in a worker thread');

const { dir, durability, checkpointIntervalMs = 60_000 } = (workerData ?? {}) as {
  dir?: unknown;
  durability?: unknown;
  checkpointIntervalMs?: unknown;
};

const nameOf = (publicKey: Uint8Array) => checkpointName(nodeSha256, publicKey);

const open = async () => {
  const powers = makeNodeFileStorePowers();
  const opened: FileStore[] = [];
  const folder = dir as string;
  try {
    const store = await openFileStore(powers, {
      dir: folder,
      durability: durability as 'durable' | 'relaxed',
    });
    opened.push(store);
    const log = await makeAuditLog({ store, sha256: nodeSha256 });
    let signer = await loadOrCreateSigningKey(folder, nameOf);
    const keyStore = await openFileStore(powers, { dir: folder, fileName: KEY_CHAIN_FILE });
    opened.push(keyStore);
    if (keyStore.size() === 0) await keyStore.appendBatch([canonicalJson({ vkey: signer.vkey })]);
    const readChain = async () =>
      openKeyChain(
        nodeSha256,
        nodeEd25519Verify,
        (await keyStore.readRange(0, keyStore.size())).map(line => JSON.parse(line) as unknown),
      );
    let chain = await readChain();
    // A rotation interrupted by a crash: finished if its handover is in the
    // chain (the commit point), abandoned (and recorded so) otherwise.
    let next: Awaited<ReturnType<typeof loadNextSigningKey>>;
    let abandoned: string | undefined;
    try {
      next = await loadNextSigningKey(folder, nameOf);
    } catch (err) {
      // An unreadable successor never signed a handover, so it cannot be
      // the chain's last key; it is dropped (and that is recorded).
      if (chain.keys[chain.keys.length - 1]!.vkey !== signer.vkey) throw err;
      await discardNextSigningKey(folder);
      abandoned = 'unreadable';
    }
    if (next && chain.keys[chain.keys.length - 1]!.vkey === next.vkey) {
      await activateNextSigningKey(folder, next);
      signer = next;
    } else if (next) {
      await discardNextSigningKey(folder);
      abandoned = next.vkey;
    }
    if (chain.keys[chain.keys.length - 1]!.vkey !== signer.vkey) {
      throw ztError('ZT_AUDIT_CORRUPT', 'the checkpoint key is not the last key of the key chain');
    }
    const cpStore = await openFileStore(powers, { dir: folder, fileName: CHECKPOINTS_FILE });
    opened.push(cpStore);
    const checkpointer = await makeCheckpointer({
      log,
      store: cpStore,
      signer,
      sha256: nodeSha256,
      verify: nodeEd25519Verify,
      origin: chain.origin,
      openNote: note => openChainCheckpoint(nodeSha256, nodeEd25519Verify, chain, note),
      intervalMs: typeof checkpointIntervalMs === 'number' ? checkpointIntervalMs : 60_000,
      setTimer: powers.setTimer,
    });
    // Recorded once the history is known to match its latest checkpoint.
    if (abandoned !== undefined) {
      await log.append([{ type: 'audit.key-rotation-abandoned', time: Date.now(), key: abandoned }]);
    }

    let rotating: Promise<unknown> = Promise.resolve();
    /**
     * Rotates the checkpoint key: successor generated and saved; the
     * rotation recorded in the log; a handover signed by both keys made
     * durable in the chain (the commit point); then the successor takes
     * over. Before the commit point a failure abandons the successor (and
     * records that); after it, the log closes (fail closed) and the next
     * start finishes the rotation.
     */
    const rotateKey = () => {
      const run = rotating.then(async () => {
        const successor = await createNextSigningKey(folder, nameOf);
        // 'prepared': nothing committed, the successor can go. 'committing':
        // the handover write may or may not have landed. 'committed': it did.
        let phase: 'prepared' | 'committing' | 'committed' = 'prepared';
        try {
          await log.append([
            { type: 'audit.key-rotation', time: Date.now(), previousKey: signer.vkey, key: successor.vkey },
          ]);
          const handover = await checkpointer.rotate(successor, successor.vkey, async note => {
            phase = 'committing';
            await keyStore.appendBatch([canonicalJson({ handover: note })]);
            phase = 'committed';
            await activateNextSigningKey(folder, successor);
          });
          signer = successor;
          chain = await readChain();
          return harden({ key: successor.vkey, size: handover.size, rootHash: handover.rootHash });
        } catch (err) {
          if (phase !== 'prepared') {
            // Unknown or committed: keep the successor and stop (fail
            // closed); the next start reads the chain and finishes or
            // abandons the rotation.
            await log.close().catch(() => {});
            throw ztError('ZT_AUDIT_UNAVAILABLE', 'the key rotation did not complete; the log is closed until restart');
          }
          await discardNextSigningKey(folder).catch(() => {});
          await log
            .append([{ type: 'audit.key-rotation-abandoned', time: Date.now(), key: successor.vkey }])
            .catch(() => {});
          throw err;
        }
      });
      rotating = run.catch(() => {});
      return run;
    };
    return { log, checkpointer, rotateKey };
  } catch (err) {
    for (const s of opened) await s.close().catch(() => {});
    throw err;
  }
};

try {
  const { log, checkpointer, rotateKey } = await open();
  const root = buildAuditVatRoot({
    log,
    checkpoint: checkpointer.checkpoint,
    rotateKey,
    beforeClose: checkpointer.close,
  });
  const { dispatch } = makeCapTP('audit', message => port.postMessage(message), root, {
    onReject: () => undefined,
  });
  port.on('message', message => {
    const m = message as { type?: unknown; id?: unknown; joined?: unknown };
    if (m && m.type === AUDIT_APPEND) {
      // The append hot path, beside CapTP: one message in, one answer out.
      // (If even the answer cannot be posted, the kernel's timeout fails closed.)
      void log
        .appendJoined(m.joined as string)
        .then(
        ref => port.postMessage({ type: AUDIT_APPENDED, id: m.id, first: ref.first, leafHashes: ref.leafHashes }),
        (err: unknown) =>
          port.postMessage({
            type: AUDIT_APPENDED,
            id: m.id,
            code: codeOf(err) ?? 'ZT_AUDIT_UNAVAILABLE',
            message: err instanceof Error ? err.message : String(err),
          }),
        )
        .catch(() => {});
      return;
    }
    dispatch(message as Record<string, unknown>);
  });
} catch (err) {
  const code = codeOf(err) ?? 'ZT_AUDIT_UNAVAILABLE';
  const message = err instanceof Error ? err.message : String(err);
  port.postMessage({ type: AUDIT_OPEN_FAILED, code, message });
  port.close();
  process.exitCode = 1;
}
