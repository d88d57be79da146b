/**
 * The demo's body, callable in-process: confined agents on a store under
 * `root`. The seed example, then agents in their own vats: a benign one
 * that does its job with the two capabilities it holds, a toolbox one using
 * one capability of each kind, code a scripted model submits (`runCode`:
 * it reads a file, calls an MCP tool, is denied a forbidden path and
 * returns a summary), a hostile one whose every escape attempt is stopped,
 * and a runaway one that is stopped at its deadline. Everything lands in the audit log under `root`, which is
 * emptied first. Reports each check through `log` and resolves with the
 * number of checks that failed.
 *
 * It is an ordinary host program: it imports the package and nothing else
 * of the perimeter, so the realm it runs in stays as the host made it.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ActionRequest, ActionType, Capability, SandboxRuntime, codeOf } from '../src/index.js';
import { runSeedExample } from './seed.js';
import { verifyStore } from '../src/audit/verify-node.js';

const agentsDir = fileURLToPath(new URL('../../examples/agents/', import.meta.url));

export const runDemo = async ({ root, log = line => console.log(line) }: { root: string; log?: (line: string) => void }): Promise<{ failures: number }> => {
  const dataDir = join(root, 'data');

  let failures = 0;
  let rotatedKey: string | undefined;
  const check = (label: string, ok: boolean, detail = '') => {
    if (!ok) failures += 1;
    log(`  ${ok ? '✔' : '✘'} ${label}${detail ? ` — ${detail}` : ''}`);
  };
  const heading = (text: string) => log(`\n${text}`);

  await rm(root, { recursive: true, force: true });
  await mkdir(join(dataDir, 'out'), { recursive: true });
  await writeFile(join(dataDir, 'report.txt'), 'Quarterly results were strong across every region this year\n');
  await writeFile(join(dataDir, 'notes.txt'), 'meeting notes\n');
  await writeFile(join(dataDir, 'secret.txt'), 'the launch codes\n');

  heading('1. The seed example (the grant names its holder)');
  const seed = await runSeedExample(join(root, 'seed-store'));
  check('executeAction READ succeeded', seed.ok && seed.result === 'hello from the seed example\n', JSON.stringify(seed.result));
  check('the outcome references its audit records', seed.audit.decision !== undefined && seed.audit.outcome !== undefined, `decision #${seed.audit.decision?.seq}, outcome #${seed.audit.outcome?.seq}`);

  // A local status page for the toolbox agent's NETWORK capability (loopback only).
  const statusServer = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('all systems nominal\n');
  });
  await new Promise<void>(resolve => statusServer.listen(0, '127.0.0.1', resolve));
  const statusOrigin = `http://127.0.0.1:${(statusServer.address() as AddressInfo).port}`;
  const everything = fileURLToPath(new URL('../../node_modules/@modelcontextprotocol/server-everything/dist/index.js', import.meta.url));

  const policy = {
    version: 1,
    rules: [
      { id: 'read-data', effect: 'permit', actions: ['READ'], targets: [`${dataDir}/**`] },
      { id: 'write-out', effect: 'permit', actions: ['WRITE'], targets: [`${dataDir}/out/**`] },
      { id: 'no-secrets', effect: 'forbid', targets: [`${dataDir}/secret*`] },
      { id: 'count-words', effect: 'permit', actions: ['EXECUTE'], targets: ['/usr/bin/wc'] },
      { id: 'sum-tool', effect: 'permit', actions: ['TOOL'], targets: ['everything/get-sum'] },
      { id: 'status-page', effect: 'permit', actions: ['NETWORK'], targets: [`${statusOrigin}/**`] },
    ],
  };
  const sandbox = new SandboxRuntime({
    storeDir: join(root, 'store'),
    policy,
    limits: { deadlineMs: 20_000 },
    mcpServers: { everything: { command: process.execPath, args: [everything, 'stdio'] } },
  });

  try {
    heading('2. Requests on the seed API that must be denied');
    sandbox.registerAgent('analyst');
    sandbox.registerAgent('intruder');
    sandbox.issueCapability(new Capability({ id: 'report', actionType: ActionType.READ, target: join(dataDir, 'report.txt'), holder: 'analyst' }));
    sandbox.issueCapability(new Capability({ id: 'summary', actionType: ActionType.WRITE, target: join(dataDir, 'out', 'summary.txt'), holder: 'analyst' }));
    const deny = async (label: string, init: ConstructorParameters<typeof ActionRequest>[0], code: string) => {
      const outcome = await sandbox.executeAction(new ActionRequest(init));
      check(label, outcome.status === 'denied' && outcome.error?.code === code, outcome.error?.code ?? 'ALLOWED');
    };
    await deny('a capability issued to another agent', { capabilityId: 'report', agentId: 'intruder', actionType: ActionType.READ, target: join(dataDir, 'report.txt') }, 'ZT_WRONG_HOLDER');
    await deny('an unknown agent', { capabilityId: 'report', agentId: 'ghost', actionType: ActionType.READ, target: join(dataDir, 'report.txt') }, 'ZT_UNKNOWN_AGENT');
    await deny('an unknown capability', { capabilityId: 'master-key', agentId: 'analyst', actionType: ActionType.READ, target: join(dataDir, 'report.txt') }, 'ZT_UNKNOWN_CAPABILITY');
    await deny('another action type', { capabilityId: 'report', agentId: 'analyst', actionType: ActionType.WRITE, target: join(dataDir, 'report.txt'), args: { content: 'x' } }, 'ZT_WRONG_ACTION');
    await deny('another target', { capabilityId: 'report', agentId: 'analyst', actionType: ActionType.READ, target: join(dataDir, 'secret.txt') }, 'ZT_WRONG_TARGET');
    try {
      sandbox.issueCapability(new Capability({ id: 'secret', actionType: ActionType.READ, target: join(dataDir, 'secret.txt'), holder: 'intruder' }));
      check('the policy refuses to grant the secret', false);
    } catch (err) {
      check('the policy refuses to grant the secret', codeOf(err) === 'ZT_POLICY_DENIED', codeOf(err));
    }
    try {
      sandbox.issueCapability(new Capability({ id: 'anyone', actionType: ActionType.READ, target: join(dataDir, 'notes.txt') } as never));
      check('a grant without a holder is refused', false);
    } catch (err) {
      check('a grant without a holder is refused', codeOf(err) === 'ZT_NO_HOLDER', codeOf(err));
    }

    heading('3. A benign agent in its own vat, holding two capabilities');
    const benign = await sandbox.launchAgent({
      agentId: 'analyst',
      module: join(agentsDir, 'benign'),
      capabilities: ['report', 'summary'],
      input: { title: 'Q3 report' },
    });
    const benignOutcome = await benign.result;
    check('it read the report and wrote its summary', benignOutcome.ok, JSON.stringify(benignOutcome.value ?? benignOutcome.error));
    const written = await readFile(join(dataDir, 'out', 'summary.txt'), 'utf8').catch(() => '');
    check('the summary is on disk', written === 'Q3 report: 9 words\n', JSON.stringify(written));

    heading('4. A toolbox agent: a file, a process, an MCP tool and an HTTP page, each mediated');
    sandbox.registerAgent('toolbox');
    const grant = (id: string, actionType: ActionType, target: string, constraints?: object) =>
      sandbox.issueCapability(new Capability({ id, actionType, target, holder: 'toolbox', ...(constraints ? { constraints } : {}) }));
    grant('tb-notes', ActionType.READ, join(dataDir, 'notes.txt'));
    grant('tb-wc', ActionType.EXECUTE, '/usr/bin/wc', { effect: { args: ['-w'], timeoutMs: 5_000 } });
    grant('tb-sum', ActionType.TOOL, 'everything/get-sum');
    grant('tb-status', ActionType.NETWORK, `${statusOrigin}/**`, { effect: { methods: ['GET'], allowPrivateAddresses: ['127.0.0.1/32'] } });
    grant('tb-report', ActionType.WRITE, join(dataDir, 'out', 'toolbox.txt'));
    const toolbox = await sandbox.launchAgent({
      agentId: 'toolbox',
      module: join(agentsDir, 'toolbox'),
      // Names the agent uses (caps.notes, …) for the ids the operator issued.
      capabilities: { notes: 'tb-notes', wc: 'tb-wc', sum: 'tb-sum', status: 'tb-status', report: 'tb-report' },
      input: { title: 'notes', bonus: 40, statusUrl: `${statusOrigin}/status` },
    });
    const toolboxOutcome = await toolbox.result;
    check('the toolbox agent used all five kinds of capability', toolboxOutcome.ok, JSON.stringify(toolboxOutcome.value ?? toolboxOutcome.error));
    const toolboxReport = await readFile(join(dataDir, 'out', 'toolbox.txt'), 'utf8').catch(() => '');
    check('its report is on disk', toolboxReport.startsWith('notes: 2 words;'), JSON.stringify(toolboxReport.trim()));

    heading('5. Code mode: a scripted model submits code, run in a fresh vat with the toolbox agent\'s capabilities');
    // What a model would write for "summarise the notes, add the bonus, and try the secret": a script body
    // (top-level await and return), reading a file, calling the MCP tool, and trying a path the policy forbids.
    grant('tb-data', ActionType.READ, `${dataDir}/*.txt`);
    const modelSource = [
      'const notes = await E(caps.notes).read();',
      'const words = notes.trim().split(/\\s+/).length;',
      'const summed = await E(caps.sum).call({ a: words, b: input.bonus });',
      "const total = summed.content.map(part => part.text ?? '').join(' ');",
      "console.log('notes:', words, 'words;', total);",
      "let denied = 'not denied';",
      'try {',
      '  await E(caps.files).read({ path: input.secret });',
      '} catch (err) {',
      "  denied = /^ZT_[A-Z_]+/.exec(String(err.message))?.[0] ?? 'no code';",
      '}',
      "console.warn('the secret was refused:', denied);",
      'return { summary: `${words} words; ${total}`, denied };',
    ].join('\n');
    const codeRun = await sandbox.runCode({
      agentId: 'toolbox',
      source: modelSource,
      capabilities: { notes: 'tb-notes', sum: 'tb-sum', files: 'tb-data' },
      input: { bonus: 40, secret: join(dataDir, 'secret.txt') },
    });
    const codeValue = (codeRun.value ?? {}) as { summary?: string; denied?: string };
    check('the code read the notes, called the MCP tool and returned a summary', codeRun.ok && /^2 words; .*\b42\b/.test(codeValue.summary ?? ''), JSON.stringify(codeRun.value ?? codeRun.error));
    check('reading the secret was denied by the policy', codeValue.denied === 'ZT_POLICY_DENIED', codeValue.denied ?? 'no answer');
    check(
      'its console came back',
      codeRun.console.length === 2 && codeRun.console[0]?.level === 'log' && codeRun.console[1]?.text === 'the secret was refused: ZT_POLICY_DENIED',
      codeRun.console.map(line => `${line.level}: ${line.text}`).join(' | '),
    );
    await sandbox.audit.flush();
    const runRecords = (await sandbox.audit.read(0, await sandbox.audit.size())).filter(r => r.runId !== undefined && r.runId === codeRun.runId);
    const ofRun = (type: string) => runRecords.filter(r => r.type === type);
    const runRequests = ofRun('request');
    check(
      'its audit records carry the run id: launch, three decisions (one denial) and end',
      codeRun.runId !== undefined &&
        runRecords.some(r => r.seq === codeRun.audit.launched?.seq && r.type === 'agent.launched') &&
        runRecords.some(r => r.seq === codeRun.audit.finished?.seq && r.type === 'agent.finished') &&
        runRequests.length === 3 &&
        runRequests.filter(r => r.decision === 'deny').map(r => r.code).join() === 'ZT_POLICY_DENIED',
      `run ${codeRun.runId}: ${runRequests.map(r => `${String(r.capabilityId)} ${String(r.decision)}`).join(', ')}`,
    );

    heading('6. A hostile agent: every escape attempt is stopped');
    sandbox.issueCapability(new Capability({ id: 'notes', actionType: ActionType.READ, target: join(dataDir, 'notes.txt'), holder: 'intruder' }));
    const hostile = await sandbox.launchAgent({
      agentId: 'intruder',
      module: join(agentsDir, 'hostile'),
      capabilities: ['notes'],
      input: { notes: dataDir, forbidden: join(dataDir, 'secret.txt') },
    });
    const hostileOutcome = await hostile.result;
    const attempts = (hostileOutcome.value ?? []) as Array<{ name: string; escaped: boolean; error?: string }>;
    check('the hostile agent ran to the end', hostileOutcome.ok && attempts.length > 0, hostileOutcome.error?.code ?? '');
    for (const a of attempts) check(`stopped: ${a.name}`, !a.escaped, a.error ?? 'ESCAPED');
    for (const [name, code] of [['importer', 'ZT_MODULE_FORBIDDEN'], ['outside', 'ZT_MODULE_OUTSIDE']] as const) {
      try {
        await sandbox.launchAgent({ agentId: 'intruder', module: join(agentsDir, name) });
        check(`the ${name} agent is refused at load`, false);
      } catch (err) {
        check(`the ${name} agent is refused at load`, codeOf(err) === code, codeOf(err));
      }
    }

    heading('7. A runaway agent is stopped at its deadline');
    sandbox.registerAgent('spinner');
    sandbox.issueCapability(new Capability({ id: 'spinner-notes', actionType: ActionType.READ, target: join(dataDir, 'notes.txt'), holder: 'spinner' }));
    const started = performance.now();
    const runaway = await sandbox.launchAgent({ agentId: 'spinner', module: join(agentsDir, 'runaway'), capabilities: ['spinner-notes'], limits: { deadlineMs: 500 } });
    const runawayOutcome = await runaway.result;
    check('stopped with ZT_DEADLINE', runawayOutcome.error?.code === 'ZT_DEADLINE', `after ${Math.round(performance.now() - started)} ms`);
    check('its capabilities were revoked', sandbox.getCapability('spinner-notes')?.state === 'revoked');

    heading('8. The audit log');
    await sandbox.audit.flush();
    const size = await sandbox.audit.size();
    const records = await sandbox.audit.read(0, size);
    const byType = new Map<string, number>();
    for (const r of records) byType.set(String(r.type), (byType.get(String(r.type)) ?? 0) + 1);
    check('every request has a decision record', records.filter(r => r.type === 'request').length >= 8, `${size} records`);
    const levels = [...new Set(records.filter(r => r.type === 'agent.launched').map(r => String(r.isolation)))];
    check('every agent ran in a sandboxed process (the default level)', levels.length === 1 && levels[0] === 'process', levels.join(', '));
    log(`  root hash ${await sandbox.audit.rootHash()}`);
    log(`  ${[...byType].map(([type, n]) => `${type}: ${n}`).join(', ')}`);
    log(`  store: ${join(root, 'store')}`);
    const rotated = await sandbox.rotateAuditKey();
    rotatedKey = rotated.key;
    check('the checkpoint key rotated, with a handover signed by both keys', rotated.size > 0, `handover at ${rotated.size} records`);
  } finally {
    await sandbox.shutdown();
    statusServer.close();
  }

  if (rotatedKey !== undefined) {
    // What an auditor does with the folder and the key published after the rotation.
    const report = await verifyStore(join(root, 'store', 'audit'), { vkey: rotatedKey });
    check(
      'the whole log verifies, anchored in the new key',
      report.rotations === 1 && report.checkpoints > 0,
      `${report.size} records, ${report.checkpoints} signed checkpoints, root ${report.rootHash.slice(0, 16)}…`,
    );
  }

  log(failures === 0 ? '\nAll confinement checks held.' : `\n${failures} check(s) failed.`);
  return { failures };
};
