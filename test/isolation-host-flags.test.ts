/**
 * Nothing of the kernel's own command line reaches the processes it starts.
 *
 * Attack: the operator runs the kernel under Node's permission model with
 * broad grants (`--allow-fs-read=*`, `--allow-child-process`) and other
 * flags of its own. Node 22.18+ and 24.4+ copy a permission-model parent's
 * flags into every child's `NODE_OPTIONS`, even with an explicit `env`; a
 * `process-weak` vat would then read any file and spawn processes, and
 * every MCP server and program in Node would run with the kernel's flags.
 */
import { test } from './_prepare.js';
import { execFile } from 'node:child_process';

const KERNEL = new URL('./_host-flags-kernel.js', import.meta.url).href;
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const PERMISSION = major > 22 || (major === 22 && minor >= 13) ? '--permission' : '--experimental-permission';

interface SelfReport {
  readonly execArgv: readonly string[];
  readonly nodeOptions: string | null;
  readonly maxOldSpaceMb: number;
  readonly permission: { readonly child: boolean; readonly readEtc: boolean } | null;
}

test('attack: a kernel under the permission model passes neither its grants nor its flags to programs, MCP servers, vats or probes', async t => {
  // The kernel is even started from a string (`--input-type=module -e`), a
  // flag no child may inherit either.
  const hostFlags = [PERMISSION, '--allow-fs-read=*', '--allow-child-process', '--max-old-space-size=200', '--disable-warning=ExperimentalWarning', '--input-type=module'];
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [...hostFlags, '-e', `await import(${JSON.stringify(KERNEL)})`], { env: {}, timeout: 90_000 }, (err, out, err2) => (err ? reject(Error(`${err.message}\n${err2}`)) : resolve(out)));
  });
  const report = JSON.parse(stdout.trim().split('\n').pop() as string) as {
    kernel: { execArgv: string[]; permission: boolean };
    program: string[];
    mcp: SelfReport;
    vat: SelfReport;
    probe: { weak: string[]; process: string[] };
  };
  t.deepEqual(report.kernel, { execArgv: [...hostFlags, '-e', `await import(${JSON.stringify(KERNEL)})`], permission: true }, 'the stand-in kernel runs under the permission model');
  // A program gets exactly the environment it was given.
  t.deepEqual(report.program, ['ONLY=this']);
  // An MCP server in Node: no flags, no NODE_OPTIONS, no permission model, its own heap limit.
  t.deepEqual(report.mcp.execArgv, ['-e', report.mcp.execArgv[1] as string]);
  t.is(report.mcp.nodeOptions, null);
  t.is(report.mcp.permission, null);
  t.not(report.mcp.maxOldSpaceMb, 200);
  // A process-weak vat: its own grants only (no child processes, nothing outside its code).
  t.is(report.vat.nodeOptions, null);
  t.deepEqual(report.vat.permission, { child: false, readEtc: false });
  t.false(report.vat.execArgv.includes('--allow-child-process'));
  t.false(report.vat.execArgv.includes('--input-type=module'));
  t.false(report.vat.execArgv.some(a => a === '--allow-fs-read=*'));
  t.is(report.vat.maxOldSpaceMb > 0 && report.vat.execArgv.includes('--max-old-space-size=64'), true);
  // The probe judges the sandbox the runtime would start, not one widened by the kernel's flags.
  t.deepEqual(report.probe, { weak: [], process: [] });
});
