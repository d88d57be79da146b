/**
 * Delegation: a holder can give another agent its own capability only where
 * the policy explicitly permits it; the copy is bound to the recipient, no
 * wider than the original (checked and counted against it), revoked with
 * it, and audited. Without a delegation rule nothing can be delegated.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from './_prepare.js';
import { makeTempDir, makeTestKernel } from './_kernel.js';
import { fixtureAgent, makeVatWorld } from './_vats.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

const policyWith = (dir: string, delegations: unknown[] = []) => ({
  version: 1,
  rules: [{ id: 'read-dir', effect: 'permit', actions: ['READ'], targets: [`${dir}/**`] }],
  delegations,
});

test('without a delegation rule, nothing can be delegated (ZT_POLICY_DENIED, audited)', async t => {
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  const { kernel, sink } = makeTestKernel({ policy: policyWith(dir) });
  kernel.registerAgent('a');
  kernel.registerAgent('b');
  kernel.issueCapability(new Capability({ id: 'r', actionType: ActionType.READ, target: `${dir}/f.txt`, holder: 'a' }));
  t.throws(() => kernel.delegate({ from: 'a', capabilityId: 'r', to: 'b' }), { message: /^ZT_POLICY_DENIED\b/ });
  await kernel.flush();
  t.like(sink.records.find(r => r.type === 'capability.delegation-denied'), { from: 'a', to: 'b', capabilityId: 'r', code: 'ZT_POLICY_DENIED' });
});

test('a permitted delegation is bound to the recipient, counted on the original, and revoked with it', async t => {
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  const file = join(dir, 'f.txt');
  writeFileSync(file, 'shared');
  const { kernel, sink } = makeTestKernel({ policy: policyWith(dir, [{ id: 'a-to-b', from: ['a'], to: ['b'], actions: ['READ'] }]) });
  for (const id of ['a', 'b', 'c']) kernel.registerAgent(id);
  kernel.issueCapability(new Capability({ id: 'r', actionType: ActionType.READ, target: `${dir}/*.txt`, holder: 'a', constraints: { maxUses: 3 } }));
  // A holder can only delegate what it holds, to whom the policy names, no wider than the original.
  t.throws(() => kernel.delegate({ from: 'b', capabilityId: 'r', to: 'c' }), { message: /^ZT_WRONG_HOLDER\b/ });
  t.throws(() => kernel.delegate({ from: 'a', capabilityId: 'r', to: 'c' }), { message: /^ZT_POLICY_DENIED\b/ });
  t.throws(() => kernel.delegate({ from: 'a', capabilityId: 'r', to: 'b', target: '/etc/passwd' }), { message: /^ZT_WRONG_TARGET\b/ });
  const copy = kernel.delegate({ from: 'a', capabilityId: 'r', to: 'b', target: file });
  t.like(copy, { holder: 'b', parent: 'r', target: file, issuer: 'delegated:a' });
  const read = (capabilityId: string, agentId: string, target = file) =>
    kernel.execute(new ActionRequest({ capabilityId, agentId, actionType: ActionType.READ, target }), 'api');
  t.is((await read(copy.id, 'a')).error?.code, 'ZT_WRONG_HOLDER', 'the copy is bound to b alone');
  t.is((await read(copy.id, 'b', `${dir}/other.txt`)).error?.code, 'ZT_WRONG_TARGET', 'attenuated to the one file');
  t.is((await read(copy.id, 'b')).result, 'shared');
  t.is((await read('r', 'a')).result, 'shared');
  t.is((await read(copy.id, 'b')).result, 'shared');
  // Three uses of the original's budget are spent between the two holders.
  t.is((await read(copy.id, 'b')).error?.code, 'ZT_EXHAUSTED');
  t.is((await read('r', 'a')).error?.code, 'ZT_EXHAUSTED');
  kernel.revokeCapability('r');
  t.is(kernel.getCapability(copy.id)?.state, 'revoked');
  await kernel.flush();
  t.like(sink.records.find(r => r.type === 'capability.delegated'), { capabilityId: copy.id, holder: 'b', parent: 'r', issuer: 'delegated:a', rules: ['read-dir'] });
});

test('an agent delegates through its caretaker; refused delegations come back with codes', async t => {
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  const file = join(dir, 'report.txt');
  writeFileSync(file, 'the report');
  const world = makeVatWorld({ policy: policyWith(dir, [{ id: 'writer-to-reviewer', from: ['writer'], to: ['reviewer'] }]) });
  for (const id of ['writer', 'reviewer', 'stranger']) world.kernel.registerAgent(id);
  world.kernel.issueCapability(new Capability({ id: 'report', actionType: ActionType.READ, target: file, holder: 'writer' }));
  const outcome = await (await world.launch('writer', fixtureAgent('delegator'), { capabilities: ['report'], input: { reviewer: 'reviewer', self: 'writer' } })).result;
  const value = outcome.value as { granted: { capabilityId: string; holder: string }; stranger: string; self: string; unknown: string; wider: string };
  t.like(value.granted, { holder: 'reviewer' });
  // An id the policy does not name is refused by the policy, so agents cannot probe which ids exist.
  t.deepEqual([value.stranger, value.self, value.unknown, value.wider], ['ZT_POLICY_DENIED', 'ZT_BAD_ARGUMENT', 'ZT_POLICY_DENIED', 'ZT_WRONG_TARGET']);
  // The reviewer, launched with its own copy, reads once (maxUses: 1 chosen by the delegator).
  const review = await (
    await world.launch('reviewer', fixtureAgent('reader'), { capabilities: [value.granted.capabilityId], input: { reads: [[value.granted.capabilityId, null], [value.granted.capabilityId, file]] } })
  ).result;
  t.deepEqual(Object.values(review.value as Record<string, string>), ['the report', 'ZT_EXHAUSTED']);
});
