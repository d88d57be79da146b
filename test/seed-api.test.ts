/**
 * The seed API end to end, on the real audit vat and the embedded default
 * store: `new SandboxRuntime()`, `registerAgent`, `issueCapability`,
 * `executeAction`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc } from '@fast-check/ava';
import { test } from './_prepare.js';
import { makeMemorySink } from './_kernel.js';
import { fixtureAgent } from './_vats.js';
import { PLAIN_DATA_CASES, refusalCode } from './_plain-data-cases.js';
import { ActionRequest, ActionType, Capability, SandboxRuntime, codeOf, type ErrorCode } from '../src/index.js';

const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-seed-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
};

test('the seed example: a held capability reads the file, with its audit records', async t => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const target = join(dir, 'data.txt');
  writeFileSync(target, 'seed data');
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('my-agent');
  const record = sandbox.issueCapability(
    new Capability({ id: 'read-file-cap', actionType: ActionType.READ, target, holder: 'my-agent' }),
  );
  t.is(record.holder, 'my-agent');
  t.is(record.state, 'live');
  const outcome = await sandbox.executeAction(
    new ActionRequest({ capabilityId: 'read-file-cap', agentId: 'my-agent', actionType: ActionType.READ, target }),
  );
  t.is(outcome.status, 'succeeded');
  t.true(outcome.ok);
  t.is(outcome.result, 'seed data');
  const decisionSeq = outcome.audit.decision?.seq ?? -1;
  const outcomeSeq = outcome.audit.outcome?.seq ?? -1;
  const [decision] = await sandbox.audit.read(decisionSeq, 1);
  const [result] = await sandbox.audit.read(outcomeSeq, 1);
  t.like(decision, { seq: decisionSeq, type: 'request', decision: 'allow', agentId: 'my-agent', capabilityId: 'read-file-cap', requestId: outcome.requestId });
  t.like(result, { seq: outcomeSeq, type: 'outcome', status: 'succeeded', requestId: outcome.requestId });
  t.regex(String(result?.resultDigest), /^[0-9a-f]{64}$/);
});

test('denials on the seed API each have their own code and are audited', async t => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const target = join(dir, 'data.txt');
  writeFileSync(target, 'x');
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('my-agent');
  sandbox.registerAgent('other');
  sandbox.issueCapability(new Capability({ id: 'cap', actionType: ActionType.READ, target, holder: 'my-agent' }));
  const cases: Array<[Partial<ConstructorParameters<typeof ActionRequest>[0]>, ErrorCode]> = [
    [{ agentId: 'nobody' }, 'ZT_UNKNOWN_AGENT'],
    [{ capabilityId: 'nope' }, 'ZT_UNKNOWN_CAPABILITY'],
    [{ agentId: 'other' }, 'ZT_WRONG_HOLDER'],
    [{ actionType: ActionType.WRITE, args: { content: 'y' } }, 'ZT_WRONG_ACTION'],
    [{ target: join(dir, 'other.txt') }, 'ZT_WRONG_TARGET'],
  ];
  for (const [override, code] of cases) {
    const outcome = await sandbox.executeAction(
      new ActionRequest({ capabilityId: 'cap', agentId: 'my-agent', actionType: ActionType.READ, target, ...override }),
    );
    t.is(outcome.status, 'denied', code);
    t.false(outcome.ok);
    t.is(outcome.error?.code, code);
    t.is(outcome.result, undefined);
    const [rec] = await sandbox.audit.read(outcome.audit.decision?.seq ?? -1, 1);
    t.like(rec, { type: 'request', decision: 'deny', code, requestId: outcome.requestId });
  }
  t.is(readFileSync(target, 'utf8'), 'x', 'the denied write did not happen');
});

test('issuing without a holder fails with ZT_NO_HOLDER and never means "anyone"', t => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('my-agent');
  const err = t.throws(() =>
    sandbox.issueCapability(new Capability({ id: 'c', actionType: ActionType.READ, target: '/tmp/x' } as never)),
  );
  t.is(codeOf(err), 'ZT_NO_HOLDER');
  t.is(sandbox.listCapabilities().length, 0);
});

test('write through the seed API is atomic and reads back', async t => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const target = join(dir, 'out.txt');
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('w');
  sandbox.issueCapability(new Capability({ id: 'w', actionType: ActionType.WRITE, target, holder: 'w' }));
  const outcome = await sandbox.executeAction(
    new ActionRequest({ capabilityId: 'w', agentId: 'w', actionType: ActionType.WRITE, target, args: { content: 'written' } }),
  );
  t.true(outcome.ok);
  t.deepEqual(outcome.result, { bytes: 7 });
  t.is(readFileSync(target, 'utf8'), 'written');
});

test('launchAgent refuses capabilities the agent does not hold, and unknown agents', async t => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('a');
  sandbox.registerAgent('b');
  sandbox.issueCapability(new Capability({ id: 'bs', actionType: ActionType.READ, target: '/tmp/x', holder: 'b' }));
  await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), capabilities: ['bs'] }), { message: /^ZT_WRONG_HOLDER\b/ });
  await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), capabilities: ['none'] }), { message: /^ZT_UNKNOWN_CAPABILITY\b/ });
  await t.throwsAsync(sandbox.launchAgent({ agentId: 'zed', module: fixtureAgent('echo') }), { message: /^ZT_UNKNOWN_AGENT\b/ });
  await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), input: { f: () => 1 } as never }), { message: /^ZT_BAD_ARGUMENT\b/ });
  const ok = await (await sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), input: [1, 'two'] })).result;
  t.deepEqual(ok.value, { echoed: [1, 'two'] });
});

test('bad runtime options fail with ZT_BAD_ARGUMENT', t => {
  t.throws(() => new SandboxRuntime({ failureModes: { auditUnavailable: 'ignore' as never } }), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => new SandboxRuntime({ failureModes: { unknownMode: 'x' } as never }), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => new SandboxRuntime({ limits: { deadlineMs: -1 } }), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => new SandboxRuntime({ policy: { version: 1, rules: [{ id: 'x', effect: 'allow' }] } }), { message: /^ZT_POLICY_INVALID\b/ });
});

// Property: over arbitrary sequences of issue / revoke / execute, a request
// succeeds exactly when a matching live capability held by that agent exists.
const AGENTS = ['a1', 'a2', 'a3'] as const;
const ACTIONS = [ActionType.READ, ActionType.WRITE] as const;
const TARGETS = ['t1', 't2', 't3'] as const;
const CAP_IDS = ['c1', 'c2', 'c3', 'c4'] as const;
const commandArb = fc.oneof(
  fc.record({
    kind: fc.constant('issue' as const),
    id: fc.constantFrom(...CAP_IDS),
    holder: fc.constantFrom(...AGENTS),
    actionType: fc.constantFrom(...ACTIONS),
    target: fc.constantFrom(...TARGETS),
    maxUses: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
  }),
  fc.record({ kind: fc.constant('revoke' as const), id: fc.constantFrom(...CAP_IDS) }),
  fc.record({
    kind: fc.constant('execute' as const),
    id: fc.constantFrom(...CAP_IDS, 'ghost'),
    agent: fc.constantFrom(...AGENTS, 'stranger'),
    actionType: fc.constantFrom(...ACTIONS),
    target: fc.constantFrom(...TARGETS),
  }),
);

test('property: no request succeeds without a matching live capability held by that agent', async t => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  for (const name of TARGETS) writeFileSync(join(dir, name), name);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(commandArb, { maxLength: 30 }), async commands => {
      run += 1;
      const sink = makeMemorySink();
      const sandbox = new SandboxRuntime({ storeDir: join(dir, `unused-${run}`), auditSink: { ...sink, read: async () => [], size: async () => sink.records.length, rootHash: async () => '', close: async () => undefined } });
      try {
        for (const agent of AGENTS) sandbox.registerAgent(agent);
        const model = new Map<string, { holder: string; actionType: string; target: string; uses: number; maxUses?: number; live: boolean }>();
        let executed = 0;
        for (const cmd of commands) {
          if (cmd.kind === 'issue') {
            if (model.has(cmd.id)) continue;
            sandbox.issueCapability(
              new Capability({ id: cmd.id, holder: cmd.holder, actionType: cmd.actionType, target: join(dir, cmd.target), ...(cmd.maxUses ? { constraints: { maxUses: cmd.maxUses } } : {}) }),
            );
            model.set(cmd.id, { holder: cmd.holder, actionType: cmd.actionType, target: cmd.target, uses: 0, maxUses: cmd.maxUses, live: true });
          } else if (cmd.kind === 'revoke') {
            const m = model.get(cmd.id);
            if (!m) continue;
            sandbox.revokeCapability(cmd.id);
            m.live = false;
          } else {
            executed += 1;
            const outcome = await sandbox.executeAction(
              new ActionRequest({
                capabilityId: cmd.id,
                agentId: cmd.agent,
                actionType: cmd.actionType,
                target: join(dir, cmd.target),
                ...(cmd.actionType === ActionType.WRITE ? { args: { content: cmd.target } } : {}),
              }),
            );
            const m = model.get(cmd.id);
            const allowed =
              m !== undefined && m.live && m.holder === cmd.agent && m.actionType === cmd.actionType && m.target === cmd.target && (m.maxUses === undefined || m.uses < m.maxUses);
            if (m && m.live && m.holder === cmd.agent && (m.maxUses === undefined || m.uses < m.maxUses) && m.actionType === cmd.actionType && m.target === cmd.target) m.uses += 1;
            if (outcome.ok !== allowed) return false;
          }
        }
        await sandbox.audit.flush();
        const decisions = sink.records.filter(r => r.type === 'request').length;
        return decisions === executed;
      } finally {
        await sandbox.shutdown();
      }
    }),
    { numRuns: 60 },
  );
  t.true(run >= 60, 'every generated sequence was checked against the model');
});

test('a vat pool of worker vats gives warm launches, one run per vat; a pool with the default process level is refused', async t => {
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  t.throws(() => new SandboxRuntime({ storeDir: join(dir, 'refused'), vatPoolSize: 1 }), { code: 'ZT_BAD_ARGUMENT', message: /needs isolation: 'worker'/ });
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store'), vatPoolSize: 1, isolation: 'worker' });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('a');
  sandbox.registerAgent('b');
  // Let the pooled vat start.
  await new Promise(resolve => setTimeout(resolve, 500));
  const first = await (await sandbox.launchAgent({ agentId: 'a', module: fixtureAgent('echo'), input: 1 })).result;
  await new Promise(resolve => setTimeout(resolve, 500));
  const second = await (await sandbox.launchAgent({ agentId: 'b', module: fixtureAgent('echo'), input: 2 })).result;
  t.deepEqual([first.value, second.value], [{ echoed: 1 }, { echoed: 2 }]);
  await sandbox.audit.flush();
  const launched = (await sandbox.audit.read(0, await sandbox.audit.size())).filter(r => r.type === 'agent.launched');
  t.deepEqual(launched.map(r => [r.agentId, r.warm]), [['a', true], ['b', true]]);
  t.not(launched[0]?.runId, launched[1]?.runId);
});

test('every argument value of executeAction is refused with ZT_BAD_ARGUMENT (ZT_NOT_RECORDABLE for a lone surrogate) and one record of one shape, or accepted and recorded', async t => {
  // What the operator's code passes as arguments crosses into the kernel
  // through the same check as an agent's: a value outside plain data is
  // refused before any other check, with one decision record whose shape
  // does not depend on the cause, and never reaches the audit log.
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const target = join(dir, 'data.txt');
  writeFileSync(target, 'seed data');
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('a');
  sandbox.issueCapability(new Capability({ id: 'r', actionType: ActionType.READ, target, holder: 'a' }));
  const shapes = new Set<string>();
  for (const c of PLAIN_DATA_CASES) {
    const outcome = await sandbox.executeAction(new ActionRequest({ capabilityId: 'r', agentId: 'a', actionType: ActionType.READ, target, args: { v: c.make() } }));
    const [rec] = await sandbox.audit.read(outcome.audit.decision?.seq ?? -1, 1);
    if (c.api === 'refused') {
      t.like(outcome, { status: 'denied', error: { code: refusalCode(c) } }, c.name);
      t.like(rec, { type: 'request', decision: 'deny', code: refusalCode(c), requestId: outcome.requestId, agentId: 'a', capabilityId: 'r', actionType: 'READ', decidedBy: 'kernel' }, c.name);
      shapes.add(Object.keys(rec ?? {}).sort().join(','));
    } else {
      t.like(outcome, { status: 'succeeded', result: 'seed data' }, c.name);
      t.like(rec, { decision: 'allow', requestId: outcome.requestId }, c.name);
      t.deepEqual((rec?.args as { v: unknown }).v, c.recorded, `${c.name}: recorded as acted on`);
    }
  }
  t.deepEqual([...shapes], ['actionType,agentId,capabilityId,code,decidedBy,decision,policyHash,requestId,rules,seq,time,type,via']);
});

test('attack: a lone surrogate in an argument is refused at the boundary and cannot latch the audit log', async t => {
  // A string the audit log cannot encode canonically (RFC 8785 refuses lone
  // surrogates). Had it reached the log, the append would fail, latch the
  // audit fault and deny every agent's requests from then on.
  const { dir, cleanup } = tempDir();
  t.teardown(cleanup);
  const target = join(dir, 'data.txt');
  writeFileSync(target, 'seed data');
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('mallory');
  sandbox.registerAgent('alice');
  sandbox.issueCapability(new Capability({ id: 'm', actionType: ActionType.READ, target, holder: 'mallory' }));
  sandbox.issueCapability(new Capability({ id: 'a', actionType: ActionType.READ, target, holder: 'alice' }));
  // Short, long (digested in the record) and in the policy's verbatim copy alike.
  for (const args of [{ encoding: 'utf8\ud800' }, { note: `${'x'.repeat(300)}\udfff` }, { nested: { k: ['\ud83d'] } }]) {
    const denied = await sandbox.executeAction(new ActionRequest({ capabilityId: 'm', agentId: 'mallory', actionType: ActionType.READ, target, args }));
    t.like(denied, { status: 'denied', error: { code: 'ZT_NOT_RECORDABLE' } });
    t.truthy(denied.audit.decision, 'the refusal itself is recorded');
  }
  const inTarget = await sandbox.executeAction(new ActionRequest({ capabilityId: 'm', agentId: 'mallory', actionType: ActionType.READ, target: `${target}\ud800` }));
  t.like(inTarget, { status: 'denied', error: { code: 'ZT_NOT_RECORDABLE' } });
  t.truthy(inTarget.audit.decision);
  const next = await sandbox.executeAction(new ActionRequest({ capabilityId: 'a', agentId: 'alice', actionType: ActionType.READ, target }));
  t.like(next, { status: 'succeeded', result: 'seed data' });
});
