/**
 * The shipped example really starts: `examples/gateway/gateway.yaml` in
 * front of the filesystem server, launched the way
 * `examples/gateway/claude_desktop_config.json` tells Claude Desktop or
 * Cursor to launch it, with the MCP SDK's `Client` in the client's place.
 *
 * The example is copied, unchanged, into a temp checkout-like folder
 * (`<tmp>/examples/gateway`, with `<tmp>/node_modules` and `<tmp>/dist`
 * linked to this repository's), so its relative paths
 * (`${configDir}/../../node_modules/…`, `store: ../../.ztaas/gateway`)
 * resolve as they do in a checkout, and its store and notes stay out of
 * the repository.
 */
import test from 'ava';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { auditRecords, repo, textOf, waitFor, ztaas } from './_gateway.js';

test.serial('examples/gateway: the Claude Desktop config starts the gateway; notes are listed and read; writes are narrowed to notes/drafts and approved by the operator', async t => {
  const home = mkdtempSync(join(tmpdir(), 'ztaas-example-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  cpSync(join(repo, 'examples/gateway'), join(home, 'examples/gateway'), { recursive: true });
  symlinkSync(join(repo, 'node_modules'), join(home, 'node_modules'), 'dir');
  symlinkSync(join(repo, 'dist'), join(home, 'dist'), 'dir');
  const example = join(home, 'examples/gateway');
  const notes = join(example, 'notes');
  const configFile = join(example, 'gateway.yaml');
  const store = join(home, '.ztaas/gateway');

  // The client side, as shipped, with its two placeholders filled in.
  const desktop = JSON.parse(readFileSync(join(example, 'claude_desktop_config.json'), 'utf8')) as { mcpServers: Record<string, { command: string; args: string[] }> };
  t.deepEqual(Object.keys(desktop.mcpServers), ['ztaas']);
  const server = desktop.mcpServers.ztaas as { command: string; args: string[] };
  t.is(server.command, '/usr/bin/node');
  const args = server.args.map(a => a.replace('/path/to/ztaas', home));
  t.deepEqual(args, [join(home, 'dist/src/cli.js'), 'gateway', '--config', configFile, '--stdio']);

  const transport = new StdioClientTransport({ command: process.execPath, args, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/' }, stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const client = new Client({ name: 'claude-desktop-stand-in', version: '1.0.0' }, { capabilities: {} });
  t.teardown(() => client.close().catch(() => undefined));
  try {
    await client.connect(transport);
  } catch (err) {
    t.fail(`the example gateway did not serve: ${(err as Error).message}; its stderr: ${stderr}`);
    return;
  }

  // The desktop agent's grants, and nothing else of the filesystem server.
  const tools = (await client.listTools()).tools;
  t.deepEqual(tools.map(x => x.name).sort(), ['fs__list_directory', 'fs__read_text_file', 'fs__write_file']);
  const write = tools.find(x => x.name === 'fs__write_file');
  t.deepEqual(write?.inputSchema.allOf, [{ type: 'object', properties: { path: { type: 'string', pattern: '/notes/drafts/[^/]+$' } } }], 'the model sees the narrowing');

  const listing = await client.callTool({ name: 'fs__list_directory', arguments: { path: notes } });
  t.falsy(listing.isError, textOf(listing));
  t.regex(textOf(listing), /\[FILE\] README\.md/);
  t.regex(textOf(listing), /\[DIR\] drafts/);
  const readme = await client.callTool({ name: 'fs__read_text_file', arguments: { path: join(notes, 'README.md') } });
  t.falsy(readme.isError, textOf(readme));
  t.is(textOf(readme), readFileSync(join(notes, 'README.md'), 'utf8'));

  /** A write, with the operator answering from another terminal if the policy's approval is asked. */
  const approvedWrite = async (path: string, content: string) => {
    let done = false;
    const call = client.callTool({ name: 'fs__write_file', arguments: { path, content } }, undefined, { timeout: 180_000 }).finally(() => {
      done = true;
    });
    let pending: Array<{ approvalId: string; target: string; prompt?: string }> = [];
    await waitFor(
      async () => {
        if (done) return true;
        const listed = await ztaas('approvals', '--config', configFile, '--json');
        pending = listed.code === 0 ? (JSON.parse(listed.stdout) as typeof pending) : [];
        return pending.length === 1;
      },
      60_000,
      'the write to finish or wait for approval',
    );
    if (pending.length === 1) {
      t.like(pending[0], { target: 'fs/write_file', prompt: 'The assistant wants to write a draft note.' });
      const answered = await ztaas('approve', pending[0]?.approvalId as string, '--config', configFile, '--by', 'operator');
      t.is(answered.code, 0, answered.stderr);
    }
    return call;
  };

  // Outside notes/drafts: refused by the grant's narrowing schema, approved or not.
  const outside = await approvedWrite(join(notes, 'README.md'), 'overwritten');
  t.true(outside.isError);
  t.regex(textOf(outside), /^ZT_ARGUMENT_DENIED: /);
  t.not(readFileSync(join(notes, 'README.md'), 'utf8'), 'overwritten');
  // Inside: written once approved.
  const draft = await approvedWrite(join(notes, 'drafts', 'second.md'), 'A second draft.\n');
  t.falsy(draft.isError, textOf(draft));
  t.is(readFileSync(join(notes, 'drafts', 'second.md'), 'utf8'), 'A second draft.\n');

  await client.close();
  await waitFor(() => existsSync(join(store, 'audit')) && auditRecords(store).at(-1)?.type === 'runtime.shutdown', 30_000, `the gateway to shut down: ${stderr}`);
  const records = auditRecords(store);
  t.true(records.some(r => r.type === 'gateway.session-opened' && r.agentId === 'desktop' && r.transport === 'stdio'));
  t.deepEqual(
    records.filter(r => r.type === 'request' && r.agentId === 'desktop').map(r => r.target),
    ['fs/list_directory', 'fs/read_text_file', 'fs/write_file', 'fs/write_file'],
  );
  const verified = await ztaas('audit', 'verify', '--store', store);
  t.is(verified.code, 0, verified.stderr || verified.stdout);
});
