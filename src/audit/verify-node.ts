/**
 * `verifyStore(dir)`: the node adapter around `verifyAuditContents`. Reads
 * the records file, the checkpoint file and the verifier key of one store
 * folder; reads nothing else.
 *
 * The verifier key in the folder is only as trustworthy as the folder: an
 * auditor should pass the key obtained out of band (`{ vkey }`).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ztError } from '../errors.js';
import { parseVerifierKey } from './checkpoint.js';
import { CHECKPOINTS_FILE } from './checkpointer.js';
import { RECORDS_FILE } from './file-store.js';
import { CHECKPOINT_VKEY_FILE, nodeEd25519Verify, nodeSha256 } from './node-powers.js';
import { verifyAuditContents } from './verify.js';
import type { VerifyReport } from './verify.js';

const readOptional = async (path: string): Promise<Buffer | undefined> => {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw ztError('ZT_AUDIT_UNAVAILABLE', `cannot read ${path}`);
  }
};

export const verifyStore = async (dir: string, options: { vkey?: string } = {}): Promise<VerifyReport> => {
  const records = (await readOptional(join(dir, RECORDS_FILE))) ?? Buffer.alloc(0);
  const cpText = (await readOptional(join(dir, CHECKPOINTS_FILE)))?.toString('utf8') ?? '';
  if (cpText !== '' && !cpText.endsWith('\n')) {
    throw ztError('ZT_AUDIT_CORRUPT', 'the checkpoint file ends in an incomplete line');
  }
  const checkpointNotes = cpText
    .split('\n')
    .slice(0, -1)
    .map((line, k) => {
      let note: unknown;
      try {
        note = (JSON.parse(line) as { note?: unknown }).note;
      } catch {
        note = undefined;
      }
      if (typeof note !== 'string') {
        throw ztError('ZT_AUDIT_CORRUPT', `checkpoint ${k} is malformed`, { checkpoint: k });
      }
      return note;
    });
  const vkeyText = options.vkey ?? (await readOptional(join(dir, CHECKPOINT_VKEY_FILE)))?.toString('utf8');
  let key: { name: string; publicKey: Uint8Array } | undefined;
  if (vkeyText !== undefined) {
    key = parseVerifierKey(nodeSha256, vkeyText);
    if (!key) throw ztError('ZT_BAD_ARGUMENT', 'the verifier key is malformed');
  }
  return verifyAuditContents({
    records: new Uint8Array(records),
    checkpointNotes,
    ...(key ? { key } : {}),
    sha256: nodeSha256,
    verify: nodeEd25519Verify,
  });
};
harden(verifyStore);
