/**
 * The compromised-vat attacks of test/vat-budget.test.ts and
 * test/vat-records.test.ts, driven through real `process` vats (bubblewrap,
 * seccomp, Node's permission model) whose attacker code runs in the vat's
 * start realm by the test-only escape hook and writes raw frames straight
 * to the vat's wire (fd 3), behind the vat's CapTP. The kernel, vat host,
 * gate, membrane and audit code are the shipped ones. Each test asserts the
 * codes the kernel recorded and that another agent (in a process vat of
 * its own) and the operator kept working. No test asserts a timing.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from './_prepare.js';
import { makeTempDir } from './_kernel.js';
import { fixtureAgent } from './_vats.js';
import { logBytes, waitForRecord } from './_compromised.js';
import { WIRE, canRunProcessVats, makeCompromisedProcessWorld } from './_compromised-process.js';
import { harden } from '../src/harden.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

const bwrapTest = canRunProcessVats ? test.serial : test.skip;

type World = ReturnType<typeof makeCompromisedProcessWorld>;

const setup = (t: { teardown(fn: () => void): void }, opts: Parameters<typeof makeCompromisedProcessWorld>[0] = {}) => {
  const { dir, cleanup } = makeTempDir();
  t.teardown(cleanup);
  const file = join(dir, 'f.txt');
  writeFileSync(file, 'data');
  const world = makeCompromisedProcessWorld(opts);
  const grant = (agentId: string, id: string) => {
    world.kernel.registerAgent(agentId);
    world.kernel.issueCapability(new Capability({ id, actionType: ActionType.READ, target: file, holder: agentId }));
  };
  return { world, file, grant };
};

/** Another agent's reads (in a process vat of its own) and an operator request complete, allowed. */
const othersStillServed = async (
  t: { is: (a: unknown, b: unknown, m?: string) => void; deepEqual: (a: unknown, b: unknown) => void },
  s: { world: World; file: string; grant: (agentId: string, id: string) => void },
  n = 1,
) => {
  const { world, file, grant } = s;
  grant(`bystander-${n}`, `b-file-${n}`);
  grant(`operator-${n}`, `op-file-${n}`);
  const reads = Array.from({ length: 5 }, () => [`b-file-${n}`, undefined]);
  const bystander = await (await world.launch(`bystander-${n}`, fixtureAgent('reader'), { capabilities: [`b-file-${n}`], input: { reads } })).result;
  t.is(bystander.status, 'completed', 'the other agent completed');
  t.deepEqual(bystander.value, { [`b-file-${n}:`]: 'data' });
  const op = await world.kernel.execute(new ActionRequest({ capabilityId: `op-file-${n}`, agentId: `operator-${n}`, actionType: ActionType.READ, target: file }), 'api');
  t.is(op.ok, true, 'the operator request was allowed and served');
  const decision = world.sink.records.find(r => r.type === 'request' && r.requestId === op.requestId);
  t.is(decision?.decision, 'allow');
};

bwrapTest('process vat, flood: 20,000 raw CTP_CALLs written to the wire are refused with ZT_VAT_BUSY; another agent and the operator are served; the flooder ends at its deadline', async t => {
  // The vat's only capability is the kernel's first export to it (`o-1`
  // on the vat's side): the attacker writes calls of `invoke('read', [])`
  // to it as raw frames, 20,000 at once, then 100 every 10 ms for ever,
  // and tells the kernel's quiescence probe it has settled (a lie).
  const s = setup(t);
  s.grant('flooder', 'fl-file');
  const flooder = await s.world.launch('flooder', fixtureAgent('echo'), {
    capabilities: ['fl-file'],
    input: {
      ztTestEscape: `${WIRE}
        lieToProbe();
        let q = 1000000;
        const batch = n => Array.from({ length: n }, () => call('o-1', 'q-' + (q += 1), 'invoke', ['read', []]));
        writeFrames(batch(20000));
        for (;;) {
          writeFrames(batch(100));
          await sleep(10);
        }`,
    },
    limits: { deadlineMs: 8_000 },
  });
  const over = await waitForRecord(s.world.sink.records, r => r.type === 'vat.over-budget' && r.agentId === 'flooder');
  t.like(over, { budget: 'callsInFlight', code: 'ZT_VAT_BUSY', limit: 64 });
  await othersStillServed(t, s);
  const outcome = await flooder.result;
  t.is(outcome.error?.code, 'ZT_DEADLINE', 'the flooder ran until its deadline fired');
  await s.world.kernel.flush();
  const launched = s.world.sink.records.find(r => r.type === 'agent.launched' && r.agentId === 'flooder');
  t.is(launched?.isolation, 'process');
  const finished = s.world.sink.records.find(r => r.type === 'agent.finished' && r.agentId === 'flooder') as { code: string; cost: { refused?: Record<string, number>; peakCallsInFlight: number } };
  t.is(finished.code, 'ZT_DEADLINE');
  t.true((finished.cost.refused?.callsInFlight ?? 0) > 1000, `the refusals are counted: ${JSON.stringify(finished.cost)}`);
  t.true(finished.cost.peakCallsInFlight <= 64);
  const served = s.world.sink.records.filter(r => r.type === 'request' && r.agentId === 'flooder' && r.decision === 'allow');
  t.true(served.length > 0, 'the raw calls were real calls: some were served');
  t.is(s.world.sink.records.filter(r => r.type === 'outcome' && r.code === 'ZT_EFFECT_FAILED').length, 0);
});

/**
 * Attack code that rewrites the vat's own answer to the kernel's `run`:
 * the vat's socket is wrapped (Node's `net.Socket.prototype.write`, in the
 * start realm), and the CTP_RETURN carrying the escape's result goes out
 * as `report` instead. The kernel's question is answered, by the vat, with
 * a report of the vat's choosing.
 */
const forgeRunReport = (report: Record<string, unknown>) => `${WIRE}
  const marker = 'the escape ran; this answer is to be forged';
  rewriteSent(m =>
    m.type === 'CTP_RETURN' && m.result && String(m.result.body).includes(marker)
      ? { ...m, result: { body: JSON.stringify(${JSON.stringify(report)}), slots: [] } }
      : undefined,
  );
  return marker;`;

for (const [claim, message] of [
  ['ZT_TERMINATED', 'terminated by operator'],
  ['ZT_OUT_OF_MEMORY', 'the agent exceeded its memory limit'],
] as const) {
  bwrapTest(`process vat claiming its own end (${claim}) in a forged answer to run: recorded as ZT_VAT_BAD_REPORT with the claim, nothing revoked`, async t => {
    const s = setup(t);
    s.grant('liar', 'cap');
    const outcome = await (
      await s.world.launch('liar', fixtureAgent('echo'), {
        capabilities: ['cap'],
        input: { ztTestEscape: forgeRunReport({ status: 'failed', code: claim, message }) },
      })
    ).result;
    t.is(outcome.error?.code, 'ZT_VAT_BAD_REPORT', JSON.stringify(outcome));
    await s.world.kernel.flush();
    const finished = s.world.sink.records.find(r => r.type === 'agent.finished' && r.agentId === 'liar') as Record<string, unknown>;
    t.is(finished.code, 'ZT_VAT_BAD_REPORT');
    t.deepEqual(finished.claimed, { code: claim, message });
    t.deepEqual(finished.revoked, []);
    t.is(s.world.kernel.getCapability('cap')?.state, 'live', 'nothing is revoked because of the claim');
    t.false(s.world.sink.records.some(r => r.type === 'capability.revoked'));
    await othersStillServed(t, s);
  });
}

bwrapTest('process vat, inflating the log: 20 calls with 1 MB targets leave the log small, each target recorded as a digest; others are served', async t => {
  // A plain agent in a process vat names a megabyte-long URL twenty times
  // (refused), then makes one ordinary request (allowed).
  const s = setup(t, { effectors: { NETWORK: async () => harden({ status: 200, body: '' }) } });
  s.world.kernel.registerAgent('inflater');
  s.world.kernel.issueCapability(new Capability({ id: 'net', actionType: ActionType.NETWORK, target: 'https://example.test/**', holder: 'inflater' }));
  const huge = `https://example.test/${'a'.repeat(1_000_000)}`;
  const fetches = [
    { url: 'https://example.test/', pad: 1_000_000, times: 20 },
    { url: 'https://example.test/ok', headers: 10 },
  ];
  const outcome = await (await s.world.launch('inflater', fixtureAgent('fetcher'), { capabilities: ['net'], input: { cap: 'net', fetches }, limits: { memoryMb: 256 } })).result;
  t.is(outcome.status, 'completed', JSON.stringify(outcome.error));
  const codes = outcome.value as string[];
  t.is(codes.length, 21);
  t.true(codes.slice(0, 20).every(c => c !== 'ok'), 'the huge targets are refused');
  t.is(codes[20], 'ok');
  await s.world.kernel.flush();
  const requests = s.world.sink.records.filter(r => r.type === 'request' && r.agentId === 'inflater') as Array<{ decision: string; target: unknown }>;
  t.is(requests.length, 21, 'every call has its decision record');
  t.true(logBytes(s.world.sink.records) < 128 * 1024, `the whole log is ${logBytes(s.world.sink.records)} bytes`);
  for (const refused of requests.slice(0, 20)) {
    t.is(refused.decision, 'deny');
    const target = refused.target as { length: number; sha256: string; prefix: string };
    t.is(target.length, huge.length);
    t.regex(target.sha256, /^[0-9a-f]{64}$/);
    t.is(target.prefix, huge.slice(0, 32));
  }
  t.is(requests[20]?.decision, 'allow');
  await othersStillServed(t, s);
});

bwrapTest('process vat: a console level outside the fixed set and 200 unknown methods, as raw frames, are recorded (ZT_BAD_ARGUMENT, ZT_NOT_IN_INTERFACE) without a byte on the kernel\'s stdout or stderr', async t => {
  // The attacker asks the kernel for its facet itself (CTP_BOOTSTRAP),
  // calls `log` on it with a terminal escape as the level, then calls 100
  // methods with 10,000-character names on its capability (`o-1`) and on
  // the kernel facet each.
  const s = setup(t);
  s.grant('odd', 'cap');
  const written: string[] = [];
  const { stdout, stderr } = process;
  const out = stdout.write;
  const err = stderr.write;
  const capture = ((chunk: unknown) => {
    written.push(String(chunk));
    return true;
  }) as typeof stdout.write;
  stdout.write = capture;
  stderr.write = capture;
  let outcome;
  try {
    outcome = await (
      await s.world.launch('odd', fixtureAgent('echo'), {
        capabilities: ['cap'],
        input: {
          ztTestEscape: `${WIRE}
            const frames = [{ type: 'CTP_BOOTSTRAP', epoch: 0, questionID: 'q-5000' }, call('q-5000', 'q-5001', 'log', ['\\u001b[31mEVIL', 'coloured'])];
            const name = 'M'.repeat(10000);
            let q = 6000;
            for (let i = 0; i < 100; i += 1) {
              for (const target of ['o-1', 'q-5000']) frames.push(call(target, 'q-' + (q += 1), name + i, ['x']));
            }
            writeFrames(frames);
            return frames.length;`,
        },
      })
    ).result;
  } finally {
    stdout.write = out;
    stderr.write = err;
  }
  t.is(outcome.status, 'completed', JSON.stringify(outcome.error));
  t.deepEqual(written, [], 'nothing from the vat reached the kernel\'s stdout or stderr');
  await s.world.kernel.flush();
  const line = s.world.sink.records.find(r => r.type === 'agent.console' && r.agentId === 'odd') as Record<string, unknown>;
  t.like(line, { level: 'log', levelRefused: 'ZT_BAD_ARGUMENT', text: 'coloured' });
  t.is((line.claimedLevel as { prefix: string }).prefix, '\\u001b[31mEVIL');
  t.like(s.world.sink.records.find(r => r.type === 'vat.refused' && r.agentId === 'odd'), { code: 'ZT_NOT_IN_INTERFACE' });
  const finished = s.world.sink.records.find(r => r.type === 'agent.finished' && r.agentId === 'odd') as { cost: { notInInterface: number } };
  t.is(finished.cost.notInInterface, 200);
  await othersStillServed(t, s);
});
