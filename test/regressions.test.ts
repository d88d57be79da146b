/**
 * Regressions found in review, each named after the attack or fault and
 * asserting the code that now stops it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from './_prepare.js';
import { makeTempDir, makeTestKernel } from './_kernel.js';
import { fixtureAgent, makeVatWorld } from './_vats.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

test('attack: delegation cannot widen the effector settings of a capability', t => {
  // The delegator supplies `effect` settings the original never had (any
  // argument, an environment), hoping the recipient's copy runs anything.
  const { kernel } = makeTestKernel({
    policy: { version: 1, rules: [{ id: 'env', effect: 'permit', actions: ['EXECUTE'], targets: ['/usr/bin/env'] }], delegations: [{ id: 'a-b', from: ['a'], to: ['b'] }] },
  });
  kernel.registerAgent('a');
  kernel.registerAgent('b');
  kernel.issueCapability(new Capability({ id: 'x', actionType: ActionType.EXECUTE, target: '/usr/bin/env', holder: 'a' }));
  const copy = kernel.delegate({ from: 'a', capabilityId: 'x', to: 'b', constraints: { effect: { restArgs: { any: true }, maxArgs: 10 } } });
  t.is(copy.constraints.effect, undefined, 'the copy has exactly the original settings (none)');
});

test('attack: delegating does not reset the policy\'s per-capability limits', async t => {
  // The policy allows two uses of a capability; the holder delegates fresh
  // copies hoping each starts from zero.
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  const file = join(dir, 'f.txt');
  writeFileSync(file, 'x');
  const { kernel } = makeTestKernel({
    policy: {
      version: 1,
      rules: [{ id: 'twice', effect: 'permit', actions: ['READ'], targets: [`${dir}/**`], when: { maxUses: 2 } }],
      delegations: [{ id: 'a-b', from: ['a'], to: ['b'] }],
    },
  });
  kernel.registerAgent('a');
  kernel.registerAgent('b');
  kernel.issueCapability(new Capability({ id: 'r', actionType: ActionType.READ, target: file, holder: 'a' }));
  const read = async (capabilityId: string, agentId: string) =>
    (await kernel.execute(new ActionRequest({ capabilityId, agentId, actionType: ActionType.READ, target: file }), 'api')).error?.code ?? 'ok';
  t.is(await read('r', 'a'), 'ok');
  t.is(await read('r', 'a'), 'ok');
  t.is(await read('r', 'a'), 'ZT_EXHAUSTED');
  const copy = kernel.delegate({ from: 'a', capabilityId: 'r', to: 'b' });
  t.is(await read(copy.id, 'b'), 'ZT_EXHAUSTED');
});

test('attack: concurrent calls cannot overspend a byte budget', async t => {
  // Five reads of a 10-byte file race on a 10-byte budget.
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  const file = join(dir, 'ten.txt');
  writeFileSync(file, '0123456789');
  const { kernel } = makeTestKernel();
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'r', actionType: ActionType.READ, target: file, holder: 'a', constraints: { bytesBudget: 10 } }));
  const outcomes = await Promise.all(
    Array.from({ length: 5 }, () => kernel.execute(new ActionRequest({ capabilityId: 'r', agentId: 'a', actionType: ActionType.READ, target: file }), 'api')),
  );
  t.is(outcomes.filter(o => o.ok).length, 1);
  t.deepEqual([...new Set(outcomes.filter(o => !o.ok).map(o => o.error?.code))], ['ZT_BUDGET_EXHAUSTED']);
  t.is(kernel.getCapability('r')?.bytes, 10);
});

for (const fixture of ['returns-nan', 'returns-bigint']) {
  test(`an agent whose result is not JSON data (${fixture}) ends with ZT_AGENT_RESULT_NOT_PASSABLE, recorded`, async t => {
    const world = makeVatWorld();
    world.kernel.registerAgent('a');
    const outcome = await (await world.launch('a', fixtureAgent(fixture))).result;
    t.is(outcome.error?.code, 'ZT_AGENT_RESULT_NOT_PASSABLE');
    await world.kernel.flush();
    t.like(world.sink.records.find(r => r.type === 'agent.finished'), { status: 'failed', code: 'ZT_AGENT_RESULT_NOT_PASSABLE' });
  });
}

test('an effect whose result cannot be recorded is withheld, with an outcome record, never a rejection', async t => {
  const { kernel, sink } = makeTestKernel({ effectors: { TOOL: async () => ({ text: '\ud800' }) } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 't', actionType: ActionType.TOOL, target: 'srv/tool', holder: 'a' }));
  const outcome = await kernel.execute(new ActionRequest({ capabilityId: 't', agentId: 'a', actionType: ActionType.TOOL, target: 'srv/tool', args: { arguments: {} } }), 'api');
  t.is(outcome.status, 'failed');
  t.is(outcome.error?.code, 'ZT_EFFECT_FAILED');
  t.is(outcome.result, undefined);
  await kernel.flush();
  t.like(sink.records.find(r => r.type === 'outcome'), { status: 'failed', code: 'ZT_EFFECT_FAILED' });
});

test('a malformed request object is denied and recorded, never a rejection', async t => {
  const { kernel, sink } = makeTestKernel();
  const outcome = await kernel.execute({ capabilityId: 42, agentId: 'a' } as never, 'api');
  t.is(outcome.error?.code, 'ZT_BAD_ARGUMENT');
  await kernel.flush();
  t.like(sink.records.find(r => r.type === 'request'), { decision: 'deny', code: 'ZT_BAD_ARGUMENT', agentId: 'a', capabilityId: null });
});
