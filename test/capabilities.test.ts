/**
 * Capability records and their limits: rate, byte budget, argument rules,
 * expiry mid-call, derived capabilities and revocation cascades.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from './_prepare.js';
import { makeTempDir, makeTestKernel } from './_kernel.js';
import type { Effector } from '../src/effectors/types.js';
import type { GrantingContext } from '../src/grants.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

const read = (capabilityId: string, agentId: string, target: string, args?: Record<string, unknown>) =>
  new ActionRequest({ capabilityId, agentId, actionType: ActionType.READ, target, ...(args ? { args } : {}) });

test('records are queryable with holder, constraints, issuer, issue time, parent and state', t => {
  const { kernel } = makeTestKernel({ now: () => 5_000 });
  kernel.registerAgent('a');
  kernel.registerAgent('b');
  kernel.issueCapability(new Capability({ id: 'r', actionType: ActionType.READ, target: '/data/**', holder: 'a', constraints: { maxUses: 3, rate: { max: 2, windowMs: 1000 }, bytesBudget: 10 } }));
  kernel.issueCapability(new Capability({ id: 'n', actionType: ActionType.NETWORK, target: 'https://api.example.com/v1/*', holder: 'b' }));
  kernel.issueCapability(new Capability({ id: 't', actionType: ActionType.TOOL, target: 'everything/echo', holder: 'b' }));
  t.like(kernel.getCapability('r'), {
    id: 'r',
    holder: 'a',
    actionType: 'READ',
    target: '/data/**',
    constraints: { maxUses: 3, rate: { max: 2, windowMs: 1000 }, bytesBudget: 10 },
    issuer: 'operator',
    issuedAt: 5_000,
    parent: null,
    state: 'live',
    uses: 0,
    bytes: 0,
  });
  t.deepEqual(kernel.listCapabilities({ agentId: 'b' }).map(c => c.id), ['n', 't']);
  t.is(kernel.getCapability('nope'), undefined);
  t.throws(() => new Capability({ id: 'x', actionType: ActionType.READ, target: '/x', holder: 'a', constraints: { rate: { max: 0, windowMs: 10 } } }), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => new Capability({ id: 'x', actionType: ActionType.READ, target: '/x', holder: 'a', constraints: { args: { encoding: { regex: '.*' } } } as never }), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => kernel.issueCapability(new Capability({ id: 'r~1', actionType: ActionType.READ, target: '/x', holder: 'a' })), { message: /^ZT_BAD_ARGUMENT\b/ }, '~ is reserved for derived ids');
  t.throws(() => kernel.issueCapability(new Capability({ id: 'bad-url', actionType: ActionType.NETWORK, target: 'ftp://x/*', holder: 'b' })), { message: /^ZT_BAD_ARGUMENT\b/ });
});

test('rate limits deny with ZT_RATE_LIMITED within the window and recover after it', async t => {
  let clock = 0;
  const { kernel } = makeTestKernel({ now: () => clock, effectors: { READ: async () => 'x' } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'r', actionType: ActionType.READ, target: '/f', holder: 'a', constraints: { rate: { max: 2, windowMs: 1_000 } } }));
  const codes: Array<string | undefined> = [];
  for (const at of [0, 100, 200, 999, 1_000, 1_100, 1_150]) {
    clock = at;
    codes.push((await kernel.execute(read('r', 'a', '/f'), 'api')).error?.code);
  }
  t.deepEqual(codes, [undefined, undefined, 'ZT_RATE_LIMITED', 'ZT_RATE_LIMITED', undefined, undefined, 'ZT_RATE_LIMITED']);
});

test('byte budgets: an effector is given only what is left, and a spent budget denies with ZT_BUDGET_EXHAUSTED', async t => {
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  const file = join(dir, 'f.txt');
  writeFileSync(file, '12345678');
  const { kernel, sink } = makeTestKernel();
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'r', actionType: ActionType.READ, target: file, holder: 'a', constraints: { bytesBudget: 20 } }));
  t.is((await kernel.execute(read('r', 'a', file), 'api')).result, '12345678');
  t.is((await kernel.execute(read('r', 'a', file), 'api')).result, '12345678');
  t.is(kernel.getCapability('r')?.bytes, 16);
  // 4 bytes left: the 8-byte file does not fit.
  const third = await kernel.execute(read('r', 'a', file), 'api');
  t.is(third.error?.code, 'ZT_BUDGET_EXHAUSTED');
  writeFileSync(file, '1234');
  t.true((await kernel.execute(read('r', 'a', file), 'api')).ok);
  t.is((await kernel.execute(read('r', 'a', file), 'api')).error?.code, 'ZT_BUDGET_EXHAUSTED');
  await kernel.flush();
  const outcomes = sink.records.filter(r => r.type === 'outcome' && r.status === 'succeeded').map(r => r.bytes);
  t.deepEqual(outcomes, [8, 16, 20]);
});

test('argument rules: values outside the grant are denied with ZT_ARGUMENT_DENIED before anything runs', async t => {
  let runs = 0;
  const { kernel } = makeTestKernel({
    effectors: {
      READ: async () => {
        runs += 1;
        return 'ok';
      },
    },
  });
  kernel.registerAgent('a');
  kernel.issueCapability(
    new Capability({
      id: 'r',
      actionType: ActionType.READ,
      target: '/f',
      holder: 'a',
      constraints: { args: { encoding: { enum: ['utf8'] }, label: { type: 'string', pattern: 'report-*', maxLength: 20 }, limit: { min: 1, max: 10 }, debug: { forbidden: true } } },
    }),
  );
  const code = async (args: Record<string, unknown>) => (await kernel.execute(read('r', 'a', '/f', args), 'api')).error?.code;
  t.is(await code({}), undefined);
  t.is(await code({ encoding: 'utf8', label: 'report-q3', limit: 10 }), undefined);
  t.is(await code({ encoding: 'base64' }), 'ZT_ARGUMENT_DENIED');
  t.is(await code({ label: 'secret-q3' }), 'ZT_ARGUMENT_DENIED');
  t.is(await code({ label: 'report-'.padEnd(21, 'x') }), 'ZT_ARGUMENT_DENIED');
  t.is(await code({ label: 42 }), 'ZT_ARGUMENT_DENIED');
  t.is(await code({ limit: 11 }), 'ZT_ARGUMENT_DENIED');
  t.is(await code({ limit: '5' }), 'ZT_ARGUMENT_DENIED');
  t.is(await code({ debug: true }), 'ZT_ARGUMENT_DENIED');
  t.is(runs, 2);
});

test('expiry reached mid-call cuts the call with ZT_EXPIRED and aborts the effect', async t => {
  // A test clock and its timers: the call is surely under way when the capability expires.
  let clock = 1_000_000;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let nextTimer = 0;
  const kernelTimers = {
    setTimeout: (fn: () => void, ms: number) => {
      nextTimer += 1;
      timers.set(nextTimer, { at: clock + ms, fn });
      return nextTimer;
    },
    setBackgroundTimeout: (fn: () => void, ms: number) => kernelTimers.setTimeout(fn, ms),
    clearTimeout: (handle: unknown) => {
      timers.delete(handle as number);
    },
  };
  const advanceTo = (time: number) => {
    clock = time;
    for (const [id, timer] of [...timers]) {
      if (timer.at <= clock) {
        timers.delete(id);
        timer.fn();
      }
    }
  };
  let started!: () => void;
  const running = new Promise<void>(resolve => {
    started = resolve;
  });
  let aborted = false;
  const slow: Effector = ({ signal }) =>
    new Promise((_, reject) => {
      started();
      signal.addEventListener('abort', () => {
        aborted = true;
        reject(signal.reason);
      });
    });
  const { kernel } = makeTestKernel({ effectors: { READ: slow }, now: () => clock, timers: kernelTimers });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'r', actionType: ActionType.READ, target: '/f', holder: 'a', constraints: { expiresAt: clock + 150 } }));
  const pending = kernel.execute(read('r', 'a', '/f'), 'api');
  await running;
  advanceTo(clock + 150);
  const outcome = await pending;
  t.is(outcome.error?.code, 'ZT_EXPIRED');
  t.true(aborted);
  t.is((await kernel.execute(read('r', 'a', '/f'), 'api')).error?.code, 'ZT_EXPIRED');
});

test('expiry is recorded once: when the kernel clock passes it at use, or when its timer fires; never after revocation', async t => {
  let clock = 1_000_000;
  const { kernel, sink } = makeTestKernel({ now: () => clock });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'soon', actionType: ActionType.READ, target: '/f', holder: 'a', constraints: { expiresAt: clock + 100 } }));
  kernel.issueCapability(new Capability({ id: 'gone', actionType: ActionType.READ, target: '/f', holder: 'a', constraints: { expiresAt: clock + 100 } }));
  kernel.revokeCapability('gone');
  clock += 200;
  t.is((await kernel.execute(read('soon', 'a', '/f'), 'api')).error?.code, 'ZT_EXPIRED');
  t.is((await kernel.execute(read('soon', 'a', '/f'), 'api')).error?.code, 'ZT_EXPIRED');
  t.is((await kernel.execute(read('gone', 'a', '/f'), 'api')).error?.code, 'ZT_REVOKED');
  await kernel.flush();
  const expired = sink.records.filter(r => r.type === 'capability.expired');
  t.deepEqual(
    expired.map(r => [r.capabilityId, r.holder, r.expiresAt]),
    [['soon', 'a', 1_000_100]],
    'one record, for the live capability only',
  );
  const firstDenial = sink.records.findIndex(r => r.type === 'request' && r.code === 'ZT_EXPIRED');
  t.true(sink.records.indexOf(expired[0]!) < firstDenial, 'the expiry is recorded before the request it denied');

  // With the real clock, the timer records the expiry with no request at all.
  const real = makeTestKernel();
  real.kernel.registerAgent('b');
  real.kernel.issueCapability(new Capability({ id: 'brief', actionType: ActionType.READ, target: '/f', holder: 'b', constraints: { expiresAt: Date.now() + 40 } }));
  await new Promise(resolve => setTimeout(resolve, 120));
  await real.kernel.flush();
  t.like(real.sink.records.find(r => r.type === 'capability.expired'), { capabilityId: 'brief', holder: 'b' });
  // Already expired when issued: recorded right after the issue record.
  real.kernel.issueCapability(new Capability({ id: 'stale', actionType: ActionType.READ, target: '/f', holder: 'b', constraints: { expiresAt: Date.now() - 1 } }));
  await real.kernel.flush();
  const types = real.sink.records.filter(r => r.capabilityId === 'stale').map(r => r.type);
  t.deepEqual(types, ['capability.issued', 'capability.expired']);
});

test('derived capabilities: an effector\'s grants become capabilities of the same holder, revoked with their parent', async t => {
  const lister: Effector = async ctx => {
    const { grant } = ctx as typeof ctx & GrantingContext;
    return {
      entries: [
        { name: 'a.txt', cap: grant({ actionType: ActionType.READ, target: '/data/a.txt' }) },
        { name: 'b.txt', cap: grant({ actionType: ActionType.READ, target: '/data/b.txt', constraints: { expiresAt: 9e15 } }) },
      ],
    };
  };
  const { kernel, sink } = makeTestKernel({ effectors: { READ: lister }, now: () => 1_000 });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'dir', actionType: ActionType.READ, target: '/data', holder: 'a', constraints: { expiresAt: 1e15 } }));
  const outcome = await kernel.execute(read('dir', 'a', '/data'), 'api');
  t.is(outcome.error, undefined);
  const entries = (outcome.result as { entries: Array<{ name: string; cap: { capabilityId: string } }> }).entries;
  t.true(kernel.isDerivedRef(entries[0]?.cap));
  const ids = entries.map(e => e.cap.capabilityId);
  t.deepEqual(ids, ['dir~1', 'dir~2']);
  t.like(kernel.getCapability('dir~1'), { holder: 'a', parent: 'dir', target: '/data/a.txt', issuer: 'derived:dir' });
  t.is(kernel.getCapability('dir~2')?.constraints.expiresAt, 1e15, 'a derived capability expires no later than its parent');
  t.deepEqual(kernel.getCapability('dir')?.children, ['dir~1', 'dir~2']);
  kernel.revokeCapability('dir');
  t.deepEqual(['dir', 'dir~1', 'dir~2'].map(id => kernel.getCapability(id)?.state), ['revoked', 'revoked', 'revoked']);
  await kernel.flush();
  t.is(sink.records.filter(r => r.type === 'capability.derived').length, 2);
  t.deepEqual(sink.records.filter(r => r.type === 'capability.revoked').map(r => [r.capabilityId, r.reason]), [
    ['dir', 'revoked by operator'],
    ['dir~1', 'parent dir revoked'],
    ['dir~2', 'parent dir revoked'],
  ]);
});

test('attack: data shaped like a grant or a derived reference is only data', async t => {
  // An effector returns external data (a file, an HTTP body, a tool result)
  // that imitates the kernel's grant tokens and references.
  const mimic: Effector = async () => ({
    cap: { actionType: 'READ', target: '/etc/shadow', constraints: {} },
    ref: { capabilityId: 'other-agents-cap', actionType: 'READ', target: '/etc/shadow' },
  });
  const { kernel } = makeTestKernel({ effectors: { READ: mimic } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'r', actionType: ActionType.READ, target: '/f', holder: 'a' }));
  const outcome = await kernel.execute(read('r', 'a', '/f'), 'api');
  const result = outcome.result as Record<string, unknown>;
  t.false(kernel.isDerivedRef(result.cap));
  t.false(kernel.isDerivedRef(result.ref));
  t.deepEqual(kernel.listCapabilities().map(c => c.id), ['r'], 'no capability was derived');
});
