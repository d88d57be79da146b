/**
 * The kernel in its own vat, seen from the host: the seed API is answered
 * by a locked-down worker, and when that worker is gone or stops answering
 * the runtime fails closed (ZT_KERNEL_UNAVAILABLE) instead of hanging or
 * carrying on with a kernel whose state is unknown. No lockdown here: this
 * file runs as a host application does.
 */
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ActionRequest,
  ActionType,
  Capability,
  SandboxRuntime,
  ZtError,
  makeNodeKernelLinkPowers,
  type KernelLinkPowers,
  type KernelWorker,
} from '../src/index.js';
import { fileURLToPath } from 'node:url';

// (Not from _vats.ts: that module loads the kernel's parts, which need a locked-down realm.)
const fixtureAgent = (name: string) => fileURLToPath(new URL(`../../test/fixtures/agents/${name}`, import.meta.url));

const tempDir = async (t: { teardown(fn: () => Promise<void>): void }) => {
  const dir = await mkdtemp(join(tmpdir(), 'ztaas-kernel-vat-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
};

/** The real kernel vat, with the test holding its worker (to kill it). */
const killableKernel = () => {
  const node = makeNodeKernelLinkPowers();
  let worker: KernelWorker | undefined;
  const powers: KernelLinkPowers = {
    startKernel: () => {
      const started = node.startKernel();
      worker = started.worker;
      return started;
    },
  };
  return { powers, kill: () => (worker as KernelWorker).terminate() };
};

test('the host realm stays ordinary: the kernel answers from its own locked-down vat', async t => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'data.txt'), 'hello');
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('a');
  sandbox.issueCapability(new Capability({ id: 'c', actionType: ActionType.READ, target: join(dir, 'data.txt'), holder: 'a' }));
  const outcome = await sandbox.executeAction(new ActionRequest({ capabilityId: 'c', agentId: 'a', actionType: ActionType.READ, target: join(dir, 'data.txt') }));
  t.is(outcome.result, 'hello');
  t.false(Object.isFrozen(Object.prototype));
  t.false(Object.isFrozen(Function.prototype));
  t.is(typeof (globalThis as { lockdown?: unknown }).lockdown, 'undefined');
  t.is(typeof (globalThis as { harden?: unknown }).harden, 'undefined');
  t.is(typeof (globalThis as { HandledPromise?: unknown }).HandledPromise, 'undefined');
  t.false(Object.getOwnPropertySymbols(Object).includes(Symbol.for('harden')));
  // An operator error crosses back as this realm's ZtError, with a stack.
  const err = t.throws(() => sandbox.registerAgent('a'), { instanceOf: ZtError });
  t.is(err?.code, 'ZT_DUPLICATE_AGENT');
  t.regex(err?.stack ?? '', /kernel-vat\.test\.[jt]s/);
});

test('a kernel vat that dies fails every call closed with ZT_KERNEL_UNAVAILABLE', async t => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'data.txt'), 'hello');
  const kernel = killableKernel();
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') }, kernel.powers);
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('a');
  sandbox.issueCapability(new Capability({ id: 'c', actionType: ActionType.READ, target: join(dir, 'data.txt'), holder: 'a' }));
  // A run in flight when the kernel goes.
  const handle = await sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('spinner'), limits: { deadlineMs: 60_000 } });
  await kernel.kill();
  const run = await handle.result;
  t.is(run.error?.code, 'ZT_KERNEL_UNAVAILABLE');
  // executeAction still never rejects: the outcome says the kernel is gone, nothing ran.
  const outcome = await sandbox.executeAction(new ActionRequest({ capabilityId: 'c', agentId: 'a', actionType: ActionType.READ, target: join(dir, 'data.txt') }));
  t.is(outcome.status, 'failed');
  t.is(outcome.error?.code, 'ZT_KERNEL_UNAVAILABLE');
  t.deepEqual(outcome.audit, {});
  t.throws(() => sandbox.registerAgent('b'), { code: 'ZT_KERNEL_UNAVAILABLE' } as never);
  t.throws(() => sandbox.getCapability('c'), { code: 'ZT_KERNEL_UNAVAILABLE' } as never);
  await t.throwsAsync(sandbox.audit.size(), { code: 'ZT_KERNEL_UNAVAILABLE' } as never);
  // Shutting down a runtime whose kernel is gone has nothing left to do.
  await t.notThrowsAsync(sandbox.shutdown());
});

/** A kernel worker that never answers: the link's bound is what stops the wait. */
const silentKernel = () => {
  let terminated = 0;
  const listeners: Record<string, Array<(x: never) => void>> = {};
  const worker: KernelWorker = {
    postMessage: () => undefined,
    on: ((event: string, listener: (x: never) => void) => {
      (listeners[event] ??= []).push(listener);
    }) as KernelWorker['on'],
    terminate: async () => {
      terminated += 1;
      for (const l of listeners.exit ?? []) l(1 as never);
      return 1;
    },
    ref: () => undefined,
    unref: () => undefined,
  };
  const powers: KernelLinkPowers = {
    startKernel: () => ({
      worker,
      sync: { reset: () => undefined, wait: (ms: number) => (Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms), false), receive: () => undefined },
    }),
  };
  return { powers, terminated: () => terminated };
};

test('a kernel that does not answer within kernelTimeoutMs is ended, and the constructor says so', t => {
  const kernel = silentKernel();
  const err = t.throws(() => new SandboxRuntime({ storeDir: '/nonexistent-ztaas', failureModes: { kernelTimeoutMs: 50 } }, kernel.powers));
  t.is((err as ZtError).code, 'ZT_KERNEL_UNAVAILABLE');
  t.regex((err as Error).message, /did not answer init within 50 ms/);
  t.true(kernel.terminated() >= 1, 'the unanswering kernel vat was ended');
});

test('bad options are refused by the kernel vat with their code, and leave nothing running', t => {
  t.throws(() => new SandboxRuntime({ failureModes: { kernelTimeoutMs: 0 } }), { code: 'ZT_BAD_ARGUMENT' } as never);
  t.throws(() => new SandboxRuntime({ policy: { version: 1, rules: [{ id: 'x', effect: 'maybe' }] } }), { code: 'ZT_POLICY_INVALID' } as never);
  t.throws(() => new SandboxRuntime({ limits: { maxBytes: -1 } }), { code: 'ZT_BAD_ARGUMENT' } as never);
  // Not plain data: a function cannot cross to the kernel.
  t.throws(() => new SandboxRuntime({ policy: { version: 1, rules: [], x: () => 1 } }), { code: 'ZT_BAD_ARGUMENT' } as never);
});

test('arguments that are not plain data are denied and recorded, never thrown', async t => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'data.txt'), 'hello');
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('a');
  sandbox.issueCapability(new Capability({ id: 'c', actionType: ActionType.WRITE, target: join(dir, 'out.txt'), holder: 'a' }));
  const outcome = await sandbox.executeAction(
    new ActionRequest({ capabilityId: 'c', agentId: 'a', actionType: ActionType.WRITE, target: join(dir, 'out.txt'), args: { content: 'x', callback: () => 1 } }),
  );
  t.is(outcome.status, 'denied');
  t.is(outcome.error?.code, 'ZT_BAD_ARGUMENT');
  const ref = outcome.audit.decision;
  t.truthy(ref, 'the denial is recorded');
  const [record] = await sandbox.audit.read(ref?.seq ?? -1, 1);
  t.like(record, { type: 'request', decision: 'deny', code: 'ZT_BAD_ARGUMENT', agentId: 'a' });
});

test('launchAgent input that is not plain data is refused with ZT_BAD_ARGUMENT before any vat starts', async t => {
  // The same definition of plain data as for every call into the kernel:
  // a NaN or a lone surrogate would reach the agent, or the log, otherwise.
  const dir = await tempDir(t);
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('a');
  for (const input of [{ n: Number.NaN }, [1, , 3], { f: () => 1 }]) {
    await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), input }), { code: 'ZT_BAD_ARGUMENT' } as never);
  }
  // Text the log cannot record has its own code (and the refusal is recorded).
  await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), input: { s: 'x\uD800' } }), { code: 'ZT_NOT_RECORDABLE' } as never);
  const ok = await sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), input: { n: 1 } });
  t.is((await ok.result).status, 'completed');
});
