/**
 * `ztaas run`: one agent from the shell, with the grants named on the
 * command line, under a policy file; prints its result and a short audit
 * summary; exits 0 when the run succeeded, 1 otherwise.
 *
 *   ztaas run ./agent --policy policy.yaml --grant read:/data/** \
 *     --grant report=write:/out/report.txt --input '{"title":"Q3"}'
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
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ZtError } from '../errors.js';
import { SandboxRuntime } from '../runtime.js';
import { ActionType, Capability } from '../types.js';
import { isIsolationLevel } from '../isolation/levels.js';

export { RUN_USAGE } from './run-usage.js';

const KINDS: Readonly<Record<string, ActionType>> = {
  read: ActionType.READ,
  write: ActionType.WRITE,
  exec: ActionType.EXECUTE,
  net: ActionType.NETWORK,
  tool: ActionType.TOOL,
};

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
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1) throw new ZtError('ZT_BAD_ARGUMENT', 'ztaas run needs exactly one agent module (a .js file or a folder with index.js)');
  const module = resolve(positionals[0] as string);
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
    const handle = await sandbox.launchAgent({
      agentId,
      module,
      capabilities: names,
      ...(input === undefined ? {} : { input }),
      ...(deadlineMs === undefined ? {} : { limits: { deadlineMs } }),
      ...(values.isolation === undefined ? {} : { isolation: values.isolation as never }),
    });
    const outcome = await handle.result;
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
      io.out(`${JSON.stringify({ runId: handle.runId, outcome, audit: summary }, null, 2)}\n`);
    } else {
      io.out(outcome.ok ? `result: ${JSON.stringify((outcome as { value?: unknown }).value ?? null, null, 2)}\n` : `failed: ${outcome.error?.code ?? 'ZT_EFFECT_FAILED'}: ${outcome.error?.message ?? ''}\n`);
      io.out(`run ${handle.runId}: ${requests.length} request${requests.length === 1 ? '' : 's'}, ${denied.length} denied; ${records.length} records, root ${summary.rootHash}\n`);
      for (const d of summary.denied) io.out(`  denied #${String(d.seq)} ${String(d.actionType)} ${String(d.target)}: ${String(d.code)}${Array.isArray(d.rules) && d.rules.length > 0 ? ` (rule: ${d.rules.join(', ')})` : ''}\n`);
      io.out(`audit: ztaas audit timeline --store ${summary.store} --agent ${agentId}\n`);
    }
    return outcome.ok ? 0 : 1;
  } finally {
    await sandbox.shutdown();
  }
};
