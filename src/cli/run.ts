/**
 * `ztaas run`: one agent from the shell, with the grants named on the
 * command line, under a policy file; prints its result and a short audit
 * summary; exits 0 when the run succeeded, 1 otherwise.
 *
 *   ztaas run ./agent --policy policy.yaml --grant read:/data/** \
 *     --grant report=write:/out/report.txt --input '{"title":"Q3"}'
 *   ztaas run --code summarise.ts --grant report=read:/data/q3.txt
 *
 * `--code FILE` runs the file as submitted code (`runCode`: a script body
 * or a module with `export default`, README "Code mode") instead of an
 * agent module: TypeScript when the name ends in .ts, .mts or .cts,
 * JavaScript otherwise; same grants, policy, input, output and exit code,
 * and its console printed before its result. A syntax error is
 * `failed: ZT_CODE_SYNTAX … (line L, column C)`, exit 1, and nothing runs.
 *
 * Grants are `[name=]kind:target` with kind one of read, write, exec, net,
 * tool; the agent reaches each as `caps.<name>` (default name: the kind,
 * numbered when a kind repeats: read, read2, …). Without `--policy` a live
 * capability is the whole authorization (CAPABILITY_CEILING_POLICY). The
 * store defaults to `.ztaas/run`; `--json` prints one JSON object.
 *
 * The process is a host application of the library: not locked down (the
 * kernel and the agent run in their own vats).
 */
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ZtError } from '../errors.js';
import { SandboxRuntime } from '../runtime.js';
import { ActionType, Capability } from '../types.js';
import { isIsolationLevel } from '../isolation/levels.js';
import type { CodeLanguage, CodeRunResult } from '../code-run.js';

export { RUN_USAGE } from './run-usage.js';

const KINDS: Readonly<Record<string, ActionType>> = {
  read: ActionType.READ,
  write: ActionType.WRITE,
  exec: ActionType.EXECUTE,
  net: ActionType.NETWORK,
  tool: ActionType.TOOL,
};

/** `--code FILE` is TypeScript when its name ends so; JavaScript otherwise. */
const TYPESCRIPT_EXTENSIONS: ReadonlySet<string> = new Set(['.ts', '.mts', '.cts']);

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/;

export interface ParsedGrant {
  readonly name: string;
  readonly actionType: ActionType;
  readonly target: string;
}

/** `[name=]kind:target` → a grant; ZT_BAD_ARGUMENT naming the problem. */
export const parseGrants = (specs: readonly string[]): ParsedGrant[] => {
  const grants: ParsedGrant[] = [];
  const used = new Set<string>();
  for (const spec of specs) {
    const m = /^(?:([^=:]+)=)?([a-z]+):(.+)$/.exec(spec);
    if (!m) throw new ZtError('ZT_BAD_ARGUMENT', `--grant ${JSON.stringify(spec)}: write [name=]kind:target (kind: ${Object.keys(KINDS).join(', ')})`);
    const [, given, kind = '', target = ''] = m;
    const actionType = KINDS[kind];
    if (actionType === undefined) throw new ZtError('ZT_BAD_ARGUMENT', `--grant ${JSON.stringify(spec)}: unknown kind ${JSON.stringify(kind)} (one of ${Object.keys(KINDS).join(', ')})`);
    let name = given;
    if (name === undefined) {
      name = kind;
      for (let i = 2; used.has(name); i += 1) name = `${kind}${i}`;
    }
    if (!IDENTIFIER.test(name) || name === '__proto__') throw new ZtError('ZT_BAD_ARGUMENT', `--grant ${JSON.stringify(spec)}: the name must be an identifier`);
    if (used.has(name)) throw new ZtError('ZT_BAD_ARGUMENT', `--grant ${JSON.stringify(spec)}: the name ${name} is given twice`);
    used.add(name);
    grants.push({ name, actionType, target });
  }
  return grants;
};

export interface RunIo {
  readonly out: (text: string) => void;
}

const defaultIo: RunIo = {
  out: text => {
    process.stdout.write(text);
  },
};

export const runCommand = async (args: string[], io: RunIo = defaultIo): Promise<number> => {
  const { values, positionals } = parseArgs({
    args,
    options: {
      grant: { type: 'string', multiple: true },
      policy: { type: 'string' },
      input: { type: 'string' },
      agent: { type: 'string' },
      store: { type: 'string' },
      isolation: { type: 'string' },
      deadline: { type: 'string' },
      json: { type: 'boolean' },
      code: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  const codeFile = values.code === undefined ? undefined : resolve(values.code);
  if (codeFile !== undefined && positionals.length > 0) throw new ZtError('ZT_BAD_ARGUMENT', 'ztaas run takes an agent module or --code FILE, not both');
  if (codeFile === undefined && positionals.length !== 1) throw new ZtError('ZT_BAD_ARGUMENT', 'ztaas run needs exactly one agent module (a .js file or a folder with index.js), or --code FILE');
  const module = codeFile === undefined ? resolve(positionals[0] as string) : undefined;
  let code: { source: string; language: CodeLanguage } | undefined;
  if (codeFile !== undefined) {
    let source: string;
    try {
      source = await readFile(codeFile, 'utf8');
    } catch (err) {
      throw new ZtError('ZT_BAD_ARGUMENT', `--code ${values.code}: cannot read the file (${(err as { code?: string }).code ?? 'error'})`);
    }
    code = { source, language: TYPESCRIPT_EXTENSIONS.has(extname(codeFile).toLowerCase()) ? 'typescript' : 'javascript' };
  }
  const grants = parseGrants(values.grant ?? []);
  let input: unknown;
  if (values.input !== undefined) {
    try {
      input = JSON.parse(values.input);
    } catch {
      throw new ZtError('ZT_BAD_ARGUMENT', '--input must be JSON');
    }
  }
  if (values.isolation !== undefined && !isIsolationLevel(values.isolation)) throw new ZtError('ZT_BAD_ARGUMENT', `--isolation must be worker, process or process-weak`);
  const deadlineMs = values.deadline === undefined ? undefined : Number(values.deadline);
  if (deadlineMs !== undefined && !(Number.isSafeInteger(deadlineMs) && deadlineMs > 0)) throw new ZtError('ZT_BAD_ARGUMENT', '--deadline must be a positive number of milliseconds');
  const agentId = values.agent ?? 'cli-agent';

  const sandbox = new SandboxRuntime({ storeDir: resolve(values.store ?? '.ztaas/run') });
  try {
    if (values.policy !== undefined) await sandbox.loadPolicyFile(values.policy);
    const first = await sandbox.audit.size();
    sandbox.registerAgent(agentId);
    const names: Record<string, string> = {};
    const stamp = Date.now().toString(36);
    for (const grant of grants) {
      const id = `${agentId}-${grant.name}-${stamp}`;
      sandbox.issueCapability(new Capability({ id, actionType: grant.actionType, target: grant.target, holder: agentId }));
      names[grant.name] = id;
    }
    const launch = {
      agentId,
      capabilities: names,
      ...(input === undefined ? {} : { input }),
      ...(deadlineMs === undefined ? {} : { limits: { deadlineMs } }),
      ...(values.isolation === undefined ? {} : { isolation: values.isolation as never }),
    };
    let runId: string | undefined;
    let outcome: { ok: boolean; value?: unknown; error?: { code: string; message: string; line?: number; column?: number } };
    let codeRun: CodeRunResult | undefined;
    if (code !== undefined) {
      codeRun = await sandbox.runCode({ ...launch, ...code });
      runId = codeRun.runId;
      outcome = codeRun;
    } else {
      const handle = await sandbox.launchAgent({ ...launch, module: module as string });
      runId = handle.runId;
      outcome = await handle.result;
    }
    await sandbox.audit.flush();
    const size = await sandbox.audit.size();
    const records = await sandbox.audit.read(first, size - first);
    const requests = records.filter(r => r.type === 'request' && r.agentId === agentId);
    const denied = requests.filter(r => r.decision === 'deny');
    const summary = {
      records: records.length,
      requests: requests.length,
      denied: denied.map(r => ({ seq: r.seq, actionType: r.actionType, target: r.target, code: r.code, rules: r.rules })),
      rootHash: await sandbox.audit.rootHash(),
      store: sandbox.storeDir,
    };
    if (values.json === true) {
      io.out(`${JSON.stringify({ ...(runId === undefined ? {} : { runId }), outcome, audit: summary }, null, 2)}\n`);
    } else {
      for (const line of codeRun?.console ?? []) io.out(`console.${line.level}: ${line.text}\n`);
      if (codeRun?.consoleTruncated === true) io.out('console: (cut)\n');
      const error = outcome.error;
      const position = error?.line === undefined ? '' : ` (line ${error.line}${error.column === undefined ? '' : `, column ${error.column}`})`;
      io.out(outcome.ok ? `result: ${JSON.stringify(outcome.value ?? null, null, 2)}\n` : `failed: ${error?.code ?? 'ZT_EFFECT_FAILED'}: ${error?.message ?? ''}${position}\n`);
      io.out(`run ${runId ?? '(refused before it started)'}: ${requests.length} request${requests.length === 1 ? '' : 's'}, ${denied.length} denied; ${records.length} records, root ${summary.rootHash}\n`);
      for (const d of summary.denied) io.out(`  denied #${String(d.seq)} ${String(d.actionType)} ${String(d.target)}: ${String(d.code)}${Array.isArray(d.rules) && d.rules.length > 0 ? ` (rule: ${d.rules.join(', ')})` : ''}\n`);
      io.out(`audit: ztaas audit timeline --store ${summary.store} --agent ${agentId}\n`);
    }
    return outcome.ok ? 0 : 1;
  } finally {
    await sandbox.shutdown();
  }
};
