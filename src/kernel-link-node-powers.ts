/**
 * Node powers of the host's kernel link: the kernel vat as a worker thread,
 * started with explicit options so it inherits nothing of the host's own
 * flags (`--input-type`, `--require`, loaders, …), and the sync channel: a
 * MessageChannel plus a shared flag the host thread waits on.
 */
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { harden } from './harden.js';
import type { KernelLinkPowers } from './kernel-link.js';

const KERNEL_MAIN = new URL('../vats/kernel-main.js', import.meta.url);

export const makeNodeKernelLinkPowers = (): KernelLinkPowers =>
  harden({
    startKernel: () => {
      const { port1: hostPort, port2: kernelPort } = new MessageChannel();
      // Read with receiveMessageOnPort only: it never keeps the process alive.
      hostPort.unref();
      const syncFlag = new SharedArrayBuffer(4);
      const flag = new Int32Array(syncFlag);
      const worker = new Worker(KERNEL_MAIN, {
        argv: [],
        execArgv: [],
        // The kernel's effectors and MCP servers see the host's environment
        // only through their own allow-lists; the kernel itself reads none of it.
        env: { ...process.env },
        stdin: false,
        workerData: { syncPort: kernelPort, syncFlag },
        transferList: [kernelPort],
      });
      return {
        worker,
        sync: harden({
          reset: () => {
            Atomics.store(flag, 0, 0);
          },
          wait: (timeoutMs: number) => Atomics.wait(flag, 0, 0, timeoutMs) !== 'timed-out',
          receive: () => receiveMessageOnPort(hostPort)?.message,
        }),
      };
    },
  });
harden(makeNodeKernelLinkPowers);
