/**
 * The process-vat shell: the entry point Node runs inside the sandbox of a
 * `process`-isolated agent. Its first import establishes the perimeter
 * (production lockdown); then it builds the agent vat and connects it to the
 * kernel with CapTP over the IPC channel (fd 3, JSON serialization), the
 * process's only link to anything: the sandbox has no network, no writable
 * file, no other process to talk to.
 *
 * The test-only escape hook (`escape(code)`, see src/isolation/escape-hook.ts)
 * is installed only when the kernel passed the `--zt-test-escape-hook` argv
 * flag; the agent cannot set argv, and the environment is empty.
 */
import '../src/init.js';
import { makeCapTP } from '@endo/captp';
import { withEscapeHook } from '../src/isolation/escape-hook.js';
import { ESCAPE_HOOK_FLAG } from '../src/isolation/process-vat.js';
import { buildRootObject, type KernelFacet } from './vat-agent.js';

const send = process.send?.bind(process);
if (!send) {
  process.stderr.write('process-main must be started by the kernel with an IPC channel\n');
  process.exit(70);
}

const agentRoot = buildRootObject({
  getKernel: () => getBootstrap() as Promise<KernelFacet>,
  afterTurn: fn => {
    setImmediate(fn);
  },
});
const root = process.argv.slice(2).includes(ESCAPE_HOOK_FLAG) ? withEscapeHook(agentRoot) : agentRoot;

const { dispatch, getBootstrap } = makeCapTP(
  'vat-agent',
  message => {
    try {
      send(message);
    } catch {
      // The channel is gone: the kernel ended this vat.
      process.exit(0);
    }
  },
  root,
  { onReject: () => undefined },
);
process.on('message', message => {
  dispatch(message as Record<string, unknown>);
});
// The kernel went away (or closed the channel): a vat has nobody else to serve.
process.on('disconnect', () => process.exit(0));
