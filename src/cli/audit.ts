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
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseVerifierKey, toBase64 } from '../audit/checkpoint.js';
import { openChainCheckpoint } from '../audit/keychain.js';
import type { KeyChain } from '../audit/keychain.js';
import type { CheckpointBody } from '../audit/checkpoint.js';
import { CHECKPOINTS_FILE } from '../audit/checkpointer.js';
import { RECORDS_FILE } from '../audit/file-store.js';
import { inclusionProof, makeMerkleHasher, merkleRoot, toHex, verifyInclusion, bytesEqual } from '../audit/merkle.js';
import { CHECKPOINT_VKEY_FILE, nodeEd25519Verify, nodeSha256 } from '../audit/node-powers.js';
import { readKeyChain, verifyStore } from '../audit/verify-node.js';
import { codeOf, ZtError } from '../errors.js';

export const AUDIT_USAGE = `  ztaas audit verify     [--store DIR] [--vkey FILE] [--checkpoint FILE]... [--json]
  ztaas audit key        [--store DIR] [--chain]
  ztaas audit checkpoint [--store DIR] [--size N]
  ztaas audit prove      --index N [--size M] [--store DIR]
  ztaas audit leaf       --index N [--store DIR] [--hash]
  ztaas audit show|query [--store DIR] [--json] [--agent ID] [--capability ID] [--action TYPE]
                         [--decision allow|deny] [--type TYPE] [--since ISO] [--until ISO]
  ztaas audit timeline   --agent ID [--store DIR] [--json]
  (--store defaults to .ztaas; the log is read from <store>/audit)`;

type AuditRecord = Record<string, unknown>;

const auditDir = (store: string) => join(resolve(store), 'audit');

const bad = (message: string) => new ZtError('ZT_BAD_ARGUMENT', message);

const readOrNull = async (path: string): Promise<Buffer | undefined> => {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw new ZtError('ZT_AUDIT_UNAVAILABLE', `cannot read ${path}`);
  }
};

/** One stored record: its exact line bytes (no '\n') and its parsed value. */
interface StoredLine {
  bytes: Uint8Array;
  record: AuditRecord;
}

/**
 * Reads the records file. A final line without '\n' is a write torn by a
 * crash (the store cuts it on its next open) and is left out; any other
 * unparsable line is ZT_AUDIT_CORRUPT naming its index.
 */
const readLines = async (dir: string): Promise<StoredLine[]> => {
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

const readRecords = async (dir: string): Promise<AuditRecord[]> => (await readLines(dir)).map(l => l.record);

const readVkey = async (dir: string, vkeyFile?: string): Promise<{ text: string; key: { name: string; publicKey: Uint8Array } }> => {
  const path = vkeyFile === undefined ? join(dir, CHECKPOINT_VKEY_FILE) : resolve(vkeyFile);
  const data = await readOrNull(path);
  if (!data) throw new ZtError('ZT_NOT_FOUND', `no verifier key at ${path}`);
  const text = data.toString('utf8').trim();
  const key = parseVerifierKey(nodeSha256, text);
  if (!key) throw bad(`the verifier key in ${path} is malformed`);
  return { text, key };
};

/** Every stored checkpoint note, in file order. */
const readCheckpointNotes = async (dir: string): Promise<string[]> => {
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
const keyChainOf = async (dir: string, trustedVkey?: string): Promise<KeyChain> => {
  const chain = await readKeyChain(dir, trustedVkey);
  if (!chain) throw new ZtError('ZT_NOT_FOUND', `no verifier key at ${join(dir, CHECKPOINT_VKEY_FILE)}`);
  return chain;
};

/** The signed checkpoint of `size` records (default: the latest), verified against the store's key chain. */
const pickCheckpoint = async (dir: string, size: number | undefined): Promise<{ note: string; body: CheckpointBody }> => {
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

const parseIndex = (name: string, text: string | undefined, required: boolean): number | undefined => {
  if (text === undefined) {
    if (required) throw bad(`--${name} N is required`);
    return undefined;
  }
  if (!/^(0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw bad(`--${name} must be a non-negative integer`);
  }
  return Number(text);
};

const parseTime = (name: string, text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(ms)) {
    throw bad(`--${name} must be an ISO 8601 time such as 2025-01-31T12:00:00Z`);
  }
  return ms;
};

const write = (text: string) => {
  process.stdout.write(text);
};

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
  if (!(await readOrNull(join(dir, RECORDS_FILE)))) {
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
    if (codeOf(err) !== 'ZT_AUDIT_CORRUPT') throw err;
    const index = (err as ZtError).details?.index;
    const where = typeof index === 'number' ? `first bad record: ${index}` : 'the checkpoints do not verify';
    const message = (err as Error).message;
    if (values.json) {
      write(`${JSON.stringify({ ok: false, code: 'ZT_AUDIT_CORRUPT', ...(typeof index === 'number' ? { index } : {}), message })}\n`);
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

const storeOnly = (args: string[], extra: Record<string, { type: 'string' | 'boolean' }> = {}) =>
  parseArgs({ args, options: { store: { type: 'string', default: '.ztaas' }, ...extra }, strict: true }).values as {
    store: string;
  } & Record<string, string | boolean | undefined>;

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

// ---------------------------------------------------------------------------
// show | query, timeline

/**
 * Records with what they are about: outcomes and redirect hops carry only a
 * requestId, so they inherit agent, capability and action from their request.
 */
const enrich = (records: AuditRecord[]) => {
  const requests = new Map<string, AuditRecord>();
  return records.map(r => {
    if (r.type === 'request' && typeof r.requestId === 'string') requests.set(r.requestId, r);
    const req = typeof r.requestId === 'string' && r.type !== 'request' ? requests.get(r.requestId) : undefined;
    const agent = r.agentId ?? r.holder ?? r.from ?? req?.agentId;
    return {
      record: r,
      agent: typeof agent === 'string' ? agent : undefined,
      capability: (r.capabilityId ?? req?.capabilityId) as string | undefined,
      action: (r.actionType ?? req?.actionType) as string | undefined,
    };
  });
};

const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

const timeOf = (r: AuditRecord) => (typeof r.time === 'number' && Number.isFinite(r.time) ? new Date(r.time).toISOString() : '-'.padEnd(24));

const describe = (r: AuditRecord): string => {
  const parts = [String(r.seq).padStart(6), timeOf(r), String(r.type).padEnd(24)];
  const keys = ['agentId', 'runId', 'requestId', 'capabilityId', 'holder', 'actionType', 'target', 'decision', 'status', 'code', 'rules', 'reason', 'inFlight', 'revoked', 'level', 'text', 'policyHash'];
  for (const k of keys) if (r[k] !== undefined) parts.push(`${k}=${text(r[k])}`);
  return parts.join(' ');
};

const auditShow = async (args: string[]) => {
  const { values } = parseArgs({
    args,
    options: {
      store: { type: 'string', default: '.ztaas' },
      json: { type: 'boolean', default: false },
      agent: { type: 'string' },
      type: { type: 'string' },
      capability: { type: 'string' },
      action: { type: 'string' },
      decision: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
    },
    strict: true,
  });
  if (values.decision !== undefined && values.decision !== 'allow' && values.decision !== 'deny') {
    throw bad('--decision must be allow or deny');
  }
  const since = parseTime('since', values.since);
  const until = parseTime('until', values.until);
  const rows = enrich(await readRecords(auditDir(values.store))).filter(
    ({ record: r, agent, capability, action }) =>
      (values.agent === undefined || agent === values.agent) &&
      (values.type === undefined || r.type === values.type) &&
      (values.capability === undefined || capability === values.capability) &&
      (values.action === undefined || action === values.action) &&
      (values.decision === undefined || r.decision === values.decision) &&
      (since === undefined || (typeof r.time === 'number' && r.time >= since)) &&
      (until === undefined || (typeof r.time === 'number' && r.time <= until)),
  );
  for (const { record } of rows) write(`${values.json ? JSON.stringify(record) : describe(record)}\n`);
};

type Mark = 'denied' | 'revoked' | 'expired' | 'failed' | 'halted';

/** What a timeline entry is marked with, if anything. */
const markOf = (r: AuditRecord): Mark | undefined => {
  switch (r.type) {
    case 'request':
    case 'request.hop':
      return r.decision === 'deny' ? 'denied' : undefined;
    case 'capability.issue-denied':
    case 'capability.delegation-denied':
      return 'denied';
    case 'capability.expired':
      return 'expired';
    case 'capability.revoked':
    case 'agent.revoked':
      return typeof r.reason === 'string' && r.reason.startsWith('halted') ? 'halted' : 'revoked';
    case 'outcome':
      return r.status === 'succeeded' ? undefined : r.code === 'ZT_REVOKED' ? 'revoked' : 'failed';
    case 'agent.finished':
      return r.status === 'failed' ? 'failed' : undefined;
    case 'agent.launch-failed':
      return 'failed';
    default:
      return undefined;
  }
};

const summary = (r: AuditRecord): string => {
  switch (r.type) {
    case 'agent.registered':
      return 'registered';
    case 'agent.revoked':
      return `agent revoked: ${text(r.reason)}`;
    case 'capability.issued':
      return `capability ${text(r.capabilityId)} issued: ${text(r.actionType)} ${text(r.target)}`;
    case 'capability.issue-denied':
      return `capability ${text(r.capabilityId)} refused at issue: ${text(r.actionType)} ${text(r.target)} (${text(r.code)})`;
    case 'capability.derived':
    case 'capability.delegated':
      return `capability ${text(r.capabilityId)} ${r.type === 'capability.derived' ? 'derived' : 'delegated'} from ${text(r.parent)}: ${text(r.actionType)} ${text(r.target)}`;
    case 'capability.delegation-denied':
      return `delegation of ${text(r.capabilityId)} from ${text(r.from)} to ${text(r.to)} refused (${text(r.code)})`;
    case 'capability.expired':
      return `capability ${text(r.capabilityId)} expired`;
    case 'capability.revoked': {
      const cut = Array.isArray(r.inFlight) && r.inFlight.length > 0 ? `; cut in flight: ${r.inFlight.join(', ')}` : '';
      return `capability ${text(r.capabilityId)} revoked: ${text(r.reason)}${cut}`;
    }
    case 'request': {
      const why = r.decision === 'deny' ? ` ${text(r.code)}` : '';
      const rules = Array.isArray(r.rules) && r.rules.length > 0 ? ` [${r.rules.join(', ')}]` : '';
      return `${text(r.actionType)} ${text(r.target)} with ${text(r.capabilityId)} → ${text(r.decision)}${why}${rules} (${text(r.requestId)})`;
    }
    case 'request.hop':
      return `  hop to ${text(r.target)} → ${text(r.decision)}${r.code ? ` ${text(r.code)}` : ''} (${text(r.requestId)})`;
    case 'outcome':
      return `  outcome ${text(r.status)}${r.code ? ` ${text(r.code)}` : ''} (${text(r.requestId)})`;
    case 'agent.launched':
      return `launched run ${text(r.runId)} of ${text(r.module)} with [${Array.isArray(r.capabilities) ? r.capabilities.join(', ') : ''}]`;
    case 'agent.launch-failed':
      return `launch failed: ${text(r.code)}`;
    case 'agent.finished': {
      const revoked = Array.isArray(r.revoked) && r.revoked.length > 0 ? `; revoked ${r.revoked.join(', ')}` : '';
      return `run ${text(r.runId)} ${text(r.status)}${r.code ? ` ${text(r.code)}` : ''}${revoked}`;
    }
    case 'agent.console':
      return `console.${text(r.level)}: ${text(r.text)}`;
    case 'vat.output':
      return `${text(r.stream)}: ${text(r.text)}`;
    default:
      return describe(r);
  }
};

const auditTimeline = async (args: string[]) => {
  const { values } = parseArgs({
    args,
    options: {
      store: { type: 'string', default: '.ztaas' },
      agent: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.agent === undefined) throw bad('--agent ID is required');
  const rows = enrich(await readRecords(auditDir(values.store))).filter(row => row.agent === values.agent);
  for (const { record } of rows) {
    const mark = markOf(record);
    if (values.json) {
      write(`${JSON.stringify({ seq: record.seq, time: record.time, mark: mark ?? null, summary: summary(record), record })}\n`);
    } else {
      const flag = mark ? `[${mark.toUpperCase()}]` : '';
      write(`${String(record.seq).padStart(6)} ${timeOf(record)} ${flag.padEnd(9)} ${summary(record)}\n`);
    }
  }
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
