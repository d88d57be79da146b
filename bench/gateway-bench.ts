/**
 * The MCP gateway's cost, measured in one run against the same upstream
 * server called directly (server-everything's `get-sum`):
 *
 * - latency, sequential calls, in alternating blocks so that every shape
 *   sees the same machine: a direct SDK client on the server's stdio; the
 *   gateway on stdio (`ztaas gateway --config … --stdio`, its own process,
 *   server-everything behind it) with durable and with relaxed audit; and,
 *   to split the gateway's cost, the same request through
 *   `SandboxRuntime.executeAction` in this process (host → kernel vat →
 *   TOOL effector → server), no MCP in front. The ratio gateway / direct is
 *   the median over block pairs of the ratio of their p50s (goal ≤ 1.3×).
 * - throughput, 10 concurrent sessions calling in a loop for a fixed time:
 *   10 SDK clients over Streamable HTTP to one gateway (each its own agent
 *   and bearer token), against 10 direct stdio clients, each with a
 *   server-everything of its own.
 *
 * The MCP SDK clients run here as any MCP client would: a plain Node
 * process, not locked down (this file does not import src/init.js).
 * `npm run bench` runs it as a child (`node dist/bench/gateway-bench.js
 * --json`) and merges its figures; alone it prints a table. BENCH_N sets
 * the calls per latency figure (default 1000); GATEWAY_BENCH_SECONDS the
 * length of each throughput window (default 4).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { stringify } from 'yaml';
import { ActionRequest, ActionType, Capability, SandboxRuntime } from '../src/index.js';
import { gatewayRows, type GatewayBenchResult, type Stats } from './gateway-report.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(repo, 'dist/src/cli.js');
const EVERYTHING = join(repo, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const json = process.argv.includes('--json');
const progress = (line: string) => process.stderr.write(`gateway-bench: ${line}\n`);

const stats = (samples: readonly number[]): Stats => {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), mean: sorted.reduce((s, x) => s + x, 0) / sorted.length };
};
const median = (xs: readonly number[]) => stats(xs).p50;

const POLICY = { version: 1, rules: [{ id: 'bench-sum', effect: 'permit', actions: ['TOOL'], targets: ['everything/get-sum'] }] };
const SERVERS = { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } };
const GRANT = { id: 'sum', actionType: 'TOOL', target: 'everything/get-sum' };
const SESSIONS = 10;

/** One `get-sum` call; throws unless the answer is the sum. */
type Call = (a: number, b: number) => Promise<void>;

const checkText = (result: unknown, a: number, b: number) => {
  const r = result as { isError?: boolean; content?: Array<{ text?: string }> };
  const text = r.content?.[0]?.text ?? '';
  if (r.isError === true || !text.includes(String(a + b))) throw new Error(`get-sum answered ${JSON.stringify(result).slice(0, 300)}`);
};

const mcpCall =
  (client: Client, name: string): Call =>
  async (a, b) => {
    checkText(await client.callTool({ name, arguments: { a, b } }), a, b);
  };

const children: ChildProcess[] = [];
const closers: Array<() => Promise<unknown>> = [];

/** An SDK client on a program's stdio (the program is its child). */
const stdioClient = async (args: string[], what: string) => {
  const transport = new StdioClientTransport({ command: process.execPath, args, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/' }, stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const client = new Client({ name: 'ztaas-gateway-bench', version: '0.1.0' });
  closers.push(() => client.close().catch(() => undefined));
  try {
    await client.connect(transport);
  } catch (err) {
    throw new Error(`${what} did not serve: ${(err as Error).message}; its stderr: ${stderr}`);
  }
  // The SDK caches the tools' output schemas from a listing; both shapes list once.
  await client.listTools();
  return client;
};

const writeConfig = (dir: string, name: string, config: Record<string, unknown>) => {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({ store: `./${name}-store`, policy: POLICY, servers: SERVERS, ...config }));
  return path;
};

/** `ztaas gateway --config … --http` as a process; resolves with its URL. */
const httpGateway = async (config: string) => {
  const child = spawn(process.execPath, [CLI, 'gateway', '--config', config, '--http'], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let stderr = '';
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the HTTP gateway did not start in 60 s: ${stderr}`)), 60_000);
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
      const m = /HTTP on (http:\/\/\S+);/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.once('exit', code => {
      clearTimeout(timer);
      reject(new Error(`the HTTP gateway exited (${String(code)}): ${stderr}`));
    });
  });
};

const httpClient = async (url: string, token: string) => {
  const client = new Client({ name: 'ztaas-gateway-bench-http', version: '0.1.0' });
  closers.push(() => client.close().catch(() => undefined));
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  await client.listTools();
  return client;
};

/** `SandboxRuntime.executeAction` in this process: the kernel vat, the TOOL effector and the server, no MCP in front. */
const inProcessRuntime = async (storeDir: string, durability: 'durable' | 'relaxed'): Promise<Call> => {
  const runtime = new SandboxRuntime({ storeDir, durability, policy: POLICY as never, mcpServers: SERVERS });
  closers.push(() => runtime.shutdown());
  runtime.registerAgent('bench');
  runtime.issueCapability(new Capability({ ...GRANT, holder: 'bench' } as never));
  await runtime.listTools('everything');
  return async (a, b) => {
    const outcome = await runtime.executeAction(new ActionRequest({ capabilityId: 'sum', agentId: 'bench', actionType: ActionType.TOOL, target: 'everything/get-sum', args: { arguments: { a, b } } }));
    if (!outcome.ok) throw new Error(`executeAction failed: ${outcome.error?.code} ${outcome.error?.message}`);
    checkText(outcome.result, a, b);
  };
};

const timeBlock = async (call: Call, count: number, offset: number) => {
  const samples: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const start = performance.now();
    await call(offset + i, 1);
    samples.push((performance.now() - start) * 1000);
  }
  return samples;
};

/** Every session calls in a loop until the window closes: total completed calls per second. */
const throughput = async (calls: readonly Call[], seconds: number) => {
  const until = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let done = 0;
  const started = performance.now();
  await Promise.all(
    calls.map(async (call, k) => {
      for (let i = 0; performance.now() < until; i += 1) {
        const start = performance.now();
        await call(k * 1_000_000 + i, 2);
        latencies.push((performance.now() - start) * 1000);
        done += 1;
      }
    }),
  );
  return { calls: done, seconds: (performance.now() - started) / 1000, latencies };
};

const LATENCY = {
  direct: 'direct SDK client → server-everything (stdio)',
  rtDurable: 'SandboxRuntime.executeAction in process (kernel vat → TOOL effector), durable',
  rtRelaxed: 'SandboxRuntime.executeAction in process (kernel vat → TOOL effector), relaxed',
  gwDurable: 'through the gateway (stdio), durable',
  gwRelaxed: 'through the gateway (stdio), relaxed',
} as const;
type Shape = keyof typeof LATENCY;

export const runGatewayBench = async (): Promise<GatewayBenchResult> => {
  const N = Math.max(100, Number(process.env.BENCH_N ?? 1000));
  const SECONDS = Number(process.env.GATEWAY_BENCH_SECONDS ?? 4);
  const BLOCK = 50;
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-gwbench-'));
  const loadStart = loadavg();
  try {
    mkdirSync(join(dir, 'rt'));
    const stdioAgent = { agents: { bench: { grants: [GRANT] } }, stdio: { agent: 'bench' } };
    const durableConfig = writeConfig(dir, 'durable', stdioAgent);
    const relaxedConfig = writeConfig(dir, 'relaxed', { ...stdioAgent, durability: 'relaxed' });
    progress('starting the direct client, two stdio gateways and two in-process runtimes');
    const [direct, gwDurable, gwRelaxed, rtDurable, rtRelaxed] = await Promise.all([
      stdioClient([EVERYTHING, 'stdio'], 'server-everything').then(c => mcpCall(c, 'get-sum')),
      stdioClient([CLI, 'gateway', '--config', durableConfig, '--stdio'], 'the durable gateway').then(c => mcpCall(c, 'everything__get-sum')),
      stdioClient([CLI, 'gateway', '--config', relaxedConfig, '--stdio'], 'the relaxed gateway').then(c => mcpCall(c, 'everything__get-sum')),
      inProcessRuntime(join(dir, 'rt', 'durable'), 'durable'),
      inProcessRuntime(join(dir, 'rt', 'relaxed'), 'relaxed'),
    ]);
    const shapes: Record<Shape, Call> = { direct, rtDurable, rtRelaxed, gwDurable, gwRelaxed };
    const order = Object.keys(shapes) as Shape[];
    for (const shape of order) await timeBlock(shapes[shape], 100, 0); // warm up
    const samples = Object.fromEntries(order.map(s => [s, [] as number[]])) as Record<Shape, number[]>;
    const blockP50 = Object.fromEntries(order.map(s => [s, [] as number[]])) as Record<Shape, number[]>;
    progress(`latency: ${N} sequential calls per shape, in alternating blocks of ${BLOCK}`);
    for (let done = 0; done < N; done += BLOCK) {
      for (const shape of order) {
        const block = await timeBlock(shapes[shape], BLOCK, done);
        samples[shape].push(...block);
        blockP50[shape].push(median(block));
      }
    }
    const pairRatio = (a: Shape, b: Shape) => median(blockP50[a].map((x, i) => x / (blockP50[b][i] as number)));
    const pairDiff = (a: Shape, b: Shape) => median(blockP50[a].map((x, i) => x - (blockP50[b][i] as number)));
    const latency = Object.fromEntries(order.map(s => [LATENCY[s], stats(samples[s])]));
    const ratios: Record<string, number> = {
      'gateway durable / direct (p50, median of block pairs)': pairRatio('gwDurable', 'direct'),
      'gateway relaxed / direct (p50, median of block pairs)': pairRatio('gwRelaxed', 'direct'),
      'gateway durable / direct (pooled p50)': stats(samples.gwDurable).p50 / stats(samples.direct).p50,
      'gateway relaxed / direct (pooled p50)': stats(samples.gwRelaxed).p50 / stats(samples.direct).p50,
      'gateway durable − direct (µs, p50, median of block pairs)': pairDiff('gwDurable', 'direct'),
      'gateway relaxed − direct (µs, p50, median of block pairs)': pairDiff('gwRelaxed', 'direct'),
      'kernel vat + mediation, durable: in-process runtime − direct (µs)': pairDiff('rtDurable', 'direct'),
      'kernel vat + mediation, relaxed: in-process runtime − direct (µs)': pairDiff('rtRelaxed', 'direct'),
      'MCP front hop + gateway, durable: gateway − in-process runtime (µs)': pairDiff('gwDurable', 'rtDurable'),
      'MCP front hop + gateway, relaxed: gateway − in-process runtime (µs)': pairDiff('gwRelaxed', 'rtRelaxed'),
      'durable audit: runtime durable − relaxed (µs)': pairDiff('rtDurable', 'rtRelaxed'),
    };
    // The latency clients are done; their processes stop before the throughput windows.
    for (const close of closers.splice(0)) await close();

    progress(`throughput: ${SESSIONS} concurrent sessions, windows of ${SECONDS} s`);
    const tokens = Array.from({ length: SESSIONS }, () => `ztg_${randomBytes(16).toString('hex')}`);
    const agents = Object.fromEntries(tokens.map((token, i) => [`bench-${i}`, { tokenSha256: createHash('sha256').update(token).digest('hex'), grants: [{ ...GRANT, id: `sum-${i}` }] }]));
    const httpConfig = { agents, http: { host: '127.0.0.1', port: 0, path: '/mcp' } };
    const [httpDurableUrl, httpRelaxedUrl] = await Promise.all([httpGateway(writeConfig(dir, 'http-durable', httpConfig)), httpGateway(writeConfig(dir, 'http-relaxed', { ...httpConfig, durability: 'relaxed' }))]);
    const concurrent = {
      direct: (await Promise.all(tokens.map(() => stdioClient([EVERYTHING, 'stdio'], 'server-everything')))).map(c => mcpCall(c, 'get-sum')),
      httpDurable: (await Promise.all(tokens.map(t => httpClient(httpDurableUrl, t)))).map(c => mcpCall(c, 'everything__get-sum')),
      httpRelaxed: (await Promise.all(tokens.map(t => httpClient(httpRelaxedUrl, t)))).map(c => mcpCall(c, 'everything__get-sum')),
    };
    const THROUGHPUT = {
      direct: `${SESSIONS} direct stdio clients, a server-everything each`,
      httpDurable: `${SESSIONS} HTTP sessions through one gateway (${SESSIONS} agents), durable`,
      httpRelaxed: `${SESSIONS} HTTP sessions through one gateway (${SESSIONS} agents), relaxed`,
    } as const;
    const kinds = Object.keys(concurrent) as Array<keyof typeof concurrent>;
    for (const kind of kinds) await throughput(concurrent[kind], 0.5); // warm up
    const windows = Object.fromEntries(kinds.map(k => [k, [] as Array<Awaited<ReturnType<typeof throughput>>>])) as Record<(typeof kinds)[number], Array<Awaited<ReturnType<typeof throughput>>>>;
    for (let round = 0; round < 2; round += 1) {
      for (const kind of kinds) windows[kind].push(await throughput(concurrent[kind], SECONDS / 2));
    }
    const through = Object.fromEntries(
      kinds.map(kind => {
        const ws = windows[kind];
        const calls = ws.reduce((s, w) => s + w.calls, 0);
        const seconds = ws.reduce((s, w) => s + w.seconds, 0);
        return [THROUGHPUT[kind], { calls, seconds, perSecond: calls / seconds, latency: stats(ws.flatMap(w => w.latencies)) }];
      }),
    );
    const per = (kind: (typeof kinds)[number]) => (through[THROUGHPUT[kind]]?.perSecond ?? NaN) as number;
    ratios['throughput: gateway durable / direct'] = per('httpDurable') / per('direct');
    ratios['throughput: gateway relaxed / direct'] = per('httpRelaxed') / per('direct');
    const goal = { ratio: 1.3, durable: ratios['gateway durable / direct (p50, median of block pairs)'] as number, relaxed: ratios['gateway relaxed / direct (p50, median of block pairs)'] as number, met: false };
    goal.met = goal.durable <= goal.ratio;
    const loadEnd = loadavg();
    return { node: process.version, date: new Date().toISOString(), loadavg: [loadStart[0] ?? NaN, loadEnd[0] ?? NaN], cpus: cpus().length, latency, ratios, throughput: through, goal };
  } finally {
    for (const close of closers.splice(0)) await close();
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise(resolve => {
          const timer = setTimeout(resolve, 10_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve(undefined);
          });
        });
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
};

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  try {
    const result = await runGatewayBench();
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else {
      const rows = [['figure', 'p50', 'p99', 'n', 'goal'], ...gatewayRows(result)];
      const widths = [0, 1, 2, 3, 4].map(i => Math.max(...rows.map(row => (row[i] ?? '').length)));
      for (const row of rows) console.log(row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  '));
      console.log(`\nnode ${result.node}, ${result.cpus} cores, load average ${result.loadavg.map(x => x.toFixed(1)).join(' → ')}, ${result.date}`);
      console.log(`goal gateway / direct ≤ ${result.goal.ratio}× (durable): ${result.goal.met ? 'met' : 'not met'} (durable ${result.goal.durable.toFixed(2)}×, relaxed ${result.goal.relaxed.toFixed(2)}×)`);
    }
    process.exit(0);
  } catch (err) {
    if (json) process.stdout.write(`${JSON.stringify({ error: String((err as Error)?.stack ?? err) })}\n`);
    else console.error(err);
    process.exit(1);
  }
}
