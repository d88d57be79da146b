/**
 * Mediated actions end to end: a real agent vat, the real effectors, the
 * real audit vat, through `SandboxRuntime`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from './_prepare.js';
import { fixtureAgent } from './_vats.js';
import { ActionType, Capability, SandboxRuntime } from '../src/index.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const EVERYTHING = join(repo, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');

test.serial('the toolbox agent uses a file, a process, an MCP tool and HTTP through its caretakers', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-mediated-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'notes.txt'), 'three little words');
  const server = createServer((_req, res) => res.end('green\n'));
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sandbox = new SandboxRuntime({
    storeDir: join(dir, 'store'),
    mcpServers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } },
  });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('toolbox');
  const grant = (id: string, actionType: ActionType, target: string, constraints?: object) =>
    sandbox.issueCapability(new Capability({ id, actionType, target, holder: 'toolbox', ...(constraints ? { constraints } : {}) }));
  grant('n', ActionType.READ, join(dir, 'notes.txt'));
  grant('w', ActionType.EXECUTE, '/usr/bin/wc', { effect: { args: ['-w'] } });
  grant('s', ActionType.TOOL, 'everything/get-sum');
  grant('h', ActionType.NETWORK, `${origin}/**`, { effect: { methods: ['GET'], allowPrivateAddresses: ['127.0.0.1/32'] } });
  grant('r', ActionType.WRITE, join(dir, 'report.txt'));
  const run = await (
    await sandbox.launchAgent({
      agentId: 'toolbox',
      module: join(repo, 'examples/agents/toolbox'),
      capabilities: { notes: 'n', wc: 'w', sum: 's', status: 'h', report: 'r' },
      input: { title: 'notes', bonus: 1, statusUrl: `${origin}/health` },
    })
  ).result;
  t.deepEqual(run.value, { words: 3, total: 'The sum of 3 and 1 is 4.', status: '200 green' });
  t.is(readFileSync(join(dir, 'report.txt'), 'utf8'), 'notes: 3 words; The sum of 3 and 1 is 4.; status 200 green\n');
  await sandbox.audit.flush();
  const records = await sandbox.audit.read(0, await sandbox.audit.size());
  t.deepEqual(
    records.filter(r => r.type === 'outcome').map(r => r.status),
    ['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded'],
  );
  t.deepEqual(records.filter(r => r.type === 'request').map(r => r.actionType), ['READ', 'EXECUTE', 'TOOL', 'NETWORK', 'WRITE']);
});

test.serial('revoking a capability stops its running process: the agent gets ZT_REVOKED and the process is gone', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-mediated-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('sleeper');
  const seconds = '47.31';
  sandbox.issueCapability(new Capability({ id: 'sleep', actionType: ActionType.EXECUTE, target: '/usr/bin/sleep', holder: 'sleeper', constraints: { effect: { args: [{ regex: '[0-9.]+' }], timeoutMs: 60_000 } } }));
  const handle = await sandbox.launchAgent({ agentId: 'sleeper', module: fixtureAgent('sleeper'), capabilities: ['sleep'], input: { seconds } });
  const running = () => execFileSync('ps', ['-eo', 'args']).toString().split('\n').some(line => line.trim() === `/usr/bin/sleep ${seconds}`);
  const started = Date.now();
  while (!running()) {
    if (Date.now() - started > 20_000) throw Error('the process never started');
    await new Promise(resolve => setTimeout(resolve, 50));
  }
  sandbox.revokeCapability('sleep', 'operator stops it');
  const run = await handle.result;
  t.deepEqual(run.value, { finished: false, code: 'ZT_REVOKED' });
  let gone = false;
  for (let i = 0; i < 40 && !gone; i += 1) {
    gone = !running();
    if (!gone) await new Promise(resolve => setTimeout(resolve, 50));
  }
  t.true(gone, 'the sleep process was killed');
});
