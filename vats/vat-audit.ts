/**
 * The audit vat: keeps the append-only, Merkle-committed, signed log.
 *
 * Invariants:
 * - Its only powers are those of its store folder (`AuditVatPowers`): the
 *   records, the signed checkpoints, the checkpoint key chain and the
 *   current Ed25519 checkpoint key (mode 0600), of which this vat is the
 *   only holder. No other file, no network, no path: the folder is bound
 *   into the powers by the worker shell.
 * - The store opens only if its history matches its latest checkpoint and
 *   the current key is the key chain's last (else ZT_AUDIT_CORRUPT), so the
 *   vat never appends after a rewritten history.
 * - An append resolves only once the log reports the batch durable.
 * - Whatever leaves the root is plain data or an Error whose message starts
 *   with its ZT_ code (see `audit-vat-protocol`).
 *
 * This file holds only the vat's logic (`buildRootObject`); the worker shell
 * (`audit-main.ts`) establishes lockdown, builds the powers and connects the
 * root to the kernel: CapTP for calls, the append port for appends.
 */
import { harden } from '../src/harden.js';
import { Far } from '@endo/far';
import { codeOf, ztError } from '../src/errors.js';
import { makeAuditLog } from '../src/audit/audit-log.js';
import type { AuditBatchRef } from '../src/audit/audit-log.js';
import type { AuditCheckpoint, AuditKeyRotation, AuditVatRoot } from '../src/audit/audit-vat-protocol.js';
import { canonicalJson } from '../src/audit/canonical.js';
import type { Ed25519Verify, NoteSigner } from '../src/audit/checkpoint.js';
import { CHECKPOINTS_FILE, checkpointName, makeCheckpointer } from '../src/audit/checkpointer.js';
import type { Durability, FileStore, FileStoreOptions } from '../src/audit/file-store.js';
import { KEY_CHAIN_FILE, openChainCheckpoint, openKeyChain } from '../src/audit/keychain.js';
import type { Sha256 } from '../src/audit/merkle.js';

/** A checkpoint signing key: signs, and names itself by its verifier key. */
export type CheckpointKey = NoteSigner & { readonly vkey: string };

type KeyName = (publicKey: Uint8Array) => string;

export interface AuditVatPowers {
  /** Opens (creating, locking and recovering) one append-only file of the store folder. */
  readonly openStore: (options: Omit<FileStoreOptions, 'dir'>) => Promise<FileStore>;
  /** The checkpoint keys kept in the store folder. */
  readonly keys: {
    /** The current key, created on first use. */
    loadOrCreate(name: KeyName): Promise<CheckpointKey>;
    /** The successor left by an unfinished rotation, if any. */
    loadNext(name: KeyName): Promise<CheckpointKey | undefined>;
    /** Generates and saves a successor; refuses if one exists. */
    createNext(name: KeyName): Promise<CheckpointKey>;
    /** The successor replaces the current key. */
    activateNext(next: CheckpointKey): Promise<void>;
    /** Drops the successor. */
    discardNext(): Promise<void>;
  };
  readonly sha256: Sha256;
  readonly verify: Ed25519Verify;
  /** The vat's clock, for the records it writes itself. */
  readonly now: () => number;
  readonly setTimer: (fn: () => void, ms: number) => () => void;
}

export interface AuditVatParameters {
  readonly durability: Durability;
  /** How often a checkpoint of new records is signed (also on close); 0 disables the timer. */
  readonly checkpointIntervalMs?: number;
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

/**
 * Opens the store, its key chain and its checkpoints, finishing or
 * abandoning a rotation a crash interrupted. Rejects (ZT_AUDIT_CORRUPT,
 * ZT_AUDIT_UNAVAILABLE, …) if the store cannot be trusted or reached; the
 * files opened so far are closed again.
 */
export const buildRootObject = async (
  vatPowers: AuditVatPowers,
  vatParameters: AuditVatParameters,
): Promise<AuditVatRoot> => {
  const { openStore, keys, sha256, verify, now, setTimer } = vatPowers;
  const { durability, checkpointIntervalMs = 60_000 } = vatParameters;
  const nameOf: KeyName = publicKey => checkpointName(sha256, publicKey);

  const opened: FileStore[] = [];
  const openTracked = async (options: Omit<FileStoreOptions, 'dir'>) => {
    const store = await openStore(options);
    opened.push(store);
    return store;
  };
  try {
    const log = await makeAuditLog({ store: await openTracked({ durability }), sha256 });
    let signer = await keys.loadOrCreate(nameOf);
    const keyStore = await openTracked({ fileName: KEY_CHAIN_FILE });
    if (keyStore.size() === 0) await keyStore.appendBatch([canonicalJson({ vkey: signer.vkey })]);
    const readChain = async () =>
      openKeyChain(
        sha256,
        verify,
        (await keyStore.readRange(0, keyStore.size())).map(line => JSON.parse(line) as unknown),
      );
    let chain = await readChain();
    const lastKey = () => chain.keys[chain.keys.length - 1]!.vkey;

    // A rotation interrupted by a crash: finished if its handover is in the
    // chain (the commit point), abandoned (and recorded so) otherwise.
    let next: CheckpointKey | undefined;
    let abandoned: string | undefined;
    try {
      next = await keys.loadNext(nameOf);
    } catch (err) {
      // An unreadable successor never signed a handover, so it cannot be
      // the chain's last key; it is dropped (and that is recorded).
      if (lastKey() !== signer.vkey) throw err;
      await keys.discardNext();
      abandoned = 'unreadable';
    }
    if (next && lastKey() === next.vkey) {
      await keys.activateNext(next);
      signer = next;
    } else if (next) {
      await keys.discardNext();
      abandoned = next.vkey;
    }
    if (lastKey() !== signer.vkey) {
      throw ztError('ZT_AUDIT_CORRUPT', 'the checkpoint key is not the last key of the key chain');
    }
    const checkpointer = await makeCheckpointer({
      log,
      store: await openTracked({ fileName: CHECKPOINTS_FILE }),
      signer,
      sha256,
      verify,
      origin: chain.origin,
      openNote: note => openChainCheckpoint(sha256, verify, chain, note),
      intervalMs: typeof checkpointIntervalMs === 'number' ? checkpointIntervalMs : 60_000,
      setTimer,
    });
    // Recorded once the history is known to match its latest checkpoint.
    if (abandoned !== undefined) {
      await log.append([{ type: 'audit.key-rotation-abandoned', time: now(), key: abandoned }]);
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
    const rotateKey = (): Promise<AuditKeyRotation> => {
      const run = rotating.then(async () => {
        const successor = await keys.createNext(nameOf);
        // 'prepared': nothing committed, the successor can go. 'committing':
        // the handover write may or may not have landed. 'committed': it did.
        let phase: 'prepared' | 'committing' | 'committed' = 'prepared';
        try {
          await log.append([
            { type: 'audit.key-rotation', time: now(), previousKey: signer.vkey, key: successor.vkey },
          ]);
          const handover = await checkpointer.rotate(successor, successor.vkey, async note => {
            phase = 'committing';
            await keyStore.appendBatch([canonicalJson({ handover: note })]);
            phase = 'committed';
            await keys.activateNext(successor);
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
          await keys.discardNext().catch(() => {});
          await log
            .append([{ type: 'audit.key-rotation-abandoned', time: now(), key: successor.vkey }])
            .catch(() => {});
          throw err;
        }
      });
      rotating = run.catch(() => {});
      return run;
    };

    let closing: Promise<void> | undefined;
    return Far('AuditVat', {
      append: guarded((joined: string): Promise<AuditBatchRef> => log.appendJoined(joined)),
      read: guarded((fromSeq: number, count: number) => log.read(fromSeq, count)),
      size: guarded(() => log.size()),
      rootHash: guarded(() => log.rootHash()),
      inclusionProof: guarded((index: number, treeSize: number) => log.inclusionProof(index, treeSize)),
      consistencyProof: guarded((size1: number, size2: number) => log.consistencyProof(size1, size2)),
      checkpoint: guarded((): Promise<AuditCheckpoint> => checkpointer.checkpoint()),
      rotateKey: guarded(rotateKey),
      close: guarded(() => {
        closing ??= (async () => {
          try {
            // A final signed checkpoint.
            await checkpointer.close();
          } finally {
            // Closed (and its lock released) even if the final checkpoint fails.
            await log.close();
          }
        })();
        return closing;
      }),
    });
  } catch (err) {
    for (const s of opened) await s.close().catch(() => {});
    throw err;
  }
};
harden(buildRootObject);
