/**
 * File effectors (READ, WRITE). Invariant: the bytes read or written are
 * those of the regular file at exactly the approved target path, and nothing
 * outside the target is ever opened for reading or writing.
 *
 * This module checks an invocation's settings and arguments and hands the
 * work to parts with one job each:
 * - files-settings.ts: settings and arguments, at grant and at use;
 * - files-pin.ts: the target is pinned by descriptor, with no symlink on the
 *   way and no pseudo, special or (unless allowed) hard-linked file;
 * - files-read.ts: bounded reads, `stat` and `list` through the pinned
 *   descriptor;
 * - files-write.ts: atomic replace, or append in place when granted;
 * - files-errors.ts: redacted errors — codes and the agent's own target,
 *   no other host path.
 *
 * Threats met here: `..`, absolute paths or spelling tricks in arguments
 * (the kernel matches only normalized absolute targets, src/paths.ts; this
 * module never joins agent text onto a path); /proc, /sys and /dev, refused
 * by path before anything is opened; oversized writes, refused before any
 * byte lands (ZT_TOO_LARGE).
 *
 * READ folds in `stat` and `list` (`args.op`), each under the same target
 * check. Settings: `effect.ops` narrows which of `read`, `stat`, `list` the
 * capability allows.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';
import { optionalBoolean, readSettings } from './settings.js';
import type { Effector } from './types.js';
import type { FileHandleLike, FilePowers } from './files-powers.js';
import { translateFileError } from './files-errors.js';
import { READ_OPS, READ_SETTINGS, WRITE_SETTINGS, encodingOf, modeOf, readOpsOf, type ReadOp } from './files-settings.js';
import { assertNotPseudo, closeQuietly, makeFilePinner } from './files-pin.js';
import { makeFileReader, readBounded } from './files-read.js';
import { makeFileWriter } from './files-write.js';

export type { DirEntryType, FileHandleLike, FilePowers, FileStatLike } from './files-powers.js';
export { validateReadGrant, validateWriteGrant } from './files-settings.js';

export const makeReadEffector = (powers: FilePowers): Effector => {
  const reader = makeFileReader(powers, makeFilePinner(powers));
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
          return await reader.statTarget(target);
        case 'list':
          return await reader.listTarget(target, maxBytes);
        case 'read': {
          const opened = await reader.openForRead(target, allowHardLinks);
          handle = opened.handle;
          const bytes = await readBounded(handle, opened.stat, maxBytes, signal, target);
          return powers.decode(bytes, encoding);
        }
      }
    } catch (err) {
      throw translateFileError(err, target, signal);
    } finally {
      await closeQuietly(handle);
    }
  };
};
harden(makeReadEffector);

export const makeWriteEffector = (powers: FilePowers): Effector => {
  const writer = makeFileWriter(powers, makeFilePinner(powers));
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
      if (append) await writer.writeAppend(target, bytes, mode, allowHardLinks, signal);
      else await writer.writeAtomic(target, bytes, mode, signal);
      return harden({ bytes: bytes.byteLength });
    } catch (err) {
      throw translateFileError(err, target, signal);
    }
  };
};
harden(makeWriteEffector);
