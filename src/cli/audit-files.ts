/**
 * Reading a store folder for `ztaas audit …`: records (with their exact
 * bytes), the verifier key, checkpoints and the key chain, and the argument
 * helpers every subcommand shares. Read-only: nothing here opens the log
 * for writing or reads the private checkpoint key.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseVerifierKey } from '../audit/checkpoint.js';
import { openChainCheckpoint } from '../audit/keychain.js';
import type { KeyChain } from '../audit/keychain.js';
import type { CheckpointBody } from '../audit/checkpoint.js';
import { CHECKPOINTS_FILE } from '../audit/checkpointer.js';
import { RECORDS_FILE } from '../audit/file-store.js';
import { CHECKPOINT_VKEY_FILE, nodeEd25519Verify, nodeSha256 } from '../audit/node-powers.js';
import { readKeyChain } from '../audit/verify-node.js';
import { ZtError } from '../errors.js';

export type AuditRecord = Record<string, unknown>;

export const auditDir = (store: string) => join(resolve(store), 'audit');

export const bad = (message: string) => new ZtError('ZT_BAD_ARGUMENT', message);

export const readOrNull = async (path: string): Promise<Buffer | undefined> => {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw new ZtError('ZT_AUDIT_UNAVAILABLE', `cannot read ${path}`);
  }
};

/** One stored record: its exact line bytes (no '\n') and its parsed value. */
export interface StoredLine {
  bytes: Uint8Array;
  record: AuditRecord;
}

/**
 * Reads the records file. A final line without '\n' is a write torn by a
 * crash (the store cuts it on its next open) and is left out; any other
 * unparsable line is ZT_AUDIT_CORRUPT naming its index.
 */
export const readLines = async (dir: string): Promise<StoredLine[]> => {
  const file = join(dir, RECORDS_FILE);
  const data = await readOrNull(file);
  if (!data) throw new ZtError('ZT_NOT_FOUND', `no audit log at ${file}`);
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.length);
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const out: StoredLine[] = [];
  for (let from = 0; from < bytes.length; ) {
    const end = bytes.indexOf(0x0a, from);
    if (end === -1) break;
    const line = bytes.subarray(from, end);
    let record: unknown;
    try {
      record = JSON.parse(decoder.decode(line));
    } catch {
      throw new ZtError('ZT_AUDIT_CORRUPT', `record ${out.length} is not JSON`);
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      throw new ZtError('ZT_AUDIT_CORRUPT', `record ${out.length} is not a JSON object`);
    }
    out.push({ bytes: line, record: record as AuditRecord });
    from = end + 1;
  }
  return out;
};

export const readRecords = async (dir: string): Promise<AuditRecord[]> => (await readLines(dir)).map(l => l.record);

export const readVkey = async (dir: string, vkeyFile?: string): Promise<{ text: string; key: { name: string; publicKey: Uint8Array } }> => {
  const path = vkeyFile === undefined ? join(dir, CHECKPOINT_VKEY_FILE) : resolve(vkeyFile);
  const data = await readOrNull(path);
  if (!data) throw new ZtError('ZT_NOT_FOUND', `no verifier key at ${path}`);
  const text = data.toString('utf8').trim();
  const key = parseVerifierKey(nodeSha256, text);
  if (!key) throw bad(`the verifier key in ${path} is malformed`);
  return { text, key };
};

/** Every stored checkpoint note, in file order. */
export const readCheckpointNotes = async (dir: string): Promise<string[]> => {
  const text = (await readOrNull(join(dir, CHECKPOINTS_FILE)))?.toString('utf8') ?? '';
  const lines = text.split('\n');
  lines.pop(); // after the last '\n', or a torn tail
  return lines.map((line, k) => {
    let note: unknown;
    try {
      note = (JSON.parse(line) as { note?: unknown }).note;
    } catch {
      note = undefined;
    }
    if (typeof note !== 'string') throw new ZtError('ZT_AUDIT_CORRUPT', `checkpoint ${k} is malformed`);
    return note;
  });
};

/** The store's verified key chain; ZT_NOT_FOUND when it has no key. */
export const keyChainOf = async (dir: string, trustedVkey?: string): Promise<KeyChain> => {
  const chain = await readKeyChain(dir, trustedVkey);
  if (!chain) throw new ZtError('ZT_NOT_FOUND', `no verifier key at ${join(dir, CHECKPOINT_VKEY_FILE)}`);
  return chain;
};

/** The signed checkpoint of `size` records (default: the latest), verified against the store's key chain. */
export const pickCheckpoint = async (dir: string, size: number | undefined): Promise<{ note: string; body: CheckpointBody }> => {
  const notes = await readCheckpointNotes(dir);
  if (notes.length === 0) throw new ZtError('ZT_NOT_FOUND', 'the store has no signed checkpoint yet');
  const chain = await keyChainOf(dir);
  const opened = notes.map((note, k) => {
    const body = openChainCheckpoint(nodeSha256, nodeEd25519Verify, chain, note);
    if (!body) {
      throw new ZtError('ZT_AUDIT_CORRUPT', `checkpoint ${k} has a bad signature or origin`);
    }
    return { note, body };
  });
  if (size === undefined) return opened[opened.length - 1]!;
  const match = [...opened].reverse().find(c => c.body.size === size);
  if (!match) {
    const sizes = [...new Set(opened.map(c => c.body.size))].join(', ');
    throw new ZtError('ZT_NOT_FOUND', `no signed checkpoint of size ${size} (sizes: ${sizes})`);
  }
  return match;
};

export const parseIndex = (name: string, text: string | undefined, required: boolean): number | undefined => {
  if (text === undefined) {
    if (required) throw bad(`--${name} N is required`);
    return undefined;
  }
  if (!/^(0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw bad(`--${name} must be a non-negative integer`);
  }
  return Number(text);
};

export const parseTime = (name: string, text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(ms)) {
    throw bad(`--${name} must be an ISO 8601 time such as 2025-01-31T12:00:00Z`);
  }
  return ms;
};

export const write = (text: string) => {
  process.stdout.write(text);
};

export const storeOnly = (args: string[], extra: Record<string, { type: 'string' | 'boolean' }> = {}) =>
  parseArgs({ args, options: { store: { type: 'string', default: '.ztaas' }, ...extra }, strict: true }).values as {
    store: string;
  } & Record<string, string | boolean | undefined>;

