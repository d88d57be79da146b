/**
 * Process vats: an agent vat as a child process that the operating system
 * contains, so that even a complete escape from the agent's Compartment (an
 * SES or V8 bug) reaches nothing: no network, no file system beyond the
 * read-only files Node and the vat code need, no writes, no new processes,
 * no view of the kernel or other vats, and OS-enforced resource limits.
 *
 * Invariants:
 * - Fail closed: a level that cannot be established on this machine is
 *   refused with ZT_ISOLATION_UNAVAILABLE naming what is missing; nothing is
 *   started half-contained. A weaker level runs only when named explicitly.
 * - The IPC channel (fd 3) is the vat's only link to the kernel; its
 *   environment is empty but for the two variables Node needs to find that
 *   channel and the malloc setting of `VAT_ENV`; stdout/stderr are captured.
 * - Nothing of the kernel's own command line or environment reaches the
 *   vat: every Node flag is in the plan, and the adapter spawns it with
 *   exactly the plan's environment (see src/exact-env.ts for what Node
 *   would otherwise add).
 * - `terminate()` kills the sandbox's outermost process; bubblewrap's
 *   `--die-with-parent` and the PID namespace take every process inside
 *   with it, and a kernel crash does the same. Nothing is written to disk,
 *   so nothing is left behind.
 *
 * Layers of the `process` level, outermost first (docs/ISOLATION.md says why):
 * rlimits set by `prlimit` (address space, CPU seconds, open files, no core
 * dumps, no file growth) → bubblewrap (new user, PID, network, IPC, UTS,
 * mount and cgroup namespaces; read-only binds of exactly the needed files;
 * own /proc and minimal /dev; uid/gid 65534; no capabilities; new session)
 * → a seccomp filter (no process creation, no ptrace, no namespaces, no
 * mounts; see seccomp.ts) → Node's permission model (`--allow-fs-read` of
 * exactly the bound paths; no writes, child processes, workers or addons)
 * → V8 heap limit → SES lockdown → the agent's Compartment.
 *
 * Pure: every fact about the host and every power (spawning) is passed in
 * by `process-vat-node-powers.ts`.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';
import type { WorkerLike } from '../vat-host.js';
import { explainTrialFailure, SUPPORTED_NODE_LINES, type Gap, type TrialResult } from './explain.js';
import { buildSeccompFilter, isSeccompArch } from './seccomp.js';

const nodeMajor = (version: string): number => Number(/^v?(\d+)\./.exec(version)?.[1] ?? NaN);

/** The isolation levels an operator can name for an agent. */
export const ISOLATION_LEVELS = harden(['worker', 'process', 'process-weak'] as const);
export type IsolationLevel = (typeof ISOLATION_LEVELS)[number];
export type ProcessIsolationLevel = Exclude<IsolationLevel, 'worker'>;

export const isIsolationLevel = (value: unknown): value is IsolationLevel =>
  typeof value === 'string' && (ISOLATION_LEVELS as readonly string[]).includes(value);
harden(isIsolationLevel);

/** The argv flag (never an environment variable) that enables the test-only escape hook in a vat. */
export const ESCAPE_HOOK_FLAG = '--zt-test-escape-hook';

/** Uid and gid of the vat inside its user namespace (`nobody`). */
export const VAT_UID = 65534;

export const DEFAULT_CPU_SECONDS = 300;
export const DEFAULT_OPEN_FILES = 64;
/**
 * Address space allowed beyond the V8 heap limit (RLIMIT_AS = heap limit +
 * this), by Node release line. V8 reserves virtual memory up front: its
 * code range (512 MiB) on every line, and from Node 24 (V8 13) also
 * process-wide pointer tables (256 + 128 MiB); Node maps its own binary,
 * libraries and thread stacks besides. Measured with SES loaded and a small
 * agent running, at heap limits of 64 and 512 MiB (with `VAT_ENV`): Node 20
 * and 22 need about 720 MiB, Node 24 about 1,110 MiB, so each line keeps
 * some 300 MiB for buffers outside the heap. A release line not listed gets
 * the largest value; `ztaas doctor` names a line that needs more.
 */
export const ADDRESS_SPACE_OVERHEAD_MB: Readonly<Record<number, number>> = harden({ 20: 1024, 22: 1024, 24: 1024 + 384 });

/** `ADDRESS_SPACE_OVERHEAD_MB` of the release line of `nodeVersion` (e.g. `v24.1.0`). */
export const addressSpaceOverheadMb = (nodeVersion: string): number =>
  ADDRESS_SPACE_OVERHEAD_MB[nodeMajor(nodeVersion)] ?? Math.max(...Object.values(ADDRESS_SPACE_OVERHEAD_MB));
harden(addressSpaceOverheadMb);

/**
 * The environment of the vat's Node, besides the IPC variables. One malloc
 * arena: glibc otherwise gives each thread that contends for the heap an
 * arena of its own, each reserving 64 MiB (128 MiB while it is created) of
 * address space, so the address space a vat needs would depend on thread
 * timing and RLIMIT_AS could kill a vat at random. C libraries other than
 * glibc ignore the variable.
 */
export const VAT_ENV: Readonly<Record<string, string>> = harden({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=1' });

export interface ProcessVatOptions {
  /** V8 old-generation heap limit, MiB (also sizes RLIMIT_AS). */
  readonly memoryMb: number;
  /** RLIMIT_CPU in seconds of CPU time (all threads); default 300. */
  readonly cpuSeconds?: number;
  /** RLIMIT_NOFILE; default 64. */
  readonly openFiles?: number;
  /** The agent's own module folder, bound read-only (the kernel ships the parsed modules, so this is optional). */
  readonly agentFolder?: string;
  /** `process` (default) or the explicitly weaker `process-weak`. */
  readonly level?: ProcessIsolationLevel;
  /**
   * Test-only. `escape` answers `escape(code)` on the vat root (code runs in
   * the vat's start compartment); `nodePermissions: false` drops Node's
   * permission model so tests can show what the OS layers stop on their own.
   */
  readonly testHooks?: { readonly escape?: boolean; readonly nodePermissions?: boolean };
}

/** What the plan needs to know about the host (gathered by the adapter). */
export interface ProcessVatHost {
  readonly platform: string;
  readonly arch: string;
  /** `process.version`, e.g. `v20.20.2`. */
  readonly nodeVersion: string;
  /** Absolute path of the Node binary (the sandbox runs the same one). */
  readonly execPath: string;
  /** Absolute path of `dist/vats/process-main.js`. */
  readonly vatMain: string;
  /** The vat code and its packages, bound read-only and readable under Node's permission model. */
  readonly codePaths: readonly string[];
  /** Node's shared libraries and ELF interpreter (bound read-only, not readable through Node's fs). */
  readonly libraries: readonly string[];
  /** Absolute path of `bwrap`, if found. */
  readonly bwrap?: string | undefined;
  /** Absolute path of `prlimit`, if found. */
  readonly prlimit?: string | undefined;
}

export interface ProcessVatPlan {
  readonly level: ProcessIsolationLevel;
  readonly command: string;
  readonly args: readonly string[];
  /** The whole environment of `command` (nothing of the kernel's is inherited). */
  readonly env: Readonly<Record<string, string>>;
  /** Bytes to write to fd 4 (bubblewrap's `--seccomp 4`), when any. */
  readonly seccomp?: Uint8Array;
  /** The paths the vat may read (bind mounts and `--allow-fs-read`). */
  readonly readable: readonly string[];
  readonly limits: { readonly addressSpaceMb: number; readonly cpuSeconds: number; readonly openFiles: number; readonly heapMb: number };
}

const isAbsolutePath = (p: unknown): p is string =>
  typeof p === 'string' && p.startsWith('/') && !/[\0\n,]/.test(p) && !p.split('/').includes('..');

const checkInteger = (name: string, value: unknown, min: number, max: number): number => {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ZtError('ZT_BAD_ARGUMENT', `${name} must be an integer from ${min} to ${max}`);
  }
  return value;
};

/**
 * What is missing on this host for `level`, and how to provide it, judged
 * from static facts only (the probe then runs a real sandbox to confirm).
 */
export const staticGaps = (host: ProcessVatHost, level: ProcessIsolationLevel): Gap[] => {
  const gaps: Gap[] = [];
  const weaker = level === 'process' ? ', or name level process-weak' : '';
  if (host.platform !== 'linux') gaps.push({ missing: `linux (this is ${host.platform})`, fix: 'process isolation needs Linux; name level worker on this machine' });
  if (!host.prlimit) gaps.push({ missing: 'prlimit (util-linux)', fix: 'install util-linux (`apt-get install util-linux`)' });
  if (!(nodeMajor(host.nodeVersion) >= 20)) {
    gaps.push({ missing: `node permission model (node ${host.nodeVersion} < 20)`, fix: `run the kernel with Node ${SUPPORTED_NODE_LINES.join(', ')}` });
  }
  if (level === 'process') {
    if (!host.bwrap) gaps.push({ missing: 'bwrap (Debian package bubblewrap)', fix: `install bubblewrap (\`apt-get install bubblewrap\`; \`npm run setup\` does it)${weaker}` });
    if (!isSeccompArch(host.arch)) gaps.push({ missing: `seccomp filter for architecture ${host.arch}`, fix: `run on x64 or arm64${weaker}` });
  }
  return harden(gaps);
};
harden(staticGaps);

/** The `missing` part of `staticGaps`. */
export const staticMissing = (host: ProcessVatHost, level: ProcessIsolationLevel): string[] => staticGaps(host, level).map(g => g.missing);
harden(staticMissing);

const unavailable = (level: ProcessIsolationLevel | IsolationLevel, gaps: readonly Gap[], where = '') =>
  new ZtError(
    'ZT_ISOLATION_UNAVAILABLE',
    `isolation level ${level} cannot be established${where}: missing ${gaps.map(g => g.missing).join(', ')}; to fix: ${gaps.map(g => g.fix).join('; ')}`,
    { level, missing: gaps.map(g => g.missing), fixes: gaps.map(g => g.fix) },
  );

/**
 * Node's permission-model flags for this Node version: one `--allow-fs-read`
 * per path since Node 20.16 (earlier releases took a comma-separated list);
 * `--permission` once the model left its experimental phase (Node 22.13 and
 * 23.5; Node 24 no longer accepts `--experimental-permission`).
 */
export const permissionFlags = (nodeVersion: string, readable: readonly string[]): string[] => {
  const [major, minor] = (/^v?(\d+)\.(\d+)/.exec(nodeVersion) ?? []).slice(1).map(Number) as [number, number];
  if (major < 20 || (major === 20 && minor < 16)) return ['--experimental-permission', `--allow-fs-read=${readable.join(',')}`];
  const stable = major > 23 || (major === 23 && minor >= 5) || (major === 22 && minor >= 13);
  return [stable ? '--permission' : '--experimental-permission', ...readable.map(p => `--allow-fs-read=${p}`)];
};
harden(permissionFlags);

/**
 * The command line of a process vat. Throws ZT_ISOLATION_UNAVAILABLE (with
 * `details.missing`) when the level cannot be established here, and
 * ZT_BAD_ARGUMENT on a bad option.
 */
export const planProcessVat = (
  host: ProcessVatHost,
  options: ProcessVatOptions,
  /** Run this code (`node -e`) instead of the vat: used by the probe only. */
  evalScript?: string,
): ProcessVatPlan => {
  const level = options.level ?? 'process';
  if (level !== 'process' && level !== 'process-weak') throw new ZtError('ZT_BAD_ARGUMENT', `unknown process isolation level ${String(level)}`);
  const heapMb = checkInteger('memoryMb', options.memoryMb, 8, 65536);
  const cpuSeconds = checkInteger('cpuSeconds', options.cpuSeconds ?? DEFAULT_CPU_SECONDS, 1, 7 * 24 * 3600);
  const openFiles = checkInteger('openFiles', options.openFiles ?? DEFAULT_OPEN_FILES, 16, 65536);
  const gaps = staticGaps(host, level);
  if (gaps.length > 0) throw unavailable(level, gaps);
  for (const p of [host.execPath, host.vatMain, ...host.codePaths, ...host.libraries]) {
    if (!isAbsolutePath(p)) throw new ZtError('ZT_ISOLATION_UNAVAILABLE', 'a path the vat needs is not a plain absolute path', { path: p });
  }
  if (options.agentFolder !== undefined && !isAbsolutePath(options.agentFolder)) {
    throw new ZtError('ZT_BAD_ARGUMENT', 'agentFolder must be an absolute path without commas or ..');
  }
  const testHooks = options.testHooks ?? {};
  const readable = [...host.codePaths, ...(options.agentFolder === undefined ? [] : [options.agentFolder])];
  const addressSpaceMb = heapMb + addressSpaceOverheadMb(host.nodeVersion);

  const nodeArgs = [
    ...(testHooks.nodePermissions === false ? [] : [...permissionFlags(host.nodeVersion, readable), '--no-addons']),
    '--disable-warning=ExperimentalWarning',
    `--max-old-space-size=${heapMb}`,
    ...(evalScript === undefined ? [host.vatMain] : ['-e', evalScript]),
    ...(testHooks.escape === true ? [ESCAPE_HOOK_FLAG] : []),
  ];
  const prlimitArgs = [
    `--as=${addressSpaceMb * 1024 * 1024}`,
    `--cpu=${cpuSeconds}`,
    `--nofile=${openFiles}`,
    '--core=0',
    '--fsize=0',
    '--',
  ];
  const limits = harden({ addressSpaceMb, cpuSeconds, openFiles, heapMb });

  if (level === 'process-weak') {
    // No namespaces, no seccomp: Node's permission model and rlimits only.
    // The network is NOT closed at this level (Node's permission model, 20
    // to 24, does not cover it); records of such an agent say `process-weak`.
    return harden({
      level,
      command: host.prlimit as string,
      args: harden([...prlimitArgs, host.execPath, ...nodeArgs]),
      env: VAT_ENV,
      readable: harden(readable),
      limits,
    });
  }

  const binds: string[] = [];
  const bound = new Set<string>();
  for (const p of [host.execPath, ...host.libraries, ...readable]) {
    if (bound.has(p)) continue;
    bound.add(p);
    binds.push('--ro-bind', p, p);
  }
  const bwrapArgs = [
    '--unshare-all',
    '--die-with-parent',
    '--new-session',
    '--cap-drop', 'ALL',
    '--clearenv',
    '--setenv', 'NODE_CHANNEL_FD', '3',
    '--setenv', 'NODE_CHANNEL_SERIALIZATION_MODE', 'json',
    ...Object.entries(VAT_ENV).flatMap(([name, value]) => ['--setenv', name, value]),
    '--uid', String(VAT_UID),
    '--gid', String(VAT_UID),
    '--hostname', 'zt-vat',
    '--proc', '/proc',
    '--dev', '/dev',
    ...binds,
    '--remount-ro', '/dev',
    '--remount-ro', '/',
    '--chdir', '/',
    '--seccomp', '4',
    '--',
    host.execPath,
    ...nodeArgs,
  ];
  return harden({
    level,
    command: host.prlimit as string,
    args: harden([...prlimitArgs, host.bwrap as string, ...bwrapArgs]),
    env: harden({}),
    seccomp: buildSeccompFilter(host.arch),
    readable: harden(readable),
    limits,
  });
};
harden(planProcessVat);

/** The child process as the pure code sees it (built by the adapter over `child_process`). */
export interface ChildLike {
  readonly pid: number | undefined;
  send(message: unknown, callback: (err: Error | null) => void): void;
  on(event: 'message', listener: (message: unknown) => void): void;
  on(event: 'close', listener: (code: number | null, signal: string | null) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  on(event: 'disconnect', listener: () => void): void;
  readonly stdout: { on(event: 'data', listener: (chunk: unknown) => void): void } | null;
  readonly stderr: { on(event: 'data', listener: (chunk: unknown) => void): void } | null;
  kill(): void;
  ref(): void;
  unref(): void;
}

const MAX_BUFFERED_OUTPUT = 64 * 1024;
/** Output kept from one chunk to the next, so a message split across chunks is still recognized. */
const STDERR_OVERLAP = 256;
/** What V8 prints when the heap limit or RLIMIT_AS stops an allocation it cannot survive. */
const OOM_PATTERN = /JavaScript heap out of memory|Reached heap limit|Fatal (?:process|JavaScript) (?:OOM|out of memory)/;

/**
 * Output read from the start (so the kernel can tell an out-of-memory death
 * apart) and handed to the vat host once it listens; chunks before that are
 * buffered, up to 64 KiB.
 */
const makeBufferedStream = () => {
  const listeners: Array<(chunk: unknown) => void> = [];
  const buffered: unknown[] = [];
  let bufferedBytes = 0;
  const push = (chunk: unknown) => {
    if (listeners.length === 0) {
      const size = String(chunk).length;
      if (bufferedBytes + size <= MAX_BUFFERED_OUTPUT) {
        buffered.push(chunk);
        bufferedBytes += size;
      }
      return;
    }
    for (const l of listeners) l(chunk);
  };
  const stream = harden({
    on: (event: 'data', listener: (chunk: unknown) => void) => {
      if (event !== 'data') return;
      listeners.push(listener);
      for (const chunk of buffered.splice(0)) listener(chunk);
      bufferedBytes = 0;
    },
  });
  return { push, stream };
};

/**
 * Adapts a started child to the vat host's `WorkerLike`: messages over the
 * IPC channel, one `exit` per process, an `error` coded
 * `ERR_WORKER_OUT_OF_MEMORY` when the process died of its memory limit (the
 * vat host turns that into ZT_OUT_OF_MEMORY, as for workers), and a
 * `terminate()` that kills the sandbox and resolves once it is gone.
 */
export const makeProcessVatWorker = (child: ChildLike): WorkerLike => {
  const listeners = {
    message: [] as Array<(m: unknown) => void>,
    error: [] as Array<(err: Error) => void>,
    exit: [] as Array<(code: number) => void>,
  };
  let exitCode: number | undefined;
  let stderrTail = '';
  let outOfMemory = false;
  const waiting: Array<(code: number) => void> = [];
  const stdout = makeBufferedStream();
  const stderr = makeBufferedStream();

  child.stdout?.on('data', chunk => stdout.push(chunk));
  child.stderr?.on('data', chunk => {
    // Checked as it arrives: a dying Node (and each of its dying threads)
    // prints long native stack traces after the message.
    const text = stderrTail + String(chunk);
    if (OOM_PATTERN.test(text)) outOfMemory = true;
    stderrTail = text.slice(-STDERR_OVERLAP);
    stderr.push(chunk);
  });
  child.on('message', message => {
    if (exitCode !== undefined) return;
    for (const l of listeners.message) l(message);
  });
  const ended = (code: number) => {
    if (exitCode !== undefined) return;
    exitCode = code;
    if (outOfMemory) {
      const err = Object.assign(Error('the vat exceeded its memory limit'), { code: 'ERR_WORKER_OUT_OF_MEMORY' });
      for (const l of listeners.error) l(err);
    }
    for (const l of listeners.exit) l(code);
    for (const w of waiting.splice(0)) w(code);
  };
  // 'close', not 'exit': the process is gone *and* its output has been
  // read, so a dying message (out of memory) is seen before the exit.
  child.on('close', (code, signal) => ended(code ?? (signal ? 128 + signalNumber(signal) : 1)));
  child.on('error', err => {
    if (exitCode !== undefined) return;
    for (const l of listeners.error) l(err);
    // A child that could not be spawned never exits; one that could is killed.
    if (child.pid === undefined) ended(-1);
    else child.kill();
  });
  // A vat that closed its channel can no longer be reached; nothing more is
  // sent to it. It ends when it exits, or at the run's deadline.
  let disconnected = false;
  child.on('disconnect', () => {
    disconnected = true;
  });

  const worker: WorkerLike = {
    postMessage: message => {
      if (exitCode !== undefined || disconnected) return;
      try {
        child.send(message, () => undefined);
      } catch {
        child.kill();
      }
    },
    on: ((event: 'message' | 'error' | 'exit', listener: never) => {
      if (event === 'message' || event === 'error' || event === 'exit') (listeners[event] as unknown[]).push(listener);
    }) as WorkerLike['on'],
    stdout: stdout.stream,
    stderr: stderr.stream,
    terminate: () =>
      new Promise<number>(resolve => {
        if (exitCode !== undefined) {
          resolve(exitCode);
          return;
        }
        waiting.push(resolve);
        child.kill();
      }),
    ref: () => child.ref(),
    unref: () => child.unref(),
  };
  return harden(worker);
};
harden(makeProcessVatWorker);

const SIGNALS: Readonly<Record<string, number>> = harden({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15, SIGXCPU: 24, SIGXFSZ: 25, SIGSYS: 31 });
const signalNumber = (signal: string): number => SIGNALS[signal] ?? 0;

/** What a probe of one level found. */
export interface LevelReport {
  readonly available: boolean;
  /** What the level lacks on this machine, one entry per missing piece. */
  readonly missing: readonly string[];
  /** How to provide each: `fixes[i]` for `missing[i]`. */
  readonly fixes: readonly string[];
  readonly details: Readonly<Record<string, unknown>>;
}

export interface IsolationProbe {
  readonly platform: string;
  readonly arch: string;
  readonly node: string;
  readonly worker: LevelReport;
  readonly process: LevelReport;
  readonly 'process-weak': LevelReport;
}

/**
 * Throws ZT_ISOLATION_UNAVAILABLE, naming what is missing and how to fix
 * it, unless `level` can be established according to `probe`.
 */
export const assertIsolationAvailable = (probe: IsolationProbe, level: IsolationLevel): void => {
  if (!isIsolationLevel(level)) throw new ZtError('ZT_BAD_ARGUMENT', `unknown isolation level ${String(level)}; expected one of ${ISOLATION_LEVELS.join(', ')}`);
  const report = probe[level];
  if (!report.available) {
    const fixes = report.fixes ?? [];
    throw unavailable(level, report.missing.map((missing, i) => ({ missing, fix: fixes[i] ?? 'see `ztaas doctor`' })), ' on this machine');
  }
};
harden(assertIsolationAvailable);

/**
 * The code a probe runs inside a real sandbox of the level: it reports what
 * it can and cannot do, so the probe judges by observation, not assumption.
 * Written in plain JavaScript for `node -e`; prints one JSON line.
 */
export const probeScript = (tryWrite: boolean) => `
const out = { uid: process.getuid(), pid: process.pid };
const fs = process.getBuiltinModule('node:fs');
const os = process.getBuiltinModule('node:os');
const cp = process.getBuiltinModule('node:child_process');
try { out.interfaces = Object.keys(os.networkInterfaces()); } catch (e) { out.interfaces = String(e.code || e.message); }
${tryWrite ? "try { fs.writeFileSync('/zt-probe', 'x'); out.write = 'written'; } catch (e) { out.write = e.code || 'error'; }" : ''}
try { const r = cp.spawnSync(process.execPath, ['-e', '0']); out.spawn = r.error ? (r.error.code || 'error') : 'spawned'; } catch (e) { out.spawn = e.code || 'error'; }
out.permission = typeof process.permission === 'object' && process.permission !== null
  ? { fsWrite: process.permission.has('fs.write'), child: process.permission.has('child') }
  : null;
process.stdout.write(JSON.stringify(out) + '\\n');
`;
harden(probeScript);

export type { Gap, TrialResult } from './explain.js';

/** The time a trial sandbox gets to start and report. */
export const TRIAL_TIMEOUT_MS = 15_000;

export interface ProbePowers {
  readonly host: ProcessVatHost;
  /** Runs `plan` (a `node -e` probe script), stopping it after `TRIAL_TIMEOUT_MS`, and reports how it ended. */
  runTrial(plan: ProcessVatPlan): Promise<TrialResult>;
  /** `bwrap --version`, or undefined. */
  bwrapVersion(): Promise<string | undefined>;
  /** Whether `path` is a readable file. */
  isFile(path: string): boolean;
}

const parseTrial = (trial: TrialResult): Record<string, unknown> | undefined => {
  const line = trial.stdout.split('\n').find(l => l.startsWith('{'));
  if (!line) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
};

/** The trial's command line as an operator can paste it (the probe script shortened). */
const displayCommand = (plan: ProcessVatPlan): string[] => [plan.command, ...plan.args.map((a, i) => (plan.args[i - 1] === '-e' ? "'<probe script: see probeScript in src/isolation/process-vat.ts>'" : a))];

const trialDetails = (plan: ProcessVatPlan, trial: TrialResult, seen: Record<string, unknown> | undefined) =>
  seen ?? {
    exitCode: trial.exitCode,
    signal: trial.signal ?? null,
    ...(trial.timedOut === true ? { timedOut: true } : {}),
    ...(trial.spawnError === undefined ? {} : { spawnError: trial.spawnError }),
    stderr: trial.stderr.slice(0, 2000),
    command: displayCommand(plan),
  };

/**
 * Checks, by running real sandboxes, which isolation levels this machine can
 * establish, and names what is missing for the others and how to fix it.
 */
export const probeIsolation = async (powers: ProbePowers): Promise<IsolationProbe> => {
  const { host } = powers;
  const judge = async (level: ProcessIsolationLevel): Promise<LevelReport> => {
    const gaps: Gap[] = [...staticGaps(host, level)];
    const details: Record<string, unknown> = { prlimit: host.prlimit ?? null };
    const report = () =>
      harden({ available: gaps.length === 0, missing: harden(gaps.map(g => g.missing)), fixes: harden(gaps.map(g => g.fix)), details: harden(details) });
    if (level === 'process') {
      details.bwrap = host.bwrap ?? null;
      details.bwrapVersion = host.bwrap ? ((await powers.bwrapVersion()) ?? null) : null;
      details.seccompArch = isSeccompArch(host.arch) ? host.arch : null;
    }
    for (const path of host.codePaths) {
      if (!powers.isFile(path)) gaps.push({ missing: `the vat code ${path} (not found)`, fix: 'build it: `npm run build` (or reinstall ztaas)' });
    }
    if (gaps.length > 0) return report();
    // Writes are tried only inside bubblewrap, where a write that got
    // through would land in the sandbox's own throwaway root.
    let plans: { full: ProcessVatPlan; osOnly: ProcessVatPlan | undefined };
    try {
      const plan = (nodePermissions: boolean) =>
        planProcessVat(host, { memoryMb: 64, cpuSeconds: 10, level, ...(nodePermissions ? {} : { testHooks: { nodePermissions: false } }) }, probeScript(level === 'process'));
      plans = { full: plan(true), osOnly: level === 'process' ? plan(false) : undefined };
    } catch (err) {
      const path = (err as { details?: { path?: unknown } }).details?.path;
      gaps.push({
        missing: `a plain absolute path for every file the vat needs (${path === undefined ? String((err as Error)?.message ?? err) : JSON.stringify(path)})`,
        fix: "install Node and ztaas at paths without commas, newlines or '..'",
      });
      return report();
    }
    const run = (plan: ProcessVatPlan): Promise<TrialResult> =>
      powers.runTrial(plan).catch((err: unknown) => harden({ exitCode: null, spawnError: String((err as Error)?.message ?? err), stdout: '', stderr: '' }));
    const [full, osOnly] = await Promise.all([run(plans.full), plans.osOnly ? run(plans.osOnly) : undefined]);
    const context = (plan: ProcessVatPlan, nodePermissions: boolean) => ({
      level,
      nodeVersion: host.nodeVersion,
      command: plan.command,
      bwrap: host.bwrap,
      addressSpaceMb: plan.limits.addressSpaceMb,
      timeoutMs: TRIAL_TIMEOUT_MS,
      nodePermissions,
    });
    const seen = parseTrial(full);
    details.trial = trialDetails(plans.full, full, seen);
    if (!seen) {
      gaps.push(explainTrialFailure(full, context(plans.full, true)));
      return report();
    }
    const flag = permissionFlags(host.nodeVersion, [])[0];
    const layerBroken = `run the kernel with Node ${SUPPORTED_NODE_LINES.join(', ')}, and report this with the output of \`ztaas doctor --json\``;
    const permission = seen.permission as { fsWrite?: boolean; child?: boolean } | null;
    if (!permission || permission.fsWrite !== false || permission.child !== false) {
      gaps.push({ missing: `node permission model (${flag} had no effect: ${JSON.stringify(permission)})`, fix: layerBroken });
    }
    if (seen.write === 'written') gaps.push({ missing: 'read-only file system (a probe wrote a file)', fix: layerBroken });
    if (seen.spawn === 'spawned') gaps.push({ missing: 'process creation blocked (a probe spawned a process)', fix: layerBroken });
    if (level === 'process') {
      const bwrapBroken = `use an unprivileged (not setuid) bubblewrap 0.4 or later (\`bwrap --version\` says ${String(details.bwrapVersion)})`;
      if (seen.uid !== VAT_UID) gaps.push({ missing: `unprivileged uid inside the sandbox (got ${String(seen.uid)})`, fix: bwrapBroken });
      const interfaces = seen.interfaces;
      if (!Array.isArray(interfaces) || interfaces.some(i => i !== 'lo')) {
        gaps.push({ missing: `empty network namespace (interfaces: ${JSON.stringify(interfaces)})`, fix: bwrapBroken });
      }
      const os = osOnly ? parseTrial(osOnly) : undefined;
      details.trialWithoutNodePermissions = osOnly && plans.osOnly ? trialDetails(plans.osOnly, osOnly, os) : null;
      if (!os) {
        if (osOnly && plans.osOnly) gaps.push(explainTrialFailure(osOnly, context(plans.osOnly, false)));
      } else {
        if (os.spawn !== 'EPERM') {
          gaps.push({
            missing: `seccomp filter (process creation gave ${String(os.spawn)}, expected EPERM)`,
            fix: 'run on a Linux kernel built with CONFIG_SECCOMP_FILTER, with a bubblewrap that supports --seccomp; or name level process-weak',
          });
        }
        if (os.write === 'written') gaps.push({ missing: 'read-only mount namespace', fix: bwrapBroken });
      }
    } else {
      details.network = "open: Node's permission model does not cover the network";
    }
    return report();
  };
  const [processReport, weakReport] = await Promise.all([judge('process'), judge('process-weak')]);
  return harden({
    platform: host.platform,
    arch: host.arch,
    node: host.nodeVersion,
    worker: harden({
      available: true,
      missing: harden([]),
      fixes: harden([]),
      details: harden({ containment: 'SES Compartment in a worker thread; no OS containment of the worker' }),
    }),
    process: processReport,
    'process-weak': weakReport,
  });
};
harden(probeIsolation);
