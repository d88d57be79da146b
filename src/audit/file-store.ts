/**
 * The embedded default audit store: one append-only file of records in a
 * local folder, one canonical-JSON record per line, '\n'-terminated UTF-8.
 *
 * Invariants:
 * - Durable before acknowledged. In 'durable' mode an `appendBatch` promise
 *   resolves only after its bytes are written and `fdatasync`ed. Batches that
 *   arrive while a write+sync is in progress are coalesced into the next
 *   single write+sync (group commit), so throughput grows with concurrency
 *   while each caller still waits for its own bytes. In 'relaxed' mode a batch
 *   resolves once written, and a timer syncs shortly after; the log layer
 *   marks such records `"durability":"relaxed"` so nobody mistakes them.
 * - Fail closed. Any write or sync error rejects every pending and future
 *   call with ZT_AUDIT_UNAVAILABLE; the store never carries on after a failed
 *   write (after a failed fsync the page cache can no longer be trusted). It
 *   tries to cut the file back to the last acknowledged byte so a reopen does
 *   not find half a batch.
 * - Crash recovery on open. A torn final line (no '\n', or not parsable) is
 *   what a crash mid-write leaves, and is truncated away. Damage anywhere
 *   else is not explained by a crash and is ZT_AUDIT_CORRUPT
 *   (file-store-recovery.ts, which also takes the one-writer lock).
 * - Check before repair. With `repair: 'later'` opening changes nothing:
 *   `tail()` says what lies past the complete lines, appends are refused,
 *   and the owner cuts the tail (`cutFrom`, optionally saving the cut bytes
 *   to a new file first) only once it has decided to trust the rest. A
 *   refused open therefore leaves every byte where it was.
 *
 * Pure: file-system and timer powers come in through `FileStorePowers`
 * (`node-powers.ts` builds them from `node:fs`), so tests can count syncs
 * and inject ENOSPC.
 */
import { harden } from '../harden.js';
import { ztError, ZtError } from '../errors.js';
import { openRecovered, storeUnavailable as unavailable } from './file-store-recovery.js';

export type Durability = 'durable' | 'relaxed';

/** An open, read-write file; positions are byte offsets. */
export interface StoreFileHandle {
  size(): Promise<number>;
  /** Reads up to `length` bytes at `position`; fewer only at end of file. */
  read(position: number, length: number): Promise<Uint8Array>;
  /** Writes some prefix of `bytes` at `position`; returns how many bytes. */
  write(bytes: Uint8Array, position: number): Promise<number>;
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

export interface FileStorePowers {
  /** Creates `dir` (and parents) if missing. */
  makeDir(dir: string): Promise<void>;
  /**
   * Opens `name` in `dir` read-write, creating it (mode 0600) if missing;
   * with `create: false` a missing file rejects with an error whose `code`
   * is 'ENOENT'.
   */
  openFile(dir: string, name: string, options?: { create?: boolean }): Promise<StoreFileHandle>;
  /**
   * Writes a new file `name` in `dir` (mode 0600) holding `bytes`, synced,
   * its directory entry synced; rejects if it exists. Optional: without it
   * `cutFrom` cannot save what it cuts.
   */
  createFile?(dir: string, name: string, bytes: Uint8Array): Promise<void>;
  /** Calls `fn` after `ms`; returns a canceller. */
  setTimer(fn: () => void, ms: number): () => void;
  /**
   * Takes an exclusive lock on file `name` in `dir` (which exists), or
   * throws ZT_AUDIT_UNAVAILABLE if another store holds it; resolves with
   * its release. Optional: without it, nothing stops a second writer.
   */
  lock?(dir: string, name: string): Promise<() => Promise<void>>;
}

export interface FileStoreOptions {
  dir: string;
  durability?: Durability;
  /** Relaxed mode: how long written bytes may wait for fdatasync. */
  relaxedSyncMs?: number;
  /** File name inside `dir`. */
  fileName?: string;
  /** Create the file if missing (default true); false: missing is ZT_AUDIT_LOG_MISSING. */
  create?: boolean;
  /** 'now' (default): cut a torn tail on open. 'later': change nothing until `cutFrom`. */
  repair?: 'now' | 'later';
}

/** What lies past the complete lines of a store opened with `repair: 'later'`. */
export interface StoreTail {
  /** Complete, parsable lines (before any unparsable one). */
  lines: number;
  /** Byte offset where they end. */
  keep: number;
  /** File size: bytes from `keep` to here are a tail (torn, or following an unparsable line). */
  end: number;
  /** An unparsable line at `keep` is followed by more complete lines. */
  badLine: boolean;
}

export interface FileStore {
  readonly durability: Durability;
  /** Lines stored or accepted for storage, i.e. the next line's index. */
  size(): number;
  /**
   * Appends `lines` (each one JSON text without '\n'). Resolves with the
   * index of the first line once they are durable (or, relaxed, written).
   */
  appendBatch(lines: readonly string[]): Promise<number>;
  /**
   * The same for lines already encoded: `bytes` is one or more non-empty
   * UTF-8 lines, each ending in '\n'. Saves a copy on the hot path.
   */
  appendEncoded(bytes: Uint8Array): Promise<number>;
  /** Reads up to `count` written lines from index `fromSeq`. */
  readRange(fromSeq: number, count: number): Promise<string[]>;
  /** Forces written bytes to disk now. */
  sync(): Promise<void>;
  /** What follows the complete lines; `end === keep` when nothing does. */
  tail(): StoreTail;
  /**
   * Cuts lines `index…` and any tail off the file (synced); with `saveAs`,
   * first writes the cut bytes to that new file of the folder. Only while
   * nothing is being appended. Clears a pending repair. Resolves with the
   * number of bytes cut.
   */
  cutFrom(index: number, saveAs?: string): Promise<number>;
  /** Flushes pending batches, syncs and closes; later appends reject. */
  close(): Promise<void>;
}

export const RECORDS_FILE = 'records.jsonl';
const NEWLINE = 0x0a;

interface Waiter {
  bytes: Uint8Array;
  /** Byte length of each line including its '\n'. */
  lineLengths: number[];
  firstIndex: number;
  resolve: (firstIndex: number) => void;
  reject: (err: unknown) => void;
}

/** Runs jobs one at a time, in the order given; a failed job does not stop the next. */
const makeSerialChain = () => {
  let chain: Promise<unknown> = Promise.resolve();
  return <T>(job: () => Promise<T>): Promise<T> => {
    const run = chain.then(job);
    chain = run.catch(() => {});
    return run;
  };
};

/** Writes all of `bytes` at `position`, however many writes it takes. */
const writeAll = async (file: StoreFileHandle, bytes: Uint8Array, position: number): Promise<void> => {
  let done = 0;
  while (done < bytes.length) {
    const n = await file.write(bytes.subarray(done), position + done);
    if (!(n > 0)) throw unavailable('short write to the audit store');
    done += n;
  }
};

/** Byte length of each '\n'-terminated line of `bytes`; undefined if malformed. */
const splitLines = (bytes: Uint8Array): number[] | undefined => {
  if (bytes.length === 0 || bytes[bytes.length - 1] !== NEWLINE) return undefined;
  const lengths: number[] = [];
  for (let from = 0; from < bytes.length; ) {
    const end = bytes.indexOf(NEWLINE, from);
    if (end === from) return undefined; // an empty line
    lengths.push(end + 1 - from);
    from = end + 1;
  }
  return lengths;
};

/**
 * The bytes of the waiting batches as one write at `written`, and where
 * each of their lines will start. One waiter (the common case under load:
 * one big batch per turn) is written as is; several are joined so one write
 * and one sync cover all.
 */
const joinWaiters = (batch: readonly Waiter[], written: number) => {
  let total = 0;
  for (const w of batch) total += w.bytes.length;
  const bytes = batch.length === 1 ? batch[0]!.bytes : new Uint8Array(total);
  const starts: number[] = [];
  let at = 0;
  for (const w of batch) {
    if (bytes !== w.bytes) bytes.set(w.bytes, at);
    let lineAt = written + at;
    for (const len of w.lineLengths) {
      starts.push(lineAt);
      lineAt += len;
    }
    at += w.bytes.length;
  }
  return { bytes, starts, total };
};

/** `lines` as '\n'-terminated UTF-8, one encoder call for the whole batch; a ZtError if they are not lines. */
const encodeLines = (encoder: InstanceType<typeof TextEncoder>, lines: readonly string[]): Uint8Array | ZtError => {
  if (!Array.isArray(lines) || lines.length === 0) {
    return ztError('ZT_BAD_ARGUMENT', 'appendBatch needs a non-empty array of lines');
  }
  for (const line of lines) {
    if (typeof line !== 'string' || line === '' || line.includes('\n')) {
      return ztError('ZT_BAD_ARGUMENT', 'each line must be a non-empty string without newlines');
    }
  }
  return encoder.encode(`${lines.join('\n')}\n`);
};

/**
 * Up to `count` written lines from index `fromSeq`: `offsets[i]` is where
 * line i starts and `written` where the written bytes end.
 */
const readLines = async (
  file: StoreFileHandle,
  decoder: InstanceType<typeof TextDecoder>,
  index: { readonly offsets: readonly number[]; readonly written: number },
  fromSeq: number,
  count: number,
): Promise<string[]> => {
  if (!Number.isSafeInteger(fromSeq) || fromSeq < 0 || !Number.isSafeInteger(count) || count < 0) {
    throw ztError('ZT_BAD_ARGUMENT', 'readRange needs non-negative integers');
  }
  const { offsets, written } = index;
  const available = offsets.length;
  const end = Math.min(available, fromSeq + count);
  if (fromSeq >= end) return [];
  const start = offsets[fromSeq]!;
  const stop = end < available ? offsets[end]! : written;
  let bytes: Uint8Array;
  try {
    bytes = await file.read(start, stop - start);
  } catch (err) {
    throw unavailable('cannot read the audit store', err);
  }
  if (bytes.length !== stop - start) throw unavailable('short read from the audit store');
  return decoder.decode(bytes).slice(0, -1).split('\n');
};

export const openFileStore = async (
  powers: FileStorePowers,
  options: FileStoreOptions,
): Promise<FileStore> => {
  const { dir, durability = 'durable', relaxedSyncMs = 50, fileName = RECORDS_FILE, create = true, repair = 'now' } = options;
  if (typeof dir !== 'string' || dir === '') {
    throw ztError('ZT_BAD_ARGUMENT', 'the audit store needs a folder');
  }
  if (durability !== 'durable' && durability !== 'relaxed') {
    throw ztError('ZT_BAD_ARGUMENT', `unknown durability ${String(durability)}`);
  }
  if (repair !== 'now' && repair !== 'later') throw ztError('ZT_BAD_ARGUMENT', `unknown repair mode ${String(repair)}`);
  const { file, offsets, keep, fileSize, badLine, release } = await openRecovered(powers, dir, fileName, {
    create: create !== false,
    repair,
  });

  const encoder = new TextEncoder();
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  // Bytes before `written` are written (and, in durable mode, synced);
  // offsets[i] is where written line i starts.
  let written = keep;
  let accepted = offsets.length; // lines accepted, written or not
  let queue: Waiter[] = [];
  let flushScheduled = false;
  let failure: ZtError | undefined;
  let closed = false;
  let unsynced = false;
  let cancelSyncTimer: (() => void) | undefined;
  // Opened with repair 'later': the file's end while a tail is left uncut.
  let uncutEnd: number | undefined = repair === 'later' && keep < fileSize ? fileSize : undefined;
  let uncutBadLine = badLine;

  // Writes, syncs and close run one at a time, in order, on this chain.
  const exclusive = makeSerialChain();

  const fail = (err: ZtError): void => {
    if (failure) return;
    failure = err;
    cancelSyncTimer?.();
    cancelSyncTimer = undefined;
    const waiting = queue;
    queue = [];
    for (const w of waiting) w.reject(err);
  };

  const syncNow = async (): Promise<void> => {
    if (!unsynced || failure) return;
    unsynced = false;
    try {
      await file.datasync();
    } catch (err) {
      fail(unavailable('fdatasync of the audit store failed', err));
    }
  };

  const scheduleRelaxedSync = (): void => {
    if (cancelSyncTimer || failure) return;
    cancelSyncTimer = powers.setTimer(() => {
      cancelSyncTimer = undefined;
      void exclusive(syncNow);
    }, relaxedSyncMs);
  };

  // Takes every batch queued so far and makes it durable with one write and
  // one fdatasync: the group commit.
  const flushQueued = async (): Promise<void> => {
    flushScheduled = false;
    if (queue.length === 0 || failure) return;
    const batch = queue;
    queue = [];
    const { bytes, starts, total } = joinWaiters(batch, written);
    try {
      await writeAll(file, bytes, written);
      if (durability === 'durable') await file.datasync();
    } catch (err) {
      const error = err instanceof ZtError ? err : unavailable('cannot write the audit store', err);
      // Best effort: cut back to the last acknowledged byte, so a reopen
      // does not find records whose append was refused.
      await file.truncate(written).catch(() => {});
      for (const w of batch) w.reject(error);
      fail(error);
      return;
    }
    written += total;
    for (const start of starts) offsets.push(start);
    if (durability === 'relaxed') {
      unsynced = true;
      scheduleRelaxedSync();
    }
    for (const w of batch) w.resolve(w.firstIndex);
  };

  const enqueue = (bytes: Uint8Array, lineLengths: number[]): Promise<number> => {
    const firstIndex = accepted;
    accepted += lineLengths.length;
    return new Promise<number>((resolve, reject) => {
      queue.push({ bytes, lineLengths, firstIndex, resolve, reject });
      if (!flushScheduled) {
        flushScheduled = true;
        void exclusive(flushQueued);
      }
    });
  };

  const refusal = (): ZtError | undefined =>
    failure ??
    (closed
      ? unavailable('the audit store is closed')
      : uncutEnd !== undefined
        ? unavailable('the audit store has an uncut tail; it takes no appends until its owner decides')
        : undefined);

  const appendBatch = (lines: readonly string[]): Promise<number> => {
    const refused = refusal();
    if (refused) return Promise.reject(refused);
    const bytes = encodeLines(encoder, lines);
    if (bytes instanceof ZtError) return Promise.reject(bytes);
    // Line lengths come from the bytes.
    return enqueue(bytes, splitLines(bytes)!);
  };

  const appendEncoded = (bytes: Uint8Array): Promise<number> => {
    const refused = refusal();
    if (refused) return Promise.reject(refused);
    const lineLengths = bytes instanceof Uint8Array ? splitLines(bytes) : undefined;
    if (!lineLengths) {
      return Promise.reject(ztError('ZT_BAD_ARGUMENT', 'appendEncoded needs non-empty lines, each ending in a newline'));
    }
    return enqueue(bytes, lineLengths);
  };

  const readRange = (fromSeq: number, count: number): Promise<string[]> => readLines(file, decoder, { offsets, written }, fromSeq, count);

  const sync = async (): Promise<void> => {
    await exclusive(syncNow);
    if (failure) throw failure;
  };

  const tail = (): StoreTail =>
    harden({ lines: offsets.length, keep: written, end: uncutEnd ?? written, badLine: uncutBadLine });

  const cutFrom = (index: number, saveAs?: string): Promise<number> => {
    if (!Number.isSafeInteger(index) || index < 0 || index > offsets.length) {
      return Promise.reject(ztError('ZT_BAD_ARGUMENT', `cannot cut from line ${String(index)}`));
    }
    if (accepted !== offsets.length) {
      return Promise.reject(ztError('ZT_BAD_ARGUMENT', 'cannot cut the store while appends are in flight'));
    }
    return exclusive(async () => {
      if (failure) throw failure;
      const from = index < offsets.length ? offsets[index]! : written;
      const to = uncutEnd ?? written;
      try {
        if (to > from && saveAs !== undefined) {
          if (!powers.createFile) throw unavailable('these store powers cannot save a cut tail');
          const bytes = await file.read(from, to - from);
          if (bytes.length !== to - from) throw unavailable('short read from the audit store');
          await powers.createFile(dir, saveAs, bytes);
        }
        if (to > from) {
          await file.truncate(from);
          await file.datasync();
        }
      } catch (err) {
        const error = err instanceof ZtError ? err : unavailable('cannot cut the audit store', err);
        fail(error);
        throw error;
      }
      offsets.length = index;
      accepted = index;
      written = from;
      uncutEnd = undefined;
      uncutBadLine = false;
      return to - from;
    });
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await exclusive(async () => {
      await flushQueued();
      cancelSyncTimer?.();
      cancelSyncTimer = undefined;
      await syncNow();
      await file.close().catch(() => {});
      await release();
    });
    const err = failure;
    fail(unavailable('the audit store is closed'));
    if (err) throw err;
  };

  return harden({
    durability,
    size: () => accepted,
    appendBatch,
    appendEncoded,
    readRange,
    sync,
    tail,
    cutFrom,
    close,
  });
};
harden(openFileStore);
