/**
 * Confinement of agent code: each test names the escape it attempts and
 * asserts the specific code that stopped it.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from './_prepare.js';
import { Far } from '@endo/far';
import { makeTempDir } from './_kernel.js';
import { fixtureAgent, makeVatWorld } from './_vats.js';
import { loadAgentBundle } from '../src/agent-modules.js';
import { makeNodeModulePowers } from '../src/node-powers.js';
import { ActionType, Capability } from '../src/types.js';
import { buildRootObject, type KernelFacet, type RunReport } from '../vats/vat-agent.js';

test('a benign agent gets its input and returns plain data', async t => {
  const { kernel, launch, sink } = makeVatWorld();
  kernel.registerAgent('echo');
  const handle = await launch('echo', fixtureAgent('echo'), { input: { n: 1, s: 'x' } });
  const outcome = await handle.result;
  t.is(outcome.status, 'completed');
  t.deepEqual(outcome.value, { echoed: { n: 1, s: 'x' } });
  await kernel.flush();
  t.truthy(sink.records.find(r => r.type === 'agent.launched' && r.agentId === 'echo'));
  t.truthy(sink.records.find(r => r.type === 'agent.finished' && r.status === 'completed'));
});

test('escape: the compartment exposes no process, require, clock, timers, network or shared memory', async t => {
  const { kernel, launch } = makeVatWorld();
  kernel.registerAgent('probe');
  kernel.issueCapability(new Capability({ id: 'only', actionType: ActionType.READ, target: '/tmp/none', holder: 'probe' }));
  const outcome = await (await launch('probe', fixtureAgent('probe-globals'), { capabilities: ['only'] })).result;
  t.is(outcome.status, 'completed');
  const v = outcome.value as Record<string, any>;
  t.deepEqual(v.capNames, ['only'], 'caps holds exactly the granted capabilities');
  t.true(v.capsFrozen);
  t.true(v.globalFrozen);
  for (const [name, type] of Object.entries(v.types)) t.is(type, 'undefined', `${name} is not reachable`);
  t.false(v.dateNow.ok, 'Date.now throws');
  t.false(v.mathRandom.ok, 'Math.random throws');
  t.false(v.newDate.ok, 'new Date() has no clock');
  t.deepEqual(v.functionProcess, { ok: true, value: 'undefined' }, 'Function() evaluates in the same confined global');
  t.false(v.addGlobal.ok, 'the global object is frozen');
  t.false(v.pollute.ok, 'intrinsics are frozen');
  t.false(v.globalNames.includes('process'));
});

test('escape: a static import of a builtin is refused at load with ZT_MODULE_FORBIDDEN', async t => {
  await t.throwsAsync(loadAgentBundle(makeNodeModulePowers(), fixtureAgent('bare-import')), { message: /^ZT_MODULE_FORBIDDEN\b/ });
  await t.throwsAsync(
    loadAgentBundle(makeNodeModulePowers(), new URL('../../examples/agents/importer/index.js', import.meta.url).pathname),
    { message: /^ZT_MODULE_FORBIDDEN\b/ },
  );
});

test('escape: a static import outside the agent folder is refused with ZT_MODULE_OUTSIDE', async t => {
  await t.throwsAsync(
    loadAgentBundle(makeNodeModulePowers(), new URL('../../examples/agents/outside/index.js', import.meta.url).pathname),
    { message: /^ZT_MODULE_OUTSIDE\b/ },
  );
});

test('escape: a symlink inside the folder pointing outside is refused with ZT_MODULE_OUTSIDE', async t => {
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  mkdirSync(join(dir, 'agent'));
  writeFileSync(join(dir, 'secret.js'), 'export const secret = 42;');
  symlinkSync(join(dir, 'secret.js'), join(dir, 'agent', 'link.js'));
  writeFileSync(join(dir, 'agent', 'index.js'), "import { secret } from './link.js'; export default () => secret;");
  await t.throwsAsync(loadAgentBundle(makeNodeModulePowers(), join(dir, 'agent')), { message: /^ZT_MODULE_OUTSIDE\b/ });
});

test('load errors: missing import, syntax error and a missing default function have their own codes', async t => {
  await t.throwsAsync(loadAgentBundle(makeNodeModulePowers(), fixtureAgent('missing-import')), { message: /^ZT_MODULE_NOT_FOUND\b/ });
  await t.throwsAsync(loadAgentBundle(makeNodeModulePowers(), fixtureAgent('syntax')), { message: /^ZT_MODULE_SYNTAX\b/ });
  const { kernel, launch } = makeVatWorld();
  kernel.registerAgent('nomain');
  const outcome = await (await launch('nomain', fixtureAgent('no-main'))).result;
  t.is(outcome.error?.code, 'ZT_MODULE_NO_MAIN');
});

test('escape: dynamic import of builtins or outside paths fails inside the vat', async t => {
  const { kernel, launch } = makeVatWorld();
  kernel.registerAgent('dyn');
  const outcome = await (await launch('dyn', fixtureAgent('dyn-import'))).result;
  t.is(outcome.status, 'completed');
  const value = outcome.value as Record<string, string>;
  t.is(value['node:fs'], 'ZT_MODULE_FORBIDDEN');
  t.is(value.fs, 'ZT_MODULE_FORBIDDEN');
  t.is(value['../../secret.js'], 'ZT_MODULE_OUTSIDE');
  // Only the static module graph is loaded; a file reached by dynamic import alone is not part of the agent.
  t.regex(value['./helper.js'], /ZT_MODULE_NOT_FOUND/);
});

test('escape: a module graph that skipped the kernel\'s checks is refused inside the vat with the code of the refused import', async t => {
  // The vat does not rely on the kernel having vetted the graph: its own
  // module hooks refuse a builtin and a module the kernel did not send, and
  // the run reports the hook's code and reason (not a generic load failure).
  const parse = async (text: string) =>
    harden(JSON.parse(JSON.stringify({ ...(await makeNodeModulePowers().parseModule(text, 'file:///agent/index.js')) }))) as unknown;
  const run = (entry: string, modules: Record<string, unknown>) =>
    (
      buildRootObject({
        getKernel: async () => Far('Kernel', { log: () => undefined }) as unknown as KernelFacet,
        afterTurn: fn => {
          setImmediate(fn);
        },
      }) as unknown as { run(spec: object): Promise<RunReport> }
    ).run(harden({ entry, modules, caps: {}, input: null }));
  const builtin = { 'file:///agent/index.js': await parse("import fs from 'node:fs'; export default () => fs;") };
  t.deepEqual(await run('file:///agent/index.js', builtin), {
    status: 'failed',
    code: 'ZT_MODULE_FORBIDDEN',
    message: 'cannot import "node:fs": builtins and packages are not available to agents',
  });
  const missing = { 'file:///agent/index.js': await parse("import { x } from './gone.js'; export default () => x;") };
  t.deepEqual(await run('file:///agent/index.js', missing), { status: 'failed', code: 'ZT_MODULE_NOT_FOUND', message: '/gone.js is not part of the agent' });
});

test('escape: a read capability used on other paths is denied by the kernel with ZT_WRONG_TARGET', async t => {
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  writeFileSync(join(dir, 'notes.txt'), 'my notes');
  writeFileSync(join(dir, 'secret.txt'), 'top secret');
  const { kernel, launch } = makeVatWorld();
  kernel.registerAgent('reader');
  kernel.issueCapability(new Capability({ id: 'notes', actionType: ActionType.READ, target: join(dir, 'notes.txt'), holder: 'reader' }));
  const outcome = await (
    await launch('reader', fixtureAgent('reader'), {
      capabilities: ['notes'],
      input: {
        reads: [
          ['notes', null],
          ['notes', join(dir, 'secret.txt')],
          ['notes', `${dir}/../../etc/passwd`],
          ['notes', `${dir}/x/../notes.txt`],
        ],
      },
    })
  ).result;
  t.deepEqual(outcome.value, {
    'notes:': 'my notes',
    [`notes:${join(dir, 'secret.txt')}`]: 'ZT_WRONG_TARGET',
    [`notes:${dir}/../../etc/passwd`]: 'ZT_WRONG_TARGET',
    [`notes:${dir}/x/../notes.txt`]: 'my notes',
  });
});
