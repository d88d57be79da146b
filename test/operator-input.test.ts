/**
 * Operator and agent input that the runtime cannot record faithfully, or
 * that has no bound, is refused at the boundary with a code, and the
 * refusal is recorded; nothing a caller passes takes the runtime down.
 * Each test reproduces a failure found on main, through a real
 * `SandboxRuntime`. No lockdown here: this file runs as a host application
 * does (see kernel-vat.test.ts).
 */
import test from 'ava';
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActionRequest, ActionType, Capability, SandboxRuntime, ZtError, codeOf } from '../src/index.js';

const tempDir = async (t: { teardown(fn: () => Promise<void>): void }) => {
  const dir = await mkdtemp(join(tmpdir(), 'ztaas-input-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
};

/** A runtime with one agent `a` holding `c`, a READ of `data.txt`. */
const setUp = async (t: { teardown(fn: () => Promise<void>): void }) => {
  const dir = await tempDir(t);
  const target = join(dir, 'data.txt');
  await writeFile(target, 'hello');
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store'), isolation: 'worker' });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('a');
  sandbox.issueCapability(new Capability({ id: 'c', actionType: ActionType.READ, target, holder: 'a' }));
  const stillServing = async () => (await sandbox.executeAction(new ActionRequest({ capabilityId: 'c', agentId: 'a', actionType: ActionType.READ, target }))).status;
  return { dir, target, sandbox, stillServing };
};

const records = async (sandbox: SandboxRuntime) => {
  await sandbox.audit.flush();
  return sandbox.audit.read(0, await sandbox.audit.size());
};

/** Builds a sparse array of length 2³²−1 with one element. */
const sparseGiant = (element: unknown): unknown[] => {
  const a: unknown[] = [];
  a.length = 2 ** 32 - 1;
  a[7] = element;
  return a;
};

test('attack: a lone surrogate in an issueCapability target is refused (ZT_NOT_RECORDABLE), recorded escaped, and the log keeps serving', async t => {
  // On main the grant record could not be encoded: the audit fault latched
  // and every agent was denied ZT_AUDIT_UNAVAILABLE from then on.
  const { target, sandbox, stillServing } = await setUp(t);
  const err = t.throws(() => sandbox.issueCapability(new Capability({ id: 'evil', actionType: ActionType.READ, target: `${target}\uD800`, holder: 'a' })), { instanceOf: ZtError });
  t.is(err?.code, 'ZT_NOT_RECORDABLE');
  t.is(sandbox.getCapability('evil'), undefined);
  t.is(await stillServing(), 'succeeded');
  const refused = (await records(sandbox)).find(r => r.type === 'operator.refused');
  t.like(refused, { operation: 'issueCapability', code: 'ZT_NOT_RECORDABLE', escaped: true });
  t.true(JSON.stringify(refused).includes('\\\\ud800'), 'the input is recorded with the surrogate escaped');
});

test('attack: a lone surrogate in a launchAgent module path, an agent id or a revocation reason is refused and recorded', async t => {
  const { dir, sandbox, stillServing } = await setUp(t);
  const launch = await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: join(dir, 'agent\uDC00', 'index.js'), isolation: 'worker' }));
  t.is(codeOf(launch), 'ZT_NOT_RECORDABLE');
  t.is(codeOf(t.throws(() => sandbox.registerAgent('b\uD83D'))), 'ZT_NOT_RECORDABLE');
  t.is(codeOf(t.throws(() => sandbox.registerAgent('b', { labels: ['ok', 'x\uDFFF'] }))), 'ZT_NOT_RECORDABLE');
  t.is(codeOf(t.throws(() => sandbox.revokeCapability('c', 'because\uD800'))), 'ZT_NOT_RECORDABLE');
  t.is(sandbox.getCapability('c')?.state, 'live');
  t.is(await stillServing(), 'succeeded');
  const ops = (await records(sandbox)).filter(r => r.type === 'operator.refused').map(r => r.operation);
  t.deepEqual(ops, ['launchAgent', 'registerAgent', 'registerAgent', 'revokeCapability']);
});

test('attack: revokeCapability with a non-string reason is refused (ZT_BAD_ARGUMENT) and revokes nothing', async t => {
  // On main it returned true and then the runtime closed.
  const { sandbox, stillServing } = await setUp(t);
  for (const reason of [42, { why: 'x' }, ['r'], null, true]) {
    t.is(codeOf(t.throws(() => sandbox.revokeCapability('c', reason as never))), 'ZT_BAD_ARGUMENT', String(reason));
  }
  t.is(sandbox.getCapability('c')?.state, 'live');
  t.is(await stillServing(), 'succeeded');
  t.true(sandbox.revokeCapability('c', 'done'));
  t.is(await stillServing(), 'denied');
});

test('attack: sparse arrays — labels with a hole, and length 2³²−1 in labels, capabilities and an argument enum — are refused before they are iterated', async t => {
  // On main a sparse labels array shut the log down; length 2³²−1 killed the
  // host (launchAgent capabilities) or blocked the kernel for 120 s.
  const { dir, target, sandbox, stillServing } = await setUp(t);
  t.is(codeOf(t.throws(() => sandbox.registerAgent('b', { labels: [, 'x'] as unknown as string[] }))), 'ZT_BAD_ARGUMENT');
  t.is(codeOf(t.throws(() => sandbox.registerAgent('b', { labels: sparseGiant('x') as string[] }))), 'ZT_BAD_ARGUMENT');
  const launch = await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: join(dir, 'agent.js'), capabilities: sparseGiant('c') as string[], isolation: 'worker' }));
  t.is(codeOf(launch), 'ZT_BAD_ARGUMENT');
  // The class refuses it in the host; a plain record is refused before it crosses.
  const constraints = { args: { encoding: { enum: sparseGiant('utf8') } } } as never;
  t.is(codeOf(t.throws(() => new Capability({ id: 'e', actionType: ActionType.READ, target, holder: 'a', constraints }))), 'ZT_BAD_ARGUMENT');
  t.is(codeOf(t.throws(() => sandbox.issueCapability({ id: 'e', actionType: ActionType.READ, target, holder: 'a', constraints } as never))), 'ZT_BAD_ARGUMENT');
  t.is(await stillServing(), 'succeeded');
  sandbox.registerAgent('b', { labels: ['x'] });
});

const throwingGetter = () => {
  const o: Record<string, unknown> = {};
  Object.defineProperty(o, 'agentId', {
    enumerable: true,
    get() {
      throw new Error('boom');
    },
  });
  return o;
};
const revokedProxy = () => {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
};
const throwingProxy = () =>
  new Proxy(
    {},
    {
      ownKeys() {
        throw new TypeError('trap');
      },
      get() {
        throw new TypeError('trap');
      },
      getPrototypeOf() {
        throw new TypeError('trap');
      },
    },
  );

test('attack: executeAction with throwing getters or revoked proxies resolves with a denied outcome carrying a code, and is recorded', async t => {
  const { target, sandbox, stillServing } = await setUp(t);
  const withGetterArgs = { capabilityId: 'c', agentId: 'a', actionType: ActionType.READ, target, args: throwingGetter() };
  for (const request of [throwingGetter(), revokedProxy(), throwingProxy(), withGetterArgs, { capabilityId: 'c', agentId: 'a', actionType: 'READ', target, args: revokedProxy() }]) {
    const outcome = await sandbox.executeAction(request as never);
    t.is(outcome.status, 'denied');
    t.is(outcome.error?.code, 'ZT_BAD_ARGUMENT');
    t.truthy(outcome.audit.decision, 'the refusal is recorded');
  }
  t.is(await stillServing(), 'succeeded');
});

test('every entry point refuses proxies, getters and wrong types with a ZtError code, never a plain Error', async t => {
  const { dir, sandbox, stillServing } = await setUp(t);
  const bad = [revokedProxy(), throwingProxy(), throwingGetter(), sparseGiant('x'), () => 1, Symbol('s'), 10n, NaN];
  const syncCalls: Array<[string, (x: unknown) => unknown]> = [
    ['constructor', x => new SandboxRuntime(x as never)],
    ['constructor storeDir', x => new SandboxRuntime({ storeDir: x as never })],
    ['registerAgent', x => sandbox.registerAgent(x as never)],
    ['registerAgent options', x => sandbox.registerAgent('z', x as never)],
    ['issueCapability', x => sandbox.issueCapability(x as never)],
    ['getCapability', x => sandbox.getCapability(x as never)],
    ['listCapabilities', x => sandbox.listCapabilities(x as never)],
    ['revokeCapability', x => sandbox.revokeCapability(x as never)],
    ['revokeAgent', x => sandbox.revokeAgent('a', x as never)],
    ['loadPolicy', x => sandbox.loadPolicy(x)],
    ['loadPolicy options', x => sandbox.loadPolicy({ version: 1, rules: [] }, x as never)],
  ];
  const asyncCalls: Array<[string, (x: unknown) => Promise<unknown>]> = [
    ['loadPolicyFile', x => sandbox.loadPolicyFile(x as never)],
    ['launchAgent', x => sandbox.launchAgent(x as never)],
    ['launchAgent input', x => sandbox.launchAgent({ agentId: 'a', module: join(dir, 'a.js'), input: x })],
    ['recoverAudit', x => sandbox.recoverAudit(x as never)],
    ['audit.read', x => sandbox.audit.read(x as never, 1)],
  ];
  for (const x of bad) {
    for (const [name, call] of syncCalls) {
      const err = t.throws(() => call(x), undefined, name);
      t.true(err instanceof ZtError && typeof err.code === 'string', `${name}: ${String(err)}`);
    }
    for (const [name, call] of asyncCalls) {
      const err = await t.throwsAsync(call(x), undefined, name);
      t.true(err instanceof ZtError && typeof err.code === 'string', `${name}: ${String(err)}`);
    }
  }
  t.is(await stillServing(), 'succeeded');
});

test('attack: a 600 MB agent module is refused on its size (ZT_MODULE_TOO_LARGE) before it is read', async t => {
  // On main it was read whole before the 8 MiB limit applied, and reported as ZT_MODULE_SYNTAX.
  const { dir, sandbox, stillServing } = await setUp(t);
  const folder = join(dir, 'huge-agent');
  await mkdir(folder);
  const entry = join(folder, 'index.js');
  await writeFile(entry, 'export default async () => 1;\n');
  await truncate(entry, 600 * 1024 * 1024); // sparse: no disk used
  const err = await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: entry, isolation: 'worker' }));
  t.is(codeOf(err), 'ZT_MODULE_TOO_LARGE');
  t.like((await records(sandbox)).find(r => r.type === 'agent.launch-failed'), { code: 'ZT_MODULE_TOO_LARGE' });
  t.is(await stillServing(), 'succeeded');
});

test('attack: a policy file over the limit is refused on its size (ZT_POLICY_TOO_LARGE) and the policy in force stays', async t => {
  // On main a 3.9 MB policy took 11 s and +379 MB before it was refused.
  const { dir, sandbox, stillServing } = await setUp(t);
  const before = sandbox.policyHash;
  const file = join(dir, 'policy.json');
  await writeFile(file, JSON.stringify({ version: 1, rules: [] }));
  await truncate(file, 4 * 1024 * 1024);
  const err = await t.throwsAsync(sandbox.loadPolicyFile(file));
  t.is(codeOf(err), 'ZT_POLICY_TOO_LARGE');
  t.is(sandbox.policyHash, before);
  t.is(await stillServing(), 'succeeded');
});

test('shutdown on a full disk rejects with a code (ZT_SHUTDOWN_FAILED), not a bare Error', async t => {
  const dir = await tempDir(t);
  const log: Array<Record<string, unknown>> = [];
  const auditSink = {
    append: async (r: Record<string, unknown>) => {
      log.push(r);
      return { seq: log.length - 1, leafHash: '0'.repeat(64) };
    },
    read: async (from: number, count: number) => log.slice(from, from + count),
    size: async () => log.length,
    rootHash: async () => '0'.repeat(64),
    close: async () => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    },
  };
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store'), auditSink });
  sandbox.registerAgent('a');
  const err = await t.throwsAsync(sandbox.shutdown());
  t.true(err instanceof ZtError);
  t.is(codeOf(err), 'ZT_SHUTDOWN_FAILED');
});
