/**
 * `ztaas policy …`: operator tooling for policy files.
 *
 *   check FILE     validate (every problem, with line and column), then warn
 *                  about rules that can never match, overly broad grants and
 *                  permits shadowed by forbids
 *   explain FILE   the decision for one request, and each rule's part in it
 *   schema         print the published JSON Schema
 *
 * Output goes to the `io` sinks (process streams by default) so tests can
 * run the command in-process.
 */
import { harden } from '../harden.js';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { canonicalJson } from '../audit/canonical.js';
import { ZtError } from '../errors.js';
import { sha256Hex } from '../node-powers.js';
import { lintPolicy } from '../policy/lint.js';
import { makePolicy } from '../policy/engine.js';
import { POLICY_JSON_SCHEMA } from '../policy/schema.js';
import { parsePolicyText, type ParsedPolicyText } from '../policy/source.js';
import type { DecisionContext, DecisionRequest, Explanation, Policy, PolicyProblem } from '../policy/types.js';
import { sharedPolicyValidator } from '../policy/validate.js';
import { normalizeTarget } from '../targets.js';
import { isActionType } from '../types.js';

export const POLICY_USAGE = `  ztaas policy check FILE [--json] [--strict]
  ztaas policy explain FILE --agent ID --action TYPE --target TARGET [--grant] [--json]
        [--args JSON] [--context JSON] [--time MS|ISO] [--label L]... [--taint T]...
        [--uses N] [--bytes N] [--rate WINDOW_MS=COUNT]...
  ztaas policy schema`;

export interface PolicyCliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly readText: (path: string) => Promise<string>;
}

const defaultIo = (): PolicyCliIo => ({
  out: text => {
    process.stdout.write(text);
  },
  err: text => {
    process.stderr.write(text);
  },
  readText: path => readFile(path, 'utf8'),
});

const formatOf = (file: string): 'json' | 'yaml' => (/\.json$/i.test(file) ? 'json' : 'yaml');

const readPolicyFile = async (io: PolicyCliIo, file: string): Promise<string> => {
  try {
    return await io.readText(file);
  } catch {
    throw new ZtError('ZT_NOT_FOUND', `cannot read policy file ${file}`);
  }
};

interface Checked {
  readonly parsed: ParsedPolicyText;
  readonly errors: PolicyProblem[];
  readonly warnings: PolicyProblem[];
  readonly policy?: Policy;
}

const checkText = (text: string, format: 'json' | 'yaml'): Checked => {
  const parsed = parsePolicyText(text, { format });
  const locate = (p: PolicyProblem): PolicyProblem => ({ ...p, ...parsed.locate(p.pointer) });
  if (parsed.problems.length > 0) return { parsed, errors: [...parsed.problems], warnings: [] };
  const validator = sharedPolicyValidator();
  const errors = validator.problems(parsed.document).map(locate);
  if (errors.length > 0) return { parsed, errors, warnings: [] };
  let policy: Policy;
  try {
    policy = makePolicy(parsed.document, sha256Hex, canonicalJson, { validator });
  } catch (err) {
    // Problems found only while compiling (delegation targets), located like the rest.
    const found = err instanceof ZtError && err.code === 'ZT_POLICY_INVALID' ? (err.details as { problems?: readonly PolicyProblem[] } | undefined)?.problems : undefined;
    if (found === undefined) throw err;
    return { parsed, errors: found.map(locate), warnings: [] };
  }
  return { parsed, errors: [], warnings: lintPolicy(policy.document).map(locate), policy };
};

const line = (file: string, severity: 'error' | 'warning', p: PolicyProblem) =>
  `${file}:${p.line ?? 1}:${p.column ?? 1}: ${severity}: ${p.pointer || '/'}: ${p.message}\n`;

const policyCheck = async (args: string[], io: PolicyCliIo): Promise<number> => {
  const { values, positionals } = parseArgs({
    args,
    options: { json: { type: 'boolean', default: false }, strict: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1) throw new ZtError('ZT_BAD_ARGUMENT', 'policy check takes exactly one FILE');
  const file = positionals[0] as string;
  const checked = checkText(await readPolicyFile(io, file), formatOf(file));
  const valid = checked.errors.length === 0;
  if (values.json) {
    io.out(
      `${JSON.stringify({
        file,
        valid,
        ...(checked.policy ? { policyHash: checked.policy.hash, rules: checked.policy.document.rules.length } : {}),
        errors: checked.errors,
        warnings: checked.warnings,
      })}\n`,
    );
  } else {
    for (const p of checked.errors) io.out(line(file, 'error', p));
    for (const p of checked.warnings) io.out(line(file, 'warning', p));
    if (checked.policy) {
      const n = checked.policy.document.rules.length;
      const w = checked.warnings.length;
      io.out(`${file}: valid policy, ${n} rule${n === 1 ? '' : 's'}, ${checked.policy.hash}, ${w} warning${w === 1 ? '' : 's'}\n`);
    } else {
      io.out(`${file}: invalid policy, ${checked.errors.length} problem${checked.errors.length === 1 ? '' : 's'}; nothing of it would be loaded\n`);
    }
  }
  if (!valid) return 1;
  return values.strict && checked.warnings.length > 0 ? 1 : 0;
};

const parseJsonOption = (name: string, text: string | undefined): unknown => {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ZtError('ZT_BAD_ARGUMENT', `--${name} must be JSON`);
  }
};

const parseInstant = (text: string): number => {
  if (/^\d+$/.test(text)) return Number(text);
  const ms = Date.parse(text);
  if (!Number.isFinite(ms)) throw new ZtError('ZT_BAD_ARGUMENT', '--time must be epoch milliseconds or an ISO 8601 date-time');
  return ms;
};

const nonNegative = (name: string, text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new ZtError('ZT_BAD_ARGUMENT', `--${name} must be a non-negative integer`);
  return Number(text);
};

const policyExplain = async (args: string[], io: PolicyCliIo): Promise<number> => {
  const { values, positionals } = parseArgs({
    args,
    options: {
      agent: { type: 'string' },
      action: { type: 'string' },
      target: { type: 'string' },
      grant: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      args: { type: 'string' },
      context: { type: 'string' },
      time: { type: 'string' },
      label: { type: 'string', multiple: true },
      taint: { type: 'string', multiple: true },
      uses: { type: 'string' },
      bytes: { type: 'string' },
      rate: { type: 'string', multiple: true },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1) throw new ZtError('ZT_BAD_ARGUMENT', 'policy explain takes exactly one FILE');
  const file = positionals[0] as string;
  const { agent, action, target } = values;
  if (agent === undefined || action === undefined || target === undefined) throw new ZtError('ZT_BAD_ARGUMENT', 'policy explain needs --agent, --action and --target');
  if (!isActionType(action)) throw new ZtError('ZT_BAD_ARGUMENT', '--action must be READ, WRITE, EXECUTE, NETWORK or TOOL');
  const checked = checkText(await readPolicyFile(io, file), formatOf(file));
  if (!checked.policy) {
    for (const p of checked.errors) io.err(line(file, 'error', p));
    throw new ZtError('ZT_POLICY_INVALID', `${file} is not a valid policy`);
  }
  const policy = checked.policy;

  if (values.grant) {
    const decision = policy.decideGrant({
      holder: agent,
      actionType: action,
      target,
      ...(values.label ? { labels: values.label } : {}),
      ...(values.time ? { time: parseInstant(values.time) } : {}),
    });
    if (values.json) io.out(`${JSON.stringify({ grant: { holder: agent, actionType: action, target }, decision })}\n`);
    else {
      io.out(`issue-time decision: ${decision.allowed ? 'GRANTABLE' : `REFUSED (${decision.code ?? 'ZT_POLICY_DENIED'})`}${decision.rules.length ? `  rules: ${decision.rules.join(', ')}` : ''}\n`);
      io.out(`policy: ${decision.policyHash}\n`);
    }
    return 0;
  }

  const requestArgs = parseJsonOption('args', values.args);
  if (requestArgs !== undefined && (requestArgs === null || typeof requestArgs !== 'object' || Array.isArray(requestArgs))) {
    throw new ZtError('ZT_BAD_ARGUMENT', '--args must be a JSON object');
  }
  let context = parseJsonOption('context', values.context) as DecisionContext | undefined;
  const convenience = [values.time, values.label, values.taint, values.uses, values.bytes, values.rate].some(v => v !== undefined);
  if (context === undefined && convenience) {
    const time = values.time === undefined ? 0 : parseInstant(values.time);
    const rates: Record<string, number> = {};
    for (const r of values.rate ?? []) {
      const m = /^(\d+)=(\d+)$/.exec(r);
      if (!m) throw new ZtError('ZT_BAD_ARGUMENT', '--rate is WINDOW_MS=COUNT');
      rates[m[1] as string] = Number(m[2]);
    }
    for (const w of policy.rateWindows) rates[String(w)] ??= 0;
    context = {
      time,
      agentLabels: values.label ?? [],
      agentTaints: values.taint ?? [],
      capability: { id: 'cli', uses: nonNegative('uses', values.uses) ?? 0, bytes: nonNegative('bytes', values.bytes) ?? 0, issuedAt: time },
      rates,
    };
  }
  const request: DecisionRequest = {
    agentId: agent,
    actionType: action,
    target: normalizeTarget(action, target),
    ...(requestArgs === undefined ? {} : { args: requestArgs as Record<string, unknown> }),
    ...(context === undefined ? {} : { context }),
  };
  const explanation = policy.explain(request);
  if (values.json) {
    io.out(`${JSON.stringify(explanation)}\n`);
    return 0;
  }
  const { decision, trace, taints } = explanation;
  io.out(`decision: ${decision.allowed ? 'ALLOW' : `DENY (${decision.code ?? 'ZT_POLICY_DENIED'})`}${decision.rules.length ? `  rules: ${decision.rules.join(', ')}` : ''}\n`);
  io.out(`policy: ${decision.policyHash}\n`);
  io.out(`request: agent ${request.agentId}, ${request.actionType} ${request.target}${context ? '' : ' (no context: rules that read it error)'}\n`);
  printTrace(io, trace, '  ');
  for (const r of explanation.resources ?? []) {
    const d = r.decision;
    io.out(`resource: ${r.request.actionType} ${r.request.target} (a declared tool argument): ${d.allowed ? 'ALLOW' : `DENY (${d.code ?? 'ZT_POLICY_DENIED'})`}${d.rules.length ? `  rules: ${d.rules.join(', ')}` : ''}\n`);
    printTrace(io, r.trace, '    ');
  }
  if (taints.length > 0) io.out(`taints acquired if executed: ${taints.join(', ')}\n`);
  return 0;
};

const printTrace = (io: PolicyCliIo, trace: Explanation['trace'], indent: string): void => {
  const width = Math.max(0, ...trace.map(t => t.rule.length));
  for (const t of trace) {
    const why =
      t.stage === 'match' ? 'matches'
      : t.stage === 'agent' ? 'not for this agent'
      : t.stage === 'action' ? 'not for this action type'
      : t.stage === 'target' ? 'target does not match'
      : t.stage === 'condition' ? `condition fails at ${t.at ?? '?'} (${t.code ?? 'ZT_POLICY_DENIED'})`
      : `ERROR at ${t.at ?? '?'}: ${t.error ?? 'evaluation failed'} (denies)`;
    io.out(`${indent}${t.effect.padEnd(6)} ${t.rule.padEnd(width)}  ${why}\n`);
  }
};

/** Runs `ztaas policy <sub> …`; returns the exit code (2 for an unknown subcommand). Throws ZtError on bad input. */
export const policyCommand = async (sub: string | undefined, args: string[], io: PolicyCliIo = defaultIo()): Promise<number> => {
  switch (sub) {
    case 'check':
      return policyCheck(args, io);
    case 'explain':
      return policyExplain(args, io);
    case 'schema':
      io.out(`${JSON.stringify(POLICY_JSON_SCHEMA, null, 2)}\n`);
      return 0;
    default:
      return 2;
  }
};
harden(policyCommand);
