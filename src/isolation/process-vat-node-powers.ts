/**
 * The Node adapter of process vats: the only isolation module that reaches
 * for ambient authority (`node:child_process`, `node:fs`). It gathers the
 * facts about this host that `process-vat-plan.ts` plans with (where `bwrap`,
 * `prlimit`, Node and its shared libraries are; which
 * files the vat code needs) and spawns the planned command, with the vat's
 * wire as a plain pipe at fd 3 (no Node IPC channel).
 *
 * Commands are looked up in fixed system directories, never through PATH,
 * so the environment cannot substitute a fake `bwrap`.
 */
import { harden } from '../harden.js';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { exactEnv } from '../exact-env.js';
import { makeNodeVatHostPowers } from '../node-powers.js';
import { distDir } from '../vat-files.js';
import type { VatHostPowers, WorkerLike } from '../vat-host.js';
import {
  makeProcessVatWorker,
  planProcessVat,
  probeIsolation as probeWith,
  type ChildLike,
  type IsolationProbe,
  type ProcessVatHost,
  type ProcessVatOptions,
  type ProcessVatPlan,
  type ProbePowers,
  type TrialResult,
  type WirePipe,
  TRIAL_TIMEOUT_MS,
} from './process-vat.js';

const SYSTEM_DIRS = harden(['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin']);

const findCommand = (name: string): string | undefined => {
  for (const dir of SYSTEM_DIRS) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
};

/** Node's shared libraries and ELF interpreter, as the dynamic loader resolves them (`ldd`). */
const sharedLibraries = (execPath: string): string[] => {
  const ldd = findCommand('ldd');
  if (!ldd) return [];
  let text: string;
  try {
    text = execFileSync(ldd, [execPath], { encoding: 'utf8', env: exactEnv({}), timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return []; // a static binary, or no ldd: the probe's trial run will tell
  }
  const libs: string[] = [];
  for (const line of text.split('\n')) {
    const match = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (match?.[1]) libs.push(match[1]);
  }
  return libs;
};

/**
 * The facts `planProcessVat` needs, read from this host. The vat code is
 * one bundled file; nothing else of the project or of `node_modules` is
 * visible inside the sandbox.
 */
export const readProcessVatHost = (): ProcessVatHost => {
  const dist = distDir();
  const execPath = realpathSync(process.execPath);
  return harden({
    platform: process.platform,
    arch: process.arch,
    nodeVersion: process.version,
    execPath,
    // The process-vat entry bundled at build time (`npm run bundle`): one
    // self-contained ES module (`.mjs`, so no package.json is needed), the
    // only code file the sandbox can read.
    vatMain: join(dist, 'vats', 'process-main.bundle.mjs'),
    codePaths: harden([join(dist, 'vats', 'process-main.bundle.mjs')]),
    libraries: harden(sharedLibraries(execPath)),
    bwrap: findCommand('bwrap'),
    prlimit: findCommand('prlimit'),
  });
};
harden(readProcessVatHost);

/**
 * Spawns `plan`: stdio `ignore, pipe, pipe`, the wire at fd 3 (a pipe —
 * on Linux a socket pair — never `ipc`), and fd 4 carrying the seccomp
 * filter, with exactly the plan's arguments and environment.
 */
const spawnPlan = (plan: ProcessVatPlan, wire: boolean) => {
  const child = spawn(plan.command, [...plan.args], {
    env: exactEnv(plan.env),
    cwd: '/',
    stdio: ['ignore', 'pipe', 'pipe', wire ? 'pipe' : 'ignore', plan.seccomp ? 'pipe' : 'ignore'],
    detached: false,
    windowsHide: true,
  });
  const seccompPipe = child.stdio[4] as NodeJS.WritableStream | null | undefined;
  if (plan.seccomp && seccompPipe) {
    (seccompPipe as unknown as { on(e: 'error', l: () => void): void }).on('error', () => undefined);
    seccompPipe.end(Buffer.from(plan.seccomp));
  }
  return child;
};

/** The kernel's end of the wire: Node's socket, wrapped (hardening must never freeze Node's streams). */
const asWirePipe = (socket: Socket): WirePipe =>
  harden({
    write: (bytes: Uint8Array) => {
      socket.write(bytes);
    },
    writableLength: () => socket.writableLength,
    on: ((event: 'data' | 'end' | 'error', listener: (...args: unknown[]) => void) => {
      socket.on(event, listener);
    }) as WirePipe['on'],
  });

const asChildLike = (child: ReturnType<typeof spawn>): ChildLike => {
  const socket = child.stdio[3] as Socket | null | undefined;
  const handles = () => [child, socket, child.stdout, child.stderr] as Array<{ ref?(): void; unref?(): void } | null | undefined>;
  return harden({
    get pid() {
      return child.pid;
    },
    wire: socket ? asWirePipe(socket) : null,
    on: ((event: string, listener: (...args: unknown[]) => void) => {
      child.on(event, listener);
    }) as ChildLike['on'],
    // Wrapped, not handed out: hardening must never freeze Node's streams.
    stdout: child.stdout ? harden({ on: (event: 'data', listener: (chunk: unknown) => void) => void child.stdout?.on(event, listener) }) : null,
    stderr: child.stderr ? harden({ on: (event: 'data', listener: (chunk: unknown) => void) => void child.stderr?.on(event, listener) }) : null,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    ref: () => {
      for (const h of handles()) h?.ref?.();
    },
    unref: () => {
      for (const h of handles()) h?.unref?.();
    },
  }) as ChildLike;
};

/** The started vat, plus the host pid of its sandbox (for cleanup checks). */
export interface StartedProcessVat {
  readonly worker: WorkerLike;
  readonly pid: number | undefined;
  readonly plan: ProcessVatPlan;
}

/**
 * A starter bound to this host: reads the host once, then starts vats.
 * Throws ZT_ISOLATION_UNAVAILABLE (synchronously, before anything runs)
 * when the level cannot be established here.
 */
export const makeProcessVatStarter = (host: ProcessVatHost = readProcessVatHost()) => {
  const startWithPid = (options: ProcessVatOptions): StartedProcessVat => {
    const plan = planProcessVat(host, options);
    const child = spawnPlan(plan, true);
    const worker = makeProcessVatWorker(asChildLike(child));
    return harden({ worker, pid: child.pid, plan });
  };
  return harden({
    host,
    start: (options: ProcessVatOptions): WorkerLike => startWithPid(options).worker,
    startWithPid,
  });
};
harden(makeProcessVatStarter);

/**
 * Vat host powers whose vats are process vats: a drop-in for
 * `makeNodeVatHostPowers()` (same clock, digest, timers). `options` apply to
 * every vat; `memoryMb` comes from each launch.
 */
export const makeProcessVatHostPowers = (options: Omit<ProcessVatOptions, 'memoryMb'> = {}): VatHostPowers => {
  const starter = makeProcessVatStarter();
  return harden({
    ...makeNodeVatHostPowers(),
    startAgentWorker: ({ memoryMb }: { memoryMb: number }) => starter.start({ ...options, memoryMb }),
  });
};
harden(makeProcessVatHostPowers);

const runTrial = (plan: ProcessVatPlan): Promise<TrialResult> =>
  new Promise(resolve => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let child: ReturnType<typeof spawn>;
    try {
      child = spawnPlan(plan, false);
    } catch (err) {
      resolve(harden({ exitCode: null, spawnError: String((err as Error)?.message ?? err), stdout: '', stderr: '' }));
      return;
    }
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, TRIAL_TIMEOUT_MS);
    child.stdout?.on('data', chunk => {
      stdout = (stdout + String(chunk)).slice(0, 16_384);
    });
    child.stderr?.on('data', chunk => {
      stderr = (stderr + String(chunk)).slice(0, 16_384);
    });
    child.on('error', err => {
      clearTimeout(timer);
      resolve(harden({ exitCode: null, spawnError: err.message, stdout, stderr }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(harden({ exitCode: code, signal, timedOut, stdout, stderr }));
    });
  });

const bwrapVersion = (bwrap: string | undefined) => (): Promise<string | undefined> =>
  new Promise(resolve => {
    if (!bwrap) {
      resolve(undefined);
      return;
    }
    execFile(bwrap, ['--version'], { env: exactEnv({}), timeout: 5_000 }, (err, stdout) => resolve(err ? undefined : String(stdout).trim()));
  });

const isFile = (path: string): boolean => {
  try {
    accessSync(path, constants.R_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
};

/** The powers of the isolation probe on this host: real trial sandboxes. */
export const makeNodeProbePowers = (host: ProcessVatHost = readProcessVatHost()): ProbePowers =>
  harden({ host, runTrial, bwrapVersion: bwrapVersion(host.bwrap), isFile });
harden(makeNodeProbePowers);

/**
 * Which isolation levels this machine can establish, judged by running real
 * sandboxes (see `probeIsolation` in probe.ts), what is missing and
 * how to fix it.
 */
export const probeIsolation = (host: ProcessVatHost = readProcessVatHost()): Promise<IsolationProbe> => probeWith(makeNodeProbePowers(host));
harden(probeIsolation);
