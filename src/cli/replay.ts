/**
 * `ztaas audit replay [--store DIR] [--policy FILE] [--json]`
 *
 * Without `--policy`: re-decides every recorded policy decision against the
 * policy recorded in the log; any difference (or a log problem) exits 1.
 * With `--policy FILE` (YAML or JSON): lists the decisions that would change
 * under that policy; exits 0 (3 if the file is not a valid policy).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { canonicalJson } from '../audit/canonical.js';
import { RECORDS_FILE } from '../audit/file-store.js';
import { ZtError } from '../errors.js';
import { loadPolicyText, makePolicy } from '../policy.js';
import { replayDecisions, type ReplayedDecision } from '../replay.js';

export const REPLAY_USAGE = '  ztaas audit replay [--store DIR] [--policy FILE] [--json]';

const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex');

const readRecords = async (store: string): Promise<Array<Record<string, unknown>>> => {
  const file = join(resolve(store), 'audit', RECORDS_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new ZtError('ZT_NOT_FOUND', `no audit log at ${file}`);
  }
  const lines = text.split('\n');
  lines.pop(); // the part after the last '\n': empty, or a torn write the store discards
  return lines.map((line, i) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new ZtError('ZT_AUDIT_CORRUPT', `record ${i} is not JSON`);
    }
  });
};

export const replayCommand = async (args: string[]): Promise<number> => {
  const { values } = parseArgs({
    args,
    options: { store: { type: 'string', default: '.ztaas' }, policy: { type: 'string' }, json: { type: 'boolean', default: false } },
    strict: true,
  });
  const records = await readRecords(values.store);
  const against = values.policy === undefined ? undefined : loadPolicyText(await readFile(values.policy, 'utf8'), sha256Hex, canonicalJson);
  const report = replayDecisions(records, doc => makePolicy(doc, sha256Hex, canonicalJson), against);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ...report, against: against?.hash ?? 'recorded' })}\n`);
  } else {
    process.stdout.write(`${report.replayed} decisions replayed from ${report.records} records against ${against ? `${values.policy} (${against.hash})` : 'the recorded policy'}\n`);
    for (const p of report.problems) process.stdout.write(`problem: ${p}\n`);
    for (const n of report.notReplayable) {
      process.stdout.write(`#${n.seq}: ${n.code}: the policy reads ${n.arguments.join(', ')}, which the record does not hold\n`);
    }
    const show = (x: ReplayedDecision) => `${x.decision}${x.code ? ` ${x.code}` : ''} [${x.rules.join(', ')}]${x.approval ? ` (approval: ${x.approval})` : ''}`;
    for (const a of report.approvals) {
      process.stdout.write(`#${a.seq} approval ${a.approvalId}: ${a.answer}${a.by ? ` by ${JSON.stringify(a.by)}` : ''}${a.via ? ` via ${JSON.stringify(a.via)}` : ''} -> ${show(a.replayed)}\n`);
    }
    for (const d of report.differences) {
      process.stdout.write(`#${d.seq} ${d.agentId} ${d.actionType} ${d.target}: ${show(d.recorded)} -> ${show(d.replayed)}\n`);
    }
  }
  if (against) return 0;
  return report.differences.length > 0 || report.problems.length > 0 ? 1 : 0;
};
