import { test } from './_prepare.js';
import { fc } from '@fast-check/ava';
import { canonicalJson, isCanonicalJson } from '../src/audit/canonical.js';

const NOT_CANONICAL = { message: /^ZT_AUDIT_NOT_CANONICAL\b/ };

test('RFC 8785 §3.2.2 example: numbers, strings and literals', t => {
  const input = JSON.parse(
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
      ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
      ' "literals": [null, true, false]}',
  );
  t.is(
    canonicalJson(input),
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
      '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
  );
});

test('RFC 8785 §3.2.3 example: keys sort by UTF-16 code units', t => {
  const input = {
    '\u20ac': 'Euro Sign',
    '\r': 'Carriage Return',
    '\ufb33': 'Hebrew Letter Dalet With Dagesh',
    '1': 'One',
    '\ud83d\ude00': 'Emoji: Grinning Face',
    '\u0080': 'Control',
    '\u00f6': 'Latin Small Letter O With Diaeresis',
  };
  // Read the order from the text: Object.keys would list '1' first anyway.
  const text = canonicalJson(input);
  const keys = [...text.matchAll(/[{,]"((?:[^"\\]|\\.)*)":/gu)].map(m => JSON.parse(`"${m[1]}"`));
  t.deepEqual(keys, ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33']);
});

test('no whitespace, nested structures, -0 is 0, empty containers', t => {
  t.is(canonicalJson({ b: [1, { d: 2, c: [] }], a: {} }), '{"a":{},"b":[1,{"c":[],"d":2}]}');
  t.is(canonicalJson(-0), '0');
  t.is(canonicalJson([1e21, 1e-7, 0.1, -5]), '[1e+21,1e-7,0.1,-5]');
  t.is(canonicalJson(Object.create(null)), '{}');
  const shared = { x: 1 };
  t.is(canonicalJson([shared, shared]), '[{"x":1},{"x":1}]', 'shared, acyclic references are fine');
});

test('values outside the JSON domain are refused with ZT_AUDIT_NOT_CANONICAL', t => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const withGetter = Object.defineProperty({}, 'x', { get: () => 1, enumerable: true });
  const hidden = Object.defineProperty({}, 'x', { value: 1, enumerable: false });
  const decorated = Object.assign([1], { extra: true });
  class Point {
    x = 1;
  }
  const bad: Array<[string, unknown]> = [
    ['undefined', undefined],
    ['undefined member', { a: undefined }],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', [-Infinity]],
    ['bigint', 1n],
    ['function', () => 1],
    ['symbol', Symbol('s')],
    ['symbol key', { [Symbol('k')]: 1 }],
    ['Date', new Date(0)],
    ['Map', new Map()],
    ['Uint8Array', new Uint8Array(1)],
    ['class instance', new Point()],
    ['toJSON is not honoured', { toJSON: () => 'x' }],
    ['cycle', cyclic],
    ['getter', withGetter],
    ['non-enumerable', hidden],
    ['sparse array', [1, , 3]],
    ['decorated array', decorated],
    ['lone high surrogate', '\ud800'],
    ['lone low surrogate key', { '\udc00': 1 }],
  ];
  for (const [label, value] of bad) {
    t.throws(() => canonicalJson(value), NOT_CANONICAL, label);
  }
  t.throws(() => canonicalJson({ a: [{ b: NaN }] }), { message: /\$\.a\[0\]\.b/ }, 'names the path');
});

test('isCanonicalJson accepts exactly the canonical encodings', t => {
  t.true(isCanonicalJson('{"a":1,"b":[true,null]}'));
  t.false(isCanonicalJson('{"b":1,"a":2}'));
  t.false(isCanonicalJson('{"a": 1}'));
  t.false(isCanonicalJson('1.0'));
  t.false(isCanonicalJson('not json'));
});

// JSON values with -0 normalised, since canonical JSON (rightly) maps it to 0.
const jsonValue = fc
  .jsonValue()
  .map(v => JSON.parse(JSON.stringify(v)) as unknown);

const shuffleKeys = (v: unknown, rand: () => number): unknown => {
  if (Array.isArray(v)) return v.map(x => shuffleKeys(x, rand));
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v);
    for (let i = entries.length - 1; i > 0; i -= 1) {
      const j = Math.floor(rand() * (i + 1));
      [entries[i], entries[j]] = [entries[j]!, entries[i]!];
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of entries) {
      Object.defineProperty(out, k, {
        value: shuffleKeys(x, rand),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return v;
};

test('property: parse(canonical(x)) deep-equals x, canonical is idempotent and order-independent', t => {
  fc.assert(
    fc.property(jsonValue, fc.integer(), (value, seed) => {
      const text = canonicalJson(value);
      t.deepEqual(JSON.parse(text), value);
      t.is(canonicalJson(JSON.parse(text)), text);
      t.true(isCanonicalJson(text));
      let state = seed >>> 0;
      const rand = () => {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        return state / 2 ** 32;
      };
      t.is(canonicalJson(shuffleKeys(value, rand)), text);
    }),
    { numRuns: 300 },
  );
});
