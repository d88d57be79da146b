/**
 * The Node adapter: the only module of the runtime library that reaches for
 * ambient authority (`node:fs`, `node:crypto`, `node:worker_threads`, the
 * clock). It builds the power records the pure modules receive.
 */
import { harden } from './harden.js';
import { createHash, randomUUID } from 'node:crypto';
import { open, realpath, stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import type { WorkerOptions } from 'node:worker_threads';
import { canonicalJson } from './audit/canonical.js';
import { vatFileUrl } from './vat-files.js';
import type { ModulePowers } from './agent-modules.js';
import type { KernelPowers } from './kernel.js';
import type { VatHostPowers, WorkerLike } from './vat-host.js';

export const sha256Hex = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');
harden(sha256Hex);

/**
 * Reads a text file of at most `maxBytes` bytes, or resolves `null`: the
 * open file's size is checked before anything is read, and the read itself
 * stops one byte past the limit (a file that grows meanwhile is refused too).
 * A 600 MB file costs one `fstat`, not 600 MB of memory.
 */
export const readTextBounded = async (path: string, maxBytes: number): Promise<string | null> => {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) return null;
    const buffer = Buffer.alloc(Math.min(maxBytes, size) + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled > maxBytes) return null;
      if (filled === buffer.length) break;
    }
    if (filled > maxBytes) return null;
    return new TextDecoder('utf-8').decode(buffer.subarray(0, filled));
  } finally {
    await handle.close();
  }
};
harden(readTextBounded);

export const makeNodeKernelPowers = (): KernelPowers =>
  harden({
    now: () => Date.now(),
    makeRequestId: () => `req-${randomUUID()}`,
    setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
    setBackgroundTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms).unref(),
    clearTimeout: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    sha256Hex,
    canonicalJson,
  });

export const makeNodeModulePowers = (): ModulePowers =>
  harden({
    realpath: (path: string) => realpath(path),
    isFile: async (path: string) => (await stat(path)).isFile(),
    isDirectory: async (path: string) => (await stat(path)).isDirectory(),
    readText: (path: string, maxBytes: number) => readTextBounded(path, maxBytes),
    parseModule: async (text: string, url: string) => {
      const { ModuleSource } = await import('@endo/module-source');
      return new ModuleSource(text, url);
    },
  });

/**
 * The worker shell, bundled at build time (`npm run bundle`) into one file:
 * a vat then loads one module instead of a few hundred, which cuts its cold
 * start by more than half. The bundle is built from the same sources, with
 * the same first import (lockdown).
 */
const WORKER_MAIN = vatFileUrl('worker-main.bundle.js');

/**
 * How every agent worker starts: empty environment and arguments, captured
 * stdio, and V8 heap limits derived from its memory limit.
 */
export const agentWorkerOptions = (memoryMb: number): WorkerOptions => ({
  env: {},
  argv: [],
  execArgv: [],
  stdout: true,
  stderr: true,
  stdin: false,
  resourceLimits: {
    maxOldGenerationSizeMb: memoryMb,
    maxYoungGenerationSizeMb: Math.max(4, Math.min(32, Math.floor(memoryMb / 4))),
    stackSizeMb: 4,
  },
});
harden(agentWorkerOptions);

export const makeNodeVatHostPowers = (): VatHostPowers =>
  harden({
    startAgentWorker: ({ memoryMb }: { memoryMb: number }) =>
      new Worker(WORKER_MAIN, { ...agentWorkerOptions(memoryMb), workerData: { vat: 'agent' } }) as unknown as WorkerLike,
    now: () => Date.now(),
    digest: (value: unknown) => sha256Hex(canonicalJson(value ?? null)),
    sha256Hex: (text: string) => sha256Hex(text),
    setImmediate: (fn: () => void) => {
      setImmediate(fn);
    },
    setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
    clearTimeout: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  });
