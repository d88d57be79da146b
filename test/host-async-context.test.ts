/**
 * The seed API works from inside `AsyncLocalStorage.run()`, and every await
 * returns to the caller's async context.
 *
 * Threat: agent frameworks run their whole loop, tool calls included, inside
 * AsyncLocalStorage. Node tags each promise it sees there with its async id;
 * a promise the sandbox froze in the host's realm cannot be tagged, and the
 * host process dies of an uncaught TypeError. The runtime must leave the
 * host's promises (and so its realm) alone. This file deliberately skips the
 * locked-down harness (`_prepare.js`) and imports the package by name, as a
 * host program does.
 */
import test from 'ava';
import { AsyncLocalStorage } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ActionRequest, ActionType, Capability, SandboxRuntime } from 'ztaas';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../', import.meta.url));
const fixtureAgent = (name: string) => join(repo, 'test', 'fixtures', 'agents', name);

const makeWorkspace = (t: { teardown(fn: () => void): void }) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-host-als-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const target = join(dir, 'data.txt');
  writeFileSync(target, 'inside the context\n');
  return { dir, target };
};

// Serial, so it runs first: Node turns its promise hooks on at the first
// AsyncLocalStorage.run in a process and leaves them on, and this runtime
// must exist before that to be the startup case.
test.serial('a runtime created at startup serves calls made inside AsyncLocalStorage.run, each in its own context', async t => {
  const { dir, target } = makeWorkspace(t);
  // Created outside any context, as an application does at startup; the
  // framework later calls in from inside its own contexts.
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  sandbox.registerAgent('reader');
  sandbox.issueCapability(new Capability({ id: 'data', actionType: ActionType.READ, target, holder: 'reader' }));
  const read = () =>
    sandbox.executeAction(new ActionRequest({ capabilityId: 'data', agentId: 'reader', actionType: ActionType.READ, target }));
  const warmup = await read();
  t.is(warmup.status, 'succeeded');

  const als = new AsyncLocalStorage<{ request: number }>();
  const inContext = (request: number) => {
    const own = { request };
    return als.run(own, async () => {
      const outcome = await read();
      t.is(als.getStore(), own, `after executeAction in context ${request}`);
      t.is(outcome.result, 'inside the context\n');
      const second = await read();
      t.is(als.getStore(), own, `after a second executeAction in context ${request}`);
      t.is(second.status, 'succeeded');
      return request;
    });
  };
  // Interleaved: each context sees only its own store.
  t.deepEqual(await Promise.all([inContext(1), inContext(2), inContext(3)]), [1, 2, 3]);

  const store = { request: 4 };
  await als.run(store, async () => {
    const handle = await sandbox.launchAgent({
      agentId: 'reader',
      module: fixtureAgent('reader'),
      capabilities: { file: 'data' },
      input: { reads: [['file', null]] },
    });
    t.is(als.getStore(), store, 'after launchAgent');
    t.like(await handle.result, { ok: true, value: { 'file:': 'inside the context\n' } });
    t.is(als.getStore(), store, 'after the run ended');
    await sandbox.shutdown();
    t.is(als.getStore(), store, 'after shutdown');
  });
});

test('a runtime created and driven inside AsyncLocalStorage.run keeps the caller\'s context', async t => {
  const { dir, target } = makeWorkspace(t);
  const als = new AsyncLocalStorage<{ request: string }>();
  const store = { request: 'inside' };
  await als.run(store, async () => {
    const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
    try {
      sandbox.registerAgent('reader');
      sandbox.issueCapability(new Capability({ id: 'data', actionType: ActionType.READ, target, holder: 'reader' }));
      const outcome = await sandbox.executeAction(
        new ActionRequest({ capabilityId: 'data', agentId: 'reader', actionType: ActionType.READ, target }),
      );
      t.is(als.getStore(), store, 'after executeAction');
      t.like(outcome, { status: 'succeeded', ok: true, result: 'inside the context\n' });

      const handle = await sandbox.launchAgent({
        agentId: 'reader',
        module: fixtureAgent('reader'),
        capabilities: { file: 'data' },
        input: { reads: [['file', null]] },
      });
      t.is(als.getStore(), store, 'after launchAgent');
      const ran = await handle.result;
      t.is(als.getStore(), store, 'after the run ended');
      t.like(ran, { status: 'completed', ok: true, value: { 'file:': 'inside the context\n' } });
    } finally {
      await sandbox.shutdown();
    }
    t.is(als.getStore(), store, 'after shutdown');
  });
});

test('a host started with Node flags runs the seed example (workers do not inherit the host\'s flags)', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-host-flags-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The plain-ESM seed example, run as a string: `-e` with `--input-type=module`.
  const source = readFileSync(join(repo, 'test/fixtures/plain-esm/seed.mjs'), 'utf8');
  // Resolved from the working directory: the package imports itself by name.
  const child = await run(process.execPath, ['--input-type=module', '-e', source, dir], { cwd: repo, env: {}, timeout: 60_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code?: number | string; stdout?: string; stderr?: string }) => ({ code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }),
  );
  t.is(child.code, 0, child.stderr);
  const outcome = JSON.parse(child.stdout) as { status: string; result: string; audit: { decision?: { seq: number } } };
  t.like(outcome, { status: 'succeeded', result: 'plain esm' });
  t.is(typeof outcome.audit.decision?.seq, 'number');
});
