/**
 * A stand-in kernel that the host-flags test starts under Node's permission
 * model and other flags of its own. It starts one child of every kind the
 * runtime starts — a program (EXECUTE effector powers), an MCP stdio
 * server, a `process-weak` vat and an isolation probe — and prints, as one
 * JSON line, what each child saw of its own flags and environment.
 */
import '../src/init.js';
import { makeCapTP } from '@endo/captp';
import { E, Far } from '@endo/far';
import { makeNodeProcessPowers } from '../src/effectors/process-node-powers.js';
import { makeStdioTransport } from '../src/effectors/mcp-node-powers.js';
import { makeProcessVatStarter, probeIsolation } from '../src/isolation/process-vat-node-powers.js';

/** What a Node child reports about itself (run with `-e`, or through the escape hook). */
const SELF_REPORT = `({
  execArgv: process.execArgv,
  nodeOptions: process.env.NODE_OPTIONS ?? null,
  maxOldSpaceMb: Math.round(process.getBuiltinModule('node:v8').getHeapStatistics().heap_size_limit / 1048576),
  permission: process.permission ? { child: process.permission.has('child'), readEtc: process.permission.has('fs.read', '/etc/hostname') } : null,
})`;

const program = await new Promise<string>((resolve, reject) => {
  const child = makeNodeProcessPowers().spawn('/usr/bin/env', [], { env: { ONLY: 'this' }, cwd: '/' }) as unknown as {
    stdout: { on(e: 'data', l: (c: unknown) => void): void };
    on(e: 'close', l: () => void): void;
    on(e: 'error', l: (err: Error) => void): void;
  };
  let out = '';
  child.stdout.on('data', c => (out += String(c)));
  child.on('error', reject);
  child.on('close', () => resolve(out));
});

const mcp = await new Promise<unknown>((resolve, reject) => {
  const transport = makeStdioTransport({
    command: process.execPath,
    args: ['-e', `process.stdout.write(JSON.stringify({ jsonrpc: '2.0', method: 'report', params: ${SELF_REPORT} }) + '\\n')`],
  });
  transport.onmessage = message => {
    void transport.close();
    resolve((message as { params: unknown }).params);
  };
  transport.start().catch(reject);
});

const { worker } = makeProcessVatStarter().startWithPid({ memoryMb: 64, level: 'process-weak', testHooks: { escape: true } });
const captp = makeCapTP('stand-in-kernel', m => worker.postMessage(m), Far('KernelFacet', { log: () => undefined }), { onReject: () => undefined });
worker.on('message', m => captp.dispatch(m as Record<string, unknown>));
const root = captp.getBootstrap() as Promise<{ escape(code: string): Promise<{ value?: unknown; error?: unknown }> }>;
const vat = await E(root).escape(`return ${SELF_REPORT}`);
captp.abort();
await worker.terminate();

const probe = await probeIsolation();

process.stdout.write(
  `${JSON.stringify({
    kernel: { execArgv: process.execArgv, permission: !!process.permission },
    program: program.split('\n').filter(Boolean),
    mcp,
    vat: vat.value ?? vat.error,
    probe: { weak: probe['process-weak'].missing, process: probe.process.missing },
  })}\n`,
);
process.exit(0);
