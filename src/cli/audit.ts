/**
 * `ztaas audit …`: forensic commands on a store folder. Every command reads
 * `<store>/audit` (records, checkpoints, verifier key) and never opens the
 * log for writing, never reads the private checkpoint key, and never
 * repairs anything: a torn or damaged file is reported, not fixed.
 *
 *   verify       recompute every leaf and root, check every checkpoint, the
 *                key chain, and checkpoints published elsewhere (--checkpoint)
 *   key          the verifier key (signed-note `vkey` form); --chain: all keys
 *   checkpoint   the latest (or a given size's) signed checkpoint
 *   prove        an inclusion proof in C2SP `tlog-proof` form
 *   leaf         the exact bytes of one record (what its leaf hash covers)
 *   show|query   records, filtered; human-readable or --json
 *   timeline     what one agent did, in order, denials and revocations marked
 *
 * Exit status: 0 on success, 1 with `ztaas: ZT_…: message` on stderr when a
 * check fails or an argument is bad, 2 for an unknown subcommand.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { toBase64 } from '../audit/checkpoint.js';
import { openChainCheckpoint } from '../audit/keychain.js';
import { RECORDS_FILE } from '../audit/file-store.js';
import { CHECKPOINTS_FILE } from '../audit/checkpointer.js';
import { KEY_CHAIN_FILE } from '../audit/keychain.js';
import { inclusionProof, makeMerkleHasher, merkleRoot, toHex, verifyInclusion, bytesEqual } from '../audit/merkle.js';
import { CHECKPOINT_VKEY_FILE, nodeEd25519Verify, nodeSha256 } from '../audit/node-powers.js';
import { readKeyChain, verifyStore } from '../audit/verify-node.js';
import { codeOf, ZtError } from '../errors.js';
import { auditShow, auditTimeline } from './audit-show.js';
import { auditDir, bad, keyChainOf, parseIndex, pickCheckpoint, readCheckpointNotes, readLines, readOrNull, readVkey, storeOnly, write } from './audit-files.js';

export const AUDIT_USAGE = `  ztaas audit verify     [--store DIR] [--vkey FILE] [--checkpoint FILE]... [--json]
  ztaas audit key        [--store DIR] [--chain]
  ztaas audit checkpoint [--store DIR] [--size N]
  ztaas audit prove      --index N [--size M] [--store DIR]
  ztaas audit leaf       --index N [--store DIR] [--hash]
  ztaas audit show|query [--store DIR] [--json] [--agent ID] [--capability ID] [--action TYPE]
                         [--decision allow|deny] [--type TYPE] [--since ISO] [--until ISO]
  ztaas audit timeline   --agent ID [--store DIR] [--json]
  (--store defaults to .ztaas; the log is read from <store>/audit)`;

// ---------------------------------------------------------------------------
// verify

const auditVerify = async (args: string[]): Promise<number> => {
  const { values } = parseArgs({
    args,
    options: {
      store: { type: 'string', default: '.ztaas' },
      vkey: { type: 'string' },
      checkpoint: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const dir = auditDir(values.store);
  // A key or a checkpoint presented (here or in the folder) says a log
  // existed: its absence is then a finding (ZT_AUDIT_LOG_MISSING), not a
  // usage error.
  const presented =
    values.vkey !== undefined ||
    (values.checkpoint ?? []).length > 0 ||
    (await readOrNull(join(dir, CHECKPOINTS_FILE))) !== undefined ||
    (await readOrNull(join(dir, KEY_CHAIN_FILE))) !== undefined ||
    (await readOrNull(join(dir, CHECKPOINT_VKEY_FILE))) !== undefined;
  if (!presented && !(await readOrNull(join(dir, RECORDS_FILE)))) {
    throw new ZtError('ZT_NOT_FOUND', `no audit log at ${join(dir, RECORDS_FILE)}`);
  }
  const vkey = values.vkey === undefined ? undefined : (await readVkey(dir, values.vkey)).text;
  const externalCheckpoints: string[] = [];
  for (const file of values.checkpoint ?? []) {
    const data = await readOrNull(resolve(file));
    if (!data) throw new ZtError('ZT_NOT_FOUND', `no checkpoint at ${resolve(file)}`);
    externalCheckpoints.push(data.toString('utf8'));
  }
  let report;
  try {
    report = await verifyStore(dir, { ...(vkey === undefined ? {} : { vkey }), externalCheckpoints });
  } catch (err) {
    const code = codeOf(err);
    if (code !== 'ZT_AUDIT_CORRUPT' && code !== 'ZT_AUDIT_LOG_MISSING' && code !== 'ZT_AUDIT_UNSIGNED_TAIL') throw err;
    const index = (err as ZtError).details?.index;
    const where =
      code === 'ZT_AUDIT_LOG_MISSING'
        ? 'the log was deleted or replaced'
        : code === 'ZT_AUDIT_UNSIGNED_TAIL'
          ? `first unsigned record: ${String(index)}`
          : typeof index === 'number'
            ? `first bad record: ${index}`
            : 'the checkpoints do not verify';
    const message = (err as Error).message;
    if (values.json) {
      write(`${JSON.stringify({ ok: false, code, ...(typeof index === 'number' ? { index } : {}), message })}\n`);
    }
    process.stderr.write(`ztaas audit verify: FAILED, ${where}\n  ${message}\n`);
    return 1;
  }
  const covered = (await readCheckpointNotes(dir)).length > 0 ? await latestSize(dir, vkey) : 0;
  if (values.json) {
    write(`${JSON.stringify({ ok: true, ...report, coveredBySignedCheckpoint: covered })}\n`);
    return 0;
  }
  write(
    `OK: ${report.size} records, root ${report.rootHash}, ${report.checkpoints} signed checkpoints verified` +
      `${report.rotations > 0 ? `, ${report.rotations} key rotations` : ''}` +
      `${report.external > 0 ? `, ${report.external} external checkpoints matched` : ''}\n`,
  );
  if (report.checkpoints === 0) {
    write('warning: no signed checkpoint vouches for these records yet\n');
  } else if (covered < report.size) {
    write(`note: records ${covered}..${report.size - 1} are not yet covered by a signed checkpoint\n`);
  }
  if (report.anchoredSize !== undefined && report.anchoredSize < report.size) {
    write(`note: the given key vouches for records 0..${report.anchoredSize - 1}; records ${report.anchoredSize}..${report.size - 1} are not yet covered by a head it or a successor signed\n`);
  }
  if (vkey === undefined) {
    write('note: checked against the keys in the store folder; pass --vkey with the newest key of this log you obtained separately (ztaas audit key, published after each rotation) to rule out replaced keys\n');
  }
  return 0;
};

/** The largest size any (already verified) checkpoint covers. */
const latestSize = async (dir: string, vkey?: string): Promise<number> => {
  const chain = await keyChainOf(dir, vkey);
  let max = 0;
  for (const note of await readCheckpointNotes(dir)) {
    const body = openChainCheckpoint(nodeSha256, nodeEd25519Verify, chain, note);
    if (body && body.size > max) max = body.size;
  }
  return max;
};

// ---------------------------------------------------------------------------
// key, checkpoint, leaf, prove


/**
 * `key`: the current verifier key. `key --chain`: every key the log has had,
 * oldest (the log's identity, to publish and pin) first, one per line.
 */
const auditKey = async (args: string[]) => {
  const values = storeOnly(args, { chain: { type: 'boolean' } });
  const dir = auditDir(values.store);
  const chain = await readKeyChain(dir);
  if (!chain) throw new ZtError('ZT_NOT_FOUND', `no verifier key at ${join(dir, CHECKPOINT_VKEY_FILE)}`);
  const { keys } = chain;
  if (values.chain) {
    write(keys.map(k => `${k.vkey}\n`).join(''));
    return;
  }
  write(`${keys[keys.length - 1]!.vkey}\n`);
};

const auditCheckpoint = async (args: string[]) => {
  const values = storeOnly(args, { size: { type: 'string' } });
  const size = parseIndex('size', values.size as string | undefined, false);
  write((await pickCheckpoint(auditDir(values.store), size)).note);
};

const auditLeaf = async (args: string[]) => {
  const values = storeOnly(args, { index: { type: 'string' }, hash: { type: 'boolean' } });
  const index = parseIndex('index', values.index as string | undefined, true)!;
  const lines = await readLines(auditDir(values.store));
  const line = lines[index];
  if (!line) throw new ZtError('ZT_NOT_FOUND', `no record ${index} (the log has ${lines.length})`);
  if (values.hash) {
    write(`${toHex(makeMerkleHasher(nodeSha256).hashLeaf(line.bytes))}\n`);
  } else {
    process.stdout.write(line.bytes);
  }
};

/**
 * `prove --index N [--size M]`: the inclusion proof of record N in the
 * signed checkpoint of M records (default: the latest), in C2SP tlog-proof
 * form. The proof is checked against the checkpoint before it is printed.
 */
const auditProve = async (args: string[]) => {
  const values = storeOnly(args, { index: { type: 'string' }, size: { type: 'string' } });
  const index = parseIndex('index', values.index as string | undefined, true)!;
  const size = parseIndex('size', values.size as string | undefined, false);
  const dir = auditDir(values.store);
  const { note, body } = await pickCheckpoint(dir, size);
  if (index >= body.size) {
    throw bad(`record ${index} is not covered by the signed checkpoint of ${body.size} records; wait for the next checkpoint or pass --size`);
  }
  const lines = await readLines(dir);
  if (lines.length < body.size) {
    throw new ZtError('ZT_AUDIT_CORRUPT', `records from index ${lines.length} are missing (the checkpoint covers ${body.size})`);
  }
  const hasher = makeMerkleHasher(nodeSha256);
  const leaves = lines.slice(0, body.size).map(l => hasher.hashLeaf(l.bytes));
  if (!bytesEqual(merkleRoot(hasher, leaves), body.rootHash)) {
    throw new ZtError('ZT_AUDIT_CORRUPT', `the records do not match the signed checkpoint of ${body.size} records; run ztaas audit verify`);
  }
  const proof = inclusionProof(hasher, i => leaves[i]!, index, body.size);
  if (!verifyInclusion(hasher, index, body.size, leaves[index]!, proof, body.rootHash)) {
    throw new ZtError('ZT_AUDIT_CORRUPT', 'the inclusion proof does not verify');
  }
  write(`c2sp.org/tlog-proof@v1\nindex ${index}\n${proof.map(h => `${toBase64(h)}\n`).join('')}\n${note}`);
};


/** Runs `ztaas audit <sub> …`; returns the exit code. Throws ZtError on bad input. */
export const auditCommand = async (sub: string | undefined, args: string[]): Promise<number> => {
  switch (sub) {
    case 'verify':
      return auditVerify(args);
    case 'key':
      await auditKey(args);
      return 0;
    case 'checkpoint':
      await auditCheckpoint(args);
      return 0;
    case 'prove':
      await auditProve(args);
      return 0;
    case 'leaf':
      await auditLeaf(args);
      return 0;
    case 'show':
    case 'query':
      await auditShow(args);
      return 0;
    case 'timeline':
      await auditTimeline(args);
      return 0;
    default:
      return 2;
  }
};
