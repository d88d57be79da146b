/**
 * The kernel's turns over vat traffic (src/vat-scheduler.ts) and a run's
 * meter (src/vat-budget.ts), with the turn and the clock in the test's
 * hands: properties that hold whatever a vat sends.
 */
import { test } from './_prepare.js';
import { ZtError } from '../src/errors.js';
import { DEFAULT_VAT_BUDGETS, makeRunMeter, resolveVatBudgets } from '../src/vat-budget.js';
import { makeVatScheduler } from '../src/vat-scheduler.js';
import { measureMessage } from '../src/vat-gate.js';

/** A scheduler whose callbacks run only when the test says: one `turn()` runs what was queued before it. */
const manual = (opts = {}) => {
  let queued: Array<() => void> = [];
  const scheduler = makeVatScheduler({ yieldTurn: fn => void queued.push(fn) }, opts);
  const turn = () => {
    const now = queued;
    queued = [];
    for (const fn of now) fn();
  };
  return { scheduler, turn, pending: () => queued.length };
};

test('a flooding vat gets one slice per round: a quiet vat\'s message is delivered in the first round after it arrives', t => {
  // A vat queues 10,000 messages; another queues one. Without slices the
  // quiet vat would wait for all 10,000.
  const { scheduler, turn } = manual({ sliceMessages: 8 });
  const delivered: string[] = [];
  const flood = scheduler.open(m => delivered.push(String(m)));
  const quiet = scheduler.open(m => delivered.push(String(m)));
  for (let i = 0; i < 10_000; i += 1) flood.push(`f${i}`, 10);
  quiet.push('q', 10);
  turn(); // plans round 1
  turn(); // delivers round 1, plans round 2
  t.deepEqual(delivered, [...Array.from({ length: 8 }, (_, i) => `f${i}`), 'q']);
  turn();
  t.is(delivered.length, 17, 'one more slice of the flood per round');
});

test('messages of one vat are delivered in order, each once; a closed queue delivers nothing more', t => {
  const { scheduler, turn, pending } = manual({ sliceMessages: 3, sliceBytes: 25 });
  const got: number[] = [];
  const q = scheduler.open(m => got.push(m as number));
  for (let i = 0; i < 20; i += 1) q.push(i, 10);
  while (pending() > 0 && got.length < 10) turn();
  t.deepEqual(got, Array.from({ length: got.length }, (_, i) => i));
  q.close();
  while (pending() > 0) turn();
  t.true(got.length < 20);
  t.is(q.queuedBytes(), 0);
});

test('a slice stops at its byte bound (but always delivers one message)', t => {
  const { scheduler, turn } = manual({ sliceMessages: 100, sliceBytes: 1000 });
  const got: number[] = [];
  const q = scheduler.open(m => got.push(m as number));
  q.push(1, 5000);
  q.push(2, 400);
  q.push(3, 400);
  q.push(4, 400);
  turn();
  turn();
  t.deepEqual(got, [1], 'a message over the bound goes alone');
  turn();
  t.deepEqual(got, [1, 2, 3, 4], 'the next slice takes messages while under the bound');
});

test('the meter refuses past calls in flight (ZT_VAT_BUSY), rate and audit bytes (ZT_VAT_OVER_BUDGET), recording each budget once', t => {
  let clock = 0;
  const first: string[] = [];
  const budgets = resolveVatBudgets({ callsInFlight: 2, callsPerSecond: 5, auditBytes: 1000 }, DEFAULT_VAT_BUDGETS, []);
  const meter = makeRunMeter(budgets, { now: () => clock, firstRefusal: (b, _limit, code) => first.push(`${b}:${code}`) });
  t.is(meter.admitCall(100), undefined);
  t.is(meter.admitCall(100), undefined);
  t.is(meter.admitCall(100), 'ZT_VAT_BUSY');
  t.is(meter.precheck('call'), 'ZT_VAT_BUSY');
  meter.endCall();
  meter.endCall();
  t.is(meter.admitCall(100), undefined);
  meter.endCall();
  t.is(meter.admitLine(100), true);
  t.is(meter.admitLine(100), true);
  t.is(meter.admitLine(100), false, 'the sixth call or line in one second is over the rate');
  t.is(meter.precheck('line'), 'ZT_VAT_OVER_BUDGET');
  clock = 1000;
  t.is(meter.admitCall(600), 'ZT_VAT_OVER_BUDGET', 'over the audit bytes left');
  t.is(meter.admitLine(100), true);
  t.deepEqual(first, ['callsInFlight:ZT_VAT_BUSY', 'callsPerSecond:ZT_VAT_OVER_BUDGET', 'auditBytes:ZT_VAT_OVER_BUDGET']);
  t.like(meter.summary(), { auditBytes: 600, peakCallsInFlight: 2, refused: { callsInFlight: 2, callsPerSecond: 2, auditBytes: 1 } });
});

test('effects beyond effectsInFlight wait their turn; stopping the meter refuses the waiting ones', async t => {
  const budgets = resolveVatBudgets({ effectsInFlight: 1 }, DEFAULT_VAT_BUDGETS, []);
  const meter = makeRunMeter(budgets, { now: () => 0, firstRefusal: () => undefined });
  await meter.acquireEffect();
  let second = false;
  const waiting = meter.acquireEffect().then(() => {
    second = true;
  });
  const third = meter.acquireEffect();
  await Promise.resolve();
  t.false(second);
  meter.releaseEffect();
  await waiting;
  t.true(second);
  meter.stop(new ZtError('ZT_TERMINATED'));
  await t.throwsAsync(third, { code: 'ZT_TERMINATED' } as never);
});

test('budgets: unknown names and bad values are refused with ZT_BAD_ARGUMENT', t => {
  for (const raw of [{ callsInFlight: 0 }, { callsInFlight: 1.5 }, { auditBytes: '1' }, { bogus: 1 }, { messageBytes: 100, queuedBytes: 10 }, 'x']) {
    t.throws(() => resolveVatBudgets(raw, DEFAULT_VAT_BUDGETS, []), { code: 'ZT_BAD_ARGUMENT' } as never, JSON.stringify(raw));
  }
  t.deepEqual(resolveVatBudgets({ deadlineMs: 5 }, DEFAULT_VAT_BUDGETS, ['deadlineMs']), DEFAULT_VAT_BUDGETS);
});

test('a message is measured with a walk that stops at the bound: too large or too deep is -1', t => {
  t.true(measureMessage({ type: 'CTP_CALL', method: { body: 'x'.repeat(100), slots: ['o+1'] } }, 1000) > 100);
  t.is(measureMessage({ type: 'CTP_CALL', method: { body: 'x'.repeat(2000), slots: [] } }, 1000), -1);
  t.is(measureMessage({ a: { b: { c: { d: { e: 1 } } } } }, 1000), -1);
  t.is(measureMessage({ slots: new Array(5000).fill('o+1') }, 1000), -1);
});
