/**
 * The toolbox example agent, end to end against the real effectors: files,
 * a process, an MCP tool (server-everything) and HTTP (a local server), each
 * call going through a kernel with an audit sink. The caretakers here are
 * test stand-ins that shape arguments the way the membrane's do (`read`,
 * `write`, `run`, `fetch`, `call`); the agent module is the shipped file.
 */
import { test } from './_prepare.js';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { E, Far } from '@endo/far';
import { makeTempDir, makeTestKernel } from './_kernel.js';
import { makeNodeEffectors } from '../src/effectors/node-effectors.js';
import { ActionRequest, ActionType, Capability, type ActionArgs } from '../src/types.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const EVERYTHING = join(repo, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');

test('the toolbox agent uses one capability of each kind, and every call is audited', async t => {
  const { dir, cleanup } = makeTempDir('ztaas-toolbox-');
  t.teardown(cleanup);
  mkdirSync(join(dir, 'out'));
  writeFileSync(join(dir, 'notes.txt'), 'one two three four five\n');
  const server = createServer((_req, res) => res.end('all systems nominal\n'));
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const { effectors, grantValidators, close } = makeNodeEffectors({ mcpServers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } } });
  t.teardown(close);
  const { kernel, sink } = makeTestKernel({ effectors });
  kernel.registerAgent('toolbox');
  const grants = [
    { id: 'notes', actionType: ActionType.READ, target: join(dir, 'notes.txt') },
    { id: 'wc', actionType: ActionType.EXECUTE, target: '/usr/bin/wc', constraints: { effect: { args: ['-w'], timeoutMs: 5000 } } },
    { id: 'sum', actionType: ActionType.TOOL, target: 'everything/get-sum' },
    { id: 'status', actionType: ActionType.NETWORK, target: `${origin}/**`, constraints: { effect: { methods: ['GET'], allowPrivateAddresses: ['127.0.0.1/32'] } } },
    { id: 'report', actionType: ActionType.WRITE, target: join(dir, 'out', 'report.txt') },
  ];
  for (const g of grants) {
    const cap = new Capability({ ...g, holder: 'toolbox' });
    grantValidators[cap.actionType]?.(cap.target, cap.constraints);
    kernel.issueCapability(cap);
  }
  const invoke = async (capabilityId: string, actionType: ActionType, target: string, args: ActionArgs) => {
    const outcome = await kernel.execute(new ActionRequest({ capabilityId, agentId: 'toolbox', actionType, target, args }), 'api');
    if (!outcome.ok) throw Error(`${outcome.error?.code}: ${outcome.error?.message}`);
    return outcome.result;
  };
  const targetOf = (id: string) => kernel.getCapability(id)?.target ?? '';
  const caps = harden({
    notes: Far('notes', { read: () => invoke('notes', ActionType.READ, targetOf('notes'), {}) }),
    wc: Far('wc', { run: (argv: string[], opts: Record<string, unknown> = {}) => invoke('wc', ActionType.EXECUTE, targetOf('wc'), { argv, ...opts }) }),
    sum: Far('sum', { call: (args: Record<string, unknown>) => invoke('sum', ActionType.TOOL, targetOf('sum'), { arguments: args }) }),
    status: Far('status', { fetch: (url: string, opts: Record<string, unknown> = {}) => invoke('status', ActionType.NETWORK, url, opts) }),
    report: Far('report', { write: (content: string) => invoke('report', ActionType.WRITE, targetOf('report'), { content }) }),
  });

  // The agent module expects `E` as an endowment, as in its vat.
  (globalThis as { E?: unknown }).E = E;
  t.teardown(() => {
    delete (globalThis as { E?: unknown }).E;
  });
  const agent = (await import(pathToFileURL(join(repo, 'examples/agents/toolbox/index.js')).href)) as { default: (p: unknown) => Promise<unknown> };
  const result = (await agent.default({ caps, input: { title: 'Notes', bonus: 10, statusUrl: `${origin}/status` } })) as { words: number; total: string; status: string };
  t.is(result.words, 5);
  t.is(result.total, 'The sum of 5 and 10 is 15.');
  t.is(result.status, '200 all systems nominal');
  t.is(readFileSync(join(dir, 'out', 'report.txt'), 'utf8'), 'Notes: 5 words; The sum of 5 and 10 is 15.; status 200 all systems nominal\n');
  await kernel.flush();
  const kinds = sink.records.filter(r => r.type === 'outcome' && r.status === 'succeeded').length;
  t.is(kinds, 5, 'five mediated actions, each with its outcome record');
  t.deepEqual(
    sink.records.filter(r => r.type === 'request').map(r => r.actionType),
    ['READ', 'EXECUTE', 'TOOL', 'NETWORK', 'WRITE'],
  );
  // The same agent with an argument its grant does not allow is refused.
  await t.throwsAsync(() => E(caps.wc).run(['-l']), { message: /^ZT_ARGUMENT_DENIED\b/ });
});
