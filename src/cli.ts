#!/usr/bin/env node
/**
 * `ztaas` — the operator's command line. Each command family lives in
 * `src/cli/`; this file only dispatches.
 *
 *   ztaas errors         the table of error codes (Markdown)
 *   ztaas audit …        forensic commands on a store (see src/cli/audit.ts)
 *   ztaas policy …       check and explain policy files (see src/cli/policy.ts)
 *   ztaas doctor         which isolation levels this machine supports, and why
 */
import './init.js';
import { AUDIT_USAGE, auditCommand } from './cli/audit.js';
import { REPLAY_USAGE, replayCommand } from './cli/replay.js';
import { POLICY_USAGE, policyCommand } from './cli/policy.js';
import { DOCTOR_USAGE, doctorCommand } from './cli/doctor.js';
import { renderErrorsDoc } from './errors-doc.js';
import { codeOf } from './errors.js';

const USAGE = `usage:
  ztaas errors
${AUDIT_USAGE}
${REPLAY_USAGE}
${POLICY_USAGE}
${DOCTOR_USAGE}`;

const main = async (argv: string[]): Promise<number> => {
  const [command, sub, ...rest] = argv;
  switch (command) {
    case 'errors':
      process.stdout.write(renderErrorsDoc());
      return 0;
    case 'policy':
      return policyCommand(sub, rest);
    case 'doctor':
      return doctorCommand([sub, ...rest].filter((a): a is string => a !== undefined));
    case 'audit':
      return sub === 'replay' ? replayCommand(rest) : auditCommand(sub, rest);
    default:
      return 2;
  }
};

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  // A closed pipe (`ztaas audit show | head`) is not an error of ours.
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

try {
  const status = await main(process.argv.slice(2));
  if (status === 2) process.stderr.write(`${USAGE}\n`);
  process.exitCode = status;
} catch (err) {
  const code = codeOf(err);
  process.stderr.write(`ztaas: ${code ? (err as Error).message : `ZT_BAD_ARGUMENT: ${String((err as Error)?.message ?? err)}`}\n`);
  process.exitCode = 1;
}
