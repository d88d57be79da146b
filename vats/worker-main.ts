/**
 * The worker shell every worker vat runs in. Its first import establishes
 * the perimeter (production lockdown); then it builds the vat named in
 * `workerData.vat` and connects it to the kernel over the worker's one
 * MessagePort with CapTP. Star topology: this port leads only to the kernel.
 */
import '../src/init.js';
import { harden } from '../src/harden.js';
import { parentPort, workerData } from 'node:worker_threads';
import { makeCapTP } from '@endo/captp';
import { buildRootObject as buildAgentVat, type KernelFacet } from './vat-agent.js';

const VATS = harden({ agent: buildAgentVat });

const port = parentPort;
if (!port) throw Error('worker-main must run in a worker thread');
const vatName = (workerData as { vat?: unknown } | undefined)?.vat;
if (vatName !== 'agent') throw Error(`unknown vat ${String(vatName)}`);

const root = VATS[vatName]({
  getKernel: () => getBootstrap() as Promise<KernelFacet>,
  afterTurn: fn => {
    setImmediate(fn);
  },
});
const { dispatch, getBootstrap } = makeCapTP(`vat-${vatName}`, message => port.postMessage(message), root, {
  onReject: () => undefined,
});
port.on('message', message => {
  dispatch(message as Record<string, unknown>);
});
