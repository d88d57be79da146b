/**
 * The MCP gateway under attack, through the real path: a real `ztaas
 * gateway` process, raw HTTP requests, raw JSON-RPC on its stdio, raw
 * lines on its control socket, and the SDK client where a real client is
 * the point. Each test opens with the attack it makes; each asserts the
 * code (or status) that stops it. No timing assertions. This file skips
 * the locked-down harness: the gateway and its clients are host programs.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { makeToolCatalogue } from '../src/gateway/tools.js';
import { FIXTURE, auditRecords, connectStdio, makeToken, makeWorkspace, startHttpGateway, textOf, waitFor, ztaas, type Workspace } from './_gateway.js';
import { callTool, controlLine, heldPosts, initialize, messagesOf, openSession, post, rawStdio, refusalOf } from './_gateway-attacks.js';

const POLICY = {
  version: 1,
  rules: [
    { id: 'fixture-tools', effect: 'permit', actions: ['TOOL'], targets: ['fx/*'] },
    { id: 'read-anything-granted', effect: 'permit', actions: ['READ'], targets: ['/**'] },
  ],
};
const fx = { fx: { command: process.execPath, args: [FIXTURE, 'stdio'] } };

/** A workspace whose READ grant names its own data folder. */
const dataWorkspace = (t: Parameters<typeof makeWorkspace>[0], config: Record<string, unknown>): Workspace => {
  const ws = makeWorkspace(t, config);
  writeFileSync(ws.config, readFileSync(ws.config, 'utf8').replaceAll('/DATA', join(ws.dir, 'data')));
  writeFileSync(join(ws.dir, 'data', 'hello.txt'), 'hello\n');
  return ws;
};

test('tool-name collision: two upstream tools whose exposed names coincide are both withheld', t => {
  // Attack: a server the agent holds `x/*` for announces `y__z`, exposed as
  // `x__y__z` — the name of server `x__y`'s tool `z`; a server with `.` in a
  // tool name collides with `_`; a long name collides past the 64-character cut.
  const long = 'l'.repeat(70);
  const upstream = [
    { server: 'x', name: 'y__z', inputSchema: { type: 'object' }, status: 'pinned' },
    { server: 'x__y', name: 'z', inputSchema: { type: 'object' }, status: 'pinned' },
    { server: 'x', name: 'b.c', inputSchema: { type: 'object' }, status: 'pinned' },
    { server: 'x', name: 'b_c', inputSchema: { type: 'object' }, status: 'pinned' },
    { server: 'x', name: `${long}1`, inputSchema: { type: 'object' }, status: 'pinned' },
    { server: 'x', name: `${long}2`, inputSchema: { type: 'object' }, status: 'pinned' },
    { server: 'x', name: 'fine', inputSchema: { type: 'object' }, status: 'pinned' },
  ];
  const held = [
    { id: 'x-all', actionType: 'TOOL', target: 'x/*', state: 'live' },
    { id: 'xy-z', actionType: 'TOOL', target: 'x__y/z', state: 'live' },
  ] as const;
  const catalogue = makeToolCatalogue(held as never, upstream);
  t.deepEqual(
    catalogue.tools.map(x => x.name),
    ['x__fine'],
  );
  for (const name of ['x__y__z', 'x__b_c', `x__${long}`.slice(0, 64)]) t.is((t.throws(() => catalogue.route(name, {})) as { code?: string }).code, 'ZT_TOOL_UNKNOWN', name);
});

test('prototype keys as tool names route nowhere', t => {
  // Attack: `__proto__`, `constructor`, `toString` as tool names, hoping for an inherited route.
  const catalogue = makeToolCatalogue([{ id: 'r', actionType: 'READ', target: '/d/**', state: 'live' }] as never, []);
  for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) t.is((t.throws(() => catalogue.route(name, {})) as { code?: string }).code, 'ZT_TOOL_UNKNOWN');
});

test.serial('HTTP: a flood of concurrent initialize requests cannot overshoot maxSessions; refusals carry ZT_TOO_MANY_SESSIONS', async t => {
  // Attack: ten initialize requests whose bodies arrive together, after all
  // their headers: every one passes a bound that counts only finished sessions.
  const a = makeToken();
  const ws = makeWorkspace(t, { policy: POLICY, agents: { alice: { tokenSha256: a.hash, grants: [] } }, http: { host: '127.0.0.1', port: 0, path: '/mcp', maxSessions: 3, maxSessionsPerAgent: 3 } });
  const { url } = await startHttpGateway(t, ws);
  const flood = heldPosts(url, 10, initialize(), a.token);
  await new Promise(resolve => setTimeout(resolve, 500));
  const answers = await flood.release();
  const made = answers.filter(x => x.status === 200 && x.sessionId !== undefined);
  t.true(made.length <= 3, `${made.length} sessions were made`);
  t.true(answers.filter(x => x.status === 503).length >= 7);
  // One more, later: an agent at its bound gives up its least recently used idle session; the bound still holds.
  t.is((await post(url, initialize(), { token: a.token })).status, 200);
  const sessions = JSON.parse(await controlLine(ws.store, '{"op":"sessions"}\n')) as { value: unknown[] };
  t.true(sessions.value.length <= 3, `${sessions.value.length} sessions`);
  await waitFor(() => auditRecords(ws.store).some(r => r.type === 'gateway.session-refused' && r.code === 'ZT_TOO_MANY_SESSIONS'), 20_000, 'the refusal to be recorded');
});

test.serial('HTTP: abandoned sessions free their slots; one agent cannot exhaust the sessions of the others', async t => {
  // Attack: alice opens sessions and walks away without DELETE, again and
  // again, until the gateway's bound would be full and bob locked out.
  const a = makeToken();
  const b = makeToken();
  const ws = makeWorkspace(t, {
    policy: POLICY,
    agents: { alice: { tokenSha256: a.hash, grants: [] }, bob: { tokenSha256: b.hash, grants: [] } },
    http: { host: '127.0.0.1', port: 0, path: '/mcp', maxSessions: 4, maxSessionsPerAgent: 2 },
  });
  const { url } = await startHttpGateway(t, ws);
  const abandoned: string[] = [];
  for (let i = 0; i < 6; i += 1) abandoned.push(await openSession(url, a.token));
  // Her oldest sessions were closed to make room for her newest.
  const ping = (sid: string) => post(url, { jsonrpc: '2.0', id: 3, method: 'ping' }, { token: a.token, sessionId: sid });
  t.is((await ping(abandoned[0] as string)).status, 404);
  t.is((await ping(abandoned[5] as string)).status, 200);
  // Bob still gets his share.
  await openSession(url, b.token);
  await openSession(url, b.token);
  // A closed session frees its slot at once.
  const del = await fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${a.token}`, 'mcp-session-id': abandoned[5] as string, 'mcp-protocol-version': '2025-06-18' } });
  t.is(del.status, 200);
  t.is((await ping(abandoned[5] as string)).status, 404);
});

test.serial('HTTP: another agent\'s session id, near-miss tokens, batches, oversized and non-MCP bodies are refused with a status and code; the gateway keeps serving', async t => {
  const a = makeToken();
  const b = makeToken();
  const ws = makeWorkspace(t, {
    policy: POLICY,
    servers: fx,
    agents: { alice: { tokenSha256: a.hash, grants: [{ id: 'a-echo', actionType: 'TOOL', target: 'fx/echo' }] }, bob: { tokenSha256: b.hash, grants: [] } },
    http: { host: '127.0.0.1', port: 0, path: '/mcp' },
  });
  const { url, child } = await startHttpGateway(t, ws);
  const sid = await openSession(url, a.token);
  const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' };

  // Attack: bob uses alice's session id (leaked, or guessed): as if there were no such session.
  t.is((await post(url, list, { token: b.token, sessionId: sid })).status, 404);
  // Attack: tokens that differ in case, length, a leading space, or another scheme.
  for (const authorization of [`Bearer ${a.token.toUpperCase()}`, `Bearer ${a.token.slice(0, -1)}`, `Bearer ${a.token}x`, `Bearer  ${a.token}`, `bearer ${a.token}`, `Basic ${Buffer.from(a.token).toString('base64')}`, `Bearer ${a.token}, Bearer ${b.token}`, 'Bearer ']) {
    const answer = await post(url, list, { sessionId: sid, headers: { authorization } });
    t.is(answer.status, 401, authorization);
    t.regex(answer.text, /ZT_UNAUTHENTICATED/);
  }
  // Attack: no Authorization at all, on an existing session.
  t.is((await post(url, list, { sessionId: sid })).status, 401);
  // Attack: a body over the bound (4 MiB).
  t.is((await post(url, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'fx__echo', arguments: { text: 'x'.repeat(5 * 1024 * 1024) } } }, { token: a.token, sessionId: sid })).status, 413);
  // Attack: a batch of more than 100 messages, and a batch smuggling a second initialize.
  const batch = Array.from({ length: 101 }, (_, i) => ({ jsonrpc: '2.0', id: 100 + i, method: 'ping' }));
  t.is((await post(url, batch, { token: a.token, sessionId: sid })).status, 400);
  t.is((await post(url, [initialize(1), { jsonrpc: '2.0', id: 2, method: 'ping' }], { token: a.token })).status, 400);
  // Attack: initialize again on a live session.
  t.is((await post(url, initialize(5), { token: a.token, sessionId: sid })).status, 400);
  // Attack: not JSON; deeply nested JSON.
  t.is((await post(url, '{"jsonrpc":', { token: a.token, sessionId: sid })).status, 400);
  const deep = `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fx__echo","arguments":{"text":"x","d":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}}}`;
  const nested = await post(url, deep, { token: a.token, sessionId: sid });
  t.true(nested.status === 200 || nested.status === 400, `status ${nested.status}`);
  if (nested.status === 200) t.is(refusalOf(messagesOf(nested)[0] ?? {}).code, 'ZT_BAD_ARGUMENT');
  // Attack: a GET (SSE stream) or DELETE without a session.
  t.is((await fetch(url, { headers: { authorization: `Bearer ${a.token}`, accept: 'text/event-stream' } })).status, 400);

  // Still serving, and the session still works.
  t.is(child.exitCode, null);
  const echoed = await callTool(url, a.token, sid, 'fx__echo', { text: 'still here' });
  t.is(refusalOf(echoed).text, 'still here');
});

test.serial('HTTP: prototype keys, odd tool names, non-object arguments, unlisted methods, and native paths that escape the grant are refused with codes', async t => {
  const a = makeToken();
  const ws = dataWorkspace(t, {
    policy: POLICY,
    servers: fx,
    agents: { alice: { tokenSha256: a.hash, grants: [{ id: 'a-echo', actionType: 'TOOL', target: 'fx/echo' }, { id: 'a-read', actionType: 'READ', target: '/DATA/**' }] } },
    http: { host: '127.0.0.1', port: 0, path: '/mcp' },
  });
  symlinkSync('/etc/passwd', join(ws.dir, 'data', 'link'));
  mkdirSync(join(ws.dir, 'data', 'sub'));
  const { url, child } = await startHttpGateway(t, ws);
  const sid = await openSession(url, a.token);
  const call = (name: string, args: unknown) => callTool(url, a.token, sid, name, args);

  // Attack: tool names that are prototype keys, or full of odd characters.
  for (const name of ['__proto__', 'constructor', 'toString', 'fx/echo', 'fx__echo\u0000', 'FX__ECHO', 'x'.repeat(10_000)]) {
    t.is(refusalOf(await call(name, {})).code, 'ZT_TOOL_UNKNOWN', name.slice(0, 20));
  }
  // Attack: `__proto__` as an argument key: plain data to the kernel, nothing polluted.
  const proto = await post(url, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"fx__echo","arguments":{"__proto__":{"polluted":true},"text":"p"}}}`, { token: a.token, sessionId: sid });
  const protoResult = messagesOf(proto)[0] ?? {};
  t.true(refusalOf(protoResult).text === 'p' || refusalOf(protoResult).code !== undefined);
  // Attack: arguments that are not an object: a JSON-RPC error naming the field, nothing run.
  for (const args of ['a string', [1, 2], 42]) {
    const answer = await call('fx__echo', args);
    t.truthy(answer.error ?? refusalOf(answer).code, JSON.stringify(answer).slice(0, 200));
    t.not(refusalOf(answer).text, 'a string');
  }
  // Attack: resources, prompts, completion and sampling, which the gateway does not offer.
  for (const method of ['resources/list', 'resources/read', 'resources/templates/list', 'prompts/list', 'prompts/get', 'completion/complete', 'sampling/createMessage', 'elicitation/create', 'logging/setLevel']) {
    const [answer] = messagesOf(await post(url, { jsonrpc: '2.0', id: 11, method, params: {} }, { token: a.token, sessionId: sid }));
    t.is((answer?.error as { code?: number } | undefined)?.code, -32601, method);
  }
  // Attack: native paths that leave the grant: `..`, /proc, a NUL byte, a relative path, a symlink inside the grant.
  const data = join(ws.dir, 'data');
  for (const path of [`${data}/../gateway.yaml`, `${data}/sub/../../gateway.yaml`, '/proc/self/environ', `${data}/hello.txt\u0000.png`, 'data/hello.txt']) {
    t.is(refusalOf(await call('read_file', { path })).code, 'ZT_WRONG_TARGET', path);
  }
  t.is(refusalOf(await call('read_file', { path: `${data}/link` })).code, 'ZT_ACCESS_DENIED', 'a symlink is not followed');
  t.is(refusalOf(await call('read_file', {})).code, 'ZT_BAD_ARGUMENT');
  t.is(refusalOf(await call('read_file', { path: `${data}/hello.txt` })).text, 'hello\n');
  t.is(child.exitCode, null);
});

test.serial('a second gateway on the same store is refused (ZT_CONFIG_INVALID) and the first one keeps its control socket', async t => {
  // Attack: start another gateway on the store of a running one: it would
  // take over the control socket, so `ztaas revoke` would reach the wrong
  // process while the first kept serving the agent.
  const a = makeToken();
  const ws = makeWorkspace(t, { policy: POLICY, agents: { alice: { tokenSha256: a.hash, grants: [] } }, stdio: { agent: 'alice' }, http: { host: '127.0.0.1', port: 0, path: '/mcp' } });
  const { url } = await startHttpGateway(t, ws);
  const second = await ztaas('gateway', '--config', ws.config, '--stdio');
  t.is(second.code, 1);
  t.regex(second.stderr, /ZT_CONFIG_INVALID[\s\S]*another gateway/);
  // The operator still reaches the first: revoking alice refuses her there.
  t.is((await ztaas('revoke', '--store', ws.store, '--agent', 'alice')).code, 0);
  const refused = await post(url, initialize(), { token: a.token });
  t.is(refused.status, 403);
  t.regex(refused.text, /ZT_AGENT_REVOKED/);
});

test.serial('control socket: malformed, oversized and trailing requests get ZT_BAD_ARGUMENT; the gateway keeps answering', async t => {
  // Attack: the operator's socket fed garbage: not JSON, not an object, an
  // unknown op, wrong field types, a line over 64 KiB, an endless line, and a
  // second request after the first on one connection.
  const a = makeToken();
  const ws = makeWorkspace(t, { policy: POLICY, agents: { alice: { tokenSha256: a.hash, grants: [] } }, http: { host: '127.0.0.1', port: 0, path: '/mcp' } });
  const { url, child } = await startHttpGateway(t, ws);
  const code = (answer: string) => (JSON.parse(answer.split('\n')[0] as string) as { code?: string }).code;
  t.is(code(await controlLine(ws.store, 'not json\n')), 'ZT_BAD_ARGUMENT');
  t.is(code(await controlLine(ws.store, '[1,2]\n')), 'ZT_BAD_ARGUMENT');
  t.is(code(await controlLine(ws.store, '{"op":"__proto__"}\n')), 'ZT_BAD_ARGUMENT');
  t.is(code(await controlLine(ws.store, '{"op":"revoke","agentId":{"x":1}}\n')), 'ZT_BAD_ARGUMENT');
  t.is(code(await controlLine(ws.store, '{"op":"answer","approvalId":"x","approved":"yes","by":"me"}\n')), 'ZT_BAD_ARGUMENT');
  t.is(code(await controlLine(ws.store, `{"op":"approvals","pad":"${'x'.repeat(70_000)}"}\n`)), 'ZT_BAD_ARGUMENT');
  t.is(code(await controlLine(ws.store, Buffer.alloc(200_000, 'y'))), 'ZT_BAD_ARGUMENT');
  const two = await controlLine(ws.store, '{"op":"approvals"}\n{"op":"revoke","agentId":"alice"}\n');
  t.is(two.trim().split('\n').length, 1, 'one answer per connection');
  t.true((JSON.parse(two) as { ok: boolean }).ok);
  // The second line was not acted on: alice is not revoked.
  t.is((await post(url, initialize(), { token: a.token })).status, 200);
  t.is(child.exitCode, null);
  t.true((JSON.parse(await controlLine(ws.store, '{"op":"sessions"}\n')) as { ok: boolean }).ok);
});

test.serial('configuration files that are not regular files, too large, alias bombs or unreadable revocations are refused with ZT_CONFIG_INVALID', async t => {
  // Attack: the config path is a FIFO (would block), a symlink to /dev/zero
  // (would read forever), a YAML alias bomb, a file over 1 MiB; the store's
  // revocations file is corrupted (the gateway must not start without it).
  const ws = makeWorkspace(t, { policy: POLICY, agents: { alice: { grants: [] } }, stdio: { agent: 'alice' } });
  const fifo = join(ws.dir, 'fifo.yaml');
  execFileSync('mkfifo', [fifo]);
  const zero = join(ws.dir, 'zero.yaml');
  symlinkSync('/dev/zero', zero);
  const bomb = join(ws.dir, 'bomb.yaml');
  const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 9; i += 1) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
  writeFileSync(bomb, `${levels.join('\n')}\n`);
  const big = join(ws.dir, 'big.yaml');
  writeFileSync(big, `# ${'x'.repeat(1024 * 1024 + 10)}\n`);
  for (const file of [fifo, zero, bomb, big]) {
    const run = await ztaas('gateway', '--config', file, '--stdio');
    t.is(run.code, 1, file);
    t.regex(run.stderr, /ZT_CONFIG_INVALID/, file);
  }
  mkdirSync(ws.store, { recursive: true });
  writeFileSync(join(ws.store, 'gateway-revocations.json'), '[{"kind":"agent","id":"alice"');
  const corrupt = await ztaas('gateway', '--config', ws.config, '--stdio');
  t.is(corrupt.code, 1);
  t.regex(corrupt.stderr, /ZT_CONFIG_INVALID[\s\S]*revocations/);
});

test.serial('stdio: stdout carries only MCP; junk, early calls and unsolicited responses do not crash it; a line over the bound ends the gateway', async t => {
  // Attack: raw JSON-RPC on stdio: a line that is not JSON, a response to a
  // request the gateway never made (a spoofed elicitation answer), then a
  // line of 11 MiB. The gateway must neither crash nor write anything but
  // MCP to stdout, and must not linger serving nobody once its session ends.
  const ws = makeWorkspace(t, { policy: POLICY, servers: fx, agents: { desk: { grants: [{ id: 'echo', actionType: 'TOOL', target: 'fx/echo' }] } }, stdio: { agent: 'desk' } });
  const gw = rawStdio(t, ws);
  gw.send(initialize(1));
  await waitFor(() => gw.stdout().includes('"id":1'), 60_000, 'the initialize answer');
  gw.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  gw.send('this is not json');
  gw.send({ jsonrpc: '2.0', id: 99, result: { action: 'accept', content: { approve: true } } });
  gw.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'fx__echo', arguments: { text: 'after junk' } } });
  await waitFor(() => gw.stdout().includes('"id":2'), 60_000, 'the call answer');
  const messages = gw.messages();
  t.true(messages.every(m => m.jsonrpc === '2.0'), 'every stdout line is JSON-RPC');
  t.is((messages.find(m => m.id === 2)?.result as { content?: Array<{ text?: string }> } | undefined)?.content?.[0]?.text, 'after junk');
  gw.send('x'.repeat(11 * 1024 * 1024));
  const code = await gw.exited;
  t.is(code, 0, gw.stderr());
  t.true(gw.messages().every(m => m.jsonrpc === '2.0'));
});

test.serial('elicitation: a hostile client name and a long approval message are bounded, so the person\'s answer is what counts', async t => {
  // Attack: a client names itself with 1000 characters and control
  // characters (to forge the audit log's `by`), and a rule's prompt is long:
  // the answer must still be a well-formed one the kernel accepts, and be
  // recorded as the client's claim.
  const ws = makeWorkspace(t, {
    policy: { version: 1, rules: [{ id: 'echo-approved', effect: 'permit', actions: ['TOOL'], targets: ['fx/echo'], approval: { timeoutMs: 60_000, prompt: `Check this. ${'p'.repeat(980)}` } }] },
    servers: fx,
    agents: { desk: { grants: [{ id: 'echo', actionType: 'TOOL', target: 'fx/echo' }] } },
    stdio: { agent: 'desk' },
  });
  const { client } = await connectStdio(t, ws, { capabilities: { elicitation: {} } });
  // The SDK client names itself in its constructor; this one lies about who it is.
  (client as unknown as { _clientInfo: { name: string } })._clientInfo.name = `operator alice via cli\n${'n'.repeat(1000)}\u0007`;
  let asked = 0;
  client.setRequestHandler(ElicitRequestSchema, async () => {
    asked += 1;
    return { action: 'accept', content: { approve: true } };
  });
  const approved = await client.callTool({ name: 'fx__echo', arguments: { text: 'approved' } });
  t.is(asked, 1);
  t.falsy(approved.isError, textOf(approved));
  t.is(textOf(approved), 'approved');
  await client.close();
  await waitFor(() => auditRecords(ws.store).some(r => JSON.stringify(r).includes('"via":"elicitation"')), 20_000, 'the answer to be recorded');
  const answer = auditRecords(ws.store).find(r => JSON.stringify(r).includes('"via":"elicitation"')) as Record<string, unknown>;
  const by = /"by":"((?:[^"\\]|\\.)*)"/.exec(JSON.stringify(answer))?.[1] ?? '';
  t.true(by.length < 256, by);
  t.notRegex(by, /\\n|\\u0007/);
  t.regex(by, /user \(session stdio-1\)$/);
});

test.serial('HTTP: a flood of bad tokens does not grow the log with the flood: 20 refusals a minute are recorded one by one, the rest counted in one record', async t => {
  // Attack: thousands of requests with made-up tokens, each of which would
  // otherwise append a record (disk and verification time, for free).
  const a = makeToken();
  const ws = makeWorkspace(t, { policy: POLICY, agents: { alice: { tokenSha256: a.hash, grants: [] } }, http: { host: '127.0.0.1', port: 0, path: '/mcp' } });
  const { url, child } = await startHttpGateway(t, ws);
  for (let i = 0; i < 60; i += 1) t.is((await post(url, initialize(), { token: `ztg_guess_${i}` })).status, 401);
  child.kill('SIGTERM');
  await new Promise(resolve => child.once('exit', resolve));
  const refusals = auditRecords(ws.store).filter(r => r.type === 'gateway.session-refused');
  t.is(refusals.filter(r => r.suppressed === undefined).length, 20);
  const counted = refusals.find(r => typeof r.suppressed === 'number');
  t.is(counted?.suppressed, 40, 'the rest are counted, and the count is recorded when the gateway closes');
  t.is(counted?.code, 'ZT_UNAUTHENTICATED');
});
