/**
 * Signed checkpoints in the C2SP `tlog-checkpoint` signed-note format.
 *
 *     <origin>\n<tree size>\n<base64 root hash>\n
 *     \n
 *     — <key name> <base64(key ID ‖ Ed25519 signature)>\n
 *
 * The signature covers the note text (the first three lines, final newline
 * included). Key ID = first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public
 * key), 0x01 naming Ed25519 (C2SP signed-note).
 *
 * Invariant: a checkpoint is only ever made for records that are already
 * durable (the vat syncs before signing), so a verified checkpoint commits
 * to history that exists on disk. Whoever later holds the folder cannot
 * rewrite, delete or reorder those records without the checkpoint failing.
 *
 * Pure: SHA-256, signing and verification are passed in.
 */
import { harden } from '../harden.js';
import type { Sha256 } from './merkle.js';
import { HASH_SIZE } from './merkle.js';

const ED25519_TYPE = 0x01;
const EM_DASH = '\u2014';

export interface NoteSigner {
  readonly name: string;
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

/** Checks an Ed25519 signature; throws nothing. */
export type Ed25519Verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean;

export interface CheckpointBody {
  origin: string;
  size: number;
  rootHash: Uint8Array;
}

export const toBase64 = (bytes: Uint8Array): string => {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
};
harden(toBase64);

/** Strict standard base64; undefined if malformed. */
export const fromBase64 = (text: string): Uint8Array | undefined => {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) return undefined;
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
  return out;
};
harden(fromBase64);

const isKeyName = (name: string) => name.length > 0 && !/[\s+]/u.test(name);

export const noteKeyId = (sha256: Sha256, name: string, publicKey: Uint8Array): Uint8Array =>
  sha256(new TextEncoder().encode(name), Uint8Array.of(0x0a, ED25519_TYPE), publicKey).slice(0, 4);
harden(noteKeyId);

/** The verifier key string: `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`. */
export const verifierKey = (sha256: Sha256, name: string, publicKey: Uint8Array): string => {
  const id = [...noteKeyId(sha256, name, publicKey)].map(b => b.toString(16).padStart(2, '0')).join('');
  const typed = new Uint8Array(1 + publicKey.length);
  typed[0] = ED25519_TYPE;
  typed.set(publicKey, 1);
  return `${name}+${id}+${toBase64(typed)}`;
};
harden(verifierKey);

/** Parses a verifier key string; undefined if it is not an Ed25519 key. */
export const parseVerifierKey = (
  sha256: Sha256,
  vkey: string,
): { name: string; publicKey: Uint8Array } | undefined => {
  // The base64 part may itself contain '+'.
  const m = /^([^\s+]+)\+([0-9a-f]{8})\+(\S+)$/.exec(vkey.trim());
  if (!m) return undefined;
  const [, name, idHex, b64] = m as unknown as [string, string, string, string];
  const typed = fromBase64(b64);
  if (!isKeyName(name) || !typed || typed.length !== 33 || typed[0] !== ED25519_TYPE) return undefined;
  const publicKey = typed.slice(1);
  return verifierKey(sha256, name, publicKey) === `${name}+${idHex}+${b64}` ? { name, publicKey } : undefined;
};
harden(parseVerifierKey);

export const checkpointText = ({ origin, size, rootHash }: CheckpointBody): string =>
  `${origin}\n${size}\n${toBase64(rootHash)}\n`;
harden(checkpointText);

/**
 * Signs a note text (ending in '\n') with each signer in turn: one
 * signature line per signer, in the given order.
 */
export const signNote = (sha256: Sha256, signers: readonly NoteSigner[], text: string): string => {
  if (!text.endsWith('\n') || text.includes('\n\n')) throw RangeError('bad note text');
  let sigLines = '';
  for (const signer of signers) {
    if (!isKeyName(signer.name)) throw RangeError('bad key name');
    const sig = signer.sign(new TextEncoder().encode(text));
    const id = noteKeyId(sha256, signer.name, signer.publicKey);
    const blob = new Uint8Array(id.length + sig.length);
    blob.set(id);
    blob.set(sig, id.length);
    sigLines += `${EM_DASH} ${signer.name} ${toBase64(blob)}\n`;
  }
  return `${text}\n${sigLines}`;
};
harden(signNote);

export const signCheckpoint = (
  sha256: Sha256,
  signer: NoteSigner | readonly NoteSigner[],
  body: CheckpointBody,
  extensions: readonly string[] = [],
): string => {
  if (body.origin === '' || body.origin.includes('\n') || extensions.some(e => e === '' || e.includes('\n'))) {
    throw RangeError('bad checkpoint origin or extension line');
  }
  const signers = Array.isArray(signer) ? (signer as readonly NoteSigner[]) : [signer as NoteSigner];
  return signNote(sha256, signers, checkpointText(body) + extensions.map(e => `${e}\n`).join(''));
};
harden(signCheckpoint);

/**
 * Reads a checkpoint note's body without checking any signature: to learn
 * which size (and so which key) it claims before verifying it. Undefined
 * if malformed. Extension lines (after the third) are returned as they are.
 */
export const peekCheckpoint = (note: string): (CheckpointBody & { extensions: string[] }) | undefined => {
  const split = note.lastIndexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) return undefined;
  const lines = note.slice(0, split).split('\n');
  if (lines.length < 3) return undefined;
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) return undefined;
  const size = Number(sizeText);
  const rootHash = fromBase64(rootText);
  if (!Number.isSafeInteger(size) || !rootHash || rootHash.length !== HASH_SIZE || origin === '') return undefined;
  return { origin, size, rootHash, extensions };
};
harden(peekCheckpoint);

/**
 * Verifies a signed checkpoint against one trusted key and parses it.
 * Returns undefined unless the note is well formed and carries a valid
 * signature by that key (other signers' lines are ignored, per signed-note).
 */
export const openCheckpoint = (
  sha256: Sha256,
  verify: Ed25519Verify,
  key: { name: string; publicKey: Uint8Array },
  note: string,
): CheckpointBody | undefined => {
  const split = note.lastIndexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) return undefined;
  const text = note.slice(0, split + 1);
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) return undefined;
  const [origin, sizeText, rootText] = lines as [string, string, string];
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) return undefined;
  const size = Number(sizeText);
  const rootHash = fromBase64(rootText);
  if (!Number.isSafeInteger(size) || !rootHash || rootHash.length !== HASH_SIZE || origin === '') {
    return undefined;
  }
  const wantId = noteKeyId(sha256, key.name, key.publicKey);
  const message = new TextEncoder().encode(text);
  for (const sigLine of note.slice(split + 2, -1).split('\n')) {
    const m = /^\u2014 (\S+) (\S+)$/u.exec(sigLine);
    if (!m || m[1] !== key.name) continue;
    const blob = fromBase64(m[2]!);
    if (!blob || blob.length !== 4 + 64) continue;
    if (!blob.subarray(0, 4).every((b, i) => b === wantId[i])) continue;
    if (verify(key.publicKey, message, blob.subarray(4))) return { origin, size, rootHash };
  }
  return undefined;
};
harden(openCheckpoint);
