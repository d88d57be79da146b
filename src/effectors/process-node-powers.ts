/**
 * Node adapter for the process effector: the only process-effector module
 * that touches `node:child_process` and `node:fs`. Each program is spawned
 * without a shell, detached (it leads a new session and process group, so
 * the group can be killed as a whole), with exactly the arguments and the
 * environment given (nothing of the kernel's own flags, see exact-env.ts),
 * and with pipes for stdin, stdout and stderr.
 */
import { harden } from '../harden.js';
import { spawn } from 'node:child_process';
import { exactEnv } from '../exact-env.js';
import { constants } from 'node:fs';
import { access, open, readlink, realpath, stat } from 'node:fs/promises';
import type { TimerPowers } from './settings.js';
import type { ChildLike, PinnedDirectory, ProcessPowers } from './process.js';

const LINUX_O_PATH = 0o10000000;

export const makeNodeTimerPowers = (): TimerPowers =>
  harden({
    setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
    clearTimeout: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  });
harden(makeNodeTimerPowers);

export const makeNodeProcessPowers = (): ProcessPowers =>
  harden({
    ...makeNodeTimerPowers(),
    spawn: (file: string, args: readonly string[], options: { readonly env: Readonly<Record<string, string>>; readonly cwd: string }) =>
      spawn(file, [...args], {
        env: exactEnv(options.env),
        cwd: options.cwd,
        argv0: file,
        shell: false,
        detached: true,
        windowsHide: true,
        stdio: ['pipe', 'pipe', 'pipe'],
      }) as unknown as ChildLike,
    killGroup: (pid: number, signal: 'SIGKILL' | 'SIGTERM') => {
      try {
        process.kill(-pid, signal);
      } catch {
        // ESRCH: the group is already gone.
      }
    },
    inspectProgram: async (path: string) => {
      const realPath = await realpath(path);
      const info = await stat(realPath);
      let executable = true;
      try {
        await access(realPath, constants.X_OK);
      } catch {
        executable = false;
      }
      // Root passes access(X_OK) when any execute bit is set; require one explicitly.
      return harden({ realPath, isFile: info.isFile(), executable: executable && (info.mode & 0o111) !== 0 });
    },
    pinDirectory: async (path: string): Promise<PinnedDirectory> => {
      const handle = await open(path, LINUX_O_PATH | constants.O_NOFOLLOW);
      try {
        const realPath = await readlink(`/proc/self/fd/${handle.fd}`);
        const info = await handle.stat();
        return harden({
          realPath,
          isDirectory: info.isDirectory(),
          isSymbolicLink: info.isSymbolicLink(),
          enterPath: `/proc/self/fd/${handle.fd}`,
          close: () => handle.close(),
        });
      } catch (err) {
        await handle.close().catch(() => undefined);
        throw err;
      }
    },
    encode: (text: string) => Buffer.from(text, 'utf8'),
    decode: (bytes: Uint8Array, encoding: 'utf8' | 'base64') => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(encoding),
  });
harden(makeNodeProcessPowers);
