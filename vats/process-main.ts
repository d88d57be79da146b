/**
 * The process-vat shell: the entry point Node runs inside the sandbox of a
 * `process`-isolated agent. Its first import establishes the perimeter
 * (production lockdown); then it builds the agent vat and connects it to the
 * kernel with CapTP over its wire (fd 3: a plain pipe carrying
 * length-prefixed JSON frames, src/isolation/wire.ts), the process's only
 * link to anything: the sandbox has no network, no writable file, no other
 * process to talk to, and no Node IPC channel (`process.send` does not
 * exist).
 *
 * The test-only escape hook (`escape(code)`, see src/isolation/escape-hook.ts)
 * is installed only when the kernel passed the `--zt-test-escape-hook` argv
 * flag; the agent cannot set argv, and the environment is empty.
 */
import '../src/init.js';
import { Socket } from 'node:net';
import { makeCapTP } from '@endo/captp';
import { withEscapeHook } from '../src/isolation/escape-hook.js';
import { ESCAPE_HOOK_FLAG, VAT_WIRE_FD, encodeFrame, makeFrameDecoder } from '../src/isolation/process-vat.js';
import { buildRootObject, type KernelFacet } from './vat-agent.js';

/** Exit status of a vat that received a frame it could not decode (the kernel never sends one). */
const BAD_FRAME_EXIT = 76;
/**
 * What the vat sends is framed without a limit of its own: the kernel
 * enforces the wire's limit, and a message over it ends this vat there, as
 * ZT_VAT_PROTOCOL, recorded by the kernel from what it saw.
 */
const SEND_LIMIT = 0xffff_ffff;

const decoder = makeFrameDecoder();
/**
 * Reads go straight to the decoder from one reused buffer (`onread`),
 * without a stream's queue: the decoder keeps nothing of a chunk (a frame
 * within it is decoded at once, the rest copied), so reusing it is safe.
 */
const onread = {
  buffer: Buffer.alloc(64 * 1024),
  callback: (bytes: number, buffer: Uint8Array) => {
    let messages: Array<Record<string, unknown>>;
    try {
      messages = decoder.push(buffer.subarray(0, bytes));
    } catch {
      process.exit(BAD_FRAME_EXIT);
    }
    for (const message of messages) dispatch(message);
    return true;
  },
};

let wire: Socket;
try {
  wire = new Socket({ fd: VAT_WIRE_FD, readable: true, writable: true, onread } as ConstructorParameters<typeof Socket>[0]);
} catch {
  process.stderr.write(`process-main must be started by the kernel with its wire at fd ${VAT_WIRE_FD}\n`);
  process.exit(70);
}

const agentRoot = buildRootObject({
  getKernel: () => getBootstrap() as Promise<KernelFacet>,
  afterTurn: fn => {
    setImmediate(fn);
  },
  stackOf: error => (globalThis as { getStackString?: (e: object) => string }).getStackString?.(error) ?? '',
});
const root = process.argv.slice(2).includes(ESCAPE_HOOK_FLAG) ? withEscapeHook(agentRoot) : agentRoot;

const { dispatch, getBootstrap } = makeCapTP(
  'vat-agent',
  message => {
    wire.write(encodeFrame(message, SEND_LIMIT));
  },
  root,
  { onReject: () => undefined },
);
// The kernel went away (or ended the wire): a vat has nobody else to serve.
wire.on('end', () => process.exit(0));
wire.on('error', () => process.exit(0));
