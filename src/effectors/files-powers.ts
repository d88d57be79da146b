/**
 * What the file effectors may touch: the shape of the powers record a host
 * adapter (files-node-powers.ts) builds from `node:fs`. Types only — nothing
 * here opens a file. The effectors reach the file system through these
 * powers and nothing else, so a test can hand them a fake one.
 *
 * O_PATH, `fdReopenPath` and `readdir` are optional: an adapter without them
 * gets the weaker fallback described in files-pin.ts, under which `stat`,
 * `list` and `append` fail closed.
 */

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
