/**
 * Process vats behave like worker vats for agents (same capabilities,
 * membrane, revocation and audit), fail closed when their level cannot be
 * established, never expose the escape hook unless the kernel asked for it
 * with the test flag, and leave nothing behind: not after terminate, not
 * after the kernel is SIGKILLed (die-with-parent).
 */
import { test } from './_prepare.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { makeCapTP } from '@endo/captp';
import { E, Far } from '@endo/far';
import { fixtureAgent, makeVatWorld } from './_vats.js';
import { processTree, startEscapeVat, waitGone } from './_isolation.js';
import type { Effector } from '../src/effectors/types.js';
import { makeProcessVatHostPowers, makeProcessVatStarter, readProcessVatHost } from '../src/isolation/process-vat-node-powers.js';
import { ESCAPE_HOOK_FLAG, addressSpaceOverheadMb, makeProcessVatWorker, permissionFlags, planProcessVat, assertIsolationAvailable, type ChildLike, type IsolationProbe } from '../src/isolation/process-vat.js';
import { ActionType, Capability } from '../src/types.js';

const fakeRead: Effector = async ctx => {
  if (ctx.target === '/slow') {
    return new Promise((_, reject) => {
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
    });
  }
  return `content of ${ctx.target}`;
};

const processWorld = () => makeVatWorld({ effectors: { READ: fakeRead }, vatPowers: () => makeProcessVatHostPowers() });

test('an agent runs in a process vat and gets the same result and audit records as in a worker', async t => {
  const results = [];
  for (const world of [makeVatWorld(), processWorld()]) {
    world.kernel.registerAgent('echo');
    const outcome = await (await world.launch('echo', fixtureAgent('echo'), { input: { n: 1 } })).result;
    await world.kernel.flush();
    results.push({ outcome, types: world.sink.records.map(r => r.type) });
  }
  const [worker, proc] = results;
  t.is(proc?.outcome.status, 'completed');
  t.deepEqual(proc?.outcome.value, worker?.outcome.value);
  t.deepEqual(proc?.types, worker?.types);
});

test('membrane through a process vat: a caretaker forwards to the kernel, a method outside the interface is refused with ZT_NOT_IN_INTERFACE', async t => {
  const world = processWorld();
  world.kernel.registerAgent('probe');
  world.kernel.issueCapability(new Capability({ id: 'file', actionType: ActionType.READ, target: '/data/f.txt', holder: 'probe' }));
  const run = async (scenario: string) => (await world.launch('probe', fixtureAgent('membrane-probe'), { capabilities: ['file'], input: { scenario } })).result;
  t.deepEqual((await run('read')).value, { value: 'content of /data/f.txt', frozen: true });
  t.deepEqual((await run('unknown-method')).value, { ok: false, code: 'ZT_NOT_IN_INTERFACE' });
  t.deepEqual((await run('function-argument')).value, { ok: false, code: 'ZT_BAD_ARGUMENT' });
  await world.kernel.flush();
  t.like(world.sink.records.find(r => r.type === 'request' && r.decision === 'deny'), { code: 'ZT_NOT_IN_INTERFACE', method: 'deleteEverything' });
});

test('revocation mid-call through a process vat: the pending call is rejected with ZT_REVOKED', async t => {
  const world = processWorld();
  world.kernel.registerAgent('probe');
  world.kernel.issueCapability(new Capability({ id: 'slow', actionType: ActionType.READ, target: '/slow', holder: 'probe' }));
  const handle = await world.launch('probe', fixtureAgent('membrane-probe'), { capabilities: ['slow'], input: { scenario: 'slow-read' } });
  while ((world.kernel.agentActivity('probe')?.inFlight ?? 0) < 1) await new Promise(resolve => setTimeout(resolve, 5));
  world.kernel.revokeCapability('slow', 'cut mid-call');
  t.deepEqual((await handle.result).value, { ok: false, code: 'ZT_REVOKED' });
});

test('runaway in a process vat: a memory bomb ends with ZT_OUT_OF_MEMORY, a spinner with ZT_DEADLINE', async t => {
  const world = processWorld();
  world.kernel.registerAgent('oom');
  world.kernel.registerAgent('spin');
  const [oom, spin] = await Promise.all([
    (await world.launch('oom', fixtureAgent('oom'), { limits: { memoryMb: 32, deadlineMs: 20_000 } })).result,
    (await world.launch('spin', fixtureAgent('spinner'), { limits: { deadlineMs: 500 } })).result,
  ]);
  t.is(oom.error?.code, 'ZT_OUT_OF_MEMORY');
  t.is(spin.error?.code, 'ZT_DEADLINE');
});

test('attack: the escape hook is absent unless the kernel passed the test flag', async t => {
  // An agent (or anyone holding the vat root) calls escape() on a vat
  // started normally: the method does not exist.
  const { worker, plan } = makeProcessVatStarter().startWithPid({ memoryMb: 64 });
  t.false(plan.args.includes(ESCAPE_HOOK_FLAG));
  const captp = makeCapTP('k', m => worker.postMessage(m), Far('K', { log: () => undefined }), { onReject: () => undefined });
  worker.on('message', m => captp.dispatch(m as Record<string, unknown>));
  const root = captp.getBootstrap();
  await E(root).probe();
  await t.throwsAsync(() => (E(root) as unknown as { escape(c: string): Promise<unknown> }).escape('return process.pid'), { message: /escape/ });
  captp.abort();
  await worker.terminate();
});

test('a vat that died of its address-space limit is reported as out of memory, however long the native stack traces after the message', t => {
  // Every thread of a dying Node prints its own stack trace: the message
  // can be kilobytes before the end of the output, and split across chunks.
  const on: Record<string, (...args: unknown[]) => void> = {};
  let onStderr: (chunk: unknown) => void = () => undefined;
  const child: ChildLike = {
    pid: 1,
    wire: null,
    on: ((event: string, listener: (...args: unknown[]) => void) => {
      on[event] = listener;
    }) as ChildLike['on'],
    stdout: null,
    stderr: { on: (_event, listener) => void (onStderr = listener) },
    kill: () => undefined,
    ref: () => undefined,
    unref: () => undefined,
  };
  const worker = makeProcessVatWorker(child);
  const errors: string[] = [];
  worker.on('error', err => errors.push(String((err as { code?: string }).code)));
  onStderr('\n\n#\n# Fatal process out of memory: Failed to reserve ');
  onStderr('virtual memory for CodeRange\n#\n----- Native stack trace -----\n');
  for (let i = 0; i < 200; i++) onStderr(` ${i}: 0x104aab1  [/usr/bin/node]\n`);
  on.close?.(null, 'SIGTRAP');
  t.deepEqual(errors, ['ERR_WORKER_OUT_OF_MEMORY']);
});

test('the permission flags and the address space fit each Node line: --permission from 22.13 (24 refuses the experimental flag), more address space from 24', t => {
  const paths = ['/a', '/b'];
  t.deepEqual(permissionFlags('v20.11.0', paths), ['--experimental-permission', '--allow-fs-read=/a,/b']);
  t.deepEqual(permissionFlags('v20.20.2', paths), ['--experimental-permission', '--allow-fs-read=/a', '--allow-fs-read=/b']);
  t.deepEqual(permissionFlags('v22.12.0', paths), ['--experimental-permission', '--allow-fs-read=/a', '--allow-fs-read=/b']);
  for (const version of ['v22.13.0', 'v22.23.5', 'v23.5.0', 'v24.0.0', 'v26.1.0']) t.is(permissionFlags(version, paths)[0], '--permission', version);
  t.is(addressSpaceOverheadMb('v20.20.2'), 1024);
  t.is(addressSpaceOverheadMb('v22.23.5'), 1024);
  t.is(addressSpaceOverheadMb('v24.22.3'), 1408);
  t.is(addressSpaceOverheadMb('v26.1.0'), 1408, 'a line not measured gets the largest allowance');
  const host = { ...readProcessVatHost(), nodeVersion: 'v24.22.3' };
  t.deepEqual(planProcessVat(host, { memoryMb: 64, level: 'process-weak' }).limits.addressSpaceMb, 64 + 1408);
});

test('fail closed: a machine without bwrap cannot start a process vat (ZT_ISOLATION_UNAVAILABLE naming bwrap)', t => {
  const host = { ...readProcessVatHost(), bwrap: undefined };
  const err = t.throws(() => planProcessVat(host, { memoryMb: 64 }), { message: /^ZT_ISOLATION_UNAVAILABLE\b.*bwrap/ });
  t.deepEqual((err as unknown as { details: { missing: string[] } }).details.missing, ['bwrap (Debian package bubblewrap)']);
  t.regex((err as unknown as { details: { fixes: string[] } }).details.fixes[0] ?? '', /apt-get install bubblewrap/);
  t.throws(() => makeProcessVatStarter(host).start({ memoryMb: 64 }), { message: /^ZT_ISOLATION_UNAVAILABLE\b/ });
  // The explicitly named weaker level does not need bwrap.
  t.is(planProcessVat(host, { memoryMb: 64, level: 'process-weak' }).level, 'process-weak');
  // Other gaps are named too.
  t.throws(() => planProcessVat({ ...host, bwrap: '/usr/bin/bwrap', arch: 'mips' }, { memoryMb: 64 }), { message: /seccomp filter for architecture mips/ });
  t.throws(() => planProcessVat({ ...host, platform: 'darwin', prlimit: undefined }, { memoryMb: 64, level: 'process-weak' }), { message: /^ZT_ISOLATION_UNAVAILABLE\b.*linux.*prlimit/ });
});

test('fail closed: assertIsolationAvailable refuses a level the probe found missing, naming what is missing', t => {
  const probe = {
    platform: 'linux', arch: 'x64', node: 'v20',
    worker: { available: true, missing: [], fixes: [], details: {} },
    process: { available: false, missing: ['unprivileged user namespaces (bwrap: …)'], fixes: ['allow them: …'], details: {} },
    'process-weak': { available: true, missing: [], fixes: [], details: {} },
  } as IsolationProbe;
  t.throws(() => assertIsolationAvailable(probe, 'process'), { message: /^ZT_ISOLATION_UNAVAILABLE\b.*missing unprivileged user namespaces.*to fix: allow them/ });
  t.notThrows(() => assertIsolationAvailable(probe, 'process-weak'));
  t.throws(() => assertIsolationAvailable(probe, 'container' as never), { message: /^ZT_BAD_ARGUMENT\b/ });
});

test('bad options are refused with ZT_BAD_ARGUMENT', t => {
  const host = readProcessVatHost();
  for (const options of [{ memoryMb: 0 }, { memoryMb: 1.5 }, { memoryMb: 64, cpuSeconds: -1 }, { memoryMb: 64, agentFolder: 'relative' }, { memoryMb: 64, agentFolder: '/a,b' }, { memoryMb: 64, level: 'worker' as never }]) {
    t.throws(() => planProcessVat(host, options), { message: /^ZT_BAD_ARGUMENT\b/ }, JSON.stringify(options));
  }
});

test('the plan binds only Node, its libraries and the vat code, read-only, with Node permissions on exactly those paths', t => {
  const host = readProcessVatHost();
  const plan = planProcessVat(host, { memoryMb: 64 });
  const args = [...plan.args];
  for (const flag of ['--unshare-all', '--die-with-parent', '--new-session', '--clearenv', '--remount-ro']) t.true(args.includes(flag), flag);
  t.false(args.includes('--bind'), 'no writable bind');
  t.false(args.includes('--share-net'));
  const bound = args.flatMap((a, i) => (a === '--ro-bind' ? [args[i + 1]] : []));
  t.deepEqual(new Set(bound), new Set([host.execPath, ...host.libraries, ...host.codePaths]));
  const readable = args.filter(a => a.startsWith('--allow-fs-read=')).map(a => a.slice('--allow-fs-read='.length)).flatMap(a => a.split(','));
  t.deepEqual(readable, [...host.codePaths]);
  t.false(args.some(a => /^--allow-(fs-write|child-process|worker|addons|wasi)/.test(a)));
  t.true(args.includes('--max-old-space-size=64'));
  t.true(args.includes(`--as=${(64 + addressSpaceOverheadMb(host.nodeVersion)) * 1024 * 1024}`));
});

test('cleanup: terminate leaves no process of the sandbox behind', async t => {
  const vat = await startEscapeVat('process');
  const pids = processTree(vat.pid as number);
  t.true(pids.length >= 3, `prlimit/bwrap, its init and node: ${pids.join(',')}`);
  await vat.close();
  t.deepEqual(await waitGone(pids), []);
});

test('cleanup: a SIGKILLed kernel takes its process vats with it (die-with-parent)', async t => {
  const kernel = spawn(process.execPath, [fileURLToPath(new URL('./_isolation-kernel.js', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(Error('the stand-in kernel did not start')), 30_000);
      kernel.stdout.on('data', chunk => {
        out += String(chunk);
        if (out.includes('\n')) {
          clearTimeout(timer);
          resolve(out.split('\n')[0] as string);
        }
      });
    });
    const { pid } = JSON.parse(line) as { pid: number };
    const pids = processTree(pid);
    t.true(pids.length >= 3);
    kernel.kill('SIGKILL');
    t.deepEqual(await waitGone(pids), [], 'every process of the sandbox died with the kernel');
  } finally {
    if (kernel.exitCode === null) kernel.kill('SIGKILL');
  }
});
