/**
 * Builds signed audit stores for tests: `n` kernel-like records appended in
 * batches through the log's hot path, signed checkpoints every `every`
 * records and after each size in `at`, and one on close, exactly as the
 * audit vat does.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeAuditLog } from '../src/audit/audit-log.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { CHECKPOINTS_FILE, checkpointName, makeCheckpointer } from '../src/audit/checkpointer.js';
import { openFileStore, RECORDS_FILE } from '../src/audit/file-store.js';
import {
  CHECKPOINT_VKEY_FILE,
  loadOrCreateSigningKey,
  makeNodeFileStorePowers,
  nodeEd25519Verify,
  nodeSha256,
} from '../src/audit/node-powers.js';

const AGENTS = ['alice', 'bob', 'carol'];

/** The i-th record of a plausible session: requests, outcomes, grants, revocations. */
export const sampleRecord = (i: number): Record<string, unknown> => {
  const agentId = AGENTS[i % AGENTS.length]!;
  const requestId = `req-${Math.floor(i / 2)}`;
  switch (i % 10) {
    case 0:
      return { type: 'capability.issued', time: 1_700_000_000_000 + i, capabilityId: `cap-${i}`, holder: agentId, actionType: 'READ', target: `/data/${agentId}/**`, rules: ['read-data'], policyHash: 'sha256:00' };
    case 9:
      return { type: 'capability.revoked', time: 1_700_000_000_000 + i, capabilityId: `cap-${i - 9}`, holder: agentId, reason: 'test', inFlight: [] };
    default:
      return i % 2 === 0
        ? { type: 'request', time: 1_700_000_000_000 + i, requestId, via: 'api', agentId, capabilityId: `cap-${i - (i % 10)}`, actionType: 'READ', target: `/data/${agentId}/f-${i}.txt`, decision: i % 3 === 0 ? 'deny' : 'allow', rules: ['read-data'], policyHash: 'sha256:00' }
        : { type: 'outcome', time: 1_700_000_000_000 + i, requestId, status: 'succeeded', resultDigest: 'ab'.repeat(32) };
  }
};

export interface SignedStore {
  dir: string;
  vkey: string;
  records: Buffer;
  checkpoints: Buffer;
}

export const makeSignedStore = async (
  dir: string,
  n: number,
  options: {
    /** A checkpoint every `every` records, */
    every?: number;
    /** and after each of these sizes. */
    at?: readonly number[];
    batch?: number;
    record?: (i: number) => Record<string, unknown>;
  } = {},
): Promise<SignedStore> => {
  const { every = 0, at = [], batch = 100, record = sampleRecord } = options;
  const checkpointAfter = (size: number) => (every > 0 && size % every === 0) || at.includes(size);
  const nextCheckpoint = (size: number) => {
    let next = every > 0 ? (Math.floor(size / every) + 1) * every : n;
    for (const s of at) if (s > size && s < next) next = s;
    return next;
  };
  const powers = makeNodeFileStorePowers();
  const log = await makeAuditLog({ store: await openFileStore(powers, { dir }), sha256: nodeSha256 });
  const signer = await loadOrCreateSigningKey(dir, pub => checkpointName(nodeSha256, pub));
  const checkpointer = await makeCheckpointer({
    log,
    store: await openFileStore(powers, { dir, fileName: CHECKPOINTS_FILE }),
    signer,
    sha256: nodeSha256,
    verify: nodeEd25519Verify,
    origin: signer.name,
  });
  for (let i = 0; i < n; ) {
    const texts: string[] = [];
    // Batches never straddle a checkpoint boundary.
    const stop = Math.min(n, i + batch, nextCheckpoint(i));
    for (; i < stop; i += 1) texts.push(canonicalJson(record(i)));
    await log.appendTexts(texts);
    if (checkpointAfter(i)) await checkpointer.checkpoint();
  }
  await checkpointer.close();
  await log.close();
  return {
    dir,
    vkey: (await readFile(join(dir, CHECKPOINT_VKEY_FILE), 'utf8')).trim(),
    records: await readFile(join(dir, RECORDS_FILE)),
    checkpoints: await readFile(join(dir, CHECKPOINTS_FILE)),
  };
};
