#!/usr/bin/env node
/**
 * `ztaas` — the operator's command line.
 *
 *   ztaas errors                               the table of error codes (Markdown)
 *   ztaas audit show [--store DIR] [--json]    the audit log's records, filtered by
 *        [--agent ID] [--type TYPE] [--capability ID] [--decision allow|deny]
 *
 * `--store` is the runtime's `storeDir` (default `.ztaas`); the log is read
 * from `<store>/audit` without opening it for writing.
 */
import './init.js';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { RECORDS_FILE } from './audit/file-store.js';
import { renderErrorsDoc } from './errors-doc.js';
import { ZtError, codeOf } from './errors.js';

const USAGE = `usage:
  ztaas errors
  ztaas audit show [--store DIR] [--json] [--agent ID] [--type TYPE] [--capability ID] [--decision allow|deny]`;

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

const main = async (argv: string[]) => {
  const [command, sub, ...rest] = argv;
  if (command === 'errors') {
    process.stdout.write(renderErrorsDoc());
    return;
  }
  if (command === 'audit' && sub === 'show') {
    await auditShow(rest);
    return;
  }
  process.stderr.write(`${USAGE}\n`);
  process.exitCode = 2;
};

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  // A closed pipe (`ztaas audit show | head`) is not an error of ours.
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

try {
  await main(process.argv.slice(2));
} catch (err) {
  const code = codeOf(err);
  process.stderr.write(`ztaas: ${code ? (err as Error).message : `ZT_BAD_ARGUMENT: ${String((err as Error)?.message ?? err)}`}\n`);
  process.exitCode = 1;
}
