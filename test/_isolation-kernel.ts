/**
 * A stand-in kernel process for the die-with-parent test: starts one process
 * vat, waits until it answers, prints the sandbox's host pid as a JSON line,
 * then idles until it is killed.
 */
import '../src/init.js';
import { makeCapTP } from '@endo/captp';
import { E, Far } from '@endo/far';
import { makeProcessVatStarter } from '../src/isolation/process-vat-node-powers.js';

const { worker, pid } = makeProcessVatStarter().startWithPid({ memoryMb: 64 });
const captp = makeCapTP('stand-in-kernel', m => worker.postMessage(m), Far('KernelFacet', { log: () => undefined }), { onReject: () => undefined });
worker.on('message', m => captp.dispatch(m as Record<string, unknown>));
await E(captp.getBootstrap()).probe();
process.stdout.write(`${JSON.stringify({ pid })}\n`);
setInterval(() => undefined, 60_000);
