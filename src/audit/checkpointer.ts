/**
 * Makes signed checkpoints of an audit log and keeps them in an append-only
 * checkpoint store: for every commit group (`cover`), on demand, on an
 * interval, and on close.
 *
 * Invariants:
 * - A checkpoint covers only durable records: the tree head is taken, the
 *   log is synced, and only then is the head signed and stored.
 * - Each stored line is `{"leaves":…,"note":…}`: the signed note, and the
 *   leaf hashes (hex) of the records it adds to the previous line's size.
 *   The note's signature vouches for them (they must reproduce its root),
 *   so a verifier can name the exact record that was changed, not just the
 *   range between two checkpoints (verify.ts).
 * - `cover(size)` coalesces: while one checkpoint is being signed and
 *   stored, every commit group that completes meanwhile is covered by the
 *   next one, so there is at most one signature and one checkpoint write in
 *   flight, whatever the append rate.
 * - On start, the latest stored checkpoint is checked against the log as
 *   reopened: records it covers that are missing or changed since it was
 *   signed make the vat refuse to start (ZT_AUDIT_CORRUPT) instead of
 *   appending after a rewritten history.
 */
import { harden } from '../harden.js';
import { ztError } from '../errors.js';
import { canonicalJson } from './canonical.js';
import { openCheckpoint, signCheckpoint } from './checkpoint.js';
import type { CheckpointBody, Ed25519Verify, NoteSigner } from './checkpoint.js';
import { ROTATION_EXTENSION } from './keychain.js';
import type { AuditLog, AuditStore } from './audit-log.js';
import type { AuditCheckpoint } from './audit-vat-protocol.js';
import { fromHex, toHex } from './merkle.js';
import type { Sha256 } from './merkle.js';

export const CHECKPOINTS_FILE = 'checkpoints.jsonl';

/** Key and origin name for a store's checkpoints, derived from its public key. */
export const checkpointName = (sha256: Sha256, publicKey: Uint8Array): string =>
  `ztaas-audit-${toHex(sha256(publicKey)).slice(0, 16)}`;
harden(checkpointName);

export interface CheckpointerOptions {
  log: AuditLog;
  /** Where signed notes go, one canonical `{"note":…}` line each. */
  store: AuditStore;
  signer: NoteSigner;
  sha256: Sha256;
  verify: Ed25519Verify;
  origin: string;
  /** 0 disables the timer; checkpoints are then made on demand and on close. */
  intervalMs?: number;
  /**
   * Verifies a stored note (on start): by default against `signer`'s key;
   * with a key chain, against whichever key signed at the note's size.
   */
  openNote?: (note: string) => CheckpointBody | undefined;
  setTimer?: (fn: () => void, ms: number) => () => void;
}

export interface Checkpointer {
  checkpoint(): Promise<AuditCheckpoint>;
  /** Resolves once a durable signed checkpoint covers at least `size` records. */
  cover(size: number): Promise<AuditCheckpoint>;
  /**
   * Hands signing over to `next`: makes a checkpoint of the durable log
   * signed by the current key and by `next`, announcing `next` in the
   * extension line `ztaas-key-rotation <nextVkey>`; passes it to `commit`
   * (which makes the handover durable in the key chain); then stores it as
   * a checkpoint and signs every later checkpoint with `next`. Runs in turn
   * with checkpoints, so no checkpoint is signed by the wrong key. If
   * `commit` fails, the current key stays.
   */
  rotate(next: NoteSigner, nextVkey: string, commit: (handover: string) => Promise<void>): Promise<AuditCheckpoint>;
  /** Makes a final checkpoint, stops the timer and closes the checkpoint store. */
  close(): Promise<void>;
}

export const makeCheckpointer = async (options: CheckpointerOptions): Promise<Checkpointer> => {
  const { log, store, sha256, verify, origin, intervalMs = 0, setTimer } = options;
  let signer = options.signer;
  const key = { name: signer.name, publicKey: signer.publicKey };
  const openNote = options.openNote ?? ((note: string) => openCheckpoint(sha256, verify, key, note));

  let last: AuditCheckpoint | undefined;
  const stored = store.size();
  if (stored > 0) {
    const [line] = await store.readRange(stored - 1, 1);
    const note = (JSON.parse(line!) as { note?: unknown }).note;
    const body = typeof note === 'string' ? openNote(note) : undefined;
    if (!body || body.origin !== origin) {
      throw ztError('ZT_AUDIT_CORRUPT', `checkpoint ${stored - 1} does not verify`, { checkpoint: stored - 1 });
    }
    if (body.size > log.size()) {
      throw ztError('ZT_AUDIT_CORRUPT', `records from index ${log.size()} are missing (checkpoint covers ${body.size})`, {
        index: log.size(),
      });
    }
    if (log.rootHashAt(body.size) !== toHex(body.rootHash)) {
      throw ztError('ZT_AUDIT_CORRUPT', `records before index ${body.size} differ from the signed checkpoint`, {
        checkpointSize: body.size,
      });
    }
    last = harden({ size: body.size, rootHash: toHex(body.rootHash), note: note as string });
  }

  /** The stored line of a checkpoint of `size` records: its note and the leaves it adds. */
  const line = (size: number, note: string): string => {
    let leaves = '';
    for (let i = last?.size ?? 0; i < size; i += 1) leaves += log.leafHash(i);
    return canonicalJson({ leaves, note });
  };

  let chain: Promise<unknown> = Promise.resolve();
  const checkpoint = (): Promise<AuditCheckpoint> => {
    const run = chain.then(async () => {
      // One turn: size and root describe the same tree.
      const size = log.size();
      const rootHash = log.rootHash();
      await log.sync();
      if (last && last.size === size) return last;
      const note = signCheckpoint(sha256, signer, { origin, size, rootHash: fromHex(rootHash)! });
      await store.appendBatch([line(size, note)]);
      last = harden({ size, rootHash, note });
      return last;
    });
    chain = run.catch(() => {});
    return run;
  };

  const cover = async (size: number): Promise<AuditCheckpoint> => {
    // Each round signs the log as it then is, so a round queued behind
    // another covers everything committed meanwhile.
    for (;;) {
      if (last && last.size >= size) return last;
      const made = await checkpoint();
      if (made.size >= size) return made;
      if (log.size() < size) throw ztError('ZT_AUDIT_UNAVAILABLE', `the log does not hold ${size} records`);
    }
  };

  const rotate = (
    next: NoteSigner,
    nextVkey: string,
    commit: (handover: string) => Promise<void>,
  ): Promise<AuditCheckpoint> => {
    const run = chain.then(async () => {
      const size = log.size();
      const rootHash = log.rootHash();
      await log.sync();
      const note = signCheckpoint(sha256, [signer, next], { origin, size, rootHash: fromHex(rootHash)! }, [
        `${ROTATION_EXTENSION} ${nextVkey}`,
      ]);
      await commit(note);
      signer = next;
      await store.appendBatch([line(size, note)]);
      last = harden({ size, rootHash, note });
      return last;
    });
    chain = run.catch(() => {});
    return run;
  };

  let cancel: (() => void) | undefined;
  let stopped = false;
  const arm = () => {
    if (stopped || !setTimer || !(intervalMs > 0)) return;
    cancel = setTimer(() => {
      // A failed periodic checkpoint is reported by the next explicit call.
      void checkpoint().catch(() => {}).finally(arm);
    }, intervalMs);
  };
  arm();

  return harden({
    checkpoint,
    cover,
    rotate,
    close: async () => {
      stopped = true;
      cancel?.();
      try {
        await checkpoint();
      } finally {
        await store.close();
      }
    },
  });
};
harden(makeCheckpointer);
