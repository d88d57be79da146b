/**
 * `ztaas doctor`: which isolation levels this machine can establish, and
 * for the others what is missing and how to fix it. Judged by running real
 * sandboxes (`probeIsolation`), never by assumption; also says whether the
 * default level (`process`) is one of them. Exits 0 when every level is
 * available, 1 otherwise.
 *
 * Output goes to the `io` sinks (process streams by default) so tests can
 * run the command in-process.
 */
import { harden } from '../harden.js';
import { parseArgs } from 'node:util';
import { ZtError } from '../errors.js';
import { probeIsolation } from '../isolation/process-vat-node-powers.js';
import { deniedSyscalls, isSeccompArch } from '../isolation/seccomp.js';
import { DEFAULT_ISOLATION, ISOLATION_LEVELS, type IsolationProbe } from '../isolation/process-vat.js';

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
  const fallback = probe[DEFAULT_ISOLATION];
  lines.push(
    '',
    fallback.available
      ? `default   ${DEFAULT_ISOLATION}: agents whose launch names no level run here`
      : `default   ${DEFAULT_ISOLATION} is MISSING: launches that name no level fail with ZT_ISOLATION_UNAVAILABLE until it is fixed (above), or name a level: \`isolation: 'worker'\` (a SES bug is then a host compromise; memory limits cover the JS heap only)`,
  );
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
  io.out(json ? `${JSON.stringify({ ...probe, defaultIsolation: DEFAULT_ISOLATION }, null, 2)}\n` : renderDoctor(probe));
  return ISOLATION_LEVELS.every(level => probe[level].available) ? 0 : 1;
};
harden(doctorCommand);
