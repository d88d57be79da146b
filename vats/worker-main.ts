/**
 * The agent vat's worker shell. Its first import establishes the perimeter
 * (production lockdown); then it builds the agent vat and connects it to
 * the kernel over the worker's one MessagePort with CapTP. Star topology:
 * this port leads only to the kernel.
 */
import '../src/init.js';
import { parentPort, workerData } from 'node:worker_threads';
import { makeCapTP } from '@endo/captp';
import { buildRootObject, type KernelFacet } from './vat-agent.js';

const port = parentPort;
if (!port) throw Error('worker-main must run in a worker thread');
const vatName = (workerData as { vat?: unknown } | undefined)?.vat;
if (vatName !== 'agent') throw Error(`this shell runs the agent vat, not ${String(vatName)}`);

const root = buildRootObject({
  getKernel: () => getBootstrap() as Promise<KernelFacet>,
  afterTurn: fn => {
    setImmediate(fn);
  },
  stackOf: error => (globalThis as { getStackString?: (e: object) => string }).getStackString?.(error) ?? '',
});
const { dispatch, getBootstrap } = makeCapTP('vat-agent', message => port.postMessage(message), root, {
  onReject: () => undefined,
});
port.on('message', message => {
  dispatch(message as Record<string, unknown>);
});
