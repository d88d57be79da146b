/**
 * Helpers for the MCP gateway tests: a configuration in a temp folder, the
 * real `ztaas gateway` process, and real MCP SDK clients (stdio and
 * Streamable HTTP) in front of it.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { stringify } from 'yaml';

export const repo = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(repo, 'dist/src/cli.js');
export const EVERYTHING = join(repo, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
export const FILESYSTEM = join(repo, 'node_modules/@modelcontextprotocol/server-filesystem/dist/index.js');
export const FIXTURE = join(repo, 'test/fixtures/effectors/mcp-fixture-server.js');
export const RUGPULL = join(repo, 'test/fixtures/effectors/mcp-rugpull-server.js');

const run = promisify(execFile);

export const makeToken = () => {
  const token = `ztg_${randomBytes(16).toString('hex')}`;
  return { token, hash: createHash('sha256').update(token).digest('hex') };
};

export interface Workspace {
  readonly dir: string;
  readonly config: string;
  readonly store: string;
}

/** Writes a configuration (as YAML) into a fresh temp folder. */
export const makeWorkspace = (t: { teardown(fn: () => void): void }, config: Record<string, unknown>): Workspace => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-gw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'data'));
  const path = join(dir, 'gateway.yaml');
  writeFileSync(path, stringify({ store: './store', ...config }));
  return { dir, config: path, store: join(dir, 'store') };
};

/** The operator's CLI against a running gateway. */
export const ztaas = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
};

/** A real SDK client on the gateway's stdio (the gateway is its child process). */
export const connectStdio = async (
  t: { teardown(fn: () => Promise<void> | void): void },
  ws: Workspace,
  options: { capabilities?: Record<string, unknown>; env?: Record<string, string> } = {},
) => {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, 'gateway', '--config', ws.config, '--stdio'],
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ...(options.env ?? {}) },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const client = new Client({ name: 'gateway-test', version: '1.0.0' }, { capabilities: options.capabilities ?? {} });
  t.teardown(() => client.close().catch(() => undefined));
  try {
    await client.connect(transport);
  } catch (err) {
    throw new Error(`the gateway did not serve: ${(err as Error).message}; its stderr: ${stderr}`);
  }
  return { client, stderr: () => stderr };
};

/** The gateway as a process serving HTTP (port chosen by the OS, read from its stderr). */
export const startHttpGateway = async (t: { teardown(fn: () => Promise<void> | void): void }, ws: Workspace): Promise<{ url: string; child: ChildProcess; stderr: () => string }> => {
  const child = spawn(process.execPath, [CLI, 'gateway', '--config', ws.config, '--http'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  t.teardown(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise(resolve => child.once('exit', resolve));
    }
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway did not start: ${stderr}`)), 60_000);
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const m = /HTTP on (http:\/\/\S+);/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.once('exit', code => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited (${String(code)}): ${stderr}`));
    });
  });
  return { url, child, stderr: () => stderr };
};

export const connectHttp = async (
  t: { teardown(fn: () => Promise<void> | void): void },
  url: string,
  token: string | undefined,
  options: { capabilities?: Record<string, unknown> } = {},
) => {
  const transport = new StreamableHTTPClientTransport(new URL(url), token === undefined ? {} : { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const client = new Client({ name: 'gateway-http-test', version: '1.0.0' }, { capabilities: options.capabilities ?? {} });
  t.teardown(() => client.close().catch(() => undefined));
  await client.connect(transport);
  return client;
};

/** The audit records of a store (the folder store's JSONL), by type. */
export const auditRecords = (store: string): Array<Record<string, unknown>> => {
  const dir = join(store, 'audit');
  const out: Array<Record<string, unknown>> = [];
  for (const name of readdirSync(dir).filter(n => /^records.*\.jsonl$/.test(n) && !n.includes('unsigned')).sort()) {
    for (const line of readFileSync(join(dir, name), 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      const parsed = JSON.parse(line) as Record<string, unknown>;
      out.push((parsed.record ?? parsed) as Record<string, unknown>);
    }
  }
  return out;
};

/** The text of a tool result's first content item. */
export const textOf = (result: unknown): string => {
  const content = (result as { content?: Array<{ type: string; text?: string }> }).content ?? [];
  return content[0]?.text ?? '';
};

export const waitFor = async (check: () => boolean | Promise<boolean>, timeoutMs = 20_000, what = 'condition'): Promise<void> => {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise(resolve => setTimeout(resolve, 25));
  }
};
