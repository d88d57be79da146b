/**
 * The one definition of plain data (src/plain-data.ts): its domain, its
 * bounds, and that the membrane and the agent vat refuse alike.
 */
import { test } from './_prepare.js';
import { makeTestKernel } from './_kernel.js';
import { PLAIN_DATA_CASES, refusalCode } from './_plain-data-cases.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { makeMembrane } from '../src/membrane.js';
import { PLAIN_DATA_LIMITS, copyArgumentList, copyPlainData, recordableString } from '../src/plain-data.js';
import { ActionType, Capability } from '../src/types.js';
import { codeOf, reasonOf } from '../src/errors.js';

const reasonFor = (value: unknown): string | undefined => {
  try {
    copyPlainData(value);
    return undefined;
  } catch (err) {
    return reasonOf(err);
  }
};

test('each value of the table is accepted as a frozen copy the audit log can encode, or refused with ZT_BAD_ARGUMENT (ZT_NOT_RECORDABLE for a lone surrogate)', t => {
  for (const c of PLAIN_DATA_CASES) {
    const value = c.make();
    if (c.vat === 'refused') {
      t.throws(() => copyPlainData(value), { code: refusalCode(c) } as never, c.name);
      continue;
    }
    const copy = copyPlainData(value);
    t.deepEqual(copy, c.recorded, c.name);
    t.true(copy === null || typeof copy !== 'object' || Object.isFrozen(copy), c.name);
    t.notThrows(() => canonicalJson(copy), c.name);
  }
  t.true(Object.is(copyPlainData(-0), 0), '-0 is copied as 0, as the audit log records it');
});

test('string length is bounded in code points, not UTF-16 units', t => {
  const half = PLAIN_DATA_LIMITS.maxStringLength / 2;
  // One more code point than half the bound, each two UTF-16 units: over the bound in units, within it in code points.
  const astral = '\u{1F600}'.repeat(half + 1);
  t.true(astral.length > PLAIN_DATA_LIMITS.maxStringLength);
  t.is(copyPlainData(astral), astral);
  t.regex(reasonFor('x'.repeat(PLAIN_DATA_LIMITS.maxStringLength + 1)) ?? '', /longer than/);
});

test('the total size is bounded, counting a shared subtree each time it occurs', t => {
  const leaf = 'x'.repeat(1024 * 1024);
  const shared = new Array(64).fill(leaf);
  t.regex(reasonFor(new Array(1024).fill(shared)) ?? '', /total size/);
});

test('undefined is an argument not given in a list, an absent property in a record, refused elsewhere', t => {
  t.deepEqual(copyArgumentList(['/x', undefined]), ['/x', undefined]);
  t.deepEqual(copyPlainData({ a: undefined }), {});
  t.throws(() => copyPlainData([undefined]), { code: 'ZT_BAD_ARGUMENT' } as never);
  t.throws(() => copyArgumentList({ 0: 'x', length: 1 }), { code: 'ZT_BAD_ARGUMENT' } as never);
});

test('a __proto__ key stays a key of the copy', t => {
  const value = JSON.parse('{"__proto__": {"polluted": true}}') as object;
  const copy = copyPlainData(value) as Record<string, unknown>;
  t.is(Object.getPrototypeOf(copy), Object.prototype);
  t.deepEqual(Object.keys(copy), ['__proto__']);
});

test('recordableString cuts by code points and replaces lone surrogates', t => {
  t.is(recordableString(`${'a'.repeat(63)}\u{1F600}x`, 64), `${'a'.repeat(63)}\u{1F600}`);
  t.is(recordableString('a\ud800b', 64), 'a\uFFFDb');
});

test('attack: a vat that skips its own check is refused by the membrane with the same reason the agent vat gives', async t => {
  // A compromised agent vat sends arguments without checking them first.
  // The membrane applies the same definition: the agent sees the same code
  // and reason, and one refusal is recorded for each call.
  const { kernel, sink } = makeTestKernel({ effectors: { TOOL: async () => 'ran' } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'tool', actionType: ActionType.TOOL, target: 'srv/tool', holder: 'a' }));
  const { caps } = makeMembrane({ kernel, agentId: 'a', capabilityIds: ['tool'] });
  const caretaker = caps.tool as { invoke(method: string, params: unknown): Promise<unknown> };
  const refusalOf = (p: Promise<unknown>) => p.then(() => undefined, (refusal: unknown) => refusal);
  // The values CapTP can carry from a vat to the kernel.
  for (const value of [NaN, Infinity, 'a\ud800', 1n, [1, undefined], harden({ '\udc00': 1 })]) {
    const params = harden([{ v: value }]);
    const [code, expected] = (() => {
      try {
        copyArgumentList(params);
        return [undefined, undefined];
      } catch (err) {
        return [codeOf(err), `${codeOf(err)}: ${reasonOf(err)}`];
      }
    })();
    t.true(code === 'ZT_BAD_ARGUMENT' || code === 'ZT_NOT_RECORDABLE', String(value));
    const before = sink.records.length;
    t.like(await refusalOf(caretaker.invoke('call', params)), { code, message: expected }, String(value));
    await kernel.flush();
    t.like(sink.records.slice(before), [{ type: 'request', decision: 'deny', code, method: 'call' }]);
  }
  // A method name the agent chose is recorded as the log can encode it.
  t.like(await refusalOf(caretaker.invoke(`${'m'.repeat(63)}\u{1F600}\ud800`, [])), { code: 'ZT_NOT_IN_INTERFACE' });
  await kernel.flush();
  t.like(sink.records[sink.records.length - 1], { code: 'ZT_NOT_IN_INTERFACE', method: `${'m'.repeat(63)}\u{1F600}` });
  // One that is not Unicode text is recorded escaped, and marked so.
  t.like(await refusalOf(caretaker.invoke('x\ud800', [])), { code: 'ZT_NOT_IN_INTERFACE' });
  await kernel.flush();
  t.like(sink.records[sink.records.length - 1], { code: 'ZT_NOT_IN_INTERFACE', method: 'x\\ud800', methodEscaped: 'ZT_NOT_RECORDABLE' });
});
