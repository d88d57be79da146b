/**
 * Why a trial sandbox failed, in words an operator can act on. The
 * isolation probe runs real sandboxes (see `probeIsolation` in
 * probe.ts); when one ends without its report, this module turns its
 * exit status and output into one missing piece and how to provide it.
 *
 * Invariant: every explanation names a concrete missing piece and a fix.
 * An unrecognized failure still quotes the most telling line of the output
 * (never V8's `#` decoration or a stack frame) and says how to see the rest.
 * These texts are for the operator (`ztaas doctor`, ZT_ISOLATION_UNAVAILABLE
 * details); nothing here reaches an agent.
 *
 * Pure: reads the trial's exit status and output only.
 */
import { harden } from '../harden.js';

/** Something a level needs that this machine lacks, and what the operator can do about it. */
export interface Gap {
  readonly missing: string;
  readonly fix: string;
}

/** How a trial run ended (gathered by the adapter). */
export interface TrialResult {
  readonly exitCode: number | null;
  /** The signal that ended the outermost process, if any. */
  readonly signal?: string | null | undefined;
  /** The adapter stopped the trial at its time limit. */
  readonly timedOut?: boolean | undefined;
  /** The command could not be started at all (the `spawn` error). */
  readonly spawnError?: string | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

/** What the explanation may mention about the trial. */
export interface TrialContext {
  readonly level: 'process' | 'process-weak';
  /** `process.version` of the Node the sandbox runs. */
  readonly nodeVersion: string;
  /** The outermost command (`bash`, which closes inherited descriptors). */
  readonly command: string;
  readonly bwrap?: string | undefined;
  /** RLIMIT_AS of the trial, MiB. */
  readonly addressSpaceMb: number;
  /** The trial's time limit, ms. */
  readonly timeoutMs: number;
  /** False for the trial without Node's permission model (the OS layers alone). */
  readonly nodePermissions: boolean;
}

/** The Node lines whose needs (flags, address space) ZT-AAS knows. */
export const SUPPORTED_NODE_LINES = harden([20, 22, 24]);

const SEE_TRIAL = 'run the trial by hand to see its whole output: details.trial.command of `ztaas doctor --json`';

/** Lines that carry no information of their own: V8's frames and separators, GC traces, Node's footer. */
const NOISE = /^(?:-+ Native stack trace -+|<-+ [\w ]+ -+>|\d+: 0x[0-9a-f]+\b.*|\[\d+:0x[0-9a-f]+\].*|Node\.js v\d.*|\(Use `node --trace-.*|Security context: .*)$/;
/** Lines that say what went wrong, preferred over the first line of the output. */
const TELLING = /^(?:bwrap|prlimit|setpriv|zt-close-fds|bash):|bad option|error while loading shared libraries|Fatal|FATAL ERROR|out of memory|Assertion failed|Check failed|\w*Error\b|Cannot allocate|Permission denied|Operation not permitted/i;

/**
 * The most telling line of a failed process's output: V8's `#` frames are
 * stripped, stack frames and trace lines skipped; a line naming an error is
 * preferred; at most 300 characters.
 */
export const tellingLine = (text: string): string => {
  const lines = text
    .split('\n')
    .map(l => l.replace(/^[#\s]+/, '').trim())
    .filter(l => l !== '' && !NOISE.test(l));
  return (lines.find(l => TELLING.test(l)) ?? lines[0] ?? '').slice(0, 300);
};
harden(tellingLine);

const MEMORY = /out of memory|Failed to reserve virtual memory|Zone Allocation failed|allocation failed|Cannot allocate memory|std::bad_alloc|Failed to allocate/i;
const USER_NAMESPACES = /namespace|uid map|gid map|RTM_NEWADDR|Operation not permitted|Permission denied/i;

const ended = (trial: TrialResult): string =>
  trial.signal ? `killed by ${trial.signal}` : trial.exitCode === null ? 'no exit status' : `exit ${trial.exitCode}`;

/**
 * One missing piece, and its fix, for a trial that ended without its
 * report. Total: every trial gets an explanation.
 */
export const explainTrialFailure = (trial: TrialResult, context: TrialContext): Gap => {
  const which = context.nodePermissions ? '' : " (in the trial without Node's permission model)";
  const gap = (missing: string, fix: string): Gap => harden({ missing: `${missing}${which}`, fix });
  const node = `Node ${context.nodeVersion}`;
  const useSupportedNode = `run the kernel with Node ${SUPPORTED_NODE_LINES.join(', ')} (the lines ZT-AAS is tested on)`;

  if (trial.spawnError !== undefined) {
    return gap(`a runnable ${context.command} (${trial.spawnError})`, `check that ${context.command} exists and that the kernel's user may execute it`);
  }
  if (trial.timedOut === true) {
    return gap(
      `a sandbox that starts within ${Math.round(context.timeoutMs / 1000)} s (the trial was stopped)`,
      `run \`ztaas doctor\` again on a less loaded machine; if the trial still hangs, ${SEE_TRIAL}`,
    );
  }
  const line = tellingLine(trial.stderr);
  if (/^zt-close-fds:/.test(line)) {
    return gap(`/proc on this machine (${line})`, 'mount /proc: a vat starts only after every descriptor it must not inherit, listed in /proc/self/fd, is closed');
  }
  if (/^setpriv:/.test(line)) {
    return gap(`a parent-death signal (${line})`, 'install util-linux 2.33 or later, whose setpriv has --pdeathsig (`apt-get install util-linux`)');
  }
  const prlimit = /^prlimit: (.*)/.exec(line);
  if (prlimit) {
    return gap(
      `resource limits (${line})`,
      "the kernel's own hard limits must allow the vat's: raise them (`ulimit -H -v`, `-n`, `-t`, or the service manager's Limit* settings)",
    );
  }
  if (/^bwrap:/.test(line)) {
    const source = /Can't find source path (\S+?):/.exec(line);
    if (source) {
      const bundle = /process-main\.bundle\.mjs$/.test(source[1] ?? '');
      return gap(
        `a file the sandbox binds: ${source[1]} (${line})`,
        bundle ? 'build the vat bundle: `npm run build` (or reinstall ztaas)' : 'reinstall Node (the file is Node or one of its libraries, as `ldd` named them)',
      );
    }
    if (/execvp .*No such file or directory/.test(line)) {
      return gap(
        `Node's program loader inside the sandbox (${line})`,
        'install `ldd` (Debian package libc-bin) so the sandbox binds the loader and libraries `ldd` names for Node',
      );
    }
    if (/seccomp/i.test(line)) {
      return gap(`seccomp filtering (${line})`, 'run on a Linux kernel built with CONFIG_SECCOMP_FILTER, or name level process-weak');
    }
    if (USER_NAMESPACES.test(line)) {
      return gap(
        `unprivileged user namespaces (${line})`,
        'allow them: `sysctl kernel.unprivileged_userns_clone=1` (Debian), `sysctl kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor profile for bwrap (Ubuntu 23.10+), `user.max_user_namespaces` above 0; in a container, a seccomp and AppArmor profile that allow unshare(CLONE_NEWUSER); or name level process-weak',
      );
    }
    return gap(`a working bubblewrap (${line})`, `check ${context.bwrap ?? 'bwrap'} (\`bwrap --version\`; Debian package bubblewrap), then ${SEE_TRIAL}`);
  }
  const badOption = /bad option: (\S+)/.exec(line);
  if (badOption) {
    return gap(`a Node that accepts ${badOption[1]} (${node} refused it)`, useSupportedNode);
  }
  const library = /error while loading shared libraries: ([^:]+)/.exec(line);
  if (library) {
    return gap(
      `Node's shared library ${library[1]} inside the sandbox (${line})`,
      'install `ldd` (Debian package libc-bin) so the sandbox binds every library `ldd` names for Node, or use an official Node build',
    );
  }
  if (MEMORY.test(line)) {
    return gap(
      `address space for ${node}: it did not start under RLIMIT_AS of ${context.addressSpaceMb} MiB (${line})`,
      `${useSupportedNode}; another line may reserve more address space at start than ADDRESS_SPACE_OVERHEAD_MB (src/isolation/process-vat-plan.ts) allows`,
    );
  }
  if (trial.signal === 'SIGSYS' || (line === '' && trial.exitCode === 128 + 31)) {
    return gap(
      `a seccomp filter ${node} runs under (it was killed by SIGSYS: a system call of another ABI)`,
      `name level process-weak meanwhile, and report the failure with the output of \`ztaas doctor --json\``,
    );
  }
  if (line === '' && trial.stdout.trim() === '') {
    const outermost = context.level === 'process' ? (context.bwrap ?? 'bwrap') : context.command;
    return gap(
      `a working sandbox (${ended(trial)} with no output)`,
      `check that ${outermost} is what it claims to be (${context.level === 'process' ? '`bwrap --version`' : '`prlimit --version`, `setpriv --version`'}), then ${SEE_TRIAL}`,
    );
  }
  if (trial.exitCode === 0 && !trial.signal) {
    return gap(`a sandbox whose Node prints the trial's report (it printed: ${tellingLine(trial.stdout) || 'nothing'})`, SEE_TRIAL);
  }
  return gap(`a working sandbox (${ended(trial)}: ${line || tellingLine(trial.stdout)})`, SEE_TRIAL);
};
harden(explainTrialFailure);
