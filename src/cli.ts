#!/usr/bin/env node
/**
 * `ztaas` — the operator's command line. Each command family lives in
 * `src/cli/`; this file only dispatches.
 *
 *   ztaas errors         the table of error codes (Markdown)
 *   ztaas audit …        forensic commands on a store (see src/cli/audit.ts)
 *   ztaas policy …       check and explain policy files (see src/cli/policy.ts)
 *   ztaas doctor         which isolation levels this machine supports, and why
 *   ztaas run MODULE …   one agent from the shell, with grants named on the command line
 *   ztaas gateway …      the MCP gateway, and the commands to a running one
 *                        (approvals, approve, deny, revoke, tools; src/cli/gateway.ts)
 *
 * The gateway and `run` are host applications like any other user of the library:
 * their process is not locked down (their kernel runs in a locked-down vat).
 * Every other command locks its own process down first (./init.js).
 */
import { codeOf } from './errors.js';
import { GATEWAY_USAGE } from './cli/gateway-usage.js';
import { RUN_USAGE } from './cli/run-usage.js';

const GATEWAY_COMMANDS: ReadonlySet<string> = new Set(['gateway', 'approvals', 'approve', 'deny', 'revoke', 'tools']);
/** Host applications of the library, like the gateway: not locked down. */
const HOST_COMMANDS: ReadonlySet<string> = new Set(['run']);

const usage = async (): Promise<string> => {
  const [{ AUDIT_USAGE }, { REPLAY_USAGE }, { POLICY_USAGE }, { DOCTOR_USAGE }] = await Promise.all([
    import('./cli/audit.js'),
    import('./cli/replay.js'),
    import('./cli/policy.js'),
    import('./cli/doctor.js'),
  ]);
  return `usage:
  ztaas errors
${AUDIT_USAGE}
${REPLAY_USAGE}
${POLICY_USAGE}
${DOCTOR_USAGE}
${RUN_USAGE}
${GATEWAY_USAGE}`;
};

const gatewayMain = async (command: string, sub: string | undefined, rest: string[]): Promise<number> => {
  const gw = await import('./cli/gateway.js');
  const args = [...(sub === undefined ? [] : [sub]), ...rest];
  switch (command) {
    case 'gateway':
      return gw.gatewayCommand(sub, rest);
    case 'approvals':
      return gw.approvalsCommand(args);
    case 'approve':
      return gw.answerCommand(true, args);
    case 'deny':
      return gw.answerCommand(false, args);
    case 'revoke':
      return gw.revokeCommand(args);
    default:
      return gw.toolsCommand(args);
  }
};

/** A listed problem: a string (configuration), or a policy problem `{ pointer, message, line?, column? }`. */
const problemText = (p: unknown): string => {
  if (p === null || typeof p !== 'object') return String(p);
  const { pointer, message, line, column } = p as { pointer?: unknown; message?: unknown; line?: unknown; column?: unknown };
  const at = typeof line === 'number' ? `${line}:${typeof column === 'number' ? column : 1} ` : '';
  return `${at}${typeof pointer === 'string' ? `${pointer}: ` : ''}${typeof message === 'string' ? message : JSON.stringify(p)}`;
};

const main = async (argv: string[]): Promise<number> => {
  const [command, sub, ...rest] = argv;
  if (command !== undefined && GATEWAY_COMMANDS.has(command)) return gatewayMain(command, sub, rest);
  if (command !== undefined && HOST_COMMANDS.has(command)) return (await import('./cli/run.js')).runCommand([...(sub === undefined ? [] : [sub]), ...rest]);
  await import('./init.js');
  switch (command) {
    case 'errors': {
      const { renderErrorsDoc } = await import('./errors-doc.js');
      process.stdout.write(renderErrorsDoc());
      return 0;
    }
    case 'policy':
      return (await import('./cli/policy.js')).policyCommand(sub, rest);
    case 'doctor':
      return (await import('./cli/doctor.js')).doctorCommand([sub, ...rest].filter((a): a is string => a !== undefined));
    case 'audit':
      return sub === 'replay' ? (await import('./cli/replay.js')).replayCommand(rest) : (await import('./cli/audit.js')).auditCommand(sub, rest);
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
  if (status === 2) process.stderr.write(`${await usage()}\n`);
  process.exitCode = status;
} catch (err) {
  const code = codeOf(err);
  process.stderr.write(`ztaas: ${code ? (err as Error).message : `ZT_BAD_ARGUMENT: ${String((err as Error)?.message ?? err)}`}\n`);
  const problems = (err as { details?: { problems?: unknown } })?.details?.problems;
  if (Array.isArray(problems)) for (const p of problems) process.stderr.write(`  - ${problemText(p)}\n`);
  process.exitCode = 1;
}
