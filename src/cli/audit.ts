/**
 * `ztaas audit …`: forensic commands on a store folder. The log is read
 * from `<store>/audit` without opening it for writing.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { RECORDS_FILE } from '../audit/file-store.js';
import { ZtError } from '../errors.js';

export const AUDIT_USAGE = `  ztaas audit show [--store DIR] [--json] [--agent ID] [--type TYPE] [--capability ID] [--decision allow|deny]`;

const readRecords = async (store: string): Promise<Array<Record<string, unknown>>> => {
  const file = join(resolve(store), 'audit', RECORDS_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new ZtError('ZT_NOT_FOUND', `no audit log at ${file}`);
  }
  const records: Array<Record<string, unknown>> = [];
  const lines = text.split('\n');
  // A final line without '\n' is a torn write the store discards on open.
  if (lines[lines.length - 1] !== '') lines.pop();
  lines.pop();
  lines.forEach((line, i) => {
    try {
      records.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      throw new ZtError('ZT_AUDIT_CORRUPT', `record ${i} is not JSON`);
    }
  });
  return records;
};

const describe = (r: Record<string, unknown>): string => {
  const parts = [String(r.seq).padStart(6), new Date(Number(r.time)).toISOString(), String(r.type).padEnd(24)];
  const pick = (keys: string[]) => keys.filter(k => r[k] !== undefined).map(k => `${k}=${typeof r[k] === 'string' ? r[k] : JSON.stringify(r[k])}`);
  parts.push(...pick(['agentId', 'runId', 'capabilityId', 'holder', 'actionType', 'target', 'decision', 'status', 'code', 'rules', 'reason', 'level', 'text']));
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
      decision: { type: 'string' },
    },
    strict: true,
  });
  if (values.decision !== undefined && values.decision !== 'allow' && values.decision !== 'deny') {
    throw new ZtError('ZT_BAD_ARGUMENT', '--decision must be allow or deny');
  }
  const records = (await readRecords(values.store)).filter(
    r =>
      (values.agent === undefined || r.agentId === values.agent || r.holder === values.agent) &&
      (values.type === undefined || r.type === values.type) &&
      (values.capability === undefined || r.capabilityId === values.capability) &&
      (values.decision === undefined || r.decision === values.decision),
  );
  for (const r of records) process.stdout.write(`${values.json ? JSON.stringify(r) : describe(r)}\n`);
};


/** Runs `ztaas audit <sub> …`; returns the exit code. Throws ZtError on bad input. */
export const auditCommand = async (sub: string | undefined, args: string[]): Promise<number> => {
  switch (sub) {
    case 'show':
      await auditShow(args);
      return 0;
    default:
      return 2;
  }
};
