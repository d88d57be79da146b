/**
 * The audit vat's process: the Node adapter that starts it and carries its
 * wire. The audit vat holds the checkpoint signing key and the store's
 * descriptors, so it runs in a process of its own — no agent vat, worker or
 * process, shares its address space or its descriptor table.
 *
 * Invariants:
 * - Nothing inherited: the process gets exactly its arguments (the vat
 *   file, its parameters as one JSON argument, and its heap limit as the one
 *   Node flag), an empty environment and no Node IPC channel; its stdin and
 *   stdout are closed, stderr is read (bounded) for the reason of a death.
 * - One wire, in order: CapTP and appends travel as frames on the pipe at
 *   the vat's fd 3 (`isAuditWireMessage`); a frame the kernel cannot decode
 *   ends the vat (the kernel then fails closed, ZT_AUDIT_UNAVAILABLE).
 * - The vat's end comes once, after everything it wrote was read ('close',
 *   not 'exit').
 * - When the kernel's end of the wire closes (the kernel ended or crashed),
 *   the vat closes its log — a last checkpoint — and exits.
 */
import { harden } from '../harden.js';
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { exactEnv } from '../exact-env.js';
import { vatFileUrl } from '../vat-files.js';
import { encodeFrame, makeFrameDecoder } from '../isolation/wire.js';
import { AUDIT_MAX_FRAME_BYTES, isAuditWireMessage, type AuditVatParams } from './audit-vat-protocol.js';

/** The kernel's link to a started audit vat. */
export interface AuditConnection {
  /** Sends one message; throws when the vat can no longer be reached. */
  send(message: Record<string, unknown>): void;
  on(event: 'message', listener: (message: Record<string, unknown>) => void): void;
  /** The vat is gone (once): why, as the kernel saw it. */
  on(event: 'exit', listener: (reason: string) => void): void;
  /** Kills the vat; resolves once it is gone. */
  terminate(): Promise<void>;
  /** The idle vat never keeps the kernel's process alive. */
  unref(): void;
  readonly pid: number | undefined;
}

export interface AuditProcessOptions extends AuditVatParams {
  /** The vat's V8 heap limit (old generation), MiB. */
  readonly maxOldGenerationSizeMb: number;
}

/**
 * The audit vat's shell (`vats/audit-main.ts`), bundled at build time into
 * one self-contained ES module.
 */
const AUDIT_MAIN = vatFileUrl('audit-main.bundle.mjs');

/** Bytes of the vat's stderr kept for the reason of its end. */
const STDERR_KEPT = 4096;

export const startAuditProcess = (options: AuditProcessOptions): AuditConnection => {
  const { dir, durability, checkpointIntervalMs, maxOldGenerationSizeMb } = options;
  const params: AuditVatParams = { dir, durability, checkpointIntervalMs };
  const child = spawn(process.execPath, [`--max-old-space-size=${maxOldGenerationSizeMb}`, fileURLToPath(AUDIT_MAIN), JSON.stringify(params)], {
    env: exactEnv({}),
    cwd: '/',
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    detached: false,
    windowsHide: true,
  });
  const wire = child.stdio[3] as Socket;
  const messageListeners: Array<(message: Record<string, unknown>) => void> = [];
  const exitListeners: Array<(reason: string) => void> = [];
  let ended: string | undefined;
  let stderr = '';
  let gone: Promise<void> | undefined;

  const end = (reason: string) => {
    if (ended !== undefined) return;
    ended = reason;
    for (const listener of exitListeners) listener(reason);
    exitListeners.length = 0;
  };
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };

  const decoder = makeFrameDecoder({ maxFrameBytes: AUDIT_MAX_FRAME_BYTES, accepts: isAuditWireMessage });
  wire.on('data', (chunk: Buffer) => {
    if (ended !== undefined) return;
    let messages: Array<Record<string, unknown>>;
    try {
      messages = decoder.push(chunk);
    } catch (err) {
      kill();
      end(`the audit vat broke its wire: ${(err as Error).message}`);
      return;
    }
    for (const message of messages) {
      if (ended !== undefined) return;
      for (const listener of messageListeners) listener(message);
    }
  });
  wire.on('error', () => undefined); // its end is reported by 'close'
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEPT);
  });
  child.on('error', err => {
    kill();
    end(`the audit vat could not be started: ${err.message}`);
  });
  child.on('close', (code, signal) => {
    const said = stderr.trim().split('\n').slice(-3).join(' | ');
    end(`the audit vat exited (${signal ? `signal ${signal}` : `code ${code}`})${said ? `: ${said}` : ''}`);
  });

  return harden({
    send: (message: Record<string, unknown>) => {
      if (ended !== undefined) throw Error(ended);
      wire.write(encodeFrame(message, AUDIT_MAX_FRAME_BYTES, isAuditWireMessage));
    },
    on: ((event: 'message' | 'exit', listener: (arg: never) => void) => {
      if (event === 'message') messageListeners.push(listener as (message: Record<string, unknown>) => void);
      else if (ended === undefined) exitListeners.push(listener as (reason: string) => void);
      else (listener as (reason: string) => void)(ended);
    }) as AuditConnection['on'],
    terminate: () =>
      (gone ??= new Promise<void>(resolve => {
        if (child.exitCode !== null || child.signalCode !== null || ended !== undefined) {
          kill();
          resolve();
          return;
        }
        child.once('close', () => resolve());
        kill();
      })),
    unref: () => {
      child.unref();
      wire.unref();
      (child.stderr as unknown as { unref?(): void } | null)?.unref?.();
    },
    get pid() {
      return child.pid;
    },
  }) as AuditConnection;
};
harden(startAuditProcess);
