import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { test } from './_prepare.js';
import { codeOfRejection, makeCtx, waitFor } from './_effectors.js';
import { makeTempDir, makeTestKernel } from './_kernel.js';
import { makeMcpToolEffectors, validateMcpServers, type McpServerConfig } from '../src/effectors/mcp.js';
import { makeNodeMcpPowers } from '../src/effectors/mcp-node-powers.js';
import { makeNodeEffectors } from '../src/effectors/node-effectors.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const EVERYTHING = join(repo, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const FILESYSTEM = join(repo, 'node_modules/@modelcontextprotocol/server-filesystem/dist/index.js');
const FIXTURE = join(repo, 'test/fixtures/effectors/mcp-fixture-server.js');

/** Live (non-zombie) processes whose command line contains `marker`. */
const processesWith = (marker: string): number[] => {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (cmdline.includes(marker) && stat[stat.lastIndexOf(')') + 2] !== 'Z') found.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
};

/** A fixture server config with a unique marker argument, so its processes can be found. */
const fixture = (mode: string, env: Record<string, string> = {}) => {
  const marker = `ztaas-fixture-${randomUUID()}`;
  const config: McpServerConfig = { command: process.execPath, args: [FIXTURE, mode, marker], env };
  return { config, marker };
};

const makeTool = (servers: Record<string, McpServerConfig>) => makeMcpToolEffectors({ servers, powers: makeNodeMcpPowers() });

const callAt = (effector: ReturnType<typeof makeTool>['effector'], target: string, args: Record<string, unknown>, effect?: Record<string, unknown>, controller?: AbortController, maxBytes?: number) =>
  effector(makeCtx({ actionType: ActionType.TOOL, target, args: { arguments: args }, ...(effect ? { effect } : {}), ...(controller ? { controller } : {}), ...(maxBytes ? { maxBytes } : {}) }).ctx) as Promise<{ content: Array<{ type: string; text?: string }>; structuredContent?: unknown; isError: boolean }>;

test.serial('calls tools of the real server-everything through the kernel', async t => {
  const { effectors, grantValidators, close } = makeNodeEffectors({ mcpServers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } } });
  t.teardown(close);
  const { kernel, sink } = makeTestKernel({ effectors });
  kernel.registerAgent('a');
  const issue = (id: string, target: string, effect?: Record<string, unknown>) => {
    const cap = new Capability({ id, actionType: ActionType.TOOL, target, holder: 'a', ...(effect ? { constraints: { effect } } : {}) });
    grantValidators.TOOL?.(cap.target, cap.constraints);
    kernel.issueCapability(cap);
  };
  issue('sum', 'everything/get-sum');
  issue('echo', 'everything/echo');
  const call = (capabilityId: string, target: string, args: Record<string, unknown>) =>
    kernel.execute(new ActionRequest({ capabilityId, agentId: 'a', actionType: ActionType.TOOL, target, args: { arguments: args } }), 'api');
  const sum = await call('sum', 'everything/get-sum', { a: 1, b: 2 });
  t.deepEqual(sum.result, { content: [{ type: 'text', text: 'The sum of 1 and 2 is 3.' }], isError: false });
  const echo = await call('echo', 'everything/echo', { message: 'hi' });
  t.true(echo.ok);
  t.regex(JSON.stringify(echo.result), /hi/);
  t.is((await call('sum', 'everything/echo', { message: 'x' })).error?.code, 'ZT_WRONG_TARGET', 'the capability names one tool');
  await kernel.flush();
  t.is(sink.records.filter(r => r.type === 'outcome' && r.status === 'succeeded').length, 2);
  t.throws(() => grantValidators.TOOL?.('nowhere/tool', {}), { message: /^ZT_BAD_ARGUMENT\b/ }, 'an unconfigured server cannot be granted');
});

test.serial('a tool called with arguments outside its schema is refused before the call', async t => {
  // Attack: arguments of the wrong type, extra properties or oversized values,
  // hoping the server mishandles them; and arguments outside what the
  // operator narrowed the capability to.
  const { config } = fixture('stdio');
  const tool = makeTool({ fx: config, everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } });
  t.teardown(tool.close);
  t.is(await codeOfRejection(callAt(tool.effector, 'everything/get-sum', { a: 'one', b: 2 })), 'ZT_BAD_ARGUMENT');
  t.is(await codeOfRejection(callAt(tool.effector, 'everything/get-sum', { a: 1 })), 'ZT_BAD_ARGUMENT', 'missing required argument');
  t.is(await codeOfRejection(callAt(tool.effector, 'fx/echo', { text: 'x'.repeat(101) })), 'ZT_BAD_ARGUMENT');
  t.is(await codeOfRejection(callAt(tool.effector, 'fx/echo', { text: 'hi', path: '/etc/passwd' })), 'ZT_BAD_ARGUMENT', 'additional property');
  const narrowed = { inputSchema: { type: 'object', properties: { text: { type: 'string', pattern: '^[a-z ]+$' } } } };
  t.is(await codeOfRejection(callAt(tool.effector, 'fx/echo', { text: 'DROP TABLE' }, narrowed)), 'ZT_ARGUMENT_DENIED');
  const ok = await callAt(tool.effector, 'fx/echo', { text: 'plain words' }, narrowed);
  t.deepEqual(ok, { content: [{ type: 'text', text: 'plain words' }], structuredContent: { echoed: 'plain words' }, isError: false });
  t.is(await codeOfRejection(callAt(tool.effector, 'fx/no-such-tool', {})), 'ZT_TOOL_UNKNOWN');
  t.is(await codeOfRejection(callAt(tool.effector, 'ghost/echo', {})), 'ZT_TOOL_UNKNOWN');
  t.throws(() => tool.validateGrant('fx/echo', { effect: { inputSchema: { type: 'no-such-type' } } }), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => tool.validateGrant('fx/echo', { effect: { retries: 3 } }), { message: /^ZT_BAD_ARGUMENT\b/ });
});

test.serial('server-filesystem: tools work inside its root, and its own refusals cross as data', async t => {
  const { dir, cleanup } = makeTempDir('ztaas-mcpfs-');
  t.teardown(cleanup);
  writeFileSync(join(dir, 'notes.txt'), 'remember the milk');
  const tool = makeTool({ fs: { command: process.execPath, args: [FILESYSTEM, dir] } });
  t.teardown(tool.close);
  const read = await callAt(tool.effector, 'fs/read_text_file', { path: join(dir, 'notes.txt') });
  t.false(read.isError);
  t.is(read.content[0]?.text, 'remember the milk');
  const listed = await callAt(tool.effector, 'fs/list_directory', { path: dir });
  t.regex(String(listed.content[0]?.text), /notes\.txt/);
  const outside = await callAt(tool.effector, 'fs/read_text_file', { path: '/etc/passwd' });
  t.true(outside.isError, 'the server refuses paths outside its root; the refusal is data');
  t.false(JSON.stringify(outside).includes('root:x:0:0'));
  t.is(await codeOfRejection(callAt(tool.effector, 'fs/read_text_file', { path: 42 })), 'ZT_BAD_ARGUMENT');
});

test.serial('revocation of a hanging tool: the call ends with ZT_REVOKED and MCP cancellation reaches the server', async t => {
  const { dir, cleanup } = makeTempDir('ztaas-mcp-');
  t.teardown(cleanup);
  const log = join(dir, 'cancel.log');
  const { config, marker } = fixture('stdio', { FIXTURE_CANCEL_LOG: log });
  const tool = makeTool({ fx: config });
  t.teardown(tool.close);
  const { kernel } = makeTestKernel({ effectors: { TOOL: tool.effector } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'hang', actionType: ActionType.TOOL, target: 'fx/hang', holder: 'a' }));
  kernel.issueCapability(new Capability({ id: 'echo', actionType: ActionType.TOOL, target: 'fx/echo', holder: 'a' }));
  const pending = kernel.execute(new ActionRequest({ capabilityId: 'hang', agentId: 'a', actionType: ActionType.TOOL, target: 'fx/hang', args: { arguments: {} } }), 'api');
  t.true(await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').includes('started hang')), 'the call reached the server');
  t.true(processesWith(marker).length > 0);
  kernel.revokeCapability('hang', 'test revokes');
  t.is((await pending).error?.code, 'ZT_REVOKED');
  t.true(await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').includes('cancelled hang')), 'notifications/cancelled reached the server');
  const after = await kernel.execute(new ActionRequest({ capabilityId: 'echo', agentId: 'a', actionType: ActionType.TOOL, target: 'fx/echo', args: { arguments: { text: 'still here' } } }), 'api');
  t.true(after.ok, 'the client survives a cancelled call');
  await tool.close();
  t.true(await waitFor(() => processesWith(marker).length === 0), 'close() stops the server');
  t.is(await codeOfRejection(callAt(tool.effector, 'fx/echo', { text: 'x' })), 'ZT_SHUT_DOWN');
});

test.serial('a tool past its deadline is cancelled (ZT_TIMEOUT)', async t => {
  const { dir, cleanup } = makeTempDir('ztaas-mcp-');
  t.teardown(cleanup);
  const log = join(dir, 'cancel.log');
  const { config } = fixture('stdio', { FIXTURE_CANCEL_LOG: log });
  const tool = makeTool({ fx: config });
  t.teardown(tool.close);
  t.is(await codeOfRejection(callAt(tool.effector, 'fx/hang', {}, { timeoutMs: 1500 })), 'ZT_TIMEOUT');
  t.true(await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').includes('cancelled')));
});

test.serial('a crashing server yields ZT_TOOL_FAILED, leaves no process, and is restarted on the next call', async t => {
  const { config, marker } = fixture('stdio');
  const tool = makeTool({ fx: config });
  t.teardown(tool.close);
  t.is((await callAt(tool.effector, 'fx/echo', { text: 'before' })).content[0]?.text, 'before');
  const [first] = processesWith(marker);
  t.truthy(first);
  t.is(await codeOfRejection(callAt(tool.effector, 'fx/crash', {})), 'ZT_TOOL_FAILED');
  t.true(await waitFor(() => !processesWith(marker).includes(first as number)), 'the crashed server is gone');
  t.is((await callAt(tool.effector, 'fx/echo', { text: 'after' })).content[0]?.text, 'after', 'a fresh server answers');
});

test.serial('a server that never answers: ZT_TOOL_FAILED within the connect bound, and its process is killed', async t => {
  const { config, marker } = fixture('mute');
  const tool = makeTool({ mute: { ...config, connectTimeoutMs: 800 } as McpServerConfig });
  t.teardown(tool.close);
  const started = Date.now();
  t.is(await codeOfRejection(callAt(tool.effector, 'mute/anything', {})), 'ZT_TOOL_FAILED');
  t.true(Date.now() - started < 10_000);
  t.true(await waitFor(() => processesWith(marker).length === 0), 'no stray server process');
  const missing = makeTool({ gone: { command: '/nonexistent/mcp-server' } });
  t.is(await codeOfRejection(callAt(missing.effector, 'gone/x', {})), 'ZT_TOOL_FAILED');
});

test.serial('result bombs are refused with ZT_TOO_LARGE', async t => {
  // Attack: a tool returns a result far larger than the agent may receive.
  const { config } = fixture('stdio');
  const tool = makeTool({ fx: config });
  t.teardown(tool.close);
  t.is(await codeOfRejection(callAt(tool.effector, 'fx/big', { bytes: 200_000 }, { maxResultBytes: 10_000 })), 'ZT_TOO_LARGE');
  t.is(await codeOfRejection(callAt(tool.effector, 'fx/big', { bytes: 200_000 }, undefined, undefined, 50_000)), 'ZT_TOO_LARGE');
  t.is((await callAt(tool.effector, 'fx/big', { bytes: 100 })).content[0]?.text?.length, 100);
});

test.serial('environment leakage: a stdio server gets only its configured environment', async t => {
  // Attack: a tool that reports its environment (server-everything's get-env,
  // the fixture's env) reveals the kernel's secrets if they are inherited.
  process.env.ZTAAS_TEST_SECRET = 'hunter2';
  t.teardown(() => {
    delete process.env.ZTAAS_TEST_SECRET;
  });
  const { config } = fixture('stdio', { ONLY_THIS: '1' });
  const tool = makeTool({ fx: config, everything: { command: process.execPath, args: [EVERYTHING, 'stdio'], env: { ONLY_THIS: '1' } } });
  t.teardown(tool.close);
  const names = (await callAt(tool.effector, 'fx/env', {})).content[0]?.text ?? '';
  t.false(names.includes('ZTAAS_TEST_SECRET'));
  t.false(names.split(',').includes('PATH'), 'not even PATH is inherited');
  t.true(names.split(',').includes('ONLY_THIS'));
  const everything = JSON.stringify(await callAt(tool.effector, 'everything/get-env', {}));
  t.false(everything.includes('hunter2'));
  t.true(everything.includes('ONLY_THIS'));
});

test.serial('an HTTP-configured server (streamable HTTP on 127.0.0.1)', async t => {
  const { config } = fixture('http');
  const stdio = config as { command: string; args: string[] };
  const server = spawn(stdio.command, stdio.args, { env: {}, stdio: ['pipe', 'pipe', 'ignore'] });
  t.teardown(() => {
    server.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.stdout.once('data', (chunk: Buffer) => resolve(Number(String(chunk).trim())));
    server.once('exit', () => reject(Error('fixture exited')));
  });
  const tool = makeTool({ web: { url: `http://127.0.0.1:${port}/mcp` } });
  t.teardown(tool.close);
  t.is((await callAt(tool.effector, 'web/echo', { text: 'over http' })).content[0]?.text, 'over http');
  t.is(await codeOfRejection(callAt(tool.effector, 'web/echo', { text: 7 })), 'ZT_BAD_ARGUMENT');
});

test('server configuration is validated', t => {
  t.notThrows(() => validateMcpServers({ a: { command: '/usr/bin/node', args: ['x'], env: { K: 'v' } }, b: { url: 'https://tools.example.com/mcp' } }));
  for (const bad of [{ a: { command: 'node' } }, { a: { url: 'ftp://x' } }, { a: {} }, { a: { command: '/x', url: 'http://x' } }, { 'bad/name': { command: '/x' } }, { a: { command: '/x', shell: true } }]) {
    t.throws(() => validateMcpServers(bad), { message: /^ZT_BAD_ARGUMENT\b/ }, JSON.stringify(bad));
  }
});
