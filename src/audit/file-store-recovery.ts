/**
 * Opening the audit store's file, and the crash recovery that comes with it.
 *
 * Invariants:
 * - One writer per log: the store's file is locked (when the powers can)
 *   before it is opened; a second store on it is refused with
 *   ZT_AUDIT_UNAVAILABLE, since two writers would interleave numbering.
 * - A torn final line (no '\n', or not parsable) is what a crash mid-write
 *   leaves, and is truncated away (and the truncation synced) before
 *   anything is appended. An unparsable line anywhere else is not explained
 *   by a crash and is ZT_AUDIT_CORRUPT.
 * - Opened with `repair: 'later'`, nothing is changed: the scan reports
 *   where the complete, parsable lines end (`keep`) and whether an
 *   unparsable line (`badLine`) stops them, and the caller decides — after
 *   its own checks — whether to cut the tail (file-store.ts `cutFrom`). A
 *   refused open then leaves every byte as it found it.
 * - `create: false` never creates the file: a missing file is
 *   ZT_AUDIT_LOG_MISSING (the caller knows it should exist).
 * - Nothing is left open or locked when opening fails.
 */
import { harden } from '../harden.js';
import { ztError, ZtError } from '../errors.js';
import type { FileStorePowers, StoreFileHandle } from './file-store.js';

const NEWLINE = 0x0a;
const SCAN_CHUNK = 1 << 20;

/** ZT_AUDIT_UNAVAILABLE, with the cause reduced to its code or message. */
export const storeUnavailable = (message: string, cause?: unknown): ZtError =>
  ztError('ZT_AUDIT_UNAVAILABLE', message, cause === undefined ? undefined : { cause: describe(cause) });

const describe = (err: unknown): string => {
  if (err !== null && typeof err === 'object') {
    const { code, message } = err as { code?: unknown; message?: unknown };
    if (typeof code === 'string') return code;
    if (typeof message === 'string') return message;
  }
  return String(err);
};

harden(storeUnavailable);

const isParsable = (decoder: InstanceType<typeof TextDecoder>, bytes: Uint8Array): boolean => {
  try {
    JSON.parse(decoder.decode(bytes));
    return true;
  } catch {
    return false;
  }
};

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  if (a.length === 0) return b.slice();
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

/** What a scan found: complete lines up to the first unparsable one, and what follows them. */
export interface ScannedFile {
  /** Start offset of each complete, parsable line before the first unparsable one. */
  offsets: number[];
  /** Where those lines end: everything from here on is a tail. */
  keep: number;
  fileSize: number;
  /** An unparsable complete line at `keep` that is followed by another complete line. */
  badLine: boolean;
}

/**
 * Scans the file in chunks, returning the start offset of each complete,
 * parsable line before the first unparsable one, and where they end. Only
 * the last complete line may be unparsable in a file a crash left (a torn
 * write); `badLine` says that one is followed by another complete line.
 */
const scan = async (file: StoreFileHandle): Promise<ScannedFile> => {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const fileSize = await file.size();
  const offsets: number[] = [];
  let carry: Uint8Array = new Uint8Array(0); // the unfinished line so far
  let lineStart = 0; // start of the line being assembled
  let badStart: number | undefined; // start of an unparsable complete line

  for (let pos = 0; pos < fileSize; ) {
    const chunk = await file.read(pos, Math.min(SCAN_CHUNK, fileSize - pos));
    if (chunk.length === 0) break;
    let from = 0;
    for (let i = chunk.indexOf(NEWLINE); i !== -1; i = chunk.indexOf(NEWLINE, from)) {
      if (badStart !== undefined) {
        // A complete line after an unparsable one: not what a crash leaves.
        return { offsets, keep: badStart, fileSize, badLine: true };
      }
      const line = concat(carry, chunk.subarray(from, i));
      carry = new Uint8Array(0);
      if (isParsable(decoder, line)) offsets.push(lineStart);
      else badStart = lineStart;
      lineStart = pos + i + 1;
      from = i + 1;
    }
    if (from < chunk.length) carry = concat(carry, chunk.subarray(from));
    pos += chunk.length;
  }
  // Drop an unterminated tail and a final unparsable line: both are what a
  // write torn by a crash leaves behind.
  return { offsets, keep: badStart ?? lineStart, fileSize, badLine: false };
};

export interface OpenRecoveredOptions {
  /** Create the file if missing (default); false: a missing file is ZT_AUDIT_LOG_MISSING. */
  create?: boolean;
  /** 'now' (default): cut a torn tail at once. 'later': change nothing; the caller cuts. */
  repair?: 'now' | 'later';
}

/**
 * Opens (creating) the store's file under its lock, and cuts off what a
 * crash left (see `scan`). Either hands back the open file, where each
 * complete line starts, the length kept and the lock's release, or throws
 * with nothing left open or locked.
 */
export const openRecovered = async (
  powers: FileStorePowers,
  dir: string,
  fileName: string,
  options: OpenRecoveredOptions = {},
) => {
  const { create = true, repair = 'now' } = options;
  let file: StoreFileHandle;
  let unlock: (() => Promise<void>) | undefined;
  try {
    if (create) await powers.makeDir(dir);
    // Two writers on one log would interleave their numbering: refuse the second.
    if (powers.lock) unlock = await powers.lock(dir, fileName);
    file = await powers.openFile(dir, fileName, { create });
  } catch (err) {
    await unlock?.().catch(() => {});
    if (!create && (err as { code?: unknown })?.code === 'ENOENT') {
      throw ztError('ZT_AUDIT_LOG_MISSING', `the audit store file ${fileName} is missing`, { file: fileName });
    }
    throw err instanceof ZtError ? err : storeUnavailable('cannot open the audit store', err);
  }
  const release = async (): Promise<void> => {
    const u = unlock;
    unlock = undefined;
    await u?.().catch(() => {});
  };
  let scanned: ScannedFile;
  try {
    scanned = await scan(file);
    if (repair === 'now' && scanned.badLine) {
      throw ztError('ZT_AUDIT_CORRUPT', `record ${scanned.offsets.length} is not valid JSON`, {
        index: scanned.offsets.length,
        offset: scanned.keep,
      });
    }
    if (repair === 'now' && scanned.keep < scanned.fileSize) {
      await file.truncate(scanned.keep);
      await file.datasync();
    }
  } catch (err) {
    await file.close().catch(() => {});
    await release();
    throw err instanceof ZtError ? err : storeUnavailable('cannot recover the audit store', err);
  }
  return { file, ...scanned, release };
};
harden(openRecovered);
