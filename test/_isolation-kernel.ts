/**
 * A stand-in kernel process for the tests that need a kernel they can kill
 * or start with descriptors of their choosing: starts one process vat of
 * the kind named by argv[2] (`process` by default, or `process-weak`,
 * `process-os-only`) with the test-only escape hook, waits until it
 * answers, makes it a vat that ignores the end of its wire when argv[4] is
 * `linger` (as a compromised one would), and prints one JSON line — the sandbox's host pid, which of the
 * descriptors named by argv[3] (comma-separated) this kernel holds, and, for
 * each of them, what the vat's start compartment meets when it reads,
 * writes or inspects it — then idles until it is killed.
 */
import '../src/init.js';
import { fstatSync } from 'node:fs';
import { makeCapTP } from '@endo/captp';
import { E, Far } from '@endo/far';
import { makeProcessVatStarter } from '../src/isolation/process-vat-node-powers.js';
import type { EscapeReport } from '../src/isolation/escape-hook.js';
import { processOptions, type EscapeKind } from './_isolation.js';

const kind = (process.argv[2] ?? 'process') as Exclude<EscapeKind, 'worker'>;
const fds = (process.argv[3] ?? '').split(',').filter(Boolean).map(Number);

const { worker, pid } = makeProcessVatStarter().startWithPid(processOptions(kind));
const captp = makeCapTP('stand-in-kernel', m => worker.postMessage(m), Far('KernelFacet', { log: () => undefined }), { onReject: () => undefined });
worker.on('message', m => captp.dispatch(m as Record<string, unknown>));
const root = captp.getBootstrap() as Promise<{ probe(): Promise<unknown>; escape(code: string): Promise<EscapeReport> }>;
await E(root).probe();

const held = fds.filter(fd => {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
});
// The compromised vat tries every descriptor the kernel holds: inspect, read, write.
const inVat = fds.length === 0
  ? null
  : await E(root).escape(`
  const fs = process.getBuiltinModule('node:fs');
  const code = f => { try { return f(); } catch (e) { return e.code || e.message; } };
  const out = {};
  for (const fd of ${JSON.stringify(fds)}) {
    out[fd] = {
      fstat: code(() => (fs.fstatSync(fd), 'open')),
      // Written first: a read of an empty FIFO would block.
      write: code(() => (fs.writeSync(fd, 'written by the vat'), 'written')),
      read: code(() => (fs.readSync(fd, new Uint8Array(64)), 'read')),
    };
  }
  out.listed = code(() => fs.readdirSync('/proc/self/fd'));
  return out;`);
if (process.argv[4] === 'linger') {
  // The compromised vat will not exit when its wire ends: only the OS can end it.
  await E(root).escape(`process.exit = () => undefined; setInterval(() => undefined, 60_000); return 'lingering'`);
}
process.stdout.write(`${JSON.stringify({ pid, held, inVat: inVat && (inVat.ok ? inVat.value : inVat.error) })}\n`);
setInterval(() => undefined, 60_000);
