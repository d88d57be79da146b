/**
 * Per-vat budgets and the kernel's slices, driven through a real worker vat
 * running the compromised shell (test/_compromised-worker-main.ts): the
 * attacker owns the vat's realm and its side of the wire. Each test asserts
 * the code the attack meets and that other agents and the operator kept
 * working. No test asserts a timing (the bench measures them).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from './_prepare.js';
import { makeTempDir } from './_kernel.js';
import { fixtureAgent } from './_vats.js';
import { logBytes, makeCompromisedWorld, replayFlood, waitForRecord } from './_compromised.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

const setup = (t: { teardown(fn: () => void): void }) => {
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  const file = join(dir, 'f.txt');
  writeFileSync(file, 'data');
  const world = makeCompromisedWorld();
  const grant = (agentId: string, id: string) => {
    world.kernel.registerAgent(agentId);
    world.kernel.issueCapability(new Capability({ id, actionType: ActionType.READ, target: file, holder: agentId }));
  };
  return { world, file, grant };
};

/** While the flood runs: another agent's reads and an operator request complete, allowed. */
const othersStillServed = async (t: { is: (a: unknown, b: unknown, m?: string) => void; deepEqual: (a: unknown, b: unknown) => void }, s: ReturnType<typeof setup>) => {
  const { world, file, grant } = s;
  grant('bystander', 'b-file');
  grant('operator', 'op-file');
  const reads = Array.from({ length: 5 }, () => ['b-file', undefined]);
  const bystander = await (await world.launch('bystander', fixtureAgent('reader'), { capabilities: ['b-file'], input: { reads } })).result;
  t.is(bystander.status, 'completed', 'the other agent completed');
  t.deepEqual(bystander.value, { 'b-file:': 'data' });
  const op = await world.kernel.execute(new ActionRequest({ capabilityId: 'op-file', agentId: 'operator', actionType: ActionType.READ, target: file }), 'api');
  t.is(op.ok, true, 'the operator request was allowed and served');
  const decision = world.sink.records.find(r => r.type === 'request' && r.requestId === op.requestId);
  t.is(decision?.decision, 'allow');
};

test.serial('flood: 30,000 raw calls replayed on the wire are refused with ZT_VAT_BUSY; another agent and the operator are served; the flooder ends at its deadline', async t => {
  // The attacker captures one real call and replays it 30,000 times on the
  // vat's port, then keeps replaying until its vat is ended.
  const s = setup(t);
  s.grant('flooder', 'fl-file');
  const flooder = await s.world.launch('flooder', fixtureAgent('echo'), {
    capabilities: ['fl-file'],
    input: { attack: replayFlood("E(caps['fl-file']).invoke('read', [])", 30_000, 200) },
    limits: { deadlineMs: 8_000 },
  });
  const over = await waitForRecord(s.world.sink.records, r => r.type === 'vat.over-budget' && r.agentId === 'flooder');
  t.like(over, { budget: 'callsInFlight', code: 'ZT_VAT_BUSY', limit: 64 });
  await othersStillServed(t, s);
  const outcome = await flooder.result;
  t.is(outcome.error?.code, 'ZT_DEADLINE', 'the flooder ran until its deadline fired');
  await s.world.kernel.flush();
  const finished = s.world.sink.records.find(r => r.type === 'agent.finished' && r.agentId === 'flooder') as { cost: { refused?: Record<string, number>; peakCallsInFlight: number } };
  t.true((finished.cost.refused?.callsInFlight ?? 0) > 1000, 'the refusals are counted');
  t.true(finished.cost.peakCallsInFlight <= 64);
  // No effect failed for want of descriptors: every flooder outcome that ran is a success or a cut.
  const failed = s.world.sink.records.filter(r => r.type === 'outcome' && r.code === 'ZT_EFFECT_FAILED');
  t.is(failed.length, 0);
});

test.serial('flood: 8 KB log lines in a loop stop being recorded at the run\'s audit budget (ZT_VAT_OVER_BUDGET); others are served; the flooder ends at its deadline', async t => {
  // The attacker calls the kernel facet's `log` with 8 KB lines as fast as
  // the wire takes them.
  const s = setup(t);
  s.world.kernel.registerAgent('chatter');
  const handle = await s.world.launch('chatter', fixtureAgent('echo'), {
    input: {
      attack: `
        const line = 'x'.repeat(8192);
        const k = h.kernel();
        for (;;) {
          for (let i = 0; i < 200; i += 1) void h.E(k).log('log', line);
          await h.sleep(5);
        }`,
    },
    limits: { deadlineMs: 8_000, auditBytes: 256 * 1024 },
  });
  const over = await waitForRecord(s.world.sink.records, r => r.type === 'vat.over-budget' && r.agentId === 'chatter' && r.budget === 'auditBytes');
  if (!over) t.log(JSON.stringify(s.world.sink.records.map(r => [r.type, r.budget ?? r.code, (r.text as string | undefined)?.length])));
  t.like(over, { code: 'ZT_VAT_OVER_BUDGET', limit: 256 * 1024 });
  await othersStillServed(t, s);
  const outcome = await handle.result;
  t.is(outcome.error?.code, 'ZT_DEADLINE');
  await s.world.kernel.flush();
  const lines = s.world.sink.records.filter(r => r.type === 'agent.console' && r.agentId === 'chatter');
  t.true(logBytes(lines) <= 256 * 1024, 'what the lines cost the log stays within the run\'s audit budget');
  const finished = s.world.sink.records.find(r => r.type === 'agent.finished' && r.agentId === 'chatter') as { cost: { refused?: Record<string, number> } };
  t.true((finished.cost.refused?.auditBytes ?? 0) + (finished.cost.refused?.callsPerSecond ?? 0) > 0);
});

test.serial('descriptors: 50,000 unawaited reads from a plain agent are served or refused with ZT_VAT_BUSY / ZT_VAT_OVER_BUDGET, never ZT_EFFECT_FAILED', async t => {
  // A confined agent (no escape) fires 50,000 reads at once; unbounded,
  // each would open a descriptor in the kernel.
  t.timeout(180_000);
  const s = setup(t);
  s.grant('burst', 'burst-file');
  const outcome = await (await s.world.launch('burst', fixtureAgent('burst-reader'), { capabilities: ['burst-file'], input: { n: 50_000, cap: 'burst-file' }, limits: { deadlineMs: 60_000, memoryMb: 1024 } })).result;
  t.is(outcome.status, 'completed', JSON.stringify(outcome.error));
  const counts = outcome.value as Record<string, number>;
  t.true((counts.ok ?? 0) > 0, `some reads were served: ${JSON.stringify(counts)}`);
  t.deepEqual(
    Object.keys(counts).filter(c => !['ok', 'ZT_VAT_BUSY', 'ZT_VAT_OVER_BUDGET'].includes(c)),
    [],
    JSON.stringify(counts),
  );
  t.is(Object.values(counts).reduce((a, b) => a + b, 0), 50_000);
  await othersStillServed(t, s);
});

test.serial('a message larger than the vat\'s messageBytes ends the vat with ZT_VAT_LIMIT_EXCEEDED; another agent is served', async t => {
  // The attacker posts one 2 MB message on the wire.
  const s = setup(t);
  s.world.kernel.registerAgent('big');
  const outcome = await (
    await s.world.launch('big', fixtureAgent('echo'), {
      input: { attack: `h.post({ type: 'CTP_CALL', epoch: 0, questionID: 'q-99', target: 'o-1', method: { body: '["log",["log","' + 'y'.repeat(2e6) + '"]]', slots: [] } }); await h.sleep(60000);` },
      limits: { messageBytes: 1024 * 1024 },
    })
  ).result;
  t.is(outcome.error?.code, 'ZT_VAT_LIMIT_EXCEEDED');
  await othersStillServed(t, s);
});

test.serial('CapTP imports: a call naming 5,000 fresh slots of the vat ends it with ZT_VAT_LIMIT_EXCEEDED', async t => {
  // Every slot a message names makes the kernel's CapTP end import a
  // presence, before the membrane refuses the argument.
  const s = setup(t);
  s.grant('slots', 'slots-file');
  const outcome = await (
    await s.world.launch('slots', fixtureAgent('echo'), {
      capabilities: ['slots-file'],
      input: {
        attack: `
          await h.E(h.caps['slots-file']).invoke('describe', []);
          const call = h.lastCall();
          const slots = Array.from({ length: 5000 }, (_, i) => 'o+' + (1000 + i));
          const refs = slots.map((_, i) => ({ '@qclass': 'slot', index: i }));
          h.post({ ...call, questionID: 'q-777', method: { body: JSON.stringify(['invoke', ['read', [refs]]]), slots } });
          await h.sleep(60000);`,
      },
      limits: { captpImports: 1000 },
    })
  ).result;
  t.is(outcome.error?.code, 'ZT_VAT_LIMIT_EXCEEDED');
  t.is(s.world.kernel.getCapability('slots-file')?.state, 'revoked', 'a vat ended over a hard limit loses its capabilities (vatFailure: revoke)');
});
