/**
 * Pinning a file effector's target: the one place that decides whether a
 * path may be touched at all. Invariant: a descriptor handed on from here
 * was reached by exactly the approved path, with no symbolic link anywhere
 * on the way, and names neither a pseudo file system nor (unless asked) a
 * special file.
 *
 * Threats and how each is met:
 * - Symlinks anywhere in the path, including one swapped in between check
 *   and use: the target (or, for writes, its directory) is first opened as
 *   an O_PATH descriptor with O_NOFOLLOW, and the path the OS reports for
 *   that descriptor (/proc/self/fd/N) must equal the target. Everything that
 *   follows goes through that descriptor (reopened via /proc/self/fd/N, or
 *   used as the directory of the temp file and of the rename), so a swap
 *   after the check changes nothing: the inode was pinned at check time.
 *   Refused with ZT_ACCESS_DENIED.
 * - Special files (FIFOs, devices, sockets, directories): checked with fstat
 *   on the O_PATH descriptor, which opens nothing for I/O, so a FIFO cannot
 *   block and a device open has no side effect. ZT_NOT_A_FILE.
 * - /proc, /sys, /dev: refused by path and, for procfs/sysfs mounted
 *   elsewhere, by device number (ZT_ACCESS_DENIED).
 * - Hard links: a file with more than one link may be the same inode as a
 *   file outside the target; reading it, or appending to it in place, is
 *   refused (ZT_ACCESS_DENIED) unless `effect.allowHardLinks`.
 *
 * When the powers lack O_PATH support (an older adapter), the pinner is not
 * `strong`: callers open with O_NOFOLLOW | O_NONBLOCK and make the same
 * /proc/self/fd check (`assertOpenedAt`), and whatever needs a pinned
 * descriptor (`requireStrong`) fails closed.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';
import type { FileHandleLike, FilePowers, FileStatLike } from './files-powers.js';

const PSEUDO_ROOTS = harden(['/proc', '/sys', '/dev']);

/** Refuses /proc, /sys and /dev by path, before anything is opened. */
export const assertNotPseudo = (target: string) => {
  for (const root of PSEUDO_ROOTS) {
    if (target === root || target.startsWith(`${root}/`)) {
      throw new ZtError('ZT_ACCESS_DENIED', `${target}: pseudo file systems (${PSEUDO_ROOTS.join(', ')}) are never targets`);
    }
  }
};
harden(assertNotPseudo);

export const closeQuietly = async (handle: FileHandleLike | undefined) => {
  if (handle) await handle.close().catch(() => undefined);
};
harden(closeQuietly);

/** The directory holding `target` and the target's name in it. */
export const parentOf = (target: string) => {
  const cut = target.lastIndexOf('/');
  return harden({ dir: target.slice(0, cut) || '/', name: target.slice(cut + 1) });
};
harden(parentOf);

export const assertRegular = (stat: FileStatLike, target: string) => {
  if (stat.isSymbolicLink?.()) throw new ZtError('ZT_ACCESS_DENIED', `${target}: symbolic links are not followed`);
  if (!stat.isFile()) throw new ZtError('ZT_NOT_A_FILE', `${target}: not a regular file`);
};
harden(assertRegular);

export const assertSingleLink = (stat: FileStatLike, target: string, allowHardLinks: boolean) => {
  if (!allowHardLinks && (stat.nlink ?? 1) > 1) {
    throw new ZtError('ZT_ACCESS_DENIED', `${target}: the file has other hard links, which may lie outside the target`);
  }
};
harden(assertSingleLink);

export interface Pinned {
  readonly handle: FileHandleLike;
  readonly stat: FileStatLike;
}

export interface FilePinner {
  /** True when the powers can pin (O_PATH, reopen through /proc/self/fd). */
  readonly strong: boolean;
  /** The path through which a pinned descriptor is reopened or used as a directory. */
  reopenPath(fd: number): string;
  /** The descriptor must be reached by exactly `expected`: no symlink anywhere on the way. */
  assertOpenedAt(handle: FileHandleLike, expected: string, target: string): Promise<void>;
  assertNotSpecialDevice(stat: FileStatLike, target: string): void;
  /**
   * Pins `path` (not following a final symlink) and checks that the OS
   * reaches it as `expected` (its real path): no symlink on the way.
   */
  pin(path: string, expected: string, target: string, directory?: boolean): Promise<Pinned>;
  /** As `pin`, but `undefined` when nothing is there (ENOENT). */
  pinIfExists(path: string, expected: string, target: string): Promise<Pinned | undefined>;
  /** Fails closed when `what` needs a pinned descriptor and the powers cannot make one. */
  requireStrong(what: string, target: string): void;
}

export const makeFilePinner = (powers: FilePowers): FilePinner => {
  const { O_NOFOLLOW, O_CLOEXEC, O_PATH, O_DIRECTORY } = powers.flags;
  // O_DIRECTORY is only a marker of a capable adapter; directories are checked by fstat.
  const reopen = powers.fdReopenPath;
  const strong = O_PATH !== undefined && O_DIRECTORY !== undefined && reopen !== undefined;
  const special = new Set(powers.specialDevices ?? []);

  const reopenPath = (fd: number) => (reopen as (fd: number) => string)(fd);

  const assertOpenedAt = async (handle: FileHandleLike, expected: string, target: string) => {
    const actual = await powers.fdPath(handle.fd);
    if (actual !== expected) {
      throw new ZtError('ZT_ACCESS_DENIED', `${target}: path resolves through a symbolic link`);
    }
  };

  const assertNotSpecialDevice = (stat: FileStatLike, target: string) => {
    if (stat.dev !== undefined && special.has(stat.dev)) {
      throw new ZtError('ZT_ACCESS_DENIED', `${target}: pseudo file systems are never targets`);
    }
  };

  const pin = async (path: string, expected: string, target: string, directory = false): Promise<Pinned> => {
    // Not O_DIRECTORY: a symlink where a directory is expected must read as a symlink, not as ENOTDIR.
    const handle = await powers.open(path, (O_PATH as number) | O_NOFOLLOW | O_CLOEXEC);
    try {
      await assertOpenedAt(handle, expected, target);
      const stat = await handle.stat();
      assertNotSpecialDevice(stat, target);
      if (directory && !stat.isDirectory?.()) {
        if (stat.isSymbolicLink?.()) throw new ZtError('ZT_ACCESS_DENIED', `${target}: symbolic links are not followed`);
        throw new ZtError('ZT_NOT_A_DIRECTORY', `${target}: a path component is not a directory`);
      }
      return { handle, stat };
    } catch (err) {
      await closeQuietly(handle);
      throw err;
    }
  };

  const pinIfExists = async (path: string, expected: string, target: string) => {
    try {
      return await pin(path, expected, target);
    } catch (err) {
      if ((err as { code?: unknown })?.code !== 'ENOENT') throw err;
      return undefined;
    }
  };

  const requireStrong = (what: string, target: string) => {
    if (!strong) throw new ZtError('ZT_EFFECT_FAILED', `${target}: ${what} is not supported by this host's file powers`);
  };

  return harden({ strong, reopenPath, assertOpenedAt, assertNotSpecialDevice, pin, pinIfExists, requireStrong });
};
harden(makeFilePinner);
