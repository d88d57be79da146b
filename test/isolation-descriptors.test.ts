/**
 * What a process vat inherits from, and how long it outlives, the process
 * that started it. A stand-in kernel (test/_isolation-kernel.ts) is started
 * by these tests as a real host process: with descriptors open at 30, 31,
 * 32 and 251 (not close-on-exec, as a host inherits them from its own
 * parent), or to be SIGKILLed while its vat runs.
 */
import { test } from './_prepare.js';
import { spawn, execFileSync, type StdioOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from './_kernel.js';
import { processTree, waitGone } from './_isolation.js';
import { readProcessVatHost } from '../src/isolation/process-vat-node-powers.js';
import { CLOSE_FDS_SCRIPT, SECCOMP_FD, VAT_WIRE_FD, planProcessVat } from '../src/isolation/process-vat.js';

const canRun = readProcessVatHost().bwrap !== undefined;
const bwrapTest = canRun ? test : test.skip;

interface StandInReport {
  readonly pid: number;
  readonly held: number[];
  readonly inVat: (Record<string, { fstat: string; read: string; write: string }> & { listed: string | string[] }) | null;
}

/** Starts the stand-in kernel with `stdio` and waits for its report line. */
const startStandIn = async (args: string[], stdio: StdioOptions = ['ignore', 'pipe', 'inherit']) => {
  const kernel = spawn(process.execPath, [fileURLToPath(new URL('./_isolation-kernel.js', import.meta.url)), ...args], { stdio });
  const report = await new Promise<StandInReport>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(Error('the stand-in kernel did not start')), 30_000);
    kernel.on('exit', code => reject(Error(`the stand-in kernel exited (${code})`)));
    kernel.stdout?.on('data', chunk => {
      out += String(chunk);
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(JSON.parse(out.split('\n')[0] as string) as StandInReport);
      }
    });
  });
  return {
    report,
    kill: () => {
      if (kernel.exitCode === null && kernel.signalCode === null) kernel.kill('SIGKILL');
    },
  };
};

const HOST_FDS = [30, 31, 32, 251];

for (const kind of ['process', 'process-os-only', 'process-weak'] as const) {
  bwrapTest(`[${kind}] attack: descriptors the host holds at 30, 31, 32 and 251 (a secret file, a writable file, a FIFO) are closed in the vat: EBADF on every use`, async t => {
    // The review found a vat reading a host file through fd 30 and writing
    // into a host FIFO through fd 32. The host here inherits such
    // descriptors without close-on-exec; the compromised vat shell tries
    // to inspect, read and write each.
    const tmp = makeTempDir('ztaas-fds-');
    t.teardown(tmp.cleanup);
    const secret = join(tmp.dir, 'secret.txt');
    const target = join(tmp.dir, 'target.txt');
    const fifo = join(tmp.dir, 'fifo');
    writeFileSync(secret, 'the host secret');
    writeFileSync(target, '');
    execFileSync('mkfifo', [fifo]);
    const opened = [openSync(secret, 'r'), openSync(target, 'w'), openSync(fifo, 'r+'), openSync(secret, 'r')];
    const stdio: StdioOptions = Array.from({ length: 252 }, (): 'ignore' | 'pipe' | 'inherit' | number => 'ignore');
    stdio[1] = 'pipe';
    stdio[2] = 'inherit';
    HOST_FDS.forEach((fd, i) => {
      stdio[fd] = opened[i] as number;
    });
    const kernel = await startStandIn([kind, HOST_FDS.join(',')], stdio);
    try {
      const { held, inVat } = kernel.report;
      t.deepEqual(held, HOST_FDS, 'the kernel process does hold them');
      for (const fd of HOST_FDS) t.deepEqual(inVat?.[fd], { fstat: 'EBADF', read: 'EBADF', write: 'EBADF' }, `fd ${fd}`);
      if (kind === 'process-os-only') {
        // Without Node's permission model the vat can list its descriptors: only Node's own are there.
        const listed = (inVat?.listed ?? []) as string[];
        t.true(Array.isArray(listed) && listed.length > 3);
        t.deepEqual(listed.filter(n => HOST_FDS.includes(Number(n))), []);
      }
      t.is(readFileSync(target, 'utf8'), '', 'nothing reached the host file');
    } finally {
      kernel.kill();
      for (const fd of opened) closeSync(fd);
    }
  });
}

bwrapTest('cleanup: a SIGKILLed kernel takes its process-weak vat with it (parent-death signal)', async t => {
  // The review found a process-weak vat still running under pid 1, its
  // network open, after its kernel was SIGKILLed. The vat here is a
  // compromised one that ignores the end of its wire.
  const kernel = await startStandIn(['process-weak', '', 'linger']);
  try {
    const pids = processTree(kernel.report.pid);
    t.true(pids.length >= 1);
    kernel.kill();
    t.deepEqual(await waitGone(pids, 10_000), [], 'the vat died with the kernel');
  } finally {
    kernel.kill();
  }
});

bwrapTest('the plan of every level starts with the descriptor closer, keeps only stdio, the wire and the seccomp fd, and has no Node IPC channel; process-weak runs under a parent-death signal', t => {
  const host = readProcessVatHost();
  for (const level of ['process', 'process-weak'] as const) {
    const plan = planProcessVat({ ...host, bash: '/usr/bin/bash', setpriv: '/usr/bin/setpriv' }, { memoryMb: 64, level });
    t.is(plan.command, '/usr/bin/bash', level);
    t.deepEqual(plan.args.slice(0, 5), ['--noprofile', '--norc', '-c', CLOSE_FDS_SCRIPT, 'zt-close-fds'], level);
    t.false(JSON.stringify(plan).includes('NODE_CHANNEL'), level);
    const rest = plan.args.slice(5);
    if (level === 'process-weak') t.deepEqual(rest.slice(0, 5), ['/usr/bin/setpriv', '--pdeathsig', 'KILL', '--', host.prlimit]);
    else t.true(rest.includes('--die-with-parent'));
  }
  t.regex(CLOSE_FDS_SCRIPT, new RegExp(`case \\$n in 0\\|1\\|2\\|${VAT_WIRE_FD}\\|${SECCOMP_FD}\\)`));
  t.throws(() => planProcessVat({ ...host, setpriv: undefined }, { memoryMb: 64, level: 'process-weak' }), { message: /^ZT_ISOLATION_UNAVAILABLE\b.*setpriv/ });
  t.throws(() => planProcessVat({ ...host, bash: undefined }, { memoryMb: 64 }), { message: /^ZT_ISOLATION_UNAVAILABLE\b.*bash/ });
});
