/**
 * Effector benchmarks, measured in one run so the ratios mean something on a
 * shared machine:
 * - a small-file READ through the kernel (checks, policy, in-memory audit,
 *   the hardened file effector) versus a direct `fs.readFile`;
 * - an MCP tool call (`get-sum` of server-everything) through the TOOL
 *   effector versus a direct SDK client call to the same server program.
 *
 * Runnable alone: `node dist/bench/effectors-bench.js` (BENCH_N sets the
 * sample count). `runEffectorsBench()` is what `npm run bench` calls.
 */
import '../src/init.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { makeReadEffector } from '../src/effectors/files.js';
import { makeNodeFileEffectorPowers } from '../src/effectors/files-node-powers.js';
import { makeMcpToolEffectors } from '../src/effectors/mcp.js';
import { makeNodeMcpPowers } from '../src/effectors/mcp-node-powers.js';
import type { EffectContext } from '../src/effectors/types.js';
import { resolveFailureModes } from '../src/failure-modes.js';
import { makeKernel } from '../src/kernel.js';
import { makeNodeKernelPowers } from '../src/node-powers.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

export interface BenchRow {
  readonly name: string;
  readonly p50Us: number;
  readonly p99Us: number;
}

const EVERYTHING = fileURLToPath(new URL('../../node_modules/@modelcontextprotocol/server-everything/dist/index.js', import.meta.url));

const percentiles = (name: string, samples: number[]): BenchRow => {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return harden({ name, p50Us: Math.round(at(0.5) * 10) / 10, p99Us: Math.round(at(0.99) * 10) / 10 });
};

const time = async (count: number, warmup: number, fn: () => Promise<unknown>) => {
  const samples: number[] = [];
  for (let i = 0; i < warmup + count; i += 1) {
    const start = performance.now();
    await fn();
    if (i >= warmup) samples.push((performance.now() - start) * 1000);
  }
  return samples;
};

const fileBench = async (count: number): Promise<BenchRow[]> => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-bench-files-'));
  try {
    const file = join(dir, 'small.txt');
    writeFileSync(file, 'a small file of about one hundred bytes, read again and again by the benchmark loop.\n');
    let seq = 0;
    const kernel = makeKernel({
      powers: makeNodeKernelPowers(),
      audit: { append: async () => ({ seq: seq++, leafHash: '' }) },
      policy: { version: 1, rules: [{ id: 'read-bench', effect: 'permit', actions: ['READ'], targets: [`${dir}/**`] }] },
      effectors: { READ: makeReadEffector(makeNodeFileEffectorPowers()) },
      failureModes: resolveFailureModes(),
      maxBytes: 1 << 20,
    });
    kernel.registerAgent('bench');
    kernel.issueCapability(new Capability({ id: 'small', actionType: ActionType.READ, target: file, holder: 'bench' }));
    const request = new ActionRequest({ capabilityId: 'small', agentId: 'bench', actionType: ActionType.READ, target: file });
    const mediated = await time(count, 200, async () => {
      const outcome = await kernel.execute(request, 'api');
      if (!outcome.ok) throw Error(`mediated read failed: ${outcome.error?.code}`);
    });
    const direct = await time(count, 200, () => readFile(file, 'utf8'));
    const effector = makeReadEffector(makeNodeFileEffectorPowers());
    const ctx: EffectContext = {
      target: file,
      args: harden({}),
      signal: new AbortController().signal,
      maxBytes: 1 << 20,
      constraints: harden({}),
      recheck: async () => harden({ allowed: false, code: 'ZT_WRONG_TARGET' as const }),
    };
    const alone = await time(count, 200, () => effector(ctx));
    await kernel.shutdown();
    return [
      percentiles('file read, mediated (kernel + READ effector)', mediated),
      percentiles('file read, direct fs.readFile', direct),
      percentiles('file read, READ effector alone (no kernel)', alone),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

const mcpBench = async (count: number): Promise<BenchRow[]> => {
  const tool = makeMcpToolEffectors({ servers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } }, powers: makeNodeMcpPowers() });
  const client = new Client({ name: 'ztaas-bench', version: '0.1.0' });
  try {
    const ctx = (): EffectContext => ({
      target: 'everything/get-sum',
      args: harden({ arguments: { a: 2, b: 3 } }),
      signal: new AbortController().signal,
      maxBytes: 1 << 20,
      constraints: harden({}),
      recheck: async () => harden({ allowed: false, code: 'ZT_WRONG_TARGET' as const }),
    });
    const viaEffector = await time(count, 50, () => tool.effector(ctx()));
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [EVERYTHING, 'stdio'], stderr: 'ignore' }));
    await client.listTools();
    const direct = await time(count, 50, () => client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } }));
    return [percentiles('MCP tool call, through the TOOL effector', viaEffector), percentiles('MCP tool call, direct SDK client', direct)];
  } finally {
    await client.close().catch(() => undefined);
    await tool.close();
  }
};

export const runEffectorsBench = async (): Promise<BenchRow[]> => {
  const n = Number(process.env.BENCH_N ?? 2000);
  const files = await fileBench(n);
  const mcp = await mcpBench(Math.max(50, Math.min(n, 500)));
  return harden([...files, ...mcp]);
};
harden(runEffectorsBench);

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await runEffectorsBench();
  for (const row of rows) console.log(`${row.name.padEnd(48)} p50 ${String(row.p50Us).padStart(8)} µs   p99 ${String(row.p99Us).padStart(8)} µs`);
  const ratio = (a: number, b: number) => ((rows[a]?.p50Us ?? NaN) / (rows[b]?.p50Us ?? NaN)).toFixed(2);
  console.log(`\nmediated / direct file read (p50): ${ratio(0, 1)}×`);
  console.log(`effector alone / direct file read (p50): ${ratio(2, 1)}×`);
  console.log(`effector / direct MCP call (p50): ${ratio(3, 4)}×`);
}
