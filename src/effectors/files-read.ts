/**
 * READ's three operations on a pinned target: `read` (the bytes of a regular
 * file), `stat` (type, size and mtime of the target itself; a symlink is
 * reported as such, never followed) and `list` (the entries of a directory,
 * types from the directory, nothing followed).
 *
 * Invariants: the bytes returned are those of the inode pinned at check
 * time (files-pin.ts) — the file is reopened through its pinned descriptor
 * and must still be the same inode; reads stop at `maxBytes + 1` bytes
 * actually read, whatever the file claims (/proc-like files report size 0
 * and can be endless), and fail with ZT_TOO_LARGE; a listing is bounded in
 * entries and in bytes. Without O_PATH support `read` falls back to opening
 * with O_NOFOLLOW | O_NONBLOCK and the /proc/self/fd check; `stat` and
 * `list` fail closed.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';
import type { DirEntryType, FileHandleLike, FilePowers, FileStatLike } from './files-powers.js';
import { assertRegular, assertSingleLink, closeQuietly, type FilePinner, type Pinned } from './files-pin.js';

const MAX_ENTRIES = 10_000;

const typeOf = (stat: FileStatLike): DirEntryType => {
  if (stat.isSymbolicLink?.()) return 'symlink';
  if (stat.isFile()) return 'file';
  if (stat.isDirectory?.()) return 'directory';
  return 'other';
};

/** Reads at most `maxBytes` bytes; ZT_TOO_LARGE as soon as one more byte exists. */
export const readBounded = async (handle: FileHandleLike, stat: FileStatLike, maxBytes: number, signal: AbortSignal, target: string) => {
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
harden(readBounded);

export const makeFileReader = (powers: FilePowers, pinner: FilePinner) => {
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_CLOEXEC } = powers.flags;
  const O_NOCTTY = powers.flags.O_NOCTTY ?? 0;
  const { pin } = pinner;

  /** Opens the target's regular file for reading; returns the handle and its stat. */
  const openForRead = async (target: string, allowHardLinks: boolean): Promise<Pinned> => {
    if (pinner.strong) {
      const pinned = await pin(target, target, target);
      try {
        assertRegular(pinned.stat, target);
        assertSingleLink(pinned.stat, target, allowHardLinks);
        const handle = await powers.open(pinner.reopenPath(pinned.handle.fd), O_RDONLY | O_CLOEXEC | O_NOCTTY);
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
      await pinner.assertOpenedAt(handle, target, target);
      const stat = await handle.stat();
      pinner.assertNotSpecialDevice(stat, target);
      assertRegular(stat, target);
      assertSingleLink(stat, target, allowHardLinks);
      return { handle, stat };
    } catch (err) {
      await closeQuietly(handle);
      throw err;
    }
  };

  const statTarget = async (target: string) => {
    pinner.requireStrong('stat', target);
    const { handle, stat } = await pin(target, target, target);
    await closeQuietly(handle);
    return harden({ type: typeOf(stat), size: stat.isFile() ? stat.size : 0, mtimeMs: Math.trunc(stat.mtimeMs ?? 0) });
  };

  const listTarget = async (target: string, maxBytes: number) => {
    pinner.requireStrong('list', target);
    if (!powers.readdir) throw new ZtError('ZT_EFFECT_FAILED', `${target}: list is not supported by this host's file powers`);
    const { handle } = await pin(target, target, target, true);
    try {
      const entries = await powers.readdir(pinner.reopenPath(handle.fd));
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

  return harden({ openForRead, statTarget, listTarget });
};
harden(makeFileReader);
