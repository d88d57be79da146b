/**
 * Node adapter for the audit subsystem: the only audit module that imports
 * `node:` builtins. It turns `node:crypto`, `node:fs` and the host timers
 * into the narrow powers the pure modules take as arguments, and nothing
 * more: the file powers reach only the folder they are opened on, and the
 * audit vat's (`makeNodeAuditVatPowers`) only its one store folder.
 */
import { harden } from '../harden.js';
import * as nodeCrypto from 'node:crypto';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { constants, promises as fsp, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { ztError } from '../errors.js';
import { verifierKey } from './checkpoint.js';
import type { Ed25519Verify, NoteSigner } from './checkpoint.js';
import type { Sha256 } from './merkle.js';
import { openFileStore } from './file-store.js';
import type { FileStore, FileStoreOptions, FileStorePowers, StoreFileHandle } from './file-store.js';

// One-shot `crypto.hash` (Node >= 20.12) is about a third cheaper than a
// `createHash` object for the short inputs a Merkle tree hashes.
const oneShot = (nodeCrypto as unknown as { hash?: (alg: string, data: Uint8Array, enc: 'latin1') => string }).hash;

/** A plain Uint8Array view of a Buffer: no copy, and no Buffer.prototype for harden to reach. */
const plain = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.length);

// Inputs of several parts (a prefix byte and a record, two child hashes) are
// joined in one reused buffer: `crypto.hash` is synchronous, so nothing else
// can touch it meanwhile.
let scratch = new Uint8Array(4096);

export const nodeSha256: Sha256 = (...parts) => {
  if (!oneShot) {
    const h = createHash('sha256');
    for (const part of parts) h.update(part);
    return new Uint8Array(h.digest());
  }
  let data: Uint8Array;
  if (parts.length === 1) {
    data = parts[0]!;
  } else {
    let total = 0;
    for (const part of parts) total += part.length;
    if (total > scratch.length) scratch = new Uint8Array(Math.max(total, 2 * scratch.length));
    let at = 0;
    for (const part of parts) {
      scratch.set(part, at);
      at += part.length;
    }
    data = scratch.subarray(0, total);
  }
  // A 'latin1' digest string turned into bytes costs about half of asking
  // for a Buffer digest (measured in BENCHMARKS.md's audit section).
  return plain(Buffer.from(oneShot('sha256', data, 'latin1'), 'latin1'));
};
harden(nodeSha256);

/** Largest write done synchronously (see `write` below). */
const SYNC_WRITE_MAX = 64 * 1024;

const wrapHandle = (fh: fsp.FileHandle): StoreFileHandle =>
  harden({
    size: async () => (await fh.stat()).size,
    read: async (position: number, length: number) => {
      const buf = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, position + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === length ? buf : buf.subarray(0, got);
    },
    // Small writes (a few records: the latency-bound case) go straight into
    // the page cache on this thread, which costs less than a hop through the
    // thread pool; large batches are written on the pool so this thread can
    // prepare the next one meanwhile.
    write: async (bytes: Uint8Array, position: number) =>
      bytes.length <= SYNC_WRITE_MAX
        ? writeSync(fh.fd, bytes, 0, bytes.length, position)
        : (await fh.write(bytes, 0, bytes.length, position)).bytesWritten,
    datasync: () => fh.datasync(),
    truncate: (length: number) => fh.truncate(length),
    close: () => fh.close(),
  });

/** Makes a freshly created directory entry durable. */
const syncDir = async (dir: string): Promise<void> => {
  const dh = await fsp.open(dir, constants.O_RDONLY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
};

/**
 * An exclusive lock on one store file, held for as long as this process (or
 * worker) keeps it: a listening Unix socket in the Linux abstract namespace,
 * named after the device and inode of the store folder and the file name.
 * Binding is atomic, so two runtimes cannot both hold it; the kernel drops
 * it when its holder closes it, is terminated or is killed (SIGKILL
 * included), so a crash never leaves a stale lock behind. Nothing is
 * served: a connection to it is closed at once.
 *
 * Limits: abstract sockets are per network namespace, so two containers
 * sharing one volume do not see each other's lock; and the folder must be
 * on a local file system (as fdatasync needs anyway).
 */
/** How long a store whose lock is held is waited for before it is refused: a crashed kernel's audit vat finishing its last checkpoint. */
const LOCK_WAIT_MS = 5000;
const LOCK_RETRY_MS = 50;

const tryLock = (address: string): Promise<Server | undefined> =>
  new Promise((resolve, reject) => {
    const server: Server = createServer(socket => socket.destroy());
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') resolve(undefined);
      else reject(err);
    });
    server.listen({ path: address, exclusive: true }, () => resolve(server));
  });

/**
 * A lock already held is waited for, up to LOCK_WAIT_MS: after a host is
 * killed, its audit vat sees its wire end, commits a last checkpoint and
 * exits, and a runtime restarted at once must not be refused for that.
 * A store another live runtime holds is still refused
 * (ZT_AUDIT_UNAVAILABLE) once the wait is over.
 */
const lockStoreFile = async (dir: string, name: string): Promise<() => Promise<void>> => {
  const { dev, ino } = await fsp.stat(dir);
  const address = `\0ztaas-audit-lock:${dev}:${ino}:${name}`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  let server = await tryLock(address);
  while (server === undefined && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, LOCK_RETRY_MS));
    server = await tryLock(address);
  }
  if (server === undefined) throw ztError('ZT_AUDIT_UNAVAILABLE', `the audit store ${join(dir, name)} is in use by another runtime`);
  const held = server;
  // The lock alone never keeps a process or worker alive.
  held.unref();
  return () => new Promise<void>(resolve => held.close(() => resolve()));
};

export const makeNodeFileStorePowers = (): FileStorePowers =>
  harden({
    lock: lockStoreFile,
    makeDir: async (dir: string) => {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    },
    openFile: async (dir: string, name: string, options?: { create?: boolean }) => {
      const path = join(dir, name);
      let fh: fsp.FileHandle;
      try {
        fh = await fsp.open(path, constants.O_RDWR);
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'ENOENT' || options?.create === false) throw err;
        fh = await fsp.open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
        await syncDir(dir);
      }
      return wrapHandle(fh);
    },
    createFile: async (dir: string, name: string, bytes: Uint8Array) => {
      const fh = await fsp.open(join(dir, name), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await syncDir(dir);
    },
    setTimer: (fn: () => void, ms: number) => {
      const id = setTimeout(fn, ms);
      return () => clearTimeout(id);
    },
  });
harden(makeNodeFileStorePowers);

// ---------------------------------------------------------------------------
// Ed25519 checkpoint key: generated on first open, kept in the store folder.

export const CHECKPOINT_KEY_FILE = 'checkpoint-key.pem';
export const CHECKPOINT_VKEY_FILE = 'checkpoint-key.vkey';

const rawPublicKey = (key: KeyObject): Uint8Array => {
  const jwk = key.export({ format: 'jwk' }) as { x?: string };
  return new Uint8Array(Buffer.from(String(jwk.x), 'base64url'));
};

export const nodeEd25519Verify: Ed25519Verify = (publicKey, message, signature) => {
  try {
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') },
      format: 'jwk',
    });
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
};
harden(nodeEd25519Verify);

/**
 * Replaces `name` in `dir` with `text` unless it already holds exactly that:
 * temporary file, fsync, rename, so a crash leaves the old or the new
 * content, never a truncated file.
 */
const writeFileAtomically = async (dir: string, name: string, text: string, mode: number): Promise<void> => {
  const path = join(dir, name);
  const current = await fsp.readFile(path, 'utf8').catch(() => undefined);
  if (current === text) return;
  const tmp = join(dir, `${name}.${process.pid}.${Date.now()}.tmp`);
  const fh = await fsp.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, path);
  await syncDir(dir);
};

type NodeSigner = NoteSigner & { vkey: string };

/** A fresh Ed25519 private key, PKCS#8 PEM. */
const newPrivateKeyPem = (): string =>
  generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;

const signerFromPem = (pem: string, name: (publicKey: Uint8Array) => string): NodeSigner => {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw ztError('ZT_AUDIT_UNAVAILABLE', 'the checkpoint key is not an Ed25519 key');
  }
  const publicKey = rawPublicKey(createPublicKey(privateKey));
  const keyName = name(publicKey);
  const vkey = verifierKey(nodeSha256, keyName, publicKey);
  return harden({
    name: keyName,
    publicKey,
    vkey,
    sign: (message: Uint8Array) => new Uint8Array(sign(null, message, privateKey)),
  });
};

/** Reads a private key file, refusing one that others can read. Undefined if absent. */
const readPrivateKeyFile = async (path: string): Promise<string | undefined> => {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, constants.O_RDONLY);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const { mode } = await fh.stat();
    if ((mode & 0o077) !== 0) {
      throw ztError('ZT_AUDIT_UNAVAILABLE', `${path} is readable by others; expected mode 0600`);
    }
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
};

/** The successor key of a rotation in progress, kept beside the current one. */
export const NEXT_CHECKPOINT_KEY_FILE = 'checkpoint-key.next.pem';

/**
 * Key rotation, step 1: generates the successor key into its own file
 * (mode 0600, written atomically: a crash never leaves a partial key).
 * Refuses if one is already there.
 */
export const createNextSigningKey = async (
  dir: string,
  name: (publicKey: Uint8Array) => string,
): Promise<NodeSigner> => {
  const path = join(dir, NEXT_CHECKPOINT_KEY_FILE);
  const exists = await fsp.stat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
  );
  if (exists) throw ztError('ZT_AUDIT_UNAVAILABLE', 'a key rotation is already in progress');
  const pem = newPrivateKeyPem();
  await writeFileAtomically(dir, NEXT_CHECKPOINT_KEY_FILE, pem, 0o600);
  return signerFromPem(pem, name);
};

/** The successor key left by an unfinished rotation, if any. */
export const loadNextSigningKey = async (
  dir: string,
  name: (publicKey: Uint8Array) => string,
): Promise<NodeSigner | undefined> => {
  const pem = await readPrivateKeyFile(join(dir, NEXT_CHECKPOINT_KEY_FILE));
  return pem === undefined ? undefined : signerFromPem(pem, name);
};

/**
 * Key rotation, last step: the successor replaces the current key (an
 * atomic rename) and its verifier key is published beside it.
 */
export const activateNextSigningKey = async (dir: string, next: NodeSigner): Promise<void> => {
  await fsp.rename(join(dir, NEXT_CHECKPOINT_KEY_FILE), join(dir, CHECKPOINT_KEY_FILE));
  await syncDir(dir);
  await writeFileAtomically(dir, CHECKPOINT_VKEY_FILE, `${next.vkey}\n`, 0o644);
};

/** Drops the successor key of a rotation that never committed. */
export const discardNextSigningKey = async (dir: string): Promise<void> => {
  await fsp.unlink(join(dir, NEXT_CHECKPOINT_KEY_FILE));
  await syncDir(dir);
};

/** The store's signing key, or undefined if it has none; changes nothing. */
export const loadSigningKey = async (
  dir: string,
  name: (publicKey: Uint8Array) => string,
): Promise<NodeSigner | undefined> => {
  const pem = await readPrivateKeyFile(join(dir, CHECKPOINT_KEY_FILE));
  return pem === undefined ? undefined : signerFromPem(pem, name);
};
harden(loadSigningKey);

/** Writes the verifier key file beside the key, unless it already holds it. */
export const publishVerifierKey = (dir: string, signer: NodeSigner): Promise<void> =>
  writeFileAtomically(dir, CHECKPOINT_VKEY_FILE, `${signer.vkey}\n`, 0o644);
harden(publishVerifierKey);

const STALE_TMP = /^checkpoint-key\.(?:pem|next\.pem|vkey)\.[0-9]+\.[0-9]+\.tmp$/;

/**
 * Removes the temporary key files a kill left behind (each may hold a whole
 * private key that was never put in place). Only under the store's lock:
 * no other writer can be creating one meanwhile.
 */
export const removeStaleKeyFiles = async (dir: string): Promise<string[]> => {
  const removed: string[] = [];
  const names = await fsp.readdir(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
  for (const name of names) {
    if (!STALE_TMP.test(name)) continue;
    await fsp.unlink(join(dir, name));
    removed.push(name);
  }
  if (removed.length > 0) await syncDir(dir);
  return removed;
};
harden(removeStaleKeyFiles);

/**
 * Creates the store's first signing key, with a commit point: the key is
 * written whole to a temporary file (mode 0600, synced); `prepare` then
 * makes the log's first durable state with it (its key chain and a signed
 * checkpoint of the empty log); only then is the key linked into place
 * (link(2) fails if a key exists) and its verifier key published. So a key
 * in place always has signed a checkpoint, and a kill before that leaves
 * no key at all (the temporary file is removed on the next open).
 */
export const createSigningKey = async (
  dir: string,
  name: (publicKey: Uint8Array) => string,
  prepare: (signer: NodeSigner) => Promise<void>,
): Promise<NodeSigner> => {
  const pem = newPrivateKeyPem();
  const signer = signerFromPem(pem, name);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `${CHECKPOINT_KEY_FILE}.${process.pid}.${Date.now()}.tmp`);
  const fh = await fsp.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    try {
      await fh.writeFile(pem);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await prepare(signer);
    await fsp.link(tmp, join(dir, CHECKPOINT_KEY_FILE));
  } finally {
    await fsp.unlink(tmp).catch(() => {});
  }
  await syncDir(dir);
  await publishVerifierKey(dir, signer);
  return signer;
};
harden(createSigningKey);

/**
 * Loads the store's Ed25519 signing key, creating it (mode 0600, O_EXCL) on
 * first use, and writes the public verifier key beside it. The private key
 * never leaves this process; callers get only `sign`.
 */
export const loadOrCreateSigningKey = async (
  dir: string,
  name: (publicKey: Uint8Array) => string,
): Promise<NodeSigner> => {
  const path = join(dir, CHECKPOINT_KEY_FILE);
  let pem = await readPrivateKeyFile(path);
  if (pem === undefined) {
    pem = newPrivateKeyPem();
    // Written whole under a temporary name, then linked into place: a crash
    // never leaves an empty or partial key, and link(2) fails if another
    // process created the key meanwhile (then that key is used).
    const tmp = join(dir, `${CHECKPOINT_KEY_FILE}.${process.pid}.${Date.now()}.tmp`);
    const fh = await fsp.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await fh.writeFile(pem);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await fsp.link(tmp, path);
    } catch (linkErr) {
      if ((linkErr as { code?: unknown }).code !== 'EEXIST') throw linkErr;
      pem = await fsp.readFile(path, 'utf8');
    } finally {
      await fsp.unlink(tmp).catch(() => {});
    }
    await syncDir(dir);
  }
  const signer = signerFromPem(pem, name);
  await writeFileAtomically(dir, CHECKPOINT_VKEY_FILE, `${signer.vkey}\n`, 0o644);
  return signer;
};
harden(loadOrCreateSigningKey);

// ---------------------------------------------------------------------------
// The audit vat's powers, all bound to its one store folder.

/**
 * What the audit vat may touch, built by its worker shell: append-only
 * files and checkpoint keys in `dir` and nowhere else (the vat never sees
 * a path), hashing and signature checks, the clock and a timer.
 */
export const makeNodeAuditVatPowers = (dir: string) => {
  const filePowers = makeNodeFileStorePowers();
  return harden({
    /** Opens (creating, locking and recovering) one append-only file of the folder. */
    openStore: (options: Omit<FileStoreOptions, 'dir'>): Promise<FileStore> =>
      openFileStore(filePowers, { ...options, dir }),
    keys: harden({
      load: (name: (publicKey: Uint8Array) => string) => loadSigningKey(dir, name),
      create: (name: (publicKey: Uint8Array) => string, prepare: (signer: NodeSigner) => Promise<void>) =>
        createSigningKey(dir, name, prepare),
      publish: (signer: NodeSigner) => publishVerifierKey(dir, signer),
      removeStale: () => removeStaleKeyFiles(dir),
      loadNext: (name: (publicKey: Uint8Array) => string) => loadNextSigningKey(dir, name),
      createNext: (name: (publicKey: Uint8Array) => string) => createNextSigningKey(dir, name),
      activateNext: (next: NodeSigner) => activateNextSigningKey(dir, next),
      discardNext: () => discardNextSigningKey(dir),
    }),
    sha256: nodeSha256,
    verify: nodeEd25519Verify,
    now: () => Date.now(),
    setTimer: filePowers.setTimer,
  });
};
harden(makeNodeAuditVatPowers);
