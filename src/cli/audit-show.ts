/**
 * `ztaas audit show|query` and `ztaas audit timeline`: the records of a
 * store, filtered, human-readable or as JSON, and what one agent did in
 * order (denials, revocations and expiries marked).
 */
import { parseArgs } from 'node:util';
import { auditDir, bad, parseTime, readRecords, write, type AuditRecord } from './audit-files.js';

// ---------------------------------------------------------------------------
// show | query, timeline

/**
 * Records with what they are about: outcomes and redirect hops carry only a
 * requestId, so they inherit agent, capability and action from their request.
 */
export const enrich = (records: AuditRecord[]) => {
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

/**
 * Control characters (C0, DEL, C1), bidirectional overrides and isolates,
 * and lone surrogates: what an agent could put in a record to rewrite the
 * investigator's terminal or hide text.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/gu;

/** A recorded value as one line of inert text: strings as they are, but every unprintable character escaped as `\u{…}`. */
export const text = (v: unknown): string => {
  const raw = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  return raw.replace(UNPRINTABLE, c => `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`);
};

export const timeOf = (r: AuditRecord) => (typeof r.time === 'number' && Number.isFinite(r.time) ? new Date(r.time).toISOString() : '-'.padEnd(24));

export const describe = (r: AuditRecord): string => {
  const parts = [text(r.seq).padStart(6), timeOf(r), text(r.type).padEnd(24)];
  const keys = ['agentId', 'runId', 'requestId', 'capabilityId', 'holder', 'actionType', 'target', 'decision', 'status', 'code', 'rules', 'reason', 'inFlight', 'revoked', 'level', 'text', 'policyHash'];
  for (const k of keys) if (r[k] !== undefined) parts.push(`${k}=${text(r[k])}`);
  return parts.join(' ');
};

export const auditShow = async (args: string[]) => {
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

export type Mark = 'denied' | 'revoked' | 'expired' | 'failed' | 'halted';

/** What a timeline entry is marked with, if anything. */
export const markOf = (r: AuditRecord): Mark | undefined => {
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

export const summary = (r: AuditRecord): string => {
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
      return `launched run ${text(r.runId)} of ${text(r.module)} with [${Array.isArray(r.capabilities) ? r.capabilities.map(text).join(', ') : ''}]`;
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

export const auditTimeline = async (args: string[]) => {
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
