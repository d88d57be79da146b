/**
 * Helpers for the gateway attack tests: raw HTTP requests (no SDK client,
 * so nothing is smoothed over), raw JSON-RPC over the gateway's stdio, and
 * raw control-socket lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { connect } from 'node:net';
import { CLI, type Workspace } from './_gateway.js';

export const PROTOCOL = '2025-06-18';
export const initialize = (id: number | string = 1) => ({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'attacker', version: '1' } } });

export interface RawAnswer {
  readonly status: number;
  readonly sessionId: string | undefined;
  readonly text: string;
}

/** One POST to the gateway; `body` is sent as is when it is a string. */
export const post = async (url: string, body: unknown, options: { token?: string; sessionId?: string; headers?: Record<string, string> } = {}): Promise<RawAnswer> => {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
      ...(options.sessionId === undefined ? {} : { 'mcp-session-id': options.sessionId, 'mcp-protocol-version': PROTOCOL }),
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(options.headers ?? {}),
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, sessionId: res.headers.get('mcp-session-id') ?? undefined, text: await res.text() };
};

/** The JSON-RPC messages of an answer (plain JSON or SSE `data:` lines). */
export const messagesOf = (answer: RawAnswer): Array<Record<string, unknown>> => {
  const trimmed = answer.text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    const parsed = JSON.parse(trimmed) as unknown;
    return (Array.isArray(parsed) ? parsed : [parsed]) as Array<Record<string, unknown>>;
  }
  return trimmed
    .split('\n')
    .filter(line => line.startsWith('data: '))
    .map(line => JSON.parse(line.slice(6)) as Record<string, unknown>);
};

/** An initialized session: its id. */
export const openSession = async (url: string, token: string): Promise<string> => {
  const answer = await post(url, initialize(), { token });
  if (answer.status !== 200 || answer.sessionId === undefined) throw new Error(`initialize answered ${answer.status}: ${answer.text}`);
  await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { token, sessionId: answer.sessionId });
  return answer.sessionId;
};

/** A tools/call on a session: the result (or the JSON-RPC error). */
export const callTool = async (url: string, token: string, sessionId: string, name: string, args: unknown, id = 7): Promise<Record<string, unknown>> => {
  const answer = await post(url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }, { token, sessionId });
  const [message] = messagesOf(answer);
  if (message === undefined) throw new Error(`no answer (${answer.status}): ${answer.text}`);
  return message;
};

/** The text and code of a tool error result. */
export const refusalOf = (message: Record<string, unknown>): { text: string; code: string | undefined } => {
  const result = (message.result ?? {}) as { content?: Array<{ text?: string }>; _meta?: Record<string, { code?: string }> };
  return { text: result.content?.[0]?.text ?? '', code: result._meta?.['ztaas/error']?.code };
};

/**
 * POSTs whose headers are sent at once and whose bodies wait until
 * `release` is called: many requests in flight at the same time.
 */
export const heldPosts = (url: string, count: number, body: unknown, token: string) => {
  const text = JSON.stringify(body);
  // The listeners are there from the start: a refusal may come before the body is sent.
  const requests = Array.from({ length: count }, () => {
    const req = request(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(text) },
    });
    const answered = new Promise<{ status: number; sessionId: string | undefined }>((resolve, reject) => {
      req.on('response', res => {
        res.resume();
        const sid = res.headers['mcp-session-id'];
        resolve({ status: res.statusCode ?? 0, sessionId: typeof sid === 'string' ? sid : undefined });
      });
      req.on('error', reject);
    });
    req.flushHeaders();
    return { req, answered };
  });
  return {
    release: () =>
      Promise.all(
        requests.map(({ req, answered }) => {
          req.end(text);
          return answered;
        }),
      ),
  };
};

/** One raw line to the control socket; the raw answer. */
export const controlLine = (store: string, line: string | Buffer): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = connect(`${store}/gateway.sock`);
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(line));
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('error', err => (answer === '' ? reject(err) : resolve(answer)));
    socket.on('close', () => resolve(answer));
  });

/** The gateway on stdio as a bare process: raw lines in, raw stdout and stderr kept. */
export const rawStdio = (t: { teardown(fn: () => Promise<void> | void): void }, ws: Workspace) => {
  const child: ChildProcess = spawn(process.execPath, [CLI, 'gateway', '--config', ws.config, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/' } });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdin?.on('error', () => undefined);
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return {
    child,
    exited,
    send: (message: unknown) => child.stdin?.write(`${typeof message === 'string' ? message : JSON.stringify(message)}\n`),
    stdout: () => stdout,
    stderr: () => stderr,
    /** The JSON-RPC messages on stdout so far; throws on a line that is not JSON. */
    messages: () =>
      stdout
        .split('\n')
        .filter(line => line !== '')
        .map(line => JSON.parse(line) as Record<string, unknown>),
  };
};
