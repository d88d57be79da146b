import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from './_prepare.js';
import { codeOfRejection, makeCtx, waitFor } from './_effectors.js';
import { makeTempDir, makeTestKernel } from './_kernel.js';
import { makeExecuteEffector, validateExecuteGrant, type ExecuteResult } from '../src/effectors/process.js';
import { makeNodeProcessPowers } from '../src/effectors/process-node-powers.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

const execute = makeExecuteEffector(makeNodeProcessPowers());
const DASH = '/usr/bin/dash';

const runAt = (target: string, args: Record<string, unknown>, effect?: Record<string, unknown>, maxBytes?: number) =>
  execute(makeCtx({ actionType: ActionType.EXECUTE, target, args, ...(effect ? { effect } : {}), ...(maxBytes ? { maxBytes } : {}) }).ctx) as Promise<ExecuteResult>;

/** True while `pid` names a live (non-zombie) process. */
const isAlive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

const readPids = (file: string) =>
  existsSync(file) ? readFileSync(file, 'utf8').split(/\s+/).filter(Boolean).map(Number) : [];

test('runs a program with an argv array and reports exit code and output', async t => {
  const result = await runAt('/usr/bin/echo', { argv: ['hello', 'world'] }, { restArgs: { any: true } });
  t.deepEqual(result, { exitCode: 0, signal: null, stdout: 'hello world\n', stderr: '', truncated: false });
  const failing = await runAt(DASH, { argv: ['-c', 'echo oops >&2; exit 3'] }, { args: ['-c', { any: true }] });
  t.is(failing.exitCode, 3);
  t.is(failing.stderr, 'oops\n');
  const cat = await runAt('/usr/bin/cat', { stdin: 'from stdin' });
  t.is(cat.stdout, 'from stdin');
  const binary = await runAt('/usr/bin/printf', { argv: ['\\377\\000'], encoding: 'base64' }, { restArgs: { any: true } });
  t.is(binary.stdout, Buffer.from([255, 0]).toString('base64'));
});

test('shell metacharacters in arguments: passed as bytes, never interpreted', async t => {
  // Attack: arguments crafted to break out of an imagined shell command line
  // (`; touch`, `$(...)`, backticks, pipes, redirections, globs).
  const { dir, cleanup } = makeTempDir('ztaas-exec-');
  t.teardown(cleanup);
  const marker = join(dir, 'pwned');
  const payloads = [`; touch ${marker}`, `$(touch ${marker})`, `\`touch ${marker}\``, `| touch ${marker}`, `&& touch ${marker}`, `> ${marker}`, '*'];
  const result = await runAt('/usr/bin/echo', { argv: payloads }, { restArgs: { any: true } });
  t.is(result.stdout, `${payloads.join(' ')}\n`, 'echo printed every payload literally');
  t.false(existsSync(marker), 'no shell ran the payload');
  // A capability that only allows plain words refuses them outright.
  const { kernel } = makeTestKernel({ effectors: { EXECUTE: execute } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'echo', actionType: ActionType.EXECUTE, target: '/usr/bin/echo', holder: 'a', constraints: { effect: { restArgs: { regex: '[A-Za-z0-9._-]+' } } } }));
  for (const payload of payloads) {
    const outcome = await kernel.execute(new ActionRequest({ capabilityId: 'echo', agentId: 'a', actionType: ActionType.EXECUTE, target: '/usr/bin/echo', args: { argv: ['ok', payload] } }), 'api');
    t.is(outcome.error?.code, 'ZT_ARGUMENT_DENIED', payload);
  }
  t.false(existsSync(marker));
});

test('environment leakage: the child sees only the variables the capability names', async t => {
  // Attack: read the kernel's secrets from the inherited environment of a
  // program the agent may run (`env` prints them all).
  process.env.ZTAAS_TEST_SECRET = 'hunter2';
  t.teardown(() => {
    delete process.env.ZTAAS_TEST_SECRET;
  });
  const effect = { env: { LANG: 'C.UTF-8' }, agentEnv: { GREETING: { regex: '[a-z]+' } } };
  const plain = await runAt('/usr/bin/env', {}, effect);
  t.is(plain.stdout, 'LANG=C.UTF-8\n', 'exactly the fixed variables, nothing inherited (not even PATH)');
  t.false(plain.stdout.includes('hunter2'));
  const withAgent = await runAt('/usr/bin/env', { env: { GREETING: 'hello' } }, effect);
  t.deepEqual(withAgent.stdout.split('\n').filter(Boolean).sort(), ['GREETING=hello', 'LANG=C.UTF-8']);
  t.is(await codeOfRejection(runAt('/usr/bin/env', { env: { ZTAAS_TEST_SECRET: 'x' } }, effect)), 'ZT_ARGUMENT_DENIED', 'a name outside the allow-list');
  t.is(await codeOfRejection(runAt('/usr/bin/env', { env: { LANG: 'evil' } }, effect)), 'ZT_ARGUMENT_DENIED', 'a fixed value cannot be overridden');
  t.is(await codeOfRejection(runAt('/usr/bin/env', { env: { GREETING: 'x; y' } }, effect)), 'ZT_ARGUMENT_DENIED', 'a value outside its pattern');
  t.is(await codeOfRejection(runAt('/usr/bin/env', { env: { LD_PRELOAD: '/tmp/evil.so' } }, effect)), 'ZT_ARGUMENT_DENIED');
});

test('argument patterns: per position, for the rest, counts, and the whole argv; none means no arguments', async t => {
  t.is(await codeOfRejection(runAt('/usr/bin/echo', { argv: ['x'] })), 'ZT_ARGUMENT_DENIED', 'no pattern, no argument');
  t.is((await runAt('/usr/bin/echo', {})).stdout, '\n');
  const effect = { args: ['-n', { oneOf: ['a', 'b'] }], restArgs: { glob: '/data/**' }, maxArgs: 4 };
  t.is((await runAt('/usr/bin/echo', { argv: ['-n', 'a', '/data/x', '/data/y/z'] }, effect)).stdout, 'a /data/x /data/y/z');
  t.is(await codeOfRejection(runAt('/usr/bin/echo', { argv: ['-n'] }, effect)), 'ZT_ARGUMENT_DENIED', 'too few');
  t.is(await codeOfRejection(runAt('/usr/bin/echo', { argv: ['-e', 'a'] }, effect)), 'ZT_ARGUMENT_DENIED', 'wrong literal');
  t.is(await codeOfRejection(runAt('/usr/bin/echo', { argv: ['-n', 'c'] }, effect)), 'ZT_ARGUMENT_DENIED', 'not one of');
  t.is(await codeOfRejection(runAt('/usr/bin/echo', { argv: ['-n', 'a', '/data/../etc/passwd'] }, effect)), 'ZT_ARGUMENT_DENIED', 'a path spelt out of its glob');
  t.is(await codeOfRejection(runAt('/usr/bin/echo', { argv: ['-n', 'a', '/data/1', '/data/2', '/data/3'] }, effect)), 'ZT_ARGUMENT_DENIED', 'too many');
  const whole = { restArgs: { any: true }, argvRegex: '(-n\\n)?[a-z]+' };
  t.is((await runAt('/usr/bin/echo', { argv: ['-n', 'abc'] }, whole)).stdout, 'abc');
  t.is(await codeOfRejection(runAt('/usr/bin/echo', { argv: ['abc', 'def'] }, whole)), 'ZT_ARGUMENT_DENIED');
  t.is(await codeOfRejection(runAt('/usr/bin/echo', { argv: ['-n\nabc'] }, whole)), 'ZT_ARGUMENT_DENIED', 'newlines cannot fake the argv boundary');
  t.is(await codeOfRejection(runAt('/usr/bin/echo', { argv: 'ls -l' }, whole)), 'ZT_BAD_ARGUMENT', 'argv is an array, never a command line');
  t.is(await codeOfRejection(runAt('/usr/bin/echo', { argv: ['a\0b'] }, whole)), 'ZT_BAD_ARGUMENT');
});

test('working directory: confined to effect.cwd, no symlink escapes', async t => {
  // Attack: choose a working directory outside the confined one, by `..` or
  // through a symlink planted inside it.
  const { dir, cleanup } = makeTempDir('ztaas-exec-');
  t.teardown(cleanup);
  mkdirSync(join(dir, 'sub'));
  symlinkSync('/etc', join(dir, 'link'));
  const effect = { cwd: dir };
  t.is((await runAt('/usr/bin/pwd', {}, effect)).stdout, `${dir}\n`);
  t.is((await runAt('/usr/bin/pwd', { cwd: 'sub' }, effect)).stdout, `${dir}/sub\n`);
  t.is((await runAt('/usr/bin/pwd', { cwd: `${dir}/sub` }, effect)).stdout, `${dir}/sub\n`);
  t.is(await codeOfRejection(runAt('/usr/bin/pwd', { cwd: '..' }, effect)), 'ZT_ARGUMENT_DENIED');
  t.is(await codeOfRejection(runAt('/usr/bin/pwd', { cwd: '/etc' }, effect)), 'ZT_ARGUMENT_DENIED');
  t.is(await codeOfRejection(runAt('/usr/bin/pwd', { cwd: 'link' }, effect)), 'ZT_ACCESS_DENIED');
  t.is(await codeOfRejection(runAt('/usr/bin/pwd', { cwd: 'missing' }, effect)), 'ZT_NOT_FOUND');
  t.is(await codeOfRejection(runAt('/usr/bin/pwd', { cwd: dir })), 'ZT_ARGUMENT_DENIED', 'no effect.cwd: the agent cannot choose');
  t.is((await runAt('/usr/bin/pwd', {})).stdout, '/\n', 'default working directory is /');
});

test('program substitution: only the resolved path of an executable regular file runs', async t => {
  // Attack: a target that is a symlink (which may be re-pointed), a directory,
  // a missing file, or a plain data file.
  const { dir, cleanup } = makeTempDir('ztaas-exec-');
  t.teardown(cleanup);
  writeFileSync(join(dir, 'data.sh'), '#!/usr/bin/dash\necho hi\n', { mode: 0o644 });
  symlinkSync('/usr/bin/echo', join(dir, 'echo-link'));
  t.is(await codeOfRejection(runAt('/usr/bin/sh', {})), 'ZT_ACCESS_DENIED', '/usr/bin/sh is a symlink to dash');
  t.is(await codeOfRejection(runAt(join(dir, 'echo-link'), {})), 'ZT_ACCESS_DENIED');
  t.is(await codeOfRejection(runAt(join(dir, 'missing'), {})), 'ZT_NOT_FOUND');
  t.is(await codeOfRejection(runAt(dir, {})), 'ZT_NOT_A_FILE');
  t.is(await codeOfRejection(runAt(join(dir, 'data.sh'), {})), 'ZT_ACCESS_DENIED');
});

test('deadline: a program past effect.timeoutMs is killed with its group (ZT_TIMEOUT)', async t => {
  const { dir, cleanup } = makeTempDir('ztaas-exec-');
  t.teardown(cleanup);
  const pids = join(dir, 'pids');
  const started = Date.now();
  const code = await codeOfRejection(runAt(DASH, { argv: ['-c', `sleep 30 & echo $$ $! > ${pids}; wait`] }, { args: ['-c', { any: true }], timeoutMs: 500 }));
  t.is(code, 'ZT_TIMEOUT');
  t.true(Date.now() - started < 10_000);
  const [shell, sleeper] = readPids(pids);
  t.truthy(shell);
  t.truthy(sleeper);
  t.true(await waitFor(() => !isAlive(shell as number) && !isAlive(sleeper as number)), 'the shell and its background child are gone');
});

test('revocation of a slow process: the kernel aborts it and the whole process group dies', async t => {
  // A `sleep` (with a child of its own) is running when the operator revokes
  // the capability: the call ends with ZT_REVOKED and no process survives.
  const { dir, cleanup } = makeTempDir('ztaas-exec-');
  t.teardown(cleanup);
  const pids = join(dir, 'pids');
  const { kernel, sink } = makeTestKernel({ effectors: { EXECUTE: execute } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'sh', actionType: ActionType.EXECUTE, target: DASH, holder: 'a', constraints: { effect: { args: ['-c', { any: true }] } } }));
  const pending = kernel.execute(new ActionRequest({ capabilityId: 'sh', agentId: 'a', actionType: ActionType.EXECUTE, target: DASH, args: { argv: ['-c', `sleep 60 & echo $$ $! > ${pids}; wait`] } }), 'api');
  t.true(await waitFor(() => readPids(pids).length === 2), 'the program started');
  const [shell, sleeper] = readPids(pids) as [number, number];
  t.true(isAlive(shell) && isAlive(sleeper));
  kernel.revokeCapability('sh', 'test revokes');
  const outcome = await pending;
  t.is(outcome.error?.code, 'ZT_REVOKED');
  t.true(await waitFor(() => !isAlive(shell) && !isAlive(sleeper)), 'process group killed');
  await kernel.flush();
  t.is(sink.records.find(r => r.type === 'outcome')?.code, 'ZT_REVOKED');
});

test('stray processes: a background child left behind by a program that exits is killed too', async t => {
  const { cleanup } = makeTempDir('ztaas-exec-');
  t.teardown(cleanup);
  const result = await runAt(DASH, { argv: ['-c', 'sleep 60 > /dev/null 2>&1 & echo $!'] }, { args: ['-c', { any: true }] });
  t.is(result.exitCode, 0);
  const pid = Number(result.stdout.trim());
  t.true(pid > 0);
  t.true(await waitFor(() => !isAlive(pid)), 'the straggler is gone');
});

test('output bomb: stdout past its bound is truncated and the program stopped', async t => {
  // Attack: a program that writes without end (`yes`) to exhaust memory.
  const result = await runAt('/usr/bin/yes', {}, { maxStdoutBytes: 1000 });
  t.true(result.truncated);
  t.is(result.stdout.length, 1000);
  t.is(result.signal, 'SIGKILL');
  const small = await runAt('/usr/bin/yes', {}, { maxStdoutBytes: 1 << 30 }, 4096);
  t.is(small.stdout.length, 4096, 'the kernel byte limit caps the setting');
  t.is(await codeOfRejection(runAt('/usr/bin/cat', { stdin: 'x'.repeat(101) }, { maxStdinBytes: 100 })), 'ZT_TOO_LARGE');
});

test('grant validator refuses malformed EXECUTE settings at issue time', t => {
  t.notThrows(() => validateExecuteGrant('/usr/bin/echo', { effect: { args: ['-n', { regex: '[a-z]+' }], env: { LANG: 'C' }, agentEnv: { X: { oneOf: ['1'] } }, cwd: '/tmp', timeoutMs: 1000 } }));
  const bad = [
    { argz: [] },
    { args: [{ regex: '(' }] },
    { args: [{ regex: 'a', any: true }] },
    { restArgs: { glob: 'relative/**' } },
    { env: { 'BAD-NAME': 'x' } },
    { env: { A: 1 } },
    { env: { A: 'x' }, agentEnv: { A: { any: true } } },
    { cwd: 'relative' },
    { timeoutMs: 0 },
    { maxArgs: 3 },
    { minArgs: 2, args: ['a'], maxArgs: 1 },
  ];
  for (const effect of bad) t.throws(() => validateExecuteGrant('/usr/bin/echo', { effect }), { message: /^ZT_BAD_ARGUMENT\b/ }, JSON.stringify(effect));
  t.throws(() => validateExecuteGrant('echo', {}), { message: /^ZT_BAD_ARGUMENT\b/ });
});
