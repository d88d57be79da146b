/**
 * Runaway and misbehaving agents: each gets a deterministic outcome with its
 * own code, the vat is ended, and the host and other agents keep working.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from './_prepare.js';
import { makeTempDir } from './_kernel.js';
import { fixtureAgent, makeVatWorld } from './_vats.js';
import { ActionType, Capability } from '../src/types.js';

const runAlone = async (fixture: string, limits = {}) => {
  const world = makeVatWorld();
  world.kernel.registerAgent('a');
  world.kernel.issueCapability(new Capability({ id: 'cap', actionType: ActionType.READ, target: '/tmp/none', holder: 'a' }));
  const outcome = await (await world.launch('a', fixtureAgent(fixture), { capabilities: ['cap'], limits })).result;
  await world.kernel.flush();
  return { outcome, world };
};

test('an agent that throws gets ZT_AGENT_THREW', async t => {
  const { outcome } = await runAlone('thrower');
  t.is(outcome.status, 'failed');
  t.is(outcome.error?.code, 'ZT_AGENT_THREW');
  t.is(outcome.error?.message, 'boom');
});

test('an agent that throws a message that is not Unicode text: the outcome and the record hold it escaped, marked ZT_NOT_RECORDABLE', async t => {
  const world = makeVatWorld();
  world.kernel.registerAgent('a');
  const outcome = await (await world.launch('a', fixtureAgent('thrower'), { input: { unit: 0xdc00 } })).result;
  await world.kernel.flush();
  t.is(outcome.error?.code, 'ZT_AGENT_THREW');
  t.is(outcome.error?.message, 'boom\\udc00');
  t.like(world.sink.records.find(r => r.type === 'agent.finished'), { code: 'ZT_AGENT_THREW', message: 'boom\\udc00', messageEscaped: 'ZT_NOT_RECORDABLE' });
});

test('an agent that rejects gets ZT_AGENT_REJECTED', async t => {
  const { outcome } = await runAlone('rejecter');
  t.is(outcome.error?.code, 'ZT_AGENT_REJECTED');
  t.is(outcome.error?.message, 'async boom');
});

test('an agent that can never settle gets ZT_AGENT_UNSETTLED long before its deadline', async t => {
  const { outcome } = await runAlone('unsettled', { deadlineMs: 60_000 });
  t.is(outcome.error?.code, 'ZT_AGENT_UNSETTLED');
});

test('an agent that returns a function gets ZT_AGENT_RESULT_NOT_PASSABLE', async t => {
  const { outcome } = await runAlone('not-passable');
  t.is(outcome.error?.code, 'ZT_AGENT_RESULT_NOT_PASSABLE');
});

test('runaway: a spinning agent is stopped at its deadline, its capabilities revoked and audited', async t => {
  const { outcome, world } = await runAlone('spinner', { deadlineMs: 300 });
  t.is(outcome.error?.code, 'ZT_DEADLINE');
  t.is(world.kernel.getCapability('cap')?.state, 'revoked');
  const finished = world.sink.records.find(r => r.type === 'agent.finished');
  t.is(finished?.code, 'ZT_DEADLINE');
  t.deepEqual(finished?.revoked, ['cap']);
  t.truthy(world.sink.records.find(r => r.type === 'capability.revoked' && r.capabilityId === 'cap'));
});

test('runaway: a memory bomb ends with ZT_OUT_OF_MEMORY and the host keeps working', async t => {
  const { outcome, world } = await runAlone('oom', { memoryMb: 32, deadlineMs: 20_000 });
  t.is(outcome.error?.code, 'ZT_OUT_OF_MEMORY');
  t.is(world.kernel.getCapability('cap')?.state, 'revoked');
  // The same host launches another agent afterwards.
  world.kernel.registerAgent('b');
  const next = await (await world.launch('b', fixtureAgent('echo'), { input: 'still here' })).result;
  t.deepEqual(next.value, { echoed: 'still here' });
});

test('failure mode keep: a deadline ends the run but leaves the grants live', async t => {
  const world = makeVatWorld({ failureModes: { vatFailure: 'keep' } });
  world.kernel.registerAgent('a');
  world.kernel.issueCapability(new Capability({ id: 'cap', actionType: ActionType.READ, target: '/tmp/none', holder: 'a' }));
  const outcome = await (await world.launch('a', fixtureAgent('spinner'), { capabilities: ['cap'], limits: { deadlineMs: 200 } })).result;
  t.is(outcome.error?.code, 'ZT_DEADLINE');
  t.is(world.kernel.getCapability('cap')?.state, 'live');
});

test('other agents keep working while one spins', async t => {
  const world = makeVatWorld();
  world.kernel.registerAgent('spin');
  world.kernel.registerAgent('echo');
  const spinning = await world.launch('spin', fixtureAgent('spinner'), { limits: { deadlineMs: 2_000 } });
  const echo = await (await world.launch('echo', fixtureAgent('echo'), { input: 7 })).result;
  t.deepEqual(echo.value, { echoed: 7 });
  const spun = await spinning.result;
  t.is(spun.error?.code, 'ZT_DEADLINE');
});

test('terminate ends a run with ZT_TERMINATED', async t => {
  const world = makeVatWorld();
  world.kernel.registerAgent('spin');
  const handle = await world.launch('spin', fixtureAgent('spinner'), { limits: { deadlineMs: 20_000 } });
  const outcome = await handle.terminate('operator says stop');
  t.is(outcome.error?.code, 'ZT_TERMINATED');
  t.is(outcome.error?.message, 'operator says stop');
});

test('revocation mid-run: the agent\'s next call through a cached presence is refused with ZT_REVOKED', async t => {
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  const file = join(dir, 'f.txt');
  writeFileSync(file, 'data');
  const world = makeVatWorld();
  world.kernel.registerAgent('loop');
  world.kernel.issueCapability(new Capability({ id: 'file', actionType: ActionType.READ, target: file, holder: 'loop' }));
  const handle = await world.launch('loop', fixtureAgent('loop-reader'), { capabilities: ['file'] });
  // Revoke once the agent has read a few times.
  for (;;) {
    await new Promise(resolve => setTimeout(resolve, 20));
    if ((world.kernel.getCapability('file')?.uses ?? 0) >= 3) break;
  }
  world.kernel.revokeCapability('file', 'test revokes mid-run');
  const outcome = await handle.result;
  t.is(outcome.status, 'completed');
  const value = outcome.value as { reads: number; code: string };
  t.is(value.code, 'ZT_REVOKED');
  // Every read the agent saw succeed was allowed before the revocation, and
  // no read was allowed after it.
  await world.kernel.flush();
  const records = world.sink.records;
  const revokedAt = records.findIndex(r => r.type === 'capability.revoked');
  const cut = (records[revokedAt]?.inFlight ?? []) as string[];
  const allowedBefore = records.slice(0, revokedAt).filter(r => r.type === 'request' && r.decision === 'allow');
  t.true(value.reads >= 2);
  t.is(value.reads, allowedBefore.length - cut.length);
  t.false(records.slice(revokedAt).some(r => r.type === 'request' && r.decision === 'allow'));
});

test('a denial that is slow to record is not mistaken for an agent waiting on nothing', async t => {
  // Regression: a denied call was not counted as in flight while its
  // decision was being recorded, so a slow audit append looked like an
  // agent with nothing pending (ZT_AGENT_UNSETTLED).
  const world = makeVatWorld();
  world.kernel.registerAgent('r');
  world.kernel.issueCapability(new Capability({ id: 'notes', actionType: ActionType.READ, target: '/tmp/zt-notes', holder: 'r' }));
  world.sink.delay(300);
  const outcome = await (
    await world.launch('r', fixtureAgent('reader'), { capabilities: ['notes'], input: { reads: [['notes', '/etc/passwd']] } })
  ).result;
  t.is(outcome.status, 'completed');
  t.deepEqual(outcome.value, { 'notes:/etc/passwd': 'ZT_WRONG_TARGET' });
});
