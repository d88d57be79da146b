/**
 * File effectors (READ, WRITE). Invariant: the bytes read or written are
 * those of the regular file at exactly the approved target path, and nothing
 * outside the target is ever opened for reading or writing.
 *
 * Threats and how each is met:
 * - `..`, absolute paths or spelling tricks in arguments: the kernel matches
 *   only normalized absolute targets (src/paths.ts); this module never joins
 *   agent text onto a path.
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
 *   elsewhere, by device number (ZT_ACCESS_DENIED). /proc files report size
 *   0 and can be endless; reads are bounded by bytes actually read anyway.
 * - Hard links: a file with more than one link may be the same inode as a
 *   file outside the target; reading it, or appending to it in place, is
 *   refused (ZT_ACCESS_DENIED) unless `effect.allowHardLinks`. Atomic
 *   writes replace the directory entry and never touch the old inode, so
 *   for them hard links do not matter.
 * - Oversized data: reads stop at `maxBytes + 1` bytes actually read,
 *   whatever the file claims (ZT_TOO_LARGE); writes are checked before any
 *   byte lands.
 * - Torn writes: a fresh temp file (O_EXCL) in the same directory, fsync,
 *   then rename over the target. Appending in place is allowed only when
 *   the capability says `effect.append: true`.
 * - Errors are redacted: codes and the agent's own target, no other host
 *   path (never the temp file's name, never /proc paths).
 *
 * READ folds in `stat` and `list` (`args.op`), each under the same target
 * check: `stat` reports type, size and mtime of the target itself (a symlink
 * is reported as such, never followed); `list` names the entries of the
 * target directory (types from the directory, nothing followed). Settings:
 * `effect.ops` narrows which of `read`, `stat`, `list` the capability allows.
 *
 * When the powers lack O_PATH support (an older adapter), reads and writes
 * fall back to opening with O_NOFOLLOW | O_NONBLOCK and the same
 * /proc/self/fd check; `stat`, `list` and `append` then fail closed.
 */
import { harden } from '../harden.js';
import { ZtError, assertZt, type ErrorCode } from '../errors.js';
import type { CapabilityConstraints } from '../types.js';
import { optionalBoolean, readSettings, type Settings } from './settings.js';
import type { Effector, EffectContext, GrantValidator } from './types.js';

export interface FileStatLike {
  isFile(): boolean;
  isDirectory?(): boolean;
  isSymbolicLink?(): boolean;
  readonly size: number;
  readonly nlink?: number;
  readonly dev?: number;
  readonly ino?: number;
  readonly mtimeMs?: number;
}

export interface FileHandleLike {
  readonly fd: number;
  stat(): Promise<FileStatLike>;
  readFile(options: { signal: AbortSignal }): Promise<Uint8Array>;
  writeFile(data: Uint8Array, options: { signal: AbortSignal }): Promise<void>;
  /** Positional read (Node's FileHandle.read); used for bounded reads when present. */
  read?(buffer: Uint8Array, offset: number, length: number, position: number | null): Promise<{ bytesRead: number }>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export type DirEntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface FilePowers {
  open(path: string, flags: number, mode?: number): Promise<FileHandleLike>;
  /** Path of an open descriptor as the OS sees it (readlink /proc/self/fd/N). */
  fdPath(fd: number): Promise<string>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  randomSuffix(): string;
  readonly flags: {
    readonly O_RDONLY: number;
    readonly O_WRONLY: number;
    readonly O_CREAT: number;
    readonly O_EXCL: number;
    readonly O_NOFOLLOW: number;
    readonly O_NONBLOCK: number;
    readonly O_CLOEXEC: number;
    /** Linux O_PATH: a descriptor that pins an inode without opening it for I/O. */
    readonly O_PATH?: number;
    readonly O_DIRECTORY?: number;
    readonly O_APPEND?: number;
    readonly O_NOCTTY?: number;
  };
  encode(text: string, encoding: 'utf8' | 'base64'): Uint8Array;
  decode(bytes: Uint8Array, encoding: 'utf8' | 'base64'): string;
  /** A path through which descriptor `fd` can be reopened or used as a directory (/proc/self/fd/N). */
  fdReopenPath?(fd: number): string;
  /** Entries of a directory named by a path (here always an fdReopenPath). */
  readdir?(path: string): Promise<ReadonlyArray<{ readonly name: string; readonly type: DirEntryType }>>;
  /** Device numbers of pseudo file systems (procfs, sysfs) that are never targets. */
  readonly specialDevices?: readonly number[];
}

const OS_ERRORS: Readonly<Record<string, ErrorCode>> = harden({
  ENOENT: 'ZT_NOT_FOUND',
  ENOTDIR: 'ZT_NOT_FOUND',
  EACCES: 'ZT_ACCESS_DENIED',
  EPERM: 'ZT_ACCESS_DENIED',
  EROFS: 'ZT_ACCESS_DENIED',
  ELOOP: 'ZT_ACCESS_DENIED',
  EXDEV: 'ZT_ACCESS_DENIED',
  EISDIR: 'ZT_NOT_A_FILE',
  ENXIO: 'ZT_NOT_A_FILE',
  ENODEV: 'ZT_NOT_A_FILE',
  ETXTBSY: 'ZT_ACCESS_DENIED',
  EFBIG: 'ZT_TOO_LARGE',
  ENOSPC: 'ZT_TOO_LARGE',
  EDQUOT: 'ZT_TOO_LARGE',
});

const WHY: Readonly<Record<string, string>> = harden({
  ELOOP: 'symbolic links are not followed',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a path component is not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EISDIR: 'is a directory',
  ENOSPC: 'no space left on device',
});

/** Translates an OS error into a redacted ZtError that names only the target. */
const translate = (err: unknown, target: string, signal: AbortSignal): ZtError => {
  if (err instanceof ZtError) return err;
  if (signal.aborted) return new ZtError('ZT_REVOKED', 'the action was aborted');
  const osCode = (err as { code?: unknown })?.code;
  const code = (typeof osCode === 'string' && OS_ERRORS[osCode]) || 'ZT_EFFECT_FAILED';
  const why = typeof osCode === 'string' ? (WHY[osCode] ?? osCode) : 'failed';
  return new ZtError(code, `${target}: ${why}`);
};

type Encoding = 'utf8' | 'base64';
const encodingOf = (args: EffectContext['args']): Encoding => {
  const { encoding = 'utf8' } = args as { encoding?: unknown };
  if (encoding !== 'utf8' && encoding !== 'base64') {
    throw new ZtError('ZT_BAD_ARGUMENT', 'encoding must be "utf8" or "base64"');
  }
  return encoding;
};

const READ_SETTINGS = harden(['ops', 'allowHardLinks']);
const WRITE_SETTINGS = harden(['append', 'allowHardLinks', 'mode']);
const READ_OPS = harden(['read', 'stat', 'list']);
type ReadOp = 'read' | 'stat' | 'list';

const readOpsOf = (settings: Settings): ReadonlySet<string> => {
  const { ops } = settings;
  if (ops === undefined) return new Set(READ_OPS);
  assertZt(Array.isArray(ops) && ops.length > 0 && ops.every(op => typeof op === 'string' && READ_OPS.includes(op)), 'ZT_BAD_ARGUMENT', `ops must be a non-empty array of ${READ_OPS.join(', ')}`);
  return new Set(ops as string[]);
};

const modeOf = (settings: Settings): number => {
  const { mode } = settings;
  if (mode === undefined) return 0o644;
  assertZt(typeof mode === 'number' && Number.isInteger(mode) && mode >= 0 && mode <= 0o777, 'ZT_BAD_ARGUMENT', 'mode must be a permission mode between 0 and 0o777 (no setuid, setgid or sticky bits)');
  return mode;
};

const assertPathTarget = (target: string) => {
  assertZt(typeof target === 'string' && target.startsWith('/'), 'ZT_BAD_ARGUMENT', 'file targets are absolute paths');
};

/** Issue-time check of READ settings. */
export const validateReadGrant: GrantValidator = (target: string, constraints: CapabilityConstraints) => {
  assertPathTarget(target);
  const settings = readSettings(constraints, READ_SETTINGS, 'READ');
  readOpsOf(settings);
  optionalBoolean(settings, 'allowHardLinks');
};
harden(validateReadGrant);

/** Issue-time check of WRITE settings. */
export const validateWriteGrant: GrantValidator = (target: string, constraints: CapabilityConstraints) => {
  assertPathTarget(target);
  const settings = readSettings(constraints, WRITE_SETTINGS, 'WRITE');
  optionalBoolean(settings, 'append');
  optionalBoolean(settings, 'allowHardLinks');
  modeOf(settings);
};
harden(validateWriteGrant);

const PSEUDO_ROOTS = harden(['/proc', '/sys', '/dev']);
const assertNotPseudo = (target: string) => {
  for (const root of PSEUDO_ROOTS) {
    if (target === root || target.startsWith(`${root}/`)) {
      throw new ZtError('ZT_ACCESS_DENIED', `${target}: pseudo file systems (${PSEUDO_ROOTS.join(', ')}) are never targets`);
    }
  }
};

const closeQuietly = async (handle: FileHandleLike | undefined) => {
  if (handle) await handle.close().catch(() => undefined);
};

const typeOf = (stat: FileStatLike): DirEntryType => {
  if (stat.isSymbolicLink?.()) return 'symlink';
  if (stat.isFile()) return 'file';
  if (stat.isDirectory?.()) return 'directory';
  return 'other';
};

const parentOf = (target: string) => {
  const cut = target.lastIndexOf('/');
  return { dir: target.slice(0, cut) || '/', name: target.slice(cut + 1) };
};

/**
 * The core checks, shared by both effectors and every operation.
 */
const makeFileCore = (powers: FilePowers) => {
  const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_CLOEXEC } = powers.flags;
  const { O_PATH, O_DIRECTORY, O_APPEND } = powers.flags;
  // O_DIRECTORY is only a marker of a capable adapter; directories are checked by fstat.
  const O_NOCTTY = powers.flags.O_NOCTTY ?? 0;
  const reopen = powers.fdReopenPath;
  const strong = O_PATH !== undefined && O_DIRECTORY !== undefined && reopen !== undefined;
  const special = new Set(powers.specialDevices ?? []);

  /** The descriptor must be reached by exactly `expected`: no symlink anywhere on the way. */
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

  const assertRegular = (stat: FileStatLike, target: string) => {
    if (stat.isSymbolicLink?.()) throw new ZtError('ZT_ACCESS_DENIED', `${target}: symbolic links are not followed`);
    if (!stat.isFile()) throw new ZtError('ZT_NOT_A_FILE', `${target}: not a regular file`);
  };

  const assertSingleLink = (stat: FileStatLike, target: string, allowHardLinks: boolean) => {
    if (!allowHardLinks && (stat.nlink ?? 1) > 1) {
      throw new ZtError('ZT_ACCESS_DENIED', `${target}: the file has other hard links, which may lie outside the target`);
    }
  };

  /**
   * Pins `path` (not following a final symlink) and checks that the OS
   * reaches it as `expected` (its real path): no symlink on the way.
   */
  const pin = async (path: string, expected: string, target: string, directory = false) => {
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

  /** Opens the target's regular file for reading; returns the handle and its stat. */
  const openForRead = async (target: string, allowHardLinks: boolean) => {
    if (strong) {
      const pinned = await pin(target, target, target);
      try {
        assertRegular(pinned.stat, target);
        assertSingleLink(pinned.stat, target, allowHardLinks);
        const handle = await powers.open((reopen as (fd: number) => string)(pinned.handle.fd), O_RDONLY | O_CLOEXEC | O_NOCTTY);
        try {
          const stat = await handle.stat();
          if (stat.ino !== pinned.stat.ino || stat.dev !== pinned.stat.dev) {
            throw new ZtError('ZT_ACCESS_DENIED', `${target}: the file changed while it was opened`);
          }
          return { handle, stat };
        } catch (err) {
          await closeQuietly(handle);
          throw err;
        }
      } finally {
        await closeQuietly(pinned.handle);
      }
    }
    const handle = await powers.open(target, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    try {
      await assertOpenedAt(handle, target, target);
      const stat = await handle.stat();
      assertNotSpecialDevice(stat, target);
      assertRegular(stat, target);
      assertSingleLink(stat, target, allowHardLinks);
      return { handle, stat };
    } catch (err) {
      await closeQuietly(handle);
      throw err;
    }
  };

  /** Reads at most `maxBytes` bytes; ZT_TOO_LARGE as soon as one more byte exists. */
  const readBounded = async (handle: FileHandleLike, stat: FileStatLike, maxBytes: number, signal: AbortSignal, target: string) => {
    if (stat.size > maxBytes) throw new ZtError('ZT_TOO_LARGE', `${target}: ${stat.size} bytes exceeds the limit of ${maxBytes}`);
    if (!handle.read) {
      const bytes = await handle.readFile({ signal });
      if (bytes.byteLength > maxBytes) throw new ZtError('ZT_TOO_LARGE', `${target}: grew past the limit of ${maxBytes} bytes`);
      return bytes;
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      signal.throwIfAborted();
      const want = Math.min(Math.max(stat.size - total, 0) + 1, 1 << 20, maxBytes + 1 - total);
      const buffer = new Uint8Array(Math.max(want, 1));
      const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, total);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) throw new ZtError('ZT_TOO_LARGE', `${target}: more than the limit of ${maxBytes} bytes`);
      chunks.push(bytesRead === buffer.byteLength ? buffer : buffer.subarray(0, bytesRead));
      // A short read of a regular file is its end (at that moment): no extra syscall to see 0.
      if (bytesRead < buffer.byteLength) break;
    }
    if (chunks.length === 1) return chunks[0] as Uint8Array;
    const out = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      out.set(chunk, at);
      at += chunk.byteLength;
    }
    return out;
  };

  const requireStrong = (what: string, target: string) => {
    if (!strong) throw new ZtError('ZT_EFFECT_FAILED', `${target}: ${what} is not supported by this host's file powers`);
  };

  const statTarget = async (target: string) => {
    requireStrong('stat', target);
    const { handle, stat } = await pin(target, target, target);
    await closeQuietly(handle);
    return harden({ type: typeOf(stat), size: stat.isFile() ? stat.size : 0, mtimeMs: Math.trunc(stat.mtimeMs ?? 0) });
  };

  const MAX_ENTRIES = 10_000;
  const listTarget = async (target: string, maxBytes: number) => {
    requireStrong('list', target);
    if (!powers.readdir) throw new ZtError('ZT_EFFECT_FAILED', `${target}: list is not supported by this host's file powers`);
    const { handle } = await pin(target, target, target, true);
    try {
      const entries = await powers.readdir((reopen as (fd: number) => string)(handle.fd));
      if (entries.length > MAX_ENTRIES) throw new ZtError('ZT_TOO_LARGE', `${target}: more than ${MAX_ENTRIES} entries`);
      const out = entries
        .map(e => harden({ name: String(e.name), type: e.type }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      // Names only, but a directory of long names is still data: bound it.
      const size = out.reduce((n, e) => n + e.name.length + 24, 2);
      if (size > maxBytes) throw new ZtError('ZT_TOO_LARGE', `${target}: the listing exceeds the limit of ${maxBytes} bytes`);
      return harden(out);
    } finally {
      await closeQuietly(handle);
    }
  };

  /** Atomic replace: temp file in the pinned directory, fsync, rename. */
  const writeAtomic = async (target: string, bytes: Uint8Array, mode: number, signal: AbortSignal) => {
    const { dir, name } = parentOf(target);
    const tempName = `.${name}.ztaas-${powers.randomSuffix()}.tmp`;
    let dirHandle: FileHandleLike | undefined;
    let base = dir === '/' ? '' : dir;
    if (strong) {
      dirHandle = (await pin(dir, dir, target, true)).handle;
      base = (reopen as (fd: number) => string)(dirHandle.fd);
    }
    const temp = `${base}/${tempName}`;
    const final = `${base}/${name}`;
    let handle: FileHandleLike | undefined;
    let created = false;
    let renamed = false;
    try {
      if (strong) {
        // What is there now must be a regular file or nothing: never replace a directory or a device.
        let existing: { handle: FileHandleLike; stat: FileStatLike } | undefined;
        try {
          existing = await pin(final, target, target);
        } catch (err) {
          if ((err as { code?: unknown })?.code !== 'ENOENT') throw err;
        }
        if (existing) {
          await closeQuietly(existing.handle);
          assertRegular(existing.stat, target);
        }
      }
      signal.throwIfAborted();
      handle = await powers.open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
      created = true;
      // Without O_PATH, the temp file's real path proves the directory is reached without symlinks.
      if (!strong) await assertOpenedAt(handle, temp, target);
      await handle.writeFile(bytes, { signal });
      await handle.sync();
      await handle.close();
      handle = undefined;
      signal.throwIfAborted();
      await powers.rename(temp, final);
      renamed = true;
    } finally {
      await closeQuietly(handle);
      if (created && !renamed) await powers.unlink(temp).catch(() => undefined);
      await closeQuietly(dirHandle);
    }
  };

  /** In-place append to the pinned regular file (created if missing). */
  const writeAppend = async (target: string, bytes: Uint8Array, mode: number, allowHardLinks: boolean, signal: AbortSignal) => {
    requireStrong('append', target);
    if (O_APPEND === undefined) throw new ZtError('ZT_EFFECT_FAILED', `${target}: append is not supported by this host's file powers`);
    const { dir, name } = parentOf(target);
    const dirHandle = (await pin(dir, dir, target, true)).handle;
    let handle: FileHandleLike | undefined;
    try {
      const final = `${(reopen as (fd: number) => string)(dirHandle.fd)}/${name}`;
      let pinned: { handle: FileHandleLike; stat: FileStatLike } | undefined;
      try {
        pinned = await pin(final, target, target);
      } catch (err) {
        if ((err as { code?: unknown })?.code !== 'ENOENT') throw err;
      }
      signal.throwIfAborted();
      if (pinned) {
        try {
          assertRegular(pinned.stat, target);
          assertSingleLink(pinned.stat, target, allowHardLinks);
          handle = await powers.open((reopen as (fd: number) => string)(pinned.handle.fd), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
        } finally {
          await closeQuietly(pinned.handle);
        }
      } else {
        handle = await powers.open(final, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
      }
      const stat = await handle.stat();
      assertRegular(stat, target);
      await handle.writeFile(bytes, { signal });
      await handle.sync();
    } finally {
      await closeQuietly(handle);
      await closeQuietly(dirHandle);
    }
  };

  return { openForRead, readBounded, statTarget, listTarget, writeAtomic, writeAppend };
};

export const makeReadEffector = (powers: FilePowers): Effector => {
  const core = makeFileCore(powers);
  return async ({ target, args, signal, maxBytes, constraints }) => {
    const settings = readSettings(constraints, READ_SETTINGS, 'READ');
    const ops = readOpsOf(settings);
    const allowHardLinks = optionalBoolean(settings, 'allowHardLinks');
    const { op = 'read' } = args as { op?: unknown };
    if (typeof op !== 'string' || !READ_OPS.includes(op)) throw new ZtError('ZT_BAD_ARGUMENT', `op must be one of ${READ_OPS.join(', ')}`);
    if (!ops.has(op)) throw new ZtError('ZT_ARGUMENT_DENIED', `this capability does not allow ${op}`);
    const encoding = encodingOf(args);
    let handle: FileHandleLike | undefined;
    try {
      signal.throwIfAborted();
      assertNotPseudo(target);
      switch (op as ReadOp) {
        case 'stat':
          return await core.statTarget(target);
        case 'list':
          return await core.listTarget(target, maxBytes);
        case 'read': {
          const opened = await core.openForRead(target, allowHardLinks);
          handle = opened.handle;
          const bytes = await core.readBounded(handle, opened.stat, maxBytes, signal, target);
          return powers.decode(bytes, encoding);
        }
      }
    } catch (err) {
      throw translate(err, target, signal);
    } finally {
      await closeQuietly(handle);
    }
  };
};
harden(makeReadEffector);

export const makeWriteEffector = (powers: FilePowers): Effector => {
  const core = makeFileCore(powers);
  return async ({ target, args, signal, maxBytes, constraints }) => {
    const settings = readSettings(constraints, WRITE_SETTINGS, 'WRITE');
    const appendGranted = optionalBoolean(settings, 'append');
    const allowHardLinks = optionalBoolean(settings, 'allowHardLinks');
    const mode = modeOf(settings);
    const encoding = encodingOf(args);
    const { content, append = false } = args as { content?: unknown; append?: unknown };
    if (typeof content !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'write needs content as a string');
    if (typeof append !== 'boolean') throw new ZtError('ZT_BAD_ARGUMENT', 'append must be a boolean');
    if (append && !appendGranted) throw new ZtError('ZT_ARGUMENT_DENIED', 'this capability does not allow appending');
    try {
      assertNotPseudo(target);
      const bytes = powers.encode(content, encoding);
      if (bytes.byteLength > maxBytes) throw new ZtError('ZT_TOO_LARGE', `${target}: ${bytes.byteLength} bytes exceeds the limit of ${maxBytes}`);
      signal.throwIfAborted();
      if (append) await core.writeAppend(target, bytes, mode, allowHardLinks, signal);
      else await core.writeAtomic(target, bytes, mode, signal);
      return harden({ bytes: bytes.byteLength });
    } catch (err) {
      throw translate(err, target, signal);
    }
  };
};
harden(makeWriteEffector);
