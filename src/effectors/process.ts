/**
 * Process effector (EXECUTE). Invariant: the only program that runs is the
 * approved target, with an argv the capability's patterns accept, in an
 * environment made only of what the capability names, in a working
 * directory inside the one it confines, and nothing it started outlives the
 * action.
 *
 * Threats and how each is met:
 * - Shell injection: there is no shell, ever. The program is started with an
 *   argv array (`shell: false`); `;`, `$(...)`, quotes and globs are bytes
 *   in an argument. Arguments are also matched against the capability's
 *   patterns (per position, for the rest, and for the whole argv);
 *   no pattern means no arguments (ZT_ARGUMENT_DENIED).
 * - Program substitution: the target must be the program's resolved path
 *   (no symlink on the way), a regular file, executable (ZT_ACCESS_DENIED,
 *   ZT_NOT_A_FILE, ZT_NOT_FOUND). Grant programs in directories the agent
 *   cannot write: a swap of the file itself between check and exec is out of
 *   this module's reach.
 * - Environment leakage: nothing is inherited. The environment is exactly
 *   `effect.env` (fixed values) plus the names in `effect.agentEnv` the
 *   agent set to values matching their patterns; anything else, or an
 *   attempt to override a fixed value, is ZT_ARGUMENT_DENIED.
 * - Working directory escape: `effect.cwd` (default `/`) is pinned as an
 *   O_PATH descriptor whose real path must equal it, and the child changes
 *   into it through /proc/self/fd/N, so a symlink swapped in after the check
 *   cannot move it. An agent-chosen `cwd` must lie inside `effect.cwd`.
 * - Runaways and stragglers: each program leads its own process group; on
 *   revocation, deadline (`effect.timeoutMs`, ZT_TIMEOUT), output overflow or
 *   normal exit the whole group gets SIGKILL. (A descendant that calls
 *   setsid() leaves the group; contain such programs with an OS sandbox.)
 * - Oversized data: stdin is bounded (ZT_TOO_LARGE before start); stdout and
 *   stderr are bounded, and overflowing either kills the group and reports
 *   `truncated: true` with what was captured.
 */
import { harden } from '../harden.js';
import { ZtError, assertZt, type ErrorCode } from '../errors.js';
import { normalizePath } from '../paths.js';
import { tryCompileRegex, type LinearRegex } from '../regex.js';
import type { CapabilityConstraints } from '../types.js';
import {
  compileArgPattern,
  isPlainRecord,
  optionalNonNegativeInt,
  optionalPositiveInt,
  readSettings,
  type ArgMatcher,
  type Settings,
  type TimerPowers,
} from './settings.js';
import type { Effector, GrantValidator } from './types.js';

export interface ReadableLike {
  on(event: 'data', listener: (chunk: Uint8Array) => void): unknown;
  on(event: 'error', listener: (err: unknown) => void): unknown;
  destroy(): unknown;
}

export interface ChildLike {
  readonly pid: number | undefined;
  readonly stdout: ReadableLike;
  readonly stderr: ReadableLike;
  readonly stdin: {
    end(data?: Uint8Array): unknown;
    on(event: 'error', listener: (err: unknown) => void): unknown;
  };
  on(event: 'exit', listener: (code: number | null, signal: string | null) => void): unknown;
  on(event: 'close', listener: (code: number | null, signal: string | null) => void): unknown;
  on(event: 'error', listener: (err: unknown) => void): unknown;
}

export interface PinnedDirectory {
  /** The real path of the pinned directory, as the OS reports it. */
  readonly realPath: string;
  readonly isDirectory: boolean;
  readonly isSymbolicLink: boolean;
  /** A path through which a child can enter exactly this directory (/proc/self/fd/N). */
  readonly enterPath: string;
  close(): Promise<void>;
}

export interface ProcessPowers extends TimerPowers {
  /** Starts `file` with `args` (no shell), in its own process group, with exactly `env`. */
  spawn(file: string, args: readonly string[], options: { readonly env: Readonly<Record<string, string>>; readonly cwd: string }): ChildLike;
  /** Sends `signal` to every process of the group led by `pid`; never throws. */
  killGroup(pid: number, signal: 'SIGKILL' | 'SIGTERM'): void;
  /** What the program path is: its real path, and whether it is an executable regular file. */
  inspectProgram(path: string): Promise<{ readonly realPath: string; readonly isFile: boolean; readonly executable: boolean }>;
  /** Pins a directory without following a final symlink. */
  pinDirectory(path: string): Promise<PinnedDirectory>;
  encode(text: string): Uint8Array;
  decode(bytes: Uint8Array, encoding: 'utf8' | 'base64'): string;
}

const SETTINGS = harden([
  'args',
  'restArgs',
  'minArgs',
  'maxArgs',
  'argvRegex',
  'env',
  'agentEnv',
  'cwd',
  'timeoutMs',
  'maxStdinBytes',
  'maxStdoutBytes',
  'maxStderrBytes',
]);

const HARD_MAX_ARGS = 4096;
const MAX_ARGV_BYTES = 128 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

interface ExecSettings {
  readonly positional: readonly ArgMatcher[];
  readonly rest: ArgMatcher | undefined;
  readonly minArgs: number;
  readonly maxArgs: number;
  readonly argvRegex: LinearRegex | undefined;
  readonly env: Readonly<Record<string, string>>;
  readonly agentEnv: ReadonlyMap<string, ArgMatcher>;
  readonly cwd: string | undefined;
  readonly timeoutMs: number;
  readonly maxStdinBytes: number | undefined;
  readonly maxStdoutBytes: number | undefined;
  readonly maxStderrBytes: number | undefined;
}

const parseSettings = (constraints: CapabilityConstraints): ExecSettings => {
  const s: Settings = readSettings(constraints, SETTINGS, 'EXECUTE');
  const { args = [], restArgs, argvRegex, env = {}, agentEnv = {}, cwd } = s;
  assertZt(Array.isArray(args) && args.length <= HARD_MAX_ARGS, 'ZT_BAD_ARGUMENT', 'args must be an array of argument patterns');
  const positional = (args as unknown[]).map((p, i) => compileArgPattern(p, `args[${i}]`));
  const rest = restArgs === undefined ? undefined : compileArgPattern(restArgs, 'restArgs');
  const minArgs = optionalNonNegativeInt(s, 'minArgs', positional.length, HARD_MAX_ARGS);
  const maxArgs = optionalNonNegativeInt(s, 'maxArgs', rest ? 256 : positional.length, HARD_MAX_ARGS);
  assertZt(minArgs <= maxArgs, 'ZT_BAD_ARGUMENT', 'minArgs must not exceed maxArgs');
  assertZt(rest !== undefined || maxArgs <= positional.length, 'ZT_BAD_ARGUMENT', 'maxArgs beyond the positional patterns needs restArgs');
  let regex: LinearRegex | undefined;
  if (argvRegex !== undefined) {
    assertZt(typeof argvRegex === 'string' && argvRegex.length <= 1000, 'ZT_BAD_ARGUMENT', 'argvRegex must be a string of at most 1000 characters');
    // RE2, not RegExp: the argument list is agent-supplied (src/regex.ts).
    const attempt = tryCompileRegex(argvRegex);
    if ('problem' in attempt) throw new ZtError('ZT_BAD_ARGUMENT', `argvRegex ${attempt.problem}`);
    regex = attempt.regex;
  }
  assertZt(isPlainRecord(env), 'ZT_BAD_ARGUMENT', 'env must be a record of fixed variables');
  for (const [name, value] of Object.entries(env)) {
    assertZt(ENV_NAME.test(name), 'ZT_BAD_ARGUMENT', `env: ${JSON.stringify(name)} is not a variable name`);
    assertZt(typeof value === 'string' && !value.includes('\0'), 'ZT_BAD_ARGUMENT', `env.${name} must be a string without NUL`);
  }
  assertZt(isPlainRecord(agentEnv), 'ZT_BAD_ARGUMENT', 'agentEnv must be a record of variable name → value pattern');
  const agentEnvMap = new Map<string, ArgMatcher>();
  for (const [name, pattern] of Object.entries(agentEnv)) {
    assertZt(ENV_NAME.test(name), 'ZT_BAD_ARGUMENT', `agentEnv: ${JSON.stringify(name)} is not a variable name`);
    assertZt(!Object.hasOwn(env, name), 'ZT_BAD_ARGUMENT', `agentEnv: ${name} is already fixed by env`);
    agentEnvMap.set(name, compileArgPattern(pattern, `agentEnv.${name}`));
  }
  let cwdPath: string | undefined;
  if (cwd !== undefined) {
    assertZt(typeof cwd === 'string' && cwd.startsWith('/'), 'ZT_BAD_ARGUMENT', 'cwd must be an absolute path');
    cwdPath = normalizePath(cwd);
  }
  const bound = (key: string) => (s[key] === undefined ? undefined : optionalPositiveInt(s, key, 1));
  return {
    positional,
    rest,
    minArgs,
    maxArgs,
    argvRegex: regex,
    env: env as Record<string, string>,
    agentEnv: agentEnvMap,
    cwd: cwdPath,
    timeoutMs: optionalPositiveInt(s, 'timeoutMs', DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS),
    maxStdinBytes: bound('maxStdinBytes'),
    maxStdoutBytes: bound('maxStdoutBytes'),
    maxStderrBytes: bound('maxStderrBytes'),
  };
};

/** Issue-time check of EXECUTE settings. */
export const validateExecuteGrant: GrantValidator = (target, constraints) => {
  assertZt(typeof target === 'string' && target.startsWith('/'), 'ZT_BAD_ARGUMENT', 'an EXECUTE target is the absolute path of a program');
  parseSettings(constraints);
};
harden(validateExecuteGrant);

const denied = (message: string) => new ZtError('ZT_ARGUMENT_DENIED', message);

const checkArgv = (argv: unknown, settings: ExecSettings): string[] => {
  assertZt(argv === undefined || Array.isArray(argv), 'ZT_BAD_ARGUMENT', 'argv must be an array of strings');
  const list = (argv ?? []) as unknown[];
  let bytes = 0;
  for (const a of list) {
    assertZt(typeof a === 'string', 'ZT_BAD_ARGUMENT', 'argv must be an array of strings');
    assertZt(!a.includes('\0'), 'ZT_BAD_ARGUMENT', 'an argument contains a NUL byte');
    bytes += a.length + 1;
  }
  if (bytes > MAX_ARGV_BYTES) throw new ZtError('ZT_TOO_LARGE', `the arguments exceed ${MAX_ARGV_BYTES} bytes`);
  const args = list as string[];
  if (args.length < settings.minArgs) throw denied(`at least ${settings.minArgs} arguments are required`);
  if (args.length > settings.maxArgs) throw denied(`at most ${settings.maxArgs} arguments are allowed`);
  args.forEach((arg, i) => {
    const matcher = settings.positional[i] ?? settings.rest;
    if (!matcher || !matcher.matches(arg)) throw denied(`argument ${i} is not allowed by the capability`);
  });
  if (settings.argvRegex) {
    if (args.some(a => a.includes('\n'))) throw denied('arguments may not contain newlines when the whole argv is matched');
    if (!settings.argvRegex.fullMatch(args.join('\n'))) throw denied('the argument list is not allowed by the capability');
  }
  return args;
};

const buildEnv = (requested: unknown, settings: ExecSettings): Record<string, string> => {
  const env: Record<string, string> = { ...settings.env };
  if (requested === undefined) return env;
  assertZt(isPlainRecord(requested), 'ZT_BAD_ARGUMENT', 'env must be a record of strings');
  for (const [name, value] of Object.entries(requested)) {
    assertZt(typeof value === 'string' && !value.includes('\0'), 'ZT_BAD_ARGUMENT', `env.${name} must be a string without NUL`);
    if (Object.hasOwn(settings.env, name)) throw denied(`${name} is fixed by the capability`);
    const matcher = settings.agentEnv.get(name);
    if (!matcher) throw denied(`${name} is not an environment variable this capability lets you set`);
    if (!matcher.matches(value)) throw denied(`the value of ${name} is not allowed by the capability`);
    env[name] = value;
  }
  return env;
};

const chooseCwd = (requested: unknown, settings: ExecSettings): string => {
  const root = settings.cwd ?? '/';
  if (requested === undefined) return root;
  assertZt(typeof requested === 'string' && !requested.includes('\0'), 'ZT_BAD_ARGUMENT', 'cwd must be a string');
  if (settings.cwd === undefined) throw denied('this capability does not let you choose a working directory');
  const wanted = requested.startsWith('/') ? normalizePath(requested) : normalizePath(`${root}/${requested}`);
  if (wanted !== root && !wanted.startsWith(root === '/' ? '/' : `${root}/`)) throw denied('the working directory must lie inside the one the capability confines');
  return wanted;
};

const OS_ERRORS: Readonly<Record<string, ErrorCode>> = harden({
  ENOENT: 'ZT_NOT_FOUND',
  ENOTDIR: 'ZT_NOT_FOUND',
  EACCES: 'ZT_ACCESS_DENIED',
  EPERM: 'ZT_ACCESS_DENIED',
  ELOOP: 'ZT_ACCESS_DENIED',
  ENOEXEC: 'ZT_EFFECT_FAILED',
  E2BIG: 'ZT_TOO_LARGE',
});

const translate = (err: unknown, what: string): ZtError => {
  if (err instanceof ZtError) return err;
  const osCode = (err as { code?: unknown })?.code;
  const code = (typeof osCode === 'string' && OS_ERRORS[osCode]) || 'ZT_EFFECT_FAILED';
  return new ZtError(code, `${what}: ${typeof osCode === 'string' ? osCode : 'failed'}`);
};

export interface ExecuteResult {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly truncated: boolean;
}

const concat = (chunks: readonly Uint8Array[], total: number) => {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
};

export const makeExecuteEffector = (powers: ProcessPowers): Effector =>
  async ({ target, args, signal, maxBytes, constraints }) => {
    const settings = parseSettings(constraints);
    const { argv, stdin, env, cwd, encoding = 'utf8' } = args as { argv?: unknown; stdin?: unknown; env?: unknown; cwd?: unknown; encoding?: unknown };
    assertZt(encoding === 'utf8' || encoding === 'base64', 'ZT_BAD_ARGUMENT', 'encoding must be "utf8" or "base64"');
    const argList = checkArgv(argv, settings);
    const childEnv = buildEnv(env, settings);
    const dir = chooseCwd(cwd, settings);
    assertZt(stdin === undefined || typeof stdin === 'string', 'ZT_BAD_ARGUMENT', 'stdin must be a string');
    const input = stdin === undefined ? undefined : powers.encode(stdin);
    const stdinLimit = Math.min(settings.maxStdinBytes ?? maxBytes, maxBytes);
    if (input && input.byteLength > stdinLimit) throw new ZtError('ZT_TOO_LARGE', `stdin exceeds the limit of ${stdinLimit} bytes`);
    const limits = {
      stdout: Math.min(settings.maxStdoutBytes ?? maxBytes, maxBytes),
      stderr: Math.min(settings.maxStderrBytes ?? maxBytes, maxBytes),
    };
    signal.throwIfAborted();

    let program;
    try {
      program = await powers.inspectProgram(target);
    } catch (err) {
      throw translate(err, target);
    }
    if (program.realPath !== target) throw new ZtError('ZT_ACCESS_DENIED', `${target}: the program path resolves through a symbolic link; grant its resolved path`, { realPath: program.realPath });
    if (!program.isFile) throw new ZtError('ZT_NOT_A_FILE', `${target}: not a regular file`);
    if (!program.executable) throw new ZtError('ZT_ACCESS_DENIED', `${target}: not executable`);

    let pinned: PinnedDirectory;
    try {
      pinned = await powers.pinDirectory(dir);
    } catch (err) {
      throw translate(err, 'working directory');
    }
    try {
      if (pinned.realPath !== dir || pinned.isSymbolicLink) throw new ZtError('ZT_ACCESS_DENIED', 'the working directory resolves through a symbolic link', { realPath: pinned.realPath });
      if (!pinned.isDirectory) throw new ZtError('ZT_NOT_A_DIRECTORY', 'the working directory is not a directory');
      signal.throwIfAborted();
      return await run(powers, { target, argList, childEnv, enterPath: pinned.enterPath, input, limits, timeoutMs: settings.timeoutMs, encoding, signal });
    } finally {
      await pinned.close().catch(() => undefined);
    }
  };
harden(makeExecuteEffector);

interface RunSpec {
  readonly target: string;
  readonly argList: readonly string[];
  readonly childEnv: Readonly<Record<string, string>>;
  readonly enterPath: string;
  readonly input: Uint8Array | undefined;
  readonly limits: { readonly stdout: number; readonly stderr: number };
  readonly timeoutMs: number;
  readonly encoding: 'utf8' | 'base64';
  readonly signal: AbortSignal;
}

const run = (powers: ProcessPowers, spec: RunSpec): Promise<ExecuteResult> =>
  new Promise<ExecuteResult>((resolve, reject) => {
    const { signal } = spec;
    let child: ChildLike;
    try {
      child = powers.spawn(spec.target, spec.argList, { env: spec.childEnv, cwd: spec.enterPath });
    } catch (err) {
      reject(translate(err, spec.target));
      return;
    }
    const out = { stdout: [] as Uint8Array[], stderr: [] as Uint8Array[] };
    const sizes = { stdout: 0, stderr: 0 };
    let truncated = false;
    let settled = false;
    let timer: unknown;
    let exited = false;
    const killGroup = () => {
      if (child.pid !== undefined) powers.killGroup(child.pid, 'SIGKILL');
    };
    const finish = (outcome: { error: unknown } | { result: ExecuteResult }) => {
      if (settled) return;
      settled = true;
      powers.clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if ('error' in outcome) {
        killGroup();
        child.stdout.destroy();
        child.stderr.destroy();
        reject(outcome.error);
      } else {
        resolve(outcome.result);
      }
    };
    const onAbort = () => finish({ error: signal.reason ?? new ZtError('ZT_REVOKED', 'the action was aborted') });
    signal.addEventListener('abort', onAbort, { once: true });
    timer = powers.setTimeout(() => finish({ error: new ZtError('ZT_TIMEOUT', `${spec.target}: still running after ${spec.timeoutMs} ms; stopped`) }), spec.timeoutMs);

    const collect = (name: 'stdout' | 'stderr') => (chunk: Uint8Array) => {
      if (truncated) return;
      const room = spec.limits[name] - sizes[name];
      if (chunk.byteLength > room) {
        if (room > 0) out[name].push(chunk.subarray(0, room));
        sizes[name] += Math.max(room, 0);
        truncated = true;
        // Output nobody will see is not worth running for: stop the whole group.
        killGroup();
        return;
      }
      out[name].push(chunk);
      sizes[name] += chunk.byteLength;
    };
    child.stdout.on('data', collect('stdout'));
    child.stderr.on('data', collect('stderr'));
    child.stdout.on('error', () => undefined);
    child.stderr.on('error', () => undefined);
    child.stdin.on('error', () => undefined); // EPIPE: the program did not read its input.
    child.on('error', err => finish({ error: translate(err, spec.target) }));
    child.on('exit', () => {
      exited = true;
      // Anything the program left running in its group goes with it.
      killGroup();
    });
    child.on('close', (exitCode, exitSignal) => {
      if (!exited) killGroup();
      finish({
        result: harden({
          exitCode,
          signal: exitSignal,
          stdout: powers.decode(concat(out.stdout, sizes.stdout), spec.encoding),
          stderr: powers.decode(concat(out.stderr, sizes.stderr), spec.encoding),
          truncated,
        }),
      });
    });
    try {
      child.stdin.end(spec.input);
    } catch {
      // The program may already be gone; its exit is reported through 'close'.
    }
  });
