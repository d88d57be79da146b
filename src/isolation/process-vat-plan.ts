/**
 * The plan of a process vat: the exact command line, environment and limits
 * under which the kernel starts an agent vat as a contained child process.
 *
 * Invariants:
 * - Fail closed: `planProcessVat` refuses (ZT_ISOLATION_UNAVAILABLE, with
 *   `details.missing`) a level this host's static facts rule out, and any
 *   path that is not a plain absolute path; it never plans a weaker sandbox
 *   than the level named.
 * - The wire (fd 3, a plain pipe carrying frames of wire.ts) is the vat's
 *   only link to the kernel: there is no Node IPC channel. Its environment
 *   is empty but for the malloc setting of `VAT_ENV`; stdout/stderr are
 *   captured.
 * - Nothing of the kernel's own command line or environment reaches the
 *   vat: every Node flag is in the plan, and the adapter spawns it with
 *   exactly the plan's environment (see src/exact-env.ts for what Node
 *   would otherwise add).
 * - `--die-with-parent` and the PID namespace take every process inside the
 *   sandbox with its outermost one, and nothing is written to disk.
 *
 * Layers of the `process` level, outermost first (docs/ISOLATION.md says why):
 * rlimits set by `prlimit` (address space, CPU seconds, open files, no core
 * dumps, no file growth) → bubblewrap (new user, PID, network, IPC, UTS,
 * mount and cgroup namespaces; read-only binds of exactly the needed files;
 * own /proc and minimal /dev; uid/gid 65534; no capabilities; new session)
 * → a seccomp filter (no process creation, no ptrace, no namespaces, no
 * mounts; see seccomp.ts) → Node's permission model (`--allow-fs-read` of
 * exactly the bound paths; no writes, child processes, workers or addons)
 * → V8 heap limit → SES lockdown → the agent's Compartment. `process-weak`
 * keeps only the rlimits and Node's permission model.
 *
 * Pure: every fact about the host is passed in by
 * `process-vat-node-powers.ts`.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';
import { SUPPORTED_NODE_LINES, type Gap } from './explain.js';
import { isolationUnavailable, type ProcessIsolationLevel } from './levels.js';
import { buildSeccompFilter, isSeccompArch } from './seccomp.js';

const nodeMajor = (version: string): number => Number(/^v?(\d+)\./.exec(version)?.[1] ?? NaN);

/** The argv flag (never an environment variable) that enables the test-only escape hook in a vat. */
export const ESCAPE_HOOK_FLAG = '--zt-test-escape-hook';

/** The vat's end of its wire to the kernel (a socket pair: one duplex pipe). */
export const VAT_WIRE_FD = 3;
/** The descriptor bubblewrap reads the seccomp filter from (`--seccomp 4`). */
export const SECCOMP_FD = 4;

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
 * The environment of the vat's Node. One malloc
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
 * bubblewrap's arguments for the `process` level: every namespace new,
 * read-only binds of Node, its libraries and `readable` (each once), an
 * environment of `VAT_ENV` only, uid/gid `VAT_UID`,
 * the seccomp filter read from fd 4, then Node with `nodeArgs`.
 */
const bubblewrapArgs = (host: ProcessVatHost, readable: readonly string[], nodeArgs: readonly string[]): string[] => {
  const binds: string[] = [];
  const bound = new Set<string>();
  for (const p of [host.execPath, ...host.libraries, ...readable]) {
    if (bound.has(p)) continue;
    bound.add(p);
    binds.push('--ro-bind', p, p);
  }
  return [
    '--unshare-all',
    '--die-with-parent',
    '--new-session',
    '--cap-drop', 'ALL',
    '--clearenv',
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
    '--seccomp', String(SECCOMP_FD),
    '--',
    host.execPath,
    ...nodeArgs,
  ];
};

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
  if (gaps.length > 0) throw isolationUnavailable(level, gaps);
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

  return harden({
    level,
    command: host.prlimit as string,
    args: harden([...prlimitArgs, host.bwrap as string, ...bubblewrapArgs(host, readable, nodeArgs)]),
    env: harden({}),
    seccomp: buildSeccompFilter(host.arch),
    readable: harden(readable),
    limits,
  });
};
