/**
 * Opening the audit vat's store folder: the log, its key chain, its signed
 * checkpoints and its current key, checked before anything is changed.
 *
 * Invariants:
 * - Check, then change. Every file is opened without repair (no torn tail
 *   is cut, no missing file created) and every check runs first: the key
 *   chain, the latest checkpoint's signature, the records it covers (each
 *   one re-hashed) against its root. Only when all pass are torn tails cut,
 *   an interrupted key rotation finished or abandoned, stale temporary key
 *   files removed and an unsigned tail quarantined. A refused open
 *   (ZT_AUDIT_CORRUPT, ZT_AUDIT_LOG_MISSING, …) leaves every file byte for
 *   byte as it found it.
 * - A key in place has signed. The first key is put in place only after
 *   the key chain and a signed checkpoint of the empty log are durable
 *   (node-powers `createSigningKey`), so a folder holding the key but no
 *   checkpoint, or a checkpoint but fewer records than it covers, has lost
 *   its log: ZT_AUDIT_LOG_MISSING, never a silent restart at seq 0. A
 *   folder holding a log but no key is ZT_AUDIT_CORRUPT.
 * - Reopening never signs what was not signed. Records after the latest
 *   checkpoint were never acknowledged (an append is acknowledged only once
 *   a checkpoint covers it; vat-audit.ts), or were written by someone else:
 *   they are moved to `records.unsigned-<seq>-<time>.jsonl` and reported
 *   (`quarantined`; the vat records it with ZT_AUDIT_UNSIGNED_TAIL), never
 *   adopted into the log.
 *
 * Pure: every power comes in `AuditVatPowers` (node-powers.ts builds them).
 */
import { harden } from '../harden.js';
import { ztError, ZtError } from '../errors.js';
import { makeAuditLog } from './audit-log.js';
import type { AuditLog } from './audit-log.js';
import { canonicalJson } from './canonical.js';
import { peekCheckpoint } from './checkpoint.js';
import type { Ed25519Verify, NoteSigner } from './checkpoint.js';
import { CHECKPOINTS_FILE, checkpointName, makeCheckpointer } from './checkpointer.js';
import type { Checkpointer } from './checkpointer.js';
import type { Durability, FileStore, FileStoreOptions } from './file-store.js';
import { KEY_CHAIN_FILE, openChainCheckpoint, openKeyChain } from './keychain.js';
import type { KeyChain } from './keychain.js';
import type { Sha256 } from './merkle.js';

/** A checkpoint signing key: signs, and names itself by its verifier key. */
export type CheckpointKey = NoteSigner & { readonly vkey: string };

export type KeyName = (publicKey: Uint8Array) => string;

export interface AuditVatPowers {
  /** Opens (locking and recovering, or with `repair: 'later'` only scanning) one append-only file of the store folder. */
  readonly openStore: (options: Omit<FileStoreOptions, 'dir'>) => Promise<FileStore>;
  /** The checkpoint keys kept in the store folder. */
  readonly keys: {
    /** The current key, or undefined if there is none; changes nothing. */
    load(name: KeyName): Promise<CheckpointKey | undefined>;
    /** Generates the first key; `prepare` makes the log's first state before the key is put in place. */
    create(name: KeyName, prepare: (signer: CheckpointKey) => Promise<void>): Promise<CheckpointKey>;
    /** Writes the verifier key file, unless it holds this key already. */
    publish(signer: CheckpointKey): Promise<void>;
    /** Removes temporary key files a kill left behind; returns their names. */
    removeStale(): Promise<string[]>;
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

/** Records after the latest signed checkpoint, moved out of the log on open. */
export interface QuarantinedTail {
  /** The file (in the store folder) now holding them. */
  file: string;
  /** The first quarantined seq (the signed size). */
  fromSeq: number;
  /** Complete lines among them (the rest: a torn line, or lines after an unparsable one). */
  records: number;
  bytes: number;
}

export interface OpenedAuditStore {
  log: AuditLog;
  checkpointer: Checkpointer;
  keyStore: FileStore;
  chain: KeyChain;
  signer: CheckpointKey;
  /** Re-reads the key chain from its store. */
  readChain(): Promise<KeyChain>;
  /** A rotation a crash interrupted and that was abandoned: the successor's vkey, or 'unreadable'. */
  abandoned?: string;
  quarantined?: QuarantinedTail;
  /** Every store opened, to close on failure. */
  stores: FileStore[];
}

const logMissing = (message: string, details?: Record<string, unknown>) =>
  ztError('ZT_AUDIT_LOG_MISSING', message, details);

const parseLines = async (store: FileStore, what: string): Promise<unknown[]> =>
  (await store.readRange(0, store.size())).map((line, n) => {
    try {
      return JSON.parse(line) as unknown;
    } catch {
      throw ztError('ZT_AUDIT_CORRUPT', `${what} line ${n} is not JSON`, { line: n });
    }
  });

/** Cuts a torn (unacknowledged) last line; an unparsable line followed by others is corruption. */
const assertOnlyTorn = (store: FileStore, what: string): void => {
  if (store.tail().badLine) {
    throw ztError('ZT_AUDIT_CORRUPT', `${what} line ${store.size()} is not valid JSON`, { line: store.size() });
  }
};

export interface OpenAuditStoreOptions {
  durability: Durability;
  checkpointIntervalMs: number;
}

export const openAuditStore = async (
  powers: AuditVatPowers,
  options: OpenAuditStoreOptions,
): Promise<OpenedAuditStore> => {
  const { openStore, keys, sha256, verify, now, setTimer } = powers;
  const { durability, checkpointIntervalMs } = options;
  const nameOf: KeyName = publicKey => checkpointName(sha256, publicKey);
  const stores: FileStore[] = [];
  const open = async (o: Omit<FileStoreOptions, 'dir'>) => {
    const store = await openStore({ ...o, repair: 'later' });
    stores.push(store);
    return store;
  };
  /** Opens a file that may be absent; undefined if it is (nothing created). */
  const openIfPresent = async (o: Omit<FileStoreOptions, 'dir'>) => {
    try {
      return await open({ ...o, create: false });
    } catch (err) {
      if (err instanceof ZtError && err.code === 'ZT_AUDIT_LOG_MISSING') return undefined;
      throw err;
    }
  };
  const checkpointerFor = (log: AuditLog, store: FileStore, signer: CheckpointKey, chain: KeyChain) =>
    makeCheckpointer({
      log,
      store,
      signer,
      sha256,
      verify,
      origin: chain.origin,
      openNote: note => openChainCheckpoint(sha256, verify, chain, note),
      intervalMs: checkpointIntervalMs,
      setTimer,
    });

  try {
    const current = await keys.load(nameOf);
    if (!current) {
      // A new store, or one whose creation a kill interrupted before its
      // key was put in place (nothing was ever acknowledged in it: records
      // empty, at most the empty log's checkpoint). Anything more is a log
      // that lost its key.
      const found = [
        await openIfPresent({ fileName: KEY_CHAIN_FILE }),
        await openIfPresent({ fileName: CHECKPOINTS_FILE }),
        await openIfPresent({ durability }),
      ];
      const [oldChain, oldCheckpoints, oldRecords] = found;
      const notes = oldCheckpoints ? await parseLines(oldCheckpoints, 'checkpoint') : [];
      const unused =
        (!oldRecords || oldRecords.tail().end === 0) &&
        (!oldChain || oldChain.size() <= 1) &&
        notes.every(n => {
          const note = (n as { note?: unknown })?.note;
          return typeof note === 'string' && peekCheckpoint(note)?.size === 0;
        });
      if (!unused) {
        throw ztError('ZT_AUDIT_CORRUPT', 'the folder holds an audit log but no checkpoint key; restore the key (checkpoint-key.pem) or move the folder away');
      }
      await keys.removeStale();
      let made: { log: AuditLog; checkpointer: Checkpointer; keyStore: FileStore; chain: KeyChain } | undefined;
      const signer = await keys.create(nameOf, async key => {
        for (const s of found) if (s) await s.cutFrom(0);
        const keyStore = oldChain ?? (await open({ fileName: KEY_CHAIN_FILE }));
        await keyStore.appendBatch([canonicalJson({ vkey: key.vkey })]);
        const chain = openKeyChain(sha256, verify, await parseLines(keyStore, 'key chain'));
        const records = oldRecords ?? (await open({ durability }));
        const log = await makeAuditLog({ store: records, sha256 });
        const checkpointer = await checkpointerFor(log, oldCheckpoints ?? (await open({ fileName: CHECKPOINTS_FILE })), key, chain);
        // The empty log's signed checkpoint: from now on the key vouches for a history.
        await checkpointer.checkpoint();
        made = { log, checkpointer, keyStore, chain };
      });
      const { log, checkpointer, keyStore, chain } = made!;
      const readChain = async () => openKeyChain(sha256, verify, await parseLines(keyStore, 'key chain'));
      return { log, checkpointer, keyStore, chain, signer, readChain, stores };
    }

    // The key exists: so must a key chain, a signed checkpoint and the records it covers.
    let signer = current;
    const keyStore = await open({ fileName: KEY_CHAIN_FILE, create: false });
    assertOnlyTorn(keyStore, 'key chain');
    if (keyStore.size() === 0) throw logMissing('the checkpoint key exists but its key chain is empty: the log was deleted or replaced');
    const readChain = async () => openKeyChain(sha256, verify, await parseLines(keyStore, 'key chain'));
    const chain = await readChain();
    const lastKey = chain.keys[chain.keys.length - 1]!.vkey;

    // A rotation a crash interrupted: finished if its handover is in the
    // chain (the commit point), abandoned otherwise. Decided now, done
    // once every check has passed.
    let next: CheckpointKey | undefined;
    let abandoned: string | undefined;
    try {
      next = await keys.loadNext(nameOf);
    } catch (err) {
      // An unreadable successor never signed a handover, so it cannot be
      // the chain's last key; it is dropped (and that is recorded).
      if (lastKey !== signer.vkey) throw err;
      abandoned = 'unreadable';
    }
    if (next && lastKey === next.vkey) signer = next;
    else if (next) abandoned = next.vkey;
    if (lastKey !== signer.vkey) {
      throw ztError('ZT_AUDIT_CORRUPT', 'the checkpoint key is not the last key of the key chain');
    }

    const cpStore = await open({ fileName: CHECKPOINTS_FILE, create: false });
    assertOnlyTorn(cpStore, 'checkpoint');
    if (cpStore.size() === 0) {
      throw logMissing('the checkpoint key has signed, but no signed checkpoint is left: the log was deleted or replaced');
    }
    const [lastLine] = await cpStore.readRange(cpStore.size() - 1, 1);
    let lastNote: unknown;
    try {
      lastNote = (JSON.parse(lastLine!) as { note?: unknown }).note;
    } catch {
      lastNote = undefined;
    }
    const body = typeof lastNote === 'string' ? openChainCheckpoint(sha256, verify, chain, lastNote) : undefined;
    if (!body) {
      throw ztError('ZT_AUDIT_CORRUPT', `checkpoint ${cpStore.size() - 1} does not verify`, { checkpoint: cpStore.size() - 1 });
    }
    const signedSize = body.size;

    const records = await open({ durability, create: signedSize === 0 });
    const tail = records.tail();
    if (records.size() < signedSize) {
      if (records.size() === 0 && tail.end === 0) {
        throw logMissing(`the log has no records, but its key signed a checkpoint of ${signedSize}: the log was deleted or replaced`, {
          index: 0,
          checkpointSize: signedSize,
        });
      }
      const index = records.size();
      throw ztError(
        'ZT_AUDIT_CORRUPT',
        tail.end > tail.keep
          ? `record ${index} is damaged (the signed checkpoint covers ${signedSize})`
          : `records from index ${index} are missing (the signed checkpoint covers ${signedSize})`,
        { index, checkpointSize: signedSize },
      );
    }
    // Re-hashes and checks the signed records; makeCheckpointer then checks
    // them against the latest checkpoint's root.
    const log = await makeAuditLog({ store: records, sha256, prefix: signedSize });
    const checkpointer = await checkpointerFor(log, cpStore, signer, chain);

    // Every check passed: now repair.
    await keys.removeStale();
    await keyStore.cutFrom(keyStore.size());
    await cpStore.cutFrom(cpStore.size());
    if (next && signer === next) await keys.activateNext(next);
    else if (abandoned !== undefined) await keys.discardNext();
    await keys.publish(signer);
    let quarantined: QuarantinedTail | undefined;
    if (tail.end > records.tail().keep || records.size() > signedSize) {
      const file = `records.unsigned-${signedSize}-${now()}.jsonl`;
      const count = records.size() - signedSize;
      const bytes = await records.cutFrom(signedSize, file);
      quarantined = harden({ file, fromSeq: signedSize, records: count, bytes });
    }
    return {
      log,
      checkpointer,
      keyStore,
      chain,
      signer,
      readChain,
      stores,
      ...(abandoned === undefined ? {} : { abandoned }),
      ...(quarantined ? { quarantined } : {}),
    };
  } catch (err) {
    for (const s of stores) await s.close().catch(() => {});
    throw err;
  }
};
harden(openAuditStore);
