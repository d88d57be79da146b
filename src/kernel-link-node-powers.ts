/**
 * Node powers of the host's kernel link: the kernel vat as a worker thread,
 * started with explicit options so it inherits nothing of the host's own
 * flags (`--input-type`, `--require`, loaders, …), and the sync channel: a
 * MessageChannel plus a shared flag the host thread waits on.
 */
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { harden } from './harden.js';
import type { KernelLinkPowers } from './kernel-link.js';
import { vatFileUrl } from './vat-files.js';

/**
 * The kernel vat's shell, bundled at build time (`npm run bundle`) into one
 * file with the runtime it runs: a few hundred modules load as one, which
 * halves its start. The module parser agents need is left out and loaded
 * at the first launch.
 */
const KERNEL_MAIN = vatFileUrl('kernel-main.bundle.js');

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
