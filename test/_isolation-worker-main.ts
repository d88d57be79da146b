/**
 * TEST-ONLY worker shell: `vats/worker-main.ts` plus the escape hook, so the
 * isolation tests can show what a complete SES escape inside a *worker*
 * vat reaches (the worker's start compartment). Started with exactly the
 * options `makeNodeVatHostPowers()` gives agent workers.
 */
import '../src/init.js';
import { parentPort } from 'node:worker_threads';
import { makeCapTP } from '@endo/captp';
import { withEscapeHook } from '../src/isolation/escape-hook.js';
import { buildRootObject, type KernelFacet } from '../vats/vat-agent.js';

const port = parentPort;
if (!port) throw Error('_isolation-worker-main must run in a worker thread');
const root = withEscapeHook(
  buildRootObject({
    getKernel: () => getBootstrap() as Promise<KernelFacet>,
    afterTurn: fn => {
      setImmediate(fn);
    },
  }),
);
const { dispatch, getBootstrap } = makeCapTP('vat-agent', message => port.postMessage(message), root, { onReject: () => undefined });
port.on('message', message => {
  dispatch(message as Record<string, unknown>);
});
