/**
 * The two vat kinds a shared suite runs against: a real worker vat, and an
 * in-thread loopback vat (the same vat code and CapTP, over a MessageChannel
 * in this thread). The loopback kind cannot stop a busy agent; it exists to
 * test the membrane without a thread boundary.
 */
import { MessageChannel } from 'node:worker_threads';
import { makeCapTP } from '@endo/captp';
import { makeNodeVatHostPowers } from '../src/node-powers.js';
import { makeProcessVatHostPowers } from '../src/isolation/process-vat-node-powers.js';
import type { VatHostPowers, WorkerLike } from '../src/vat-host.js';
import { buildRootObject, type KernelFacet } from '../vats/vat-agent.js';

const startLoopbackVat = (): WorkerLike => {
  const { port1, port2 } = new MessageChannel();
  const listeners = { message: [] as Array<(m: unknown) => void>, exit: [] as Array<(code: number) => void> };
  let ended = false;
  const root = buildRootObject({
    getKernel: () => vatSide.getBootstrap() as Promise<KernelFacet>,
    afterTurn: fn => {
      setImmediate(fn);
    },
  });
  const vatSide = makeCapTP('loopback-vat', m => port2.postMessage(m), root, { onReject: () => undefined });
  port2.on('message', m => {
    vatSide.dispatch(m as Record<string, unknown>);
  });
  port1.on('message', m => {
    for (const l of listeners.message) l(m);
  });
  return {
    postMessage: m => port1.postMessage(m),
    on: ((event: 'message' | 'error' | 'exit', listener: never) => {
      if (event === 'message') listeners.message.push(listener);
      if (event === 'exit') listeners.exit.push(listener);
    }) as WorkerLike['on'],
    stdout: null,
    stderr: null,
    terminate: async () => {
      if (!ended) {
        ended = true;
        vatSide.abort();
        port1.close();
        port2.close();
        for (const l of listeners.exit) l(0);
      }
      return 0;
    },
    ref: () => port1.ref(),
    unref: () => port1.unref(),
  };
};

export const VAT_KINDS: ReadonlyArray<{ name: string; powers: () => VatHostPowers }> = [
  { name: 'worker', powers: makeNodeVatHostPowers },
  { name: 'loopback', powers: () => ({ ...makeNodeVatHostPowers(), startAgentWorker: () => startLoopbackVat() }) },
  { name: 'process', powers: () => makeProcessVatHostPowers() },
];
