/**
 * `ztaas doctor`: which isolation levels this machine can establish, and
 * for the others what is missing and how to fix it. Judged by running real
 * sandboxes (`probeIsolation`), never by assumption; exits 0 when every
 * level is available, 1 otherwise.
 *
 * Output goes to the `io` sinks (process streams by default) so tests can
 * run the command in-process.
 */
import { harden } from '../harden.js';
import { parseArgs } from 'node:util';
import { ZtError } from '../errors.js';
import { probeIsolation } from '../isolation/process-vat-node-powers.js';
import { deniedSyscalls, isSeccompArch } from '../isolation/seccomp.js';
import { ISOLATION_LEVELS, type IsolationProbe } from '../isolation/process-vat.js';

export const DOCTOR_USAGE = `  ztaas doctor [--json]     which isolation levels (worker, process, process-weak) this machine supports, and why`;

export interface DoctorIo {
  readonly out: (text: string) => void;
  readonly probe: () => Promise<IsolationProbe>;
}

const defaultIo = (): DoctorIo => ({
  out: text => {
    process.stdout.write(text);
  },
  probe: () => probeIsolation(),
});

const WHAT: Readonly<Record<string, string>> = harden({
  worker: 'SES Compartment in a worker thread of the kernel process (no OS containment)',
  process: 'child process under bubblewrap (namespaces, read-only binds), seccomp, rlimits and Node permissions',
  'process-weak': 'child process with Node permissions and rlimits only (no namespaces: the network stays open)',
});

export const renderDoctor = (probe: IsolationProbe): string => {
  const lines = [`ztaas doctor — ${probe.platform}/${probe.arch}, node ${probe.node}`, ''];
  for (const level of ISOLATION_LEVELS) {
    const report = probe[level];
    lines.push(`${report.available ? 'ok     ' : 'MISSING'}  ${level.padEnd(12)}  ${WHAT[level] ?? ''}`);
    report.missing.forEach((missing, i) => {
      lines.push(`           - missing: ${missing}`);
      lines.push(`             fix: ${report.fixes[i] ?? 'see details in `ztaas doctor --json`'}`);
    });
  }
  if (probe.process.available && isSeccompArch(probe.arch)) {
    lines.push('', `seccomp refuses: ${deniedSyscalls(probe.arch).join(', ')}`);
  }
  lines.push('');
  return `${lines.join('\n')}\n`;
};
harden(renderDoctor);

export const doctorCommand = async (args: string[], io: DoctorIo = defaultIo()): Promise<number> => {
  let json = false;
  try {
    ({ values: { json = false } } = parseArgs({ args, options: { json: { type: 'boolean' } }, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ZtError('ZT_BAD_ARGUMENT', `doctor: ${String((err as Error)?.message ?? err)}`);
  }
  const probe = await io.probe();
  io.out(json ? `${JSON.stringify(probe, null, 2)}\n` : renderDoctor(probe));
  return ISOLATION_LEVELS.every(level => probe[level].available) ? 0 : 1;
};
harden(doctorCommand);
