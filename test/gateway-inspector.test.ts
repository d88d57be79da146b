/**
 * The MCP gateway through a client no one here wrote: the MCP Inspector CLI
 * (`@modelcontextprotocol/inspector-cli`, its `mcp-inspector-cli --cli`
 * binary, spawned as a process), in front of the real filesystem server
 * (rooted at a temp folder) and server-everything.
 *
 * Over stdio the Inspector starts the gateway itself, from a Claude
 * Desktop-style `mcpServers` file (`--config FILE --server NAME`): each
 * Inspector run is one gateway process and one session. Over Streamable
 * HTTP it sends the bearer token with `--header "Authorization: Bearer …"`.
 * The Inspector prints the JSON result on stdout and exits 0; a failure to
 * connect or a protocol error is printed on stderr and exits 1.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, EVERYTHING, FILESYSTEM, auditRecords, makeToken, makeWorkspace, repo, startHttpGateway, waitFor, type Workspace } from './_gateway.js';

const run = promisify(execFile);

/** The package's `mcp-inspector-cli` binary (its package.json `bin`). */
const INSPECTOR_DIR = join(repo, 'node_modules/@modelcontextprotocol/inspector-cli');
const INSPECTOR = join(INSPECTOR_DIR, 'build/cli.js');

interface InspectorRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * One Inspector run. It re-spawns `node` from PATH (so the Node running the
 * tests goes first), and finds its own package.json relative to its working
 * directory (`../package.json`), so it runs from its build folder.
 */
const inspector = async (...args: string[]): Promise<InspectorRun> => {
  try {
    const { stdout, stderr } = await run(process.execPath, [INSPECTOR, '--cli', ...args], {
      cwd: join(INSPECTOR_DIR, 'build'),
      env: { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, HOME: process.env.HOME ?? '/' },
      timeout: 90_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
};

/** The JSON the Inspector printed for a successful run. */
const resultOf = (t: { is(a: unknown, b: unknown, m?: string): void }, r: InspectorRun): Record<string, unknown> => {
  t.is(r.code, 0, `the Inspector failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
};

const textOfResult = (result: Record<string, unknown>): string => ((result.content as Array<{ text?: string }> | undefined)?.[0]?.text ?? '');

/** Upstream servers, a policy confining the filesystem tools to the root, and one agent. */
const setUp = (t: Parameters<typeof makeWorkspace>[0], agent: Record<string, unknown>, transport: Record<string, unknown>): { ws: Workspace; root: string } => {
  const ws = makeWorkspace(t, {});
  const root = join(ws.dir, 'root');
  mkdirSync(join(root, 'docs'), { recursive: true });
  writeFileSync(join(root, 'docs', 'plan.md'), '# Plan\nship the gateway\n');
  writeFileSync(join(root, 'todo.txt'), 'write tests\n');
  const config = {
    store: './store',
    policy: {
      version: 1,
      rules: [
        { id: 'fs-read', effect: 'permit', actions: ['TOOL'], targets: ['fs/read_text_file', 'fs/list_directory'] },
        { id: 'fs-only-root', effect: 'forbid', actions: ['TOOL'], targets: ['fs/*'], when: { not: { args: { arguments: { fields: { path: { paths: [root, `${root}/**`] } } } } } } },
        { id: 'sums', effect: 'permit', actions: ['TOOL'], targets: ['everything/get-sum'] },
      ],
    },
    servers: {
      fs: { command: '${node}', args: [FILESYSTEM, root] },
      everything: { command: '${node}', args: [EVERYTHING, 'stdio'] },
    },
    agents: {
      inspector: {
        ...agent,
        grants: [
          { id: 'read', actionType: 'TOOL', target: 'fs/read_text_file' },
          { id: 'list', actionType: 'TOOL', target: 'fs/list_directory' },
          { id: 'sum', actionType: 'TOOL', target: 'everything/get-sum' },
        ],
      },
    },
    ...transport,
  };
  writeFileSync(ws.config, JSON.stringify(config, null, 2));
  return { ws, root };
};

const EXPECTED_TOOLS = ['everything__get-sum', 'fs__list_directory', 'fs__read_text_file'];

test.serial('the Inspector CLI over stdio (a Claude Desktop-style mcpServers file) lists the granted tools and calls them; denials carry the code and the rule', async t => {
  const { ws, root } = setUp(t, {}, { stdio: { agent: 'inspector' } });
  // What Claude Desktop or Cursor would be given: the gateway as the one MCP server.
  const clientConfig = join(ws.dir, 'mcp.json');
  writeFileSync(clientConfig, JSON.stringify({ mcpServers: { ztaas: { command: process.execPath, args: [CLI, 'gateway', '--config', ws.config, '--stdio'] } } }));
  const via = ['--config', clientConfig, '--server', 'ztaas'];
  // Each run starts a gateway on the same store: the next run waits until the last one has shut down.
  let runs = 0;
  const stdioRun = async (...args: string[]): Promise<InspectorRun> => {
    const r = await inspector(...via, ...args);
    runs += 1;
    await waitFor(() => auditRecords(ws.store).filter(x => x.type === 'runtime.shutdown').length >= runs, 30_000, 'the gateway of the last run to shut down');
    return r;
  };

  const listed = resultOf(t, await stdioRun('--method', 'tools/list'));
  const tools = listed.tools as Array<{ name: string; inputSchema: Record<string, unknown> }>;
  t.deepEqual(tools.map(x => x.name).sort(), EXPECTED_TOOLS, 'exactly the grants, named server__tool; none of the other upstream tools');
  t.like(tools.find(x => x.name === 'fs__read_text_file')?.inputSchema, { type: 'object', required: ['path'] }, 'the upstream schema is passed through');

  const sum = resultOf(t, await stdioRun('--method', 'tools/call', '--tool-name', 'everything__get-sum', '--tool-arg', 'a=2', 'b=40'));
  t.falsy(sum.isError);
  t.regex(textOfResult(sum), /\b42\b/);

  const read = resultOf(t, await stdioRun('--method', 'tools/call', '--tool-name', 'fs__read_text_file', '--tool-arg', `path=${join(root, 'docs', 'plan.md')}`));
  t.falsy(read.isError);
  t.is(textOfResult(read), '# Plan\nship the gateway\n');

  const listing = resultOf(t, await stdioRun('--method', 'tools/call', '--tool-name', 'fs__list_directory', '--tool-arg', `path=${root}`));
  t.falsy(listing.isError);
  t.regex(textOfResult(listing), /\[DIR\] docs/);
  t.regex(textOfResult(listing), /\[FILE\] todo\.txt/);

  // Denied by the policy: a tool error (exit 0), the code and the deciding rule, in text and in _meta.
  const outside = resultOf(t, await stdioRun('--method', 'tools/call', '--tool-name', 'fs__read_text_file', '--tool-arg', 'path=/etc/passwd'));
  t.true(outside.isError);
  t.regex(textOfResult(outside), /^ZT_POLICY_DENIED: .*\(rule: fs-only-root\)$/);
  t.deepEqual(outside._meta, { 'ztaas/error': { code: 'ZT_POLICY_DENIED', rules: ['fs-only-root'] } });
  t.notRegex(textOfResult(outside), /root:/, 'nothing of the file');

  // A tool of the upstream server the agent holds no capability for: as if it did not exist.
  const unknown = resultOf(t, await stdioRun('--method', 'tools/call', '--tool-name', 'fs__write_file', '--tool-arg', `path=${join(root, 'x.txt')}`, 'content=x'));
  t.true(unknown.isError);
  t.regex(textOfResult(unknown), /^ZT_TOOL_UNKNOWN: /);

  // The log: one session per Inspector run, each mediated call a request with its decision.
  const records = auditRecords(ws.store);
  t.is(records.filter(r => r.type === 'gateway.session-opened' && r.agentId === 'inspector' && r.transport === 'stdio').length, 6);
  t.is(records.filter(r => r.type === 'gateway.session-closed' && r.agentId === 'inspector').length, 6);
  const requests = records.filter(r => r.type === 'request' && r.agentId === 'inspector');
  t.deepEqual(
    requests.map(r => [r.target, r.decision]),
    [
      ['everything/get-sum', 'allow'],
      ['fs/read_text_file', 'allow'],
      ['fs/list_directory', 'allow'],
      ['fs/read_text_file', 'deny'],
    ],
  );
  t.deepEqual(requests[3]?.rules, ['fs-only-root']);
  t.true(records.some(r => r.type === 'gateway.call-refused' && r.tool === 'fs__write_file' && r.code === 'ZT_TOOL_UNKNOWN'));
  t.false(records.some(r => r.target === 'fs/write_file'), 'the unknown tool never reached the kernel as a request');
  t.false(existsSync(join(root, 'x.txt')), 'nothing was written');
});

test.serial('the Inspector CLI over Streamable HTTP sends the bearer token with --header; without it, or with a wrong one, it is refused (401)', async t => {
  const token = makeToken();
  const { ws, root } = setUp(t, { tokenSha256: token.hash }, { http: { host: '127.0.0.1', port: 0, path: '/mcp' } });
  const { url } = await startHttpGateway(t, ws);
  const via = [url, '--transport', 'http', '--header', `Authorization: Bearer ${token.token}`];

  const listed = resultOf(t, await inspector(...via, '--method', 'tools/list'));
  t.deepEqual((listed.tools as Array<{ name: string }>).map(x => x.name).sort(), EXPECTED_TOOLS);

  const sum = resultOf(t, await inspector(...via, '--method', 'tools/call', '--tool-name', 'everything__get-sum', '--tool-arg', 'a=20', 'b=22'));
  t.regex(textOfResult(sum), /\b42\b/);
  const read = resultOf(t, await inspector(...via, '--method', 'tools/call', '--tool-name', 'fs__read_text_file', '--tool-arg', `path=${join(root, 'todo.txt')}`));
  t.is(textOfResult(read), 'write tests\n');
  const outside = resultOf(t, await inspector(...via, '--method', 'tools/call', '--tool-name', 'fs__list_directory', '--tool-arg', 'path=/etc'));
  t.true(outside.isError);
  t.regex(textOfResult(outside), /^ZT_POLICY_DENIED: .*\(rule: fs-only-root\)$/);

  // No token, and a token no agent holds: the connection is refused before anything is listed.
  const anonymous = await inspector(url, '--transport', 'http', '--method', 'tools/list');
  t.is(anonymous.code, 1);
  t.regex(anonymous.stderr, /ZT_UNAUTHENTICATED/);
  t.is(anonymous.stdout.trim(), '');
  const forged = await inspector(url, '--transport', 'http', '--header', 'Authorization: Bearer ztg_not-a-real-token', '--method', 'tools/list');
  t.is(forged.code, 1);
  t.regex(forged.stderr, /ZT_UNAUTHENTICATED/);
  // The same refusals, as the HTTP status a plain client sees.
  const status = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
  });
  t.is(status.status, 401);

  await waitFor(() => auditRecords(ws.store).filter(r => r.type === 'gateway.session-refused' && r.code === 'ZT_UNAUTHENTICATED').length >= 3, 20_000, 'the refusals to be recorded');
  const records = auditRecords(ws.store);
  t.true(records.some(r => r.type === 'gateway.session-opened' && r.agentId === 'inspector' && r.transport === 'http'));
  t.deepEqual(
    records.filter(r => r.type === 'request' && r.agentId === 'inspector').map(r => [r.target, r.decision]),
    [
      ['everything/get-sum', 'allow'],
      ['fs/read_text_file', 'allow'],
      ['fs/list_directory', 'deny'],
    ],
  );
  t.false(JSON.stringify(records).includes(token.token), 'no token is ever recorded');
});
