/**
 * Records the agent cannot inflate, and a run's end the vat cannot write:
 * driven through real worker vats, plain agents and the compromised shell
 * (test/_compromised-worker-main.ts).
 */
import { test } from './_prepare.js';
import { fixtureAgent } from './_vats.js';
import { logBytes, makeCompromisedWorld } from './_compromised.js';
import { ActionType, Capability } from '../src/types.js';

test('inflating the log: 20 calls with 1 MB targets and a fetch with 40,000 headers leave the log small, each recorded as a digest', async t => {
  // A plain agent names a megabyte-long URL twenty times (refused) and
  // sends one request with 40,000 headers (allowed): today both were
  // recorded verbatim, 84 MB and 41 MB.
  const world = makeCompromisedWorld({ effectors: { NETWORK: async () => harden({ status: 200, body: '' }) } });
  world.kernel.registerAgent('inflater');
  world.kernel.issueCapability(new Capability({ id: 'net', actionType: ActionType.NETWORK, target: 'https://example.test/**', holder: 'inflater' }));
  const huge = `https://example.test/${'a'.repeat(1_000_000)}`;
  const fetches = [
    { url: 'https://example.test/', pad: 1_000_000, times: 20 },
    { url: 'https://example.test/ok', headers: 40_000 },
  ];
  const outcome = await (await world.launch('inflater', fixtureAgent('fetcher'), { capabilities: ['net'], input: { cap: 'net', fetches }, limits: { memoryMb: 256 } })).result;
  t.is(outcome.status, 'completed', JSON.stringify(outcome.error));
  const codes = outcome.value as string[];
  t.is(codes.length, 21);
  t.true(codes.slice(0, 20).every(c => c !== 'ok'), 'the huge targets are refused');
  t.is(codes[20], 'ok');
  await world.kernel.flush();
  const requests = world.sink.records.filter(r => r.type === 'request' && r.agentId === 'inflater');
  t.is(requests.length, 21, 'every call has its decision record');
  t.true(logBytes(world.sink.records) < 128 * 1024, `the whole log is ${logBytes(world.sink.records)} bytes`);
  const refused = requests[0] as { target: { length: number; sha256: string; prefix: string } };
  t.is(refused.target.length, huge.length);
  t.regex(refused.target.sha256, /^[0-9a-f]{64}$/);
  t.is(refused.target.prefix, huge.slice(0, 32));
  const allowed = requests[20] as { decision: string; args: { headers: { digest: { length: number; sha256: string } } } };
  t.is(allowed.decision, 'allow');
  t.true(allowed.args.headers.digest.length > 40_000 * 8);
  t.regex(allowed.args.headers.digest.sha256, /^[0-9a-f]{64}$/);
});

test('console lines are cut on code points: a surrogate pair at the cut is never split', async t => {
  // 4,095 units then an emoji (two units): a cut at 4,096 units would
  // leave half a pair.
  const world = makeCompromisedWorld();
  world.kernel.registerAgent('emoji');
  const text = `${'a'.repeat(4095)}\u{1F600}tail`;
  const outcome = await (await world.launch('emoji', fixtureAgent('logger'), { input: { lines: [['log', text]] } })).result;
  t.is(outcome.status, 'completed');
  await world.kernel.flush();
  const line = world.sink.records.find(r => r.type === 'agent.console') as { text: string };
  t.true(line.text.startsWith(`${'a'.repeat(4095)}…[truncated`), line.text.slice(4090, 4110));
  t.false(line.text.includes('\uFFFD'));
});

test('a console line that is not Unicode (a lone surrogate) is recorded escaped and marked ZT_NOT_RECORDABLE; the log goes on', async t => {
  const world = makeCompromisedWorld();
  world.kernel.registerAgent('printer');
  const outcome = await (await world.launch('printer', fixtureAgent('logger'), { input: { lines: [['log', 'half a pair: ', 0xd800], ['info', 'after it']] } })).result;
  t.is(outcome.status, 'completed');
  await world.kernel.flush();
  const lines = world.sink.records.filter(r => r.type === 'agent.console') as Array<{ text: string; escaped?: string; level: string }>;
  t.deepEqual(
    lines.map(l => [l.level, l.text, l.escaped]),
    [
      ['log', 'half a pair: \\ud800', 'ZT_NOT_RECORDABLE'],
      ['info', 'after it', undefined],
    ],
  );
  t.true(world.sink.records.some(r => r.type === 'agent.finished'), 'the run is on record after the line');
});

for (const [claim, message] of [
  ['ZT_TERMINATED', 'terminated by operator'],
  ['ZT_OUT_OF_MEMORY', 'the agent exceeded its memory limit'],
  ['ZT_DEADLINE', 'the agent ran past its deadline'],
] as const) {
  test(`a vat claiming its own end (${claim}) is recorded as a claim: ZT_VAT_BAD_REPORT, nothing revoked`, async t => {
    // The compromised vat reports the kernel's own codes for its end.
    const world = makeCompromisedWorld();
    world.kernel.registerAgent('liar');
    world.kernel.issueCapability(new Capability({ id: 'cap', actionType: ActionType.READ, target: '/tmp/none', holder: 'liar' }));
    const outcome = await (
      await world.launch('liar', fixtureAgent('echo'), {
        capabilities: ['cap'],
        input: { attack: `return { status: 'failed', code: '${claim}', message: '${message}' };` },
      })
    ).result;
    t.is(outcome.error?.code, 'ZT_VAT_BAD_REPORT');
    await world.kernel.flush();
    const finished = world.sink.records.find(r => r.type === 'agent.finished') as Record<string, unknown>;
    t.is(finished.code, 'ZT_VAT_BAD_REPORT');
    t.deepEqual(finished.claimed, { code: claim, message });
    t.deepEqual(finished.revoked, []);
    t.is(world.kernel.getCapability('cap')?.state, 'live', 'nothing is revoked because of the claim');
    t.false(world.sink.records.some(r => r.type === 'capability.revoked'));
  });
}

test.serial('a console level outside the fixed set is recorded as log with ZT_BAD_ARGUMENT; unknown methods are refused without a byte on the kernel\'s stdout or stderr', async t => {
  // The compromised vat calls the kernel facet's `log` with a terminal
  // escape as its level, and 200 methods with 10,000-character names on
  // its capability and on the kernel facet (the kernel's marshal used to
  // log each one).
  const world = makeCompromisedWorld();
  world.kernel.registerAgent('odd');
  world.kernel.issueCapability(new Capability({ id: 'cap', actionType: ActionType.READ, target: '/tmp/none', holder: 'odd' }));
  const written: string[] = [];
  const { stdout, stderr } = process;
  const out = stdout.write;
  const err = stderr.write;
  stdout.write = ((chunk: unknown) => {
    written.push(String(chunk));
    return true;
  }) as typeof stdout.write;
  stderr.write = ((chunk: unknown) => {
    written.push(String(chunk));
    return true;
  }) as typeof stderr.write;
  try {
    const outcome = await (
      await world.launch('odd', fixtureAgent('echo'), {
        capabilities: ['cap'],
        input: {
          attack: `
            const k = await h.kernel();
            await h.E(k).log('\\u001b[31mEVIL', 'coloured');
            const name = 'M'.repeat(10000);
            const codes = [];
            for (let i = 0; i < 100; i += 1) {
              for (const target of [h.caps.cap, k]) {
                try { await h.E(target)[name + i]('x'); codes.push('answered'); } catch (e) { codes.push(e.code); }
              }
            }
            for (const [target, method] of [[h.caps.cap, 'log'], [k, 'invoke']]) {
              try { await h.E(target)[method]('read', []); codes.push('answered'); } catch (e) { codes.push(e.code); }
            }
            return { status: 'returned', value: [...new Set(codes)] };`,
        },
      })
    ).result;
    t.deepEqual(outcome.value, ['ZT_NOT_IN_INTERFACE']);
  } finally {
    stdout.write = out;
    stderr.write = err;
  }
  t.deepEqual(written, [], 'nothing from the vat reached the kernel\'s stdout or stderr');
  await world.kernel.flush();
  const line = world.sink.records.find(r => r.type === 'agent.console') as Record<string, unknown>;
  t.like(line, { level: 'log', levelRefused: 'ZT_BAD_ARGUMENT', text: 'coloured' });
  t.is((line.claimedLevel as { prefix: string }).prefix, '\\u001b[31mEVIL');
  t.like(world.sink.records.find(r => r.type === 'vat.refused'), { code: 'ZT_NOT_IN_INTERFACE' });
  const finished = world.sink.records.find(r => r.type === 'agent.finished') as { cost: { notInInterface: number } };
  t.is(finished.cost.notInInterface, 200);
});
