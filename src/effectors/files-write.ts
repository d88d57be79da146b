/**
 * WRITE's two ways of landing bytes at a pinned target. Invariant: nothing
 * outside the approved target is ever opened for writing, and a reader never
 * sees a torn file.
 *
 * - Atomic replace (the default): a fresh temp file (O_EXCL) in the pinned
 *   directory, written, fsynced, then renamed over the target. What is there
 *   beforehand must be a regular file or nothing — never a directory or a
 *   device. The rename replaces the directory entry and never touches the
 *   old inode, so hard links to it do not matter. A temp file left by a
 *   failure is unlinked; its name never appears in an error.
 * - Append in place, only when the capability says `effect.append: true`:
 *   the existing file is reopened through its pinned descriptor with
 *   O_APPEND (refused if it has other hard links, unless
 *   `effect.allowHardLinks`), or created with O_EXCL if missing. Needs
 *   O_PATH support; without it append fails closed.
 *
 * Sizes are checked by the caller before any byte lands.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';
import type { FileHandleLike, FilePowers } from './files-powers.js';
import { assertRegular, assertSingleLink, closeQuietly, parentOf, type FilePinner } from './files-pin.js';

export const makeFileWriter = (powers: FilePowers, pinner: FilePinner) => {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_CLOEXEC, O_APPEND } = powers.flags;
  const O_NOCTTY = powers.flags.O_NOCTTY ?? 0;
  const { strong, pin, pinIfExists } = pinner;

  /** Atomic replace: temp file in the pinned directory, fsync, rename. */
  const writeAtomic = async (target: string, bytes: Uint8Array, mode: number, signal: AbortSignal) => {
    const { dir, name } = parentOf(target);
    const tempName = `.${name}.ztaas-${powers.randomSuffix()}.tmp`;
    let dirHandle: FileHandleLike | undefined;
    let base = dir === '/' ? '' : dir;
    if (strong) {
      dirHandle = (await pin(dir, dir, target, true)).handle;
      base = pinner.reopenPath(dirHandle.fd);
    }
    const temp = `${base}/${tempName}`;
    const final = `${base}/${name}`;
    let handle: FileHandleLike | undefined;
    let created = false;
    let renamed = false;
    try {
      if (strong) {
        // What is there now must be a regular file or nothing: never replace a directory or a device.
        const existing = await pinIfExists(final, target, target);
        if (existing) {
          await closeQuietly(existing.handle);
          assertRegular(existing.stat, target);
        }
      }
      signal.throwIfAborted();
      handle = await powers.open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
      created = true;
      // Without O_PATH, the temp file's real path proves the directory is reached without symlinks.
      if (!strong) await pinner.assertOpenedAt(handle, temp, target);
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
    pinner.requireStrong('append', target);
    if (O_APPEND === undefined) throw new ZtError('ZT_EFFECT_FAILED', `${target}: append is not supported by this host's file powers`);
    const { dir, name } = parentOf(target);
    const dirHandle = (await pin(dir, dir, target, true)).handle;
    let handle: FileHandleLike | undefined;
    try {
      const final = `${pinner.reopenPath(dirHandle.fd)}/${name}`;
      const pinned = await pinIfExists(final, target, target);
      signal.throwIfAborted();
      if (pinned) {
        try {
          assertRegular(pinned.stat, target);
          assertSingleLink(pinned.stat, target, allowHardLinks);
          handle = await powers.open(pinner.reopenPath(pinned.handle.fd), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
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

  return harden({ writeAtomic, writeAppend });
};
harden(makeFileWriter);
