/**
 * `verifyStore(dir)`: the node adapter around `verifyAuditContents`. Reads
 * the records file, the checkpoint file and the verifier key of one store
 * folder; reads nothing else.
 *
 * The keys in the folder are only as trustworthy as the folder: an auditor
 * should pass a verifier key obtained out of band (`{ vkey }`), the newest
 * one they hold; the chain must contain it (see `keychain.ts` on anchors).
 */
import { harden } from '../harden.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ztError } from '../errors.js';
import { parseVerifierKey } from './checkpoint.js';
import { CHECKPOINTS_FILE } from './checkpointer.js';
import { RECORDS_FILE } from './file-store.js';
import { CHECKPOINT_VKEY_FILE, nodeEd25519Verify, nodeSha256 } from './node-powers.js';
import { verifyAuditContents } from './verify.js';
import type { VerifyReport } from './verify.js';
import { KEY_CHAIN_FILE, openKeyChain } from './keychain.js';
import type { KeyChain } from './keychain.js';

const readOptional = async (path: string): Promise<Buffer | undefined> => {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw ztError('ZT_AUDIT_UNAVAILABLE', `cannot read ${path}`);
  }
};

/**
 * The store's key chain, verified. With `trustedVkey` (obtained out of
 * band) the chain must contain it. A store without a chain file (its key
 * never rotated, written before key chains) gets a one-key chain from the
 * trusted key or, failing that, the verifier key file in the folder.
 * Undefined when the store has no key at all.
 */
export const readKeyChain = async (dir: string, trustedVkey?: string): Promise<KeyChain | undefined> => {
  const chainText = (await readOptional(join(dir, KEY_CHAIN_FILE)))?.toString('utf8');
  if (chainText !== undefined && chainText !== '') {
    const lines = chainText.split('\n');
    lines.pop(); // after the last '\n', or a torn line that the vat would cut off
    const parsed = lines.map((line, n) => {
      try {
        return JSON.parse(line) as unknown;
      } catch {
        throw ztError('ZT_AUDIT_CORRUPT', `key chain line ${n} is not JSON`, { line: n });
      }
    });
    return openKeyChain(nodeSha256, nodeEd25519Verify, parsed, trustedVkey);
  }
  const vkeyText = trustedVkey ?? (await readOptional(join(dir, CHECKPOINT_VKEY_FILE)))?.toString('utf8');
  if (vkeyText === undefined) return undefined;
  const key = parseVerifierKey(nodeSha256, vkeyText);
  if (!key) throw ztError('ZT_BAD_ARGUMENT', 'the verifier key is malformed');
  return harden({
    origin: key.name,
    keys: [{ vkey: vkeyText.trim(), key, fromSize: 0 }],
    handovers: [],
    ...(trustedVkey === undefined ? {} : { anchor: 0 }),
  });
};
harden(readKeyChain);

export interface VerifyStoreOptions {
  /** A verifier key of the log obtained out of band (the newest you hold); the chain must contain it. */
  vkey?: string;
  /** Checkpoint notes published elsewhere that the records must match. */
  externalCheckpoints?: readonly string[];
}

export const verifyStore = async (dir: string, options: VerifyStoreOptions = {}): Promise<VerifyReport> => {
  const records = (await readOptional(join(dir, RECORDS_FILE))) ?? Buffer.alloc(0);
  const cpText = (await readOptional(join(dir, CHECKPOINTS_FILE)))?.toString('utf8') ?? '';
  if (cpText !== '' && !cpText.endsWith('\n')) {
    throw ztError('ZT_AUDIT_CORRUPT', 'the checkpoint file ends in an incomplete line');
  }
  const checkpointLeaves: (string | undefined)[] = [];
  const checkpointNotes = cpText
    .split('\n')
    .slice(0, -1)
    .map((line, k) => {
      let parsed: { note?: unknown; leaves?: unknown } | undefined;
      try {
        parsed = JSON.parse(line) as { note?: unknown; leaves?: unknown };
      } catch {
        parsed = undefined;
      }
      const note = parsed?.note;
      if (typeof note !== 'string') {
        throw ztError('ZT_AUDIT_CORRUPT', `checkpoint ${k} is malformed`, { checkpoint: k });
      }
      checkpointLeaves.push(typeof parsed?.leaves === 'string' ? parsed.leaves : undefined);
      return note;
    });
  const chain = await readKeyChain(dir, options.vkey);
  return verifyAuditContents({
    records: new Uint8Array(records),
    checkpointNotes,
    checkpointLeaves,
    ...(chain ? { chain } : {}),
    externalNotes: options.externalCheckpoints ?? [],
    sha256: nodeSha256,
    verify: nodeEd25519Verify,
  });
};
harden(verifyStore);
