import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from './_prepare.js';
import { makeTempDir, makeTestKernel } from './_kernel.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';
import type { Effector } from '../src/effectors/types.js';

const req = (capabilityId: string, agentId: string, target: string, actionType: ActionType = ActionType.READ, args?: Record<string, unknown>) =>
  new ActionRequest({ capabilityId, agentId, actionType, target, ...(args ? { args } : {}) });

test('checks run in a fixed order and each denial has its own code', async t => {
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  const file = join(dir, 'a.txt');
  writeFileSync(file, 'hello');
  let clock = 1_000;
  const { kernel, sink } = makeTestKernel({ now: () => clock });
  kernel.registerAgent('alice');
  kernel.registerAgent('bob');
  kernel.issueCapability(new Capability({ id: 'c1', actionType: ActionType.READ, target: file, holder: 'alice' }));
  kernel.issueCapability(new Capability({ id: 'once', actionType: ActionType.READ, target: file, holder: 'alice', constraints: { maxUses: 1 } }));
  kernel.issueCapability(new Capability({ id: 'short', actionType: ActionType.READ, target: file, holder: 'alice', constraints: { expiresAt: 2_000 } }));

  const codeOf = async (r: ActionRequest) => (await kernel.execute(r, 'api')).error?.code;
  t.is(await codeOf(req('c1', 'mallory', file)), 'ZT_UNKNOWN_AGENT');
  t.is(await codeOf(req('nope', 'alice', file)), 'ZT_UNKNOWN_CAPABILITY');
  t.is(await codeOf(req('c1', 'bob', file)), 'ZT_WRONG_HOLDER');
  t.is(await codeOf(req('c1', 'alice', file, ActionType.WRITE, { content: 'x' })), 'ZT_WRONG_ACTION');
  t.is(await codeOf(req('c1', 'alice', join(dir, 'b.txt'))), 'ZT_WRONG_TARGET');
  t.is(await codeOf(req('c1', 'alice', `${dir}/sub/../a.txt`)), undefined, 'a lexically equal path is the same target');
  t.is(await codeOf(req('once', 'alice', file)), undefined);
  t.is(await codeOf(req('once', 'alice', file)), 'ZT_EXHAUSTED');
  clock = 2_000;
  t.is(await codeOf(req('short', 'alice', file)), 'ZT_EXPIRED');
  kernel.revokeCapability('c1');
  t.is(await codeOf(req('c1', 'alice', file)), 'ZT_REVOKED');
  // Wrong holder is checked before revocation: bob learns nothing about c1's state.
  t.is(await codeOf(req('c1', 'bob', file)), 'ZT_WRONG_HOLDER');
  kernel.revokeAgent('alice');
  t.is(await codeOf(req('once', 'alice', file)), 'ZT_AGENT_REVOKED');

  await kernel.flush();
  const requests = sink.records.filter(r => r.type === 'request');
  t.deepEqual(
    requests.map(r => r.code ?? r.decision),
    ['ZT_UNKNOWN_AGENT', 'ZT_UNKNOWN_CAPABILITY', 'ZT_WRONG_HOLDER', 'ZT_WRONG_ACTION', 'ZT_WRONG_TARGET', 'allow', 'allow', 'ZT_EXHAUSTED', 'ZT_EXPIRED', 'ZT_REVOKED', 'ZT_WRONG_HOLDER', 'ZT_AGENT_REVOKED'],
    'every request has exactly one decision record, in order',
  );
  t.is(sink.records.filter(r => r.type === 'outcome').length, 2, 'only executed actions have outcome records');
});

test('issuing without a holder, to an unknown agent, or twice fails with its own code', t => {
  const { kernel } = makeTestKernel();
  kernel.registerAgent('alice');
  t.throws(() => new Capability({ id: 'x', actionType: ActionType.READ, target: '/tmp/x' } as never), { message: /^ZT_NO_HOLDER\b/ });
  t.throws(() => kernel.issueCapability({ id: 'x', actionType: 'READ', target: '/tmp/x', holder: '' } as never), { message: /^ZT_NO_HOLDER\b/ });
  t.throws(() => kernel.issueCapability(new Capability({ id: 'x', actionType: ActionType.READ, target: '/tmp/x', holder: 'bob' })), { message: /^ZT_UNKNOWN_AGENT\b/ });
  kernel.issueCapability(new Capability({ id: 'x', actionType: ActionType.READ, target: '/tmp/x', holder: 'alice' }));
  t.throws(() => kernel.issueCapability(new Capability({ id: 'x', actionType: ActionType.READ, target: '/tmp/y', holder: 'alice' })), { message: /^ZT_DUPLICATE_CAPABILITY\b/ });
  t.throws(() => kernel.registerAgent('alice'), { message: /^ZT_DUPLICATE_AGENT\b/ });
  t.throws(() => kernel.registerAgent('../evil'), { message: /^ZT_BAD_ARGUMENT\b/ });
});

test('the policy is enforced at issue time and at use time, and decisions name their rules', async t => {
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  writeFileSync(join(dir, 'ok.txt'), 'ok');
  writeFileSync(join(dir, 'secret.txt'), 'secret');
  const policy = {
    version: 1,
    rules: [
      { id: 'read-dir', effect: 'permit', actions: ['READ'], targets: [`${dir}/**`] },
      { id: 'no-secret', effect: 'forbid', targets: [`${dir}/secret.txt`] },
    ],
  };
  const { kernel, sink } = makeTestKernel({ policy });
  kernel.registerAgent('a');
  t.throws(() => kernel.issueCapability(new Capability({ id: 'etc', actionType: ActionType.READ, target: '/etc/passwd', holder: 'a' })), { message: /^ZT_POLICY_DENIED\b/ });
  t.throws(() => kernel.issueCapability(new Capability({ id: 'sec', actionType: ActionType.READ, target: `${dir}/secret.txt`, holder: 'a' })), { message: /^ZT_POLICY_DENIED\b/ });
  kernel.issueCapability(new Capability({ id: 'all', actionType: ActionType.READ, target: `${dir}/*.txt`, holder: 'a' }));
  const ok = await kernel.execute(req('all', 'a', join(dir, 'ok.txt')), 'api');
  t.true(ok.ok);
  t.is(ok.result, 'ok');
  const denied = await kernel.execute(req('all', 'a', join(dir, 'secret.txt')), 'api');
  t.is(denied.status, 'denied');
  t.is(denied.error?.code, 'ZT_POLICY_DENIED');
  await kernel.flush();
  const decision = sink.records.find(r => r.type === 'request' && r.code === 'ZT_POLICY_DENIED');
  t.deepEqual(decision?.rules, ['no-secret']);
  t.is(decision?.policyHash, kernel.getPolicyHash());
  t.is(sink.records.filter(r => r.type === 'capability.issue-denied').length, 2);
});

test('revoking a capability aborts its call in flight with ZT_REVOKED and fires the effector signal', async t => {
  let sawAbort = false;
  let started!: () => void;
  const running = new Promise<void>(resolve => {
    started = resolve;
  });
  const slow: Effector = ({ signal }) =>
    new Promise((_, reject) => {
      started();
      signal.addEventListener('abort', () => {
        sawAbort = true;
        reject(signal.reason);
      });
    });
  const { kernel, sink } = makeTestKernel({ effectors: { READ: slow } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'slow', actionType: ActionType.READ, target: '/slow', holder: 'a' }));
  const pending = kernel.execute(req('slow', 'a', '/slow'), 'api');
  await running;
  kernel.revokeCapability('slow', 'test revokes');
  const outcome = await pending;
  t.is(outcome.status, 'failed');
  t.is(outcome.error?.code, 'ZT_REVOKED');
  t.true(sawAbort);
  await kernel.flush();
  const revoked = sink.records.find(r => r.type === 'capability.revoked');
  t.deepEqual(revoked?.inFlight, [outcome.requestId]);
  const later = await kernel.execute(req('slow', 'a', '/slow'), 'api');
  t.is(later.error?.code, 'ZT_REVOKED');
});

test('audit unavailable: the request is denied before anything executes, and the fault latches', async t => {
  let executed = 0;
  const counting: Effector = async () => {
    executed += 1;
    return 'done';
  };
  const { kernel, sink } = makeTestKernel({ effectors: { READ: counting } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'c', actionType: ActionType.READ, target: '/x', holder: 'a' }));
  t.true((await kernel.execute(req('c', 'a', '/x'), 'api')).ok);
  sink.fail(true);
  const denied = await kernel.execute(req('c', 'a', '/x'), 'api');
  t.is(denied.status, 'denied');
  t.is(denied.error?.code, 'ZT_AUDIT_UNAVAILABLE');
  sink.fail(false);
  const still = await kernel.execute(req('c', 'a', '/x'), 'api');
  t.is(still.error?.code, 'ZT_AUDIT_UNAVAILABLE', 'a history with a hole is never resumed');
  t.is(executed, 1);
});

test('failure mode halt: an audit failure halts the agent', async t => {
  const { kernel, sink, halted } = makeTestKernel({ failureModes: { auditUnavailable: 'halt' } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'c', actionType: ActionType.READ, target: '/x', holder: 'a' }));
  await kernel.flush();
  sink.fail(true);
  const denied = await kernel.execute(req('c', 'a', '/x'), 'api');
  t.is(denied.error?.code, 'ZT_AUDIT_UNAVAILABLE');
  t.deepEqual(halted, ['a']);
  t.is(kernel.getCapability('c')?.state, 'revoked');
});

test('arguments that are not plain data are refused with ZT_BAD_ARGUMENT', async t => {
  const { kernel } = makeTestKernel();
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'w', actionType: ActionType.WRITE, target: '/tmp/zt-never', holder: 'a' }));
  const outcome = await kernel.execute(req('w', 'a', '/tmp/zt-never', ActionType.WRITE, { content: 'x', extra: () => 1 }), 'api');
  t.is(outcome.error?.code, 'ZT_BAD_ARGUMENT');
});

test('loading a new policy revokes the capabilities it would no longer grant, unless told not to', async t => {
  const { kernel, sink } = makeTestKernel();
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'data', actionType: ActionType.READ, target: '/data/x', holder: 'a' }));
  kernel.issueCapability(new Capability({ id: 'etc', actionType: ActionType.READ, target: '/etc/hosts', holder: 'a' }));
  const stricter = { version: 1, rules: [{ id: 'data-only', effect: 'permit', actions: ['READ'], targets: ['/data/**'] }] };
  const kept = kernel.setPolicy(stricter, { revokeRefused: false });
  t.deepEqual([kept.refused, kept.revoked], [['etc'], []]);
  t.is(kernel.getCapability('etc')?.state, 'live');
  const result = kernel.setPolicy(stricter);
  t.deepEqual([result.refused, result.revoked], [['etc'], ['etc']]);
  t.is(kernel.getCapability('etc')?.state, 'revoked');
  t.is(kernel.getCapability('data')?.state, 'live');
  t.throws(() => kernel.setPolicy({ version: 1, rules: [{ id: 'bad', effect: 'maybe' }] }), { message: /^ZT_POLICY_INVALID\b/ });
  t.is(kernel.getPolicyHash(), result.policyHash, 'an invalid policy leaves the one in force');
  await kernel.flush();
  const revoked = sink.records.find(r => r.type === 'capability.revoked' && r.capabilityId === 'etc');
  t.regex(String(revoked?.reason), /no longer grants it/);
  t.is(sink.records.filter(r => r.type === 'policy.loaded').length, 3, 'the initial policy and the two loads');
});

test('audit outage: what happened while the log was down is written, marked late, once it is back; then the runtime resumes', async t => {
  const { kernel, sink } = makeTestKernel({ effectors: { READ: async () => 'ok' } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'c', actionType: ActionType.READ, target: '/x', holder: 'a' }));
  await kernel.flush();
  sink.fail(true);
  const during = [await kernel.execute(req('c', 'a', '/x'), 'api'), await kernel.execute(req('c', 'a', '/x'), 'api')];
  t.deepEqual(during.map(o => o.error?.code), ['ZT_AUDIT_UNAVAILABLE', 'ZT_AUDIT_UNAVAILABLE']);
  const before = sink.records.length;
  sink.fail(false);
  const back = await kernel.reattachAudit(sink);
  t.deepEqual(back, { resumed: true, written: 3, lost: 0 });
  const late = sink.records.slice(before);
  t.deepEqual(
    late.map(r => [r.type, r.recordedLate ?? false]),
    [
      ['failure-mode', true],
      ['request', true],
      ['request', true],
      ['failure-mode.recovered', false],
    ],
  );
  t.is(late[0]?.mode, 'deny');
  t.true((await kernel.execute(req('c', 'a', '/x'), 'api')).ok, 'resumed');
});

test('durable mode runs an action only after its decision is recorded; relaxed mode overlaps them but still withholds unrecorded results', async t => {
  for (const durability of ['durable', 'relaxed'] as const) {
    const events: string[] = [];
    const { kernel, sink } = makeTestKernel({
      durability,
      effectors: {
        READ: async () => {
          events.push(`effect after ${sink.records.filter(r => r.type === 'request').length} decision record(s)`);
          return 'ok';
        },
      },
    });
    kernel.registerAgent('a');
    kernel.issueCapability(new Capability({ id: 'c', actionType: ActionType.READ, target: '/x', holder: 'a' }));
    await kernel.flush();
    sink.delay(50);
    const outcome = await kernel.execute(req('c', 'a', '/x'), 'api');
    t.true(outcome.ok, durability);
    t.is(typeof outcome.audit.decision?.seq, 'number');
    t.deepEqual(events, [durability === 'durable' ? 'effect after 1 decision record(s)' : 'effect after 0 decision record(s)'], durability);
    // A decision that cannot be recorded: relaxed mode may have run the effect, but never returns its result.
    sink.delay(0);
    sink.fail(true);
    const lost = await kernel.execute(req('c', 'a', '/x'), 'api');
    t.false(lost.ok);
    t.is(lost.error?.code, 'ZT_AUDIT_UNAVAILABLE');
    t.is(lost.result, undefined);
  }
});
