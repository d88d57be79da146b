/**
 * Node adapter for the audit subsystem: the only audit module that imports
 * `node:` builtins. It turns `node:crypto`, `node:fs` and the host timers
 * into the narrow powers the pure modules take as arguments, and nothing
 * more: the file powers reach only the folder they are opened on.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { ztError } from '../errors.js';
import { verifierKey } from './checkpoint.js';
import type { Ed25519Verify, NoteSigner } from './checkpoint.js';
import type { Sha256 } from './merkle.js';
import type { FileStorePowers, StoreFileHandle } from './file-store.js';

export const nodeSha256: Sha256 = (...parts) => {
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
};
harden(nodeSha256);

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
    write: async (bytes: Uint8Array, position: number) =>
      (await fh.write(bytes, 0, bytes.length, position)).bytesWritten,
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

export const makeNodeFileStorePowers = (): FileStorePowers =>
  harden({
    makeDir: async (dir: string) => {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    },
    openFile: async (dir: string, name: string) => {
      const path = join(dir, name);
      let fh: fsp.FileHandle;
      try {
        fh = await fsp.open(path, constants.O_RDWR);
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
        fh = await fsp.open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
        await syncDir(dir);
      }
      return wrapHandle(fh);
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
 * Loads the store's Ed25519 signing key, creating it (mode 0600, O_EXCL) on
 * first use, and writes the public verifier key beside it. The private key
 * never leaves this process; callers get only `sign`.
 */
export const loadOrCreateSigningKey = async (
  dir: string,
  name: (publicKey: Uint8Array) => string,
): Promise<NoteSigner & { vkey: string }> => {
  const path = join(dir, CHECKPOINT_KEY_FILE);
  let pem: string;
  try {
    const fh = await fsp.open(path, constants.O_RDONLY);
    try {
      const { mode } = await fh.stat();
      if ((mode & 0o077) !== 0) {
        throw ztError('ZT_AUDIT_UNAVAILABLE', 'the checkpoint key is readable by others; expected mode 0600');
      }
      pem = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
    const { privateKey } = generateKeyPairSync('ed25519');
    pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    const fh = await fsp.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await fh.writeFile(pem);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await syncDir(dir);
  }
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw ztError('ZT_AUDIT_UNAVAILABLE', 'the checkpoint key is not an Ed25519 key');
  }
  const publicKey = rawPublicKey(createPublicKey(privateKey));
  const keyName = name(publicKey);
  const vkey = verifierKey(nodeSha256, keyName, publicKey);
  await fsp.writeFile(join(dir, CHECKPOINT_VKEY_FILE), `${vkey}\n`, { mode: 0o644 });
  return harden({
    name: keyName,
    publicKey,
    vkey,
    sign: (message: Uint8Array) => new Uint8Array(sign(null, message, privateKey)),
  });
};
harden(loadOrCreateSigningKey);
