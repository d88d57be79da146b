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
import { codeOf, ztError, ZtError } from '../src/errors.js';
import type { AuditBatchRef } from '../src/audit/audit-log.js';
import { openAuditStore } from '../src/audit/audit-open.js';
import type { AuditVatPowers, KeyName } from '../src/audit/audit-open.js';
import type { AuditCheckpoint, AuditKeyRotation, AuditVatRoot } from '../src/audit/audit-vat-protocol.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { checkpointName } from '../src/audit/checkpointer.js';
import type { Durability } from '../src/audit/file-store.js';

export type { AuditVatPowers, CheckpointKey } from '../src/audit/audit-open.js';

export interface AuditVatParameters {
  readonly durability: Durability;
  /** How often a checkpoint is signed besides the one per commit group (also on close); 0 disables the timer. */
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
 * Opens the store, its key chain and its checkpoints (audit-open.ts: checked
 * before anything is changed; an unsigned tail quarantined), finishing or
 * abandoning a rotation a crash interrupted. Rejects (ZT_AUDIT_CORRUPT,
 * ZT_AUDIT_LOG_MISSING, ZT_AUDIT_UNAVAILABLE, …) if the store cannot be
 * trusted or reached; the files opened so far are closed again, unchanged.
 *
 * Every append is acknowledged only once a signed checkpoint covering it is
 * durable (in relaxed mode: once written, with a checkpoint following each
 * relaxed sync): there is no unsigned window for a deleted log, a flipped
 * byte or a line appended by someone else to hide in.
 */
export const buildRootObject = async (
  vatPowers: AuditVatPowers,
  vatParameters: AuditVatParameters,
): Promise<AuditVatRoot> => {
  const { keys, sha256, now } = vatPowers;
  const { durability, checkpointIntervalMs = 60_000 } = vatParameters;
  const nameOf: KeyName = publicKey => checkpointName(sha256, publicKey);

  const opened = await openAuditStore(vatPowers, {
    durability,
    checkpointIntervalMs: typeof checkpointIntervalMs === 'number' ? checkpointIntervalMs : 60_000,
  });
  const { log, checkpointer, keyStore, readChain, quarantined, abandoned } = opened;
  let { signer } = opened;
  try {
    // Set when a commit group could not be signed: from then on every
    // append is refused before it is written (fail closed).
    let failure: ZtError | undefined;
    /** Signs a checkpoint covering `size` records; a failure closes the log to appends. */
    const cover = async (size: number): Promise<void> => {
      try {
        await checkpointer.cover(size);
      } catch (err) {
        failure ??= err instanceof ZtError ? err : ztError('ZT_AUDIT_UNAVAILABLE', 'cannot sign a checkpoint of the audit log');
        throw failure;
      }
    };
    /** Records the vat writes itself, covered by a checkpoint before they count. */
    const appendOwn = async (records: object[]): Promise<void> => {
      if (failure) throw failure;
      const refs = await log.append(records);
      await cover(refs[refs.length - 1]!.seq + 1);
    };
    const appendJoined = async (joined: string): Promise<AuditBatchRef> => {
      if (failure) throw failure;
      const ref = await log.appendJoined(joined);
      const size = ref.first + ref.leafHashes.length / 64;
      if (durability === 'durable') {
        await cover(size);
      } else {
        // Relaxed: acknowledged once written; the checkpoint follows the sync.
        void cover(size).catch(() => {});
      }
      return ref;
    };

    // Recorded once the history is known to match its latest checkpoint.
    if (quarantined) {
      await appendOwn([
        { type: 'audit.unsigned-tail', time: now(), code: 'ZT_AUDIT_UNSIGNED_TAIL', ...quarantined },
      ]);
    }
    if (abandoned !== undefined) {
      await appendOwn([{ type: 'audit.key-rotation-abandoned', time: now(), key: abandoned }]);
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
          await appendOwn([
            { type: 'audit.key-rotation', time: now(), previousKey: signer.vkey, key: successor.vkey },
          ]);
          const handover = await checkpointer.rotate(successor, successor.vkey, async note => {
            phase = 'committing';
            await keyStore.appendBatch([canonicalJson({ handover: note })]);
            phase = 'committed';
            await keys.activateNext(successor);
          });
          signer = successor;
          await readChain();
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
          await appendOwn([{ type: 'audit.key-rotation-abandoned', time: now(), key: successor.vkey }]).catch(() => {});
          throw err;
        }
      });
      rotating = run.catch(() => {});
      return run;
    };

    let closing: Promise<void> | undefined;
    return Far('AuditVat', {
      append: guarded(appendJoined),
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
    for (const s of opened.stores) await s.close().catch(() => {});
    throw err;
  }
};
harden(buildRootObject);
