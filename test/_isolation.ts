/**
 * Isolation fixtures: vats of each isolation level with the test-only
 * escape hook, connected to a bare CapTP kernel end, and helpers to look
 * for the processes of a sandbox on the host.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { makeCapTP } from '@endo/captp';
import { E, Far } from '@endo/far';
import type { EscapeReport } from '../src/isolation/escape-hook.js';
import { agentWorkerOptions } from '../src/node-powers.js';
import { makeProcessVatStarter } from '../src/isolation/process-vat-node-powers.js';
import type { ProcessVatOptions } from '../src/isolation/process-vat.js';
import type { WorkerLike } from '../src/vat-host.js';

/** The escape worlds: `process-os-only` is `process` without Node's permission model (the OS layers alone). */
export type EscapeKind = 'worker' | 'process' | 'process-os-only' | 'process-weak';

const startEscapeWorker = (memoryMb: number): WorkerLike =>
  new Worker(new URL('./_isolation-worker-main.js', import.meta.url), agentWorkerOptions(memoryMb)) as unknown as WorkerLike;

export const processOptions = (kind: Exclude<EscapeKind, 'worker'>, memoryMb = 64, extra: Partial<ProcessVatOptions> = {}): ProcessVatOptions => ({
  memoryMb,
  level: kind === 'process-weak' ? 'process-weak' : 'process',
  testHooks: { escape: true, ...(kind === 'process-os-only' ? { nodePermissions: false } : {}) },
  ...extra,
});

/** A vat of `kind` with the escape hook; `escape(code)` runs `code` in its start compartment. */
export const startEscapeVat = async (kind: EscapeKind, opts: { memoryMb?: number; extra?: Partial<ProcessVatOptions> } = {}) => {
  const memoryMb = opts.memoryMb ?? 64;
  let pid: number | undefined;
  let worker: WorkerLike;
  if (kind === 'worker') worker = startEscapeWorker(memoryMb);
  else {
    const started = makeProcessVatStarter().startWithPid(processOptions(kind, memoryMb, opts.extra));
    worker = started.worker;
    pid = started.pid;
  }
  const output: string[] = [];
  worker.stdout?.on('data', c => output.push(String(c)));
  worker.stderr?.on('data', c => output.push(String(c)));
  let exitCode: number | undefined;
  const exited = new Promise<number>(resolve => {
    worker.on('exit', code => {
      exitCode = code;
      resolve(code);
    });
  });
  const errors: Error[] = [];
  worker.on('error', err => errors.push(err));
  const captp = makeCapTP('test-kernel', m => worker.postMessage(m), Far('KernelFacet', { log: () => undefined }), { onReject: () => undefined });
  worker.on('message', m => captp.dispatch(m as Record<string, unknown>));
  const root = captp.getBootstrap() as Promise<{ escape(code: string): Promise<EscapeReport>; probe(): Promise<unknown> }>;
  await E(root).probe();
  return {
    kind,
    pid,
    worker,
    output,
    errors,
    exited,
    exitCode: () => exitCode,
    root,
    escape: (code: string) => E(root).escape(code) as Promise<EscapeReport>,
    close: async () => {
      captp.abort();
      await worker.terminate();
    },
  };
};

/** Host pids of `pid` and all its descendants (from /proc). */
export const processTree = (pid: number): number[] => {
  const parents = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(name));
      parents.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of parents.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
};

/** Whether `pid` is a live (non-zombie) process. */
export const isAlive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
};

/** Waits (bounded) until none of `pids` is alive; returns those still alive. */
export const waitGone = async (pids: readonly number[], ms = 5_000): Promise<number[]> => {
  const until = Date.now() + ms;
  for (;;) {
    const alive = pids.filter(isAlive);
    if (alive.length === 0 || Date.now() > until) return alive;
    await new Promise(resolve => setTimeout(resolve, 25));
  }
};
