/**
 * Node adapter for the MCP effector: connects `@modelcontextprotocol/sdk`
 * clients to operator-configured servers. The only MCP-effector module that
 * touches `node:child_process`.
 *
 * Stdio servers are started by a transport written here rather than the
 * SDK's StdioClientTransport, for three reasons:
 * - nothing is inherited: the server's environment is exactly the
 *   configured `env` (the SDK's transport adds HOME, PATH, USER, ...; Node
 *   would add the kernel's permission flags, see exact-env.ts);
 * - the server leads its own process group, and closing (or its exit) kills
 *   the whole group, so a server that forks helpers leaves nothing behind;
 * - its stderr is kept (a bounded tail) for the operator, never shown to
 *   agents.
 * Framing is the SDK's own (ReadBuffer, serializeMessage), with a bounded
 * line buffer.
 *
 * The client announces no capabilities (no sampling, elicitation or roots),
 * so a server can never ask the kernel for anything.
 */
import { harden } from '../harden.js';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { exactEnv } from '../exact-env.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ReadBuffer, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ToolListChangedNotificationSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { McpClientLike, McpPinStore, McpPowers, McpServerConfig, McpStdioServerConfig, McpToolInfo } from './mcp.js';
import { makeNodeTimerPowers } from './process-node-powers.js';

const MAX_LINE_BYTES = 32 * 1024 * 1024;
const STDERR_TAIL_BYTES = 8 * 1024;
const MAX_TOOL_PAGES = 100;
/** Largest pin file read (a larger one is refused, never half-read). */
const MAX_PIN_FILE_BYTES = 16 * 1024 * 1024;

const killGroup = (pid: number | undefined, signal: NodeJS.Signals) => {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: already gone.
  }
};

const delay = (ms: number) =>
  new Promise<void>(resolve => {
    setTimeout(resolve, ms).unref();
  });

/** A stdio transport whose server gets exactly its configured environment and dies with its group. */
export const makeStdioTransport = (config: McpStdioServerConfig) => {
  let child: ChildProcessWithoutNullStreams | undefined;
  let exited = false;
  let stderrTail = '';
  const readBuffer = new ReadBuffer({ maxBufferSize: MAX_LINE_BYTES });
  let transportExit: () => void = () => undefined;
  const exitedPromise = new Promise<void>(resolve => {
    transportExit = resolve;
  });

  const transport: Transport & { stderrTail(): string; readonly pid: number | undefined } = {
    onclose: undefined,
    onerror: undefined,
    onmessage: undefined,
    get pid() {
      return child?.pid;
    },
    stderrTail: () => stderrTail,
    start: () =>
      new Promise<void>((resolve, reject) => {
        if (child) {
          reject(Error('already started'));
          return;
        }
        const proc = spawn(config.command, [...(config.args ?? [])], {
          env: exactEnv(config.env ?? {}),
          cwd: config.cwd ?? '/',
          shell: false,
          detached: true,
          windowsHide: true,
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        child = proc;
        proc.on('error', err => {
          reject(err);
          transport.onerror?.(err);
        });
        proc.on('spawn', () => resolve());
        proc.on('exit', () => killGroup(proc.pid, 'SIGKILL'));
        proc.on('close', () => {
          exited = true;
          readBuffer.clear();
          transportExit();
          transport.onclose?.();
        });
        proc.stdin.on('error', err => transport.onerror?.(err));
        proc.stdout.on('error', err => transport.onerror?.(err));
        proc.stderr.on('data', (chunk: Buffer) => {
          stderrTail = (stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
        });
        proc.stdout.on('data', (chunk: Buffer) => {
          try {
            readBuffer.append(chunk);
          } catch (err) {
            transport.onerror?.(err as Error);
            void transport.close();
            return;
          }
          for (;;) {
            let message: JSONRPCMessage | null;
            try {
              message = readBuffer.readMessage();
            } catch (err) {
              transport.onerror?.(err as Error);
              continue;
            }
            if (message === null) break;
            transport.onmessage?.(message);
          }
        });
      }),
    send: (message: JSONRPCMessage) =>
      new Promise<void>((resolve, reject) => {
        if (!child || exited || !child.stdin.writable) {
          reject(Error('Not connected'));
          return;
        }
        if (child.stdin.write(serializeMessage(message))) resolve();
        else child.stdin.once('drain', resolve);
      }),
    close: async () => {
      const proc = child;
      if (!proc || exited) return;
      try {
        proc.stdin.end();
      } catch {
        // already closed
      }
      killGroup(proc.pid, 'SIGTERM');
      await Promise.race([exitedPromise, delay(1000)]);
      if (!exited) {
        killGroup(proc.pid, 'SIGKILL');
        await Promise.race([exitedPromise, delay(1000)]);
      }
    },
  };
  return transport;
};
harden(makeStdioTransport);

export const makeNodeMcpPowers = (): McpPowers =>
  harden({
    ...makeNodeTimerPowers(),
    connect: async (
      _name: string,
      config: McpServerConfig,
      options: { readonly signal: AbortSignal; readonly timeoutMs: number; readonly onClose: () => void; readonly onToolsChanged?: () => void },
    ): Promise<McpClientLike> => {
      const transport: Transport =
        'command' in config
          ? makeStdioTransport(config)
          : new StreamableHTTPClientTransport(new URL(config.url), { requestInit: { headers: { ...(config.headers ?? {}) } } });
      const client = new Client({ name: 'ztaas', version: '0.1.0' }, { capabilities: {} });
      let closed = false;
      client.onclose = () => {
        if (closed) return;
        closed = true;
        options.onClose();
      };
      client.onerror = () => undefined; // protocol noise; failures surface on the calls themselves
      // The effector lists again (bounded, hashed) on its own; the SDK's own refresh is not used.
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        options.onToolsChanged?.();
      });
      try {
        await client.connect(transport, { signal: options.signal, timeout: options.timeoutMs });
      } catch (err) {
        await client.close().catch(() => undefined);
        await transport.close().catch(() => undefined);
        throw err;
      }
      return harden({
        listTools: async ({ signal, timeoutMs }: { readonly signal: AbortSignal; readonly timeoutMs: number }) => {
          const out: McpToolInfo[] = [];
          let cursor: string | undefined;
          for (let page = 0; page < MAX_TOOL_PAGES; page += 1) {
            const listed = await client.listTools(cursor === undefined ? undefined : { cursor }, { signal, timeout: timeoutMs });
            for (const tool of listed.tools) {
              const { name, title, description, inputSchema, outputSchema, annotations } = tool;
              out.push({
                name,
                ...(title === undefined ? {} : { title }),
                ...(description === undefined ? {} : { description }),
                inputSchema,
                ...(outputSchema === undefined ? {} : { outputSchema }),
                ...(annotations === undefined ? {} : { annotations }),
              });
            }
            cursor = listed.nextCursor;
            if (cursor === undefined) break;
          }
          return out;
        },
        callTool: (name: string, args: Readonly<Record<string, unknown>>, { signal, timeoutMs }: { readonly signal: AbortSignal; readonly timeoutMs: number }) =>
          // The effector's own deadline fires first; the SDK's is a backstop.
          client.callTool({ name, arguments: { ...args } }, undefined, { signal, timeout: timeoutMs + 1000 }) as Promise<unknown>,
        close: async () => {
          await client.close().catch(() => undefined);
          await transport.close().catch(() => undefined);
        },
      });
    },
    sha256Hex: (data: string) => createHash('sha256').update(data, 'utf8').digest('hex'),
  });
harden(makeNodeMcpPowers);

/**
 * The pin store on disk: one JSON file (`{ version: 1, servers: { name:
 * { tool: hash } } }`), written atomically (a temporary file in the same
 * folder, fsynced, renamed over the old one, the folder fsynced), so a
 * crash leaves the old pins or the new ones, never half a file. A missing
 * file is "nothing pinned yet"; an unreadable or malformed one rejects (the
 * effector then withholds every tool: trusting anew would accept a rug pull).
 */
export const makeNodeMcpPinStore = (path: string): McpPinStore =>
  harden({
    load: async () => {
      let text: string;
      try {
        const handle = await open(path, 'r');
        try {
          const { size } = await handle.stat();
          if (size > MAX_PIN_FILE_BYTES) throw Error(`the pin file is larger than ${MAX_PIN_FILE_BYTES} bytes`);
          text = await readFile(handle, 'utf8');
        } finally {
          await handle.close();
        }
      } catch (err) {
        if ((err as { code?: unknown })?.code === 'ENOENT') return {};
        throw err;
      }
      const parsed = JSON.parse(text) as { version?: unknown; servers?: unknown };
      if (parsed === null || typeof parsed !== 'object' || parsed.version !== 1 || parsed.servers === null || typeof parsed.servers !== 'object') {
        throw Error('the pin file is not a version 1 pin file');
      }
      return parsed.servers as Record<string, Record<string, string>>;
    },
    save: async (pins: Readonly<Record<string, Readonly<Record<string, string>>>>) => {
      const dir = dirname(path);
      await mkdir(dir, { recursive: true });
      const temp = `${path}.${randomUUID()}.tmp`;
      try {
        const handle = await open(temp, 'wx', 0o600);
        try {
          await handle.writeFile(`${JSON.stringify({ version: 1, servers: pins }, null, 2)}\n`, 'utf8');
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(temp, path);
      } catch (err) {
        await rm(temp, { force: true }).catch(() => undefined);
        throw err;
      }
      const folder = await open(dir, 'r');
      try {
        await folder.sync();
      } finally {
        await folder.close();
      }
    },
  });
harden(makeNodeMcpPinStore);
