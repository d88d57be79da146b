/**
 * File effectors (READ, WRITE). Invariant: the bytes read or written are
 * those of the regular file at exactly the approved target path.
 *
 * - The final component is opened with O_NOFOLLOW; after opening, the path
 *   of the open descriptor (as the OS reports it through /proc/self/fd) must
 *   equal the target, so a symlink anywhere in the path, including one
 *   swapped in between check and use, is refused (ZT_ACCESS_DENIED).
 * - Only regular files: FIFOs, devices, sockets and directories are refused
 *   (ZT_NOT_A_FILE) before any blocking read. O_NONBLOCK keeps opening a FIFO
 *   from hanging.
 * - Writes are atomic: a fresh temp file in the same directory, then rename.
 * - Errors are redacted: codes and the agent's own target, no other host path.
 */
import { ZtError, type ErrorCode } from '../errors.js';
import type { Effector, EffectContext } from './types.js';

export interface FileHandleLike {
  readonly fd: number;
  stat(): Promise<{ isFile(): boolean; size: number }>;
  readFile(options: { signal: AbortSignal }): Promise<Uint8Array>;
  writeFile(data: Uint8Array, options: { signal: AbortSignal }): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

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
  };
  encode(text: string, encoding: 'utf8' | 'base64'): Uint8Array;
  decode(bytes: Uint8Array, encoding: 'utf8' | 'base64'): string;
}

const OS_ERRORS: Readonly<Record<string, ErrorCode>> = harden({
  ENOENT: 'ZT_NOT_FOUND',
  ENOTDIR: 'ZT_NOT_FOUND',
  EACCES: 'ZT_ACCESS_DENIED',
  EPERM: 'ZT_ACCESS_DENIED',
  EROFS: 'ZT_ACCESS_DENIED',
  ELOOP: 'ZT_ACCESS_DENIED',
  EISDIR: 'ZT_NOT_A_FILE',
  ENXIO: 'ZT_NOT_A_FILE',
  EFBIG: 'ZT_TOO_LARGE',
});

/** Translates an OS error into a redacted ZtError that names only the target. */
const translate = (err: unknown, target: string, signal: AbortSignal): ZtError => {
  if (err instanceof ZtError) return err;
  if (signal.aborted) return new ZtError('ZT_REVOKED', 'the action was aborted');
  const osCode = (err as { code?: unknown })?.code;
  const code = (typeof osCode === 'string' && OS_ERRORS[osCode]) || 'ZT_EFFECT_FAILED';
  const why = osCode === 'ELOOP' ? 'symbolic links are not followed' : typeof osCode === 'string' ? osCode : 'failed';
  return new ZtError(code, `${target}: ${why}`);
};

const encodingOf = (args: EffectContext['args']): 'utf8' | 'base64' => {
  const { encoding = 'utf8' } = args as { encoding?: unknown };
  if (encoding !== 'utf8' && encoding !== 'base64') {
    throw new ZtError('ZT_BAD_ARGUMENT', 'encoding must be "utf8" or "base64"');
  }
  return encoding;
};

const assertOpenedAt = async (powers: FilePowers, handle: FileHandleLike, expected: string, target: string) => {
  const actual = await powers.fdPath(handle.fd);
  if (actual !== expected) {
    throw new ZtError('ZT_ACCESS_DENIED', `${target}: path resolves through a symbolic link`);
  }
};

const closeQuietly = async (handle: FileHandleLike | undefined) => {
  if (handle) await handle.close().catch(() => undefined);
};

export const makeReadEffector = (powers: FilePowers): Effector => {
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_CLOEXEC } = powers.flags;
  return async ({ target, args, signal, maxBytes }) => {
    const encoding = encodingOf(args);
    let handle: FileHandleLike | undefined;
    try {
      signal.throwIfAborted();
      handle = await powers.open(target, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      await assertOpenedAt(powers, handle, target, target);
      const stat = await handle.stat();
      if (!stat.isFile()) throw new ZtError('ZT_NOT_A_FILE', `${target}: not a regular file`);
      if (stat.size > maxBytes) throw new ZtError('ZT_TOO_LARGE', `${target}: ${stat.size} bytes exceeds the limit of ${maxBytes}`);
      const bytes = await handle.readFile({ signal });
      if (bytes.byteLength > maxBytes) throw new ZtError('ZT_TOO_LARGE', `${target}: grew past the limit of ${maxBytes} bytes`);
      return powers.decode(bytes, encoding);
    } catch (err) {
      throw translate(err, target, signal);
    } finally {
      await closeQuietly(handle);
    }
  };
};
harden(makeReadEffector);

export const makeWriteEffector = (powers: FilePowers): Effector => {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_CLOEXEC } = powers.flags;
  return async ({ target, args, signal, maxBytes }) => {
    const encoding = encodingOf(args);
    const { content } = args as { content?: unknown };
    if (typeof content !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'write needs content as a string');
    const cut = target.lastIndexOf('/');
    const dir = target.slice(0, cut) || '/';
    const temp = `${dir === '/' ? '' : dir}/.${target.slice(cut + 1)}.ztaas-${powers.randomSuffix()}.tmp`;
    let handle: FileHandleLike | undefined;
    let renamed = false;
    try {
      const bytes = powers.encode(content, encoding);
      if (bytes.byteLength > maxBytes) throw new ZtError('ZT_TOO_LARGE', `${target}: ${bytes.byteLength} bytes exceeds the limit of ${maxBytes}`);
      signal.throwIfAborted();
      handle = await powers.open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644);
      // The temp file's real path proves the directory is reached without symlinks.
      await assertOpenedAt(powers, handle, temp, target);
      await handle.writeFile(bytes, { signal });
      await handle.sync();
      await handle.close();
      handle = undefined;
      signal.throwIfAborted();
      await powers.rename(temp, target);
      renamed = true;
      return harden({ bytes: bytes.byteLength });
    } catch (err) {
      throw translate(err, target, signal);
    } finally {
      await closeQuietly(handle);
      if (!renamed) await powers.unlink(temp).catch(() => undefined);
    }
  };
};
harden(makeWriteEffector);
