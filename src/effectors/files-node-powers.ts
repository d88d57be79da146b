/**
 * Node adapter for the file effectors: the only file-effector module that
 * touches `node:fs`. Linux-specific on purpose: O_PATH descriptors and
 * /proc/self/fd are what make the path checks race-free (see files-pin.ts).
 */
import { harden } from '../harden.js';
import { randomBytes } from 'node:crypto';
import { constants, statSync } from 'node:fs';
import { open, readdir, readlink, rename, unlink } from 'node:fs/promises';
import type { DirEntryType, FileHandleLike, FilePowers } from './files-powers.js';

/** Linux open(2) flags Node does not export. */
const LINUX_O_PATH = 0o10000000;
const LINUX_O_CLOEXEC = 0o2000000;

const deviceOf = (path: string): number | undefined => {
  try {
    return statSync(path).dev;
  } catch {
    return undefined;
  }
};

export const makeNodeFileEffectorPowers = (): FilePowers => {
  const c = constants as Record<string, number | undefined>;
  const linux = process.platform === 'linux';
  const specialDevices = linux ? [deviceOf('/proc/self'), deviceOf('/sys/kernel')].filter((d): d is number => d !== undefined) : [];
  return harden({
    open: async (path: string, flags: number, mode?: number) => (await open(path, flags, mode)) as unknown as FileHandleLike,
    fdPath: (fd: number) => readlink(`/proc/self/fd/${fd}`),
    rename: (from: string, to: string) => rename(from, to),
    unlink: (path: string) => unlink(path),
    randomSuffix: () => randomBytes(8).toString('hex'),
    flags: harden({
      O_RDONLY: constants.O_RDONLY,
      O_WRONLY: constants.O_WRONLY,
      O_CREAT: constants.O_CREAT,
      O_EXCL: constants.O_EXCL,
      O_NOFOLLOW: constants.O_NOFOLLOW,
      O_NONBLOCK: constants.O_NONBLOCK,
      O_CLOEXEC: c.O_CLOEXEC ?? LINUX_O_CLOEXEC,
      O_APPEND: constants.O_APPEND,
      O_NOCTTY: constants.O_NOCTTY,
      ...(linux ? { O_PATH: LINUX_O_PATH, O_DIRECTORY: constants.O_DIRECTORY } : {}),
    }),
    encode: (text: string, encoding: 'utf8' | 'base64') => Buffer.from(text, encoding),
    decode: (bytes: Uint8Array, encoding: 'utf8' | 'base64') => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(encoding),
    ...(linux ? { fdReopenPath: (fd: number) => `/proc/self/fd/${fd}` } : {}),
    readdir: async (path: string) =>
      (await readdir(path, { withFileTypes: true })).map(d => {
        const type: DirEntryType = d.isFile() ? 'file' : d.isDirectory() ? 'directory' : d.isSymbolicLink() ? 'symlink' : 'other';
        return harden({ name: d.name, type });
      }),
    specialDevices: harden(specialDevices),
  });
};
harden(makeNodeFileEffectorPowers);
