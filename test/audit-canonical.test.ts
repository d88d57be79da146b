import { test } from './_prepare.js';
import { fc } from '@fast-check/ava';
import { dictionary } from './_arbitraries.js';
import { canonicalJson, canonicalJsonOfParsed, isCanonicalJson } from '../src/audit/canonical.js';
import { compareKeyToName, scanCanonicalObjectBytes } from '../src/audit/canonical-scan.js';


const utf8 = (text: string) => new TextEncoder().encode(text);
/** The byte scanner on a whole text; its top-level keys, decoded. */
const scanText = (text: string): string[] | undefined => {
  const bytes = utf8(text);
  const scan = scanCanonicalObjectBytes(bytes, 0, bytes.length);
  if (!scan) return undefined;
  return scan.keyStarts.map((start, k) => JSON.parse(new TextDecoder().decode(bytes.subarray(start, scan.keyEnds[k]))) as string);
};

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

/**
 * The reference encoder the fast paths are held to: RFC 8785 written as
 * plainly as possible, for JSON.parse output.
 */
const reference = (v: unknown): string => {
  if (Array.isArray(v)) return `[${v.map(reference).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `{${keys.map(k => `${JSON.stringify(k)}:${reference((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
};

// Strings over the characters that matter to the encoders: escapes,
// controls, DEL, non-ASCII, surrogate pairs and (refused) lone surrogates.
const trickyString = fc
  .array(
    fc.constantFrom('a', 'Z', '"', '\\', '/', '\b', '\t', '\n', '\f', '\r', '\u0000', '\u001f', '\u007f',
      'é', '\u2028', '€', '\ud83d\ude00', '\ud800', '\udc00', '0', '-', '1e5'),
    { maxLength: 6 },
  )
  .map(parts => parts.join(''));
const trickyValue = fc.letrec(tie => ({
  value: fc.oneof(
    { depthSize: 'small' },
    trickyString,
    fc.double(),
    fc.integer(),
    fc.constantFrom(0, -0, 1e21, 1e-7, 5e-324, 2 ** 53, -1, 0.1, true, false, null),
    fc.array(tie('value'), { maxLength: 4 }),
    dictionary(fc.oneof(trickyString, fc.constantFrom('10', '9', '__proto__', 'seq', 'constructor', 'hasOwnProperty', 'toString')), tie('value'), {
      maxKeys: 5,
    }),
  ),
})).value;

const isWellFormedDeep = (v: unknown): boolean => {
  if (typeof v === 'string') return !/[\ud800-\udfff]/.test(v.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''));
  if (typeof v === 'number') return Number.isFinite(v);
  if (Array.isArray(v)) return v.every(isWellFormedDeep);
  if (v !== null && typeof v === 'object') {
    return Object.keys(v).every(k => isWellFormedDeep(k) && isWellFormedDeep((v as Record<string, unknown>)[k]));
  }
  return true;
};

test('property: the fast encoders agree with the reference encoder, and refuse exactly what it cannot encode', t => {
  fc.assert(
    fc.property(trickyValue, value => {
      if (isWellFormedDeep(value)) {
        const expected = reference(value);
        t.is(canonicalJson(value), expected);
        if (value !== null && typeof value === 'object') {
          // Through JSON text, as the audit log receives it.
          const reparsed = JSON.parse(JSON.stringify(value)) as unknown;
          t.is(canonicalJsonOfParsed(reparsed), expected);
        }
      } else {
        t.throws(() => canonicalJson(value), NOT_CANONICAL);
      }
    }),
    { numRuns: 1000 },
  );
});

test('keys named like Object.prototype members are ordinary keys', t => {
  const value = JSON.parse('{"toString":1,"constructor":{"hasOwnProperty":true},"__proto__":[2],"valueOf":"v"}') as unknown;
  t.is(canonicalJson(value), '{"__proto__":[2],"constructor":{"hasOwnProperty":true},"toString":1,"valueOf":"v"}');
  t.is(canonicalJson({ constructor: 'c', isPrototypeOf: null }), '{"constructor":"c","isPrototypeOf":null}');
});

test('nesting deeper than the fast path is still encoded, and cycles refused', t => {
  let deep: unknown = 1;
  for (let i = 0; i < 200; i += 1) deep = i % 2 ? [deep] : { k: deep };
  t.is(canonicalJson(deep), reference(deep));
  const a: unknown[] = [];
  a.push([a]);
  t.throws(() => canonicalJson(a), { message: /^ZT_AUDIT_NOT_CANONICAL: cycle/ });
  t.is(canonicalJson({ __proto__: null, 10: 1, 9: 2, b: 3 }), '{"10":1,"9":2,"b":3}', 'index-like keys sort as strings');
});

test('the byte scan accepts canonical object texts and finds their members', t => {
  const text = canonicalJson({ b: [1, { z: 'é"' }], a: 'x', '€': -1.5, c: { '\n': 1, y: [] } });
  t.deepEqual(scanText(text), ['a', 'b', 'c', '€']);
  t.deepEqual(scanText('{}'), []);
  // Inside a larger buffer, between other bytes.
  const bytes = utf8(`xx${text}\nyy`);
  t.truthy(scanCanonicalObjectBytes(bytes, 2, 2 + utf8(text).length));
  t.falsy(scanCanonicalObjectBytes(bytes, 2, 3 + utf8(text).length), 'the region must end where the object does');
  const refused = [
    '', '[]', '1', '"a"', '{"a":1} ', ' {"a":1}', '{"a": 1}', '{"b":1,"a":2}', '{"a":1,"a":2}',
    '{"a":01}', '{"a":-0}', '{"a":1.0}', '{"a":1E5}', '{"a":1e5}', '{"a":+1}', '{"a":.5}', '{"a":-}',
    '{"a":"\\u0041"}', '{"a":"\\u000A"}', '{"a":"\\u000a"}', '{"a":"\\u0008"}', '{"a":"\\u007f"}',
    '{"a":"\\/"}', '{"a":"\\ud800"}', '{"a":"\u0001"}', '{"a":tru}', '{"a":[1,]}', '{"a":{}',
    '{"a":1,}', '{a:1}', '{"a":NaN}', '{"a":Infinity}', '{"a":1e400}', '{"a":"x', '{"a":"x\\',
    '{"b":{"y":1,"x":2}}', '{"\\n":1}', `{"a":${'1'.repeat(40)}}`,
  ];
  for (const bad of refused) t.is(scanText(bad), undefined, bad);
  // UTF-16 order, not UTF-8 byte order: U+FF61 sorts after U+1F600 (a surrogate pair).
  t.true(isCanonicalJson('{"x":{"\ud83d\ude00":1,"\uff61":2}}'));
  t.deepEqual(scanText('{"x":{"\ud83d\ude00":1,"\uff61":2}}'), ['x']);
  t.is(scanText('{"x":{"\uff61":2,"\ud83d\ude00":1}}'), undefined);
});

test('compareKeyToName orders top-level keys against ASCII names as UTF-16 does', t => {
  const text = '{"a":1,"sep":2,"seq0":3,"é":4}';
  const bytes = utf8(text);
  const scan = scanCanonicalObjectBytes(bytes, 0, bytes.length)!;
  const seq = utf8('seq');
  t.deepEqual(
    scan.keyStarts.map((_, k) => Math.sign(compareKeyToName(bytes, scan, k, seq))),
    [-1, -1, 1, 1],
  );
});

test('property: the byte scan never accepts a text that is not canonical (differential, mutated texts)', t => {
  const objectValue = dictionary(trickyString, trickyValue, { maxKeys: 6 }).filter(isWellFormedDeep);
  fc.assert(
    fc.property(
      objectValue,
      fc.nat(),
      fc.constantFrom('', ' ', '"', '\\', ',', '0', '-', '.', 'e', 'E', '+', '{', '}', '[', ']', ':', 'u', 'é', '\u0001'),
      fc.constantFrom('insert', 'replace', 'delete'),
      (value, at, ch, edit) => {
        const text = canonicalJson(value);
        const accepted = scanText(text);
        // Canonical texts are accepted unless a top-level key has an escape
        // (those take the parsing path by design).
        if (!Object.keys(value).some(k => JSON.stringify(k).includes('\\'))) {
          t.deepEqual(accepted, Object.keys(value).sort(), 'a canonical text is accepted, with its keys');
        }
        const i = text.length === 0 ? 0 : at % text.length;
        const mutated =
          edit === 'insert'
            ? text.slice(0, i) + ch + text.slice(i)
            : edit === 'replace'
              ? text.slice(0, i) + ch + text.slice(i + 1)
              : text.slice(0, i) + text.slice(i + 1);
        // The scan's precondition: UTF-8 of a well-formed string (the log
        // sends other batches down the parsing path).
        const wellFormed = !/[\ud800-\udfff]/.test(mutated.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''));
        const keys = wellFormed ? scanText(mutated) : undefined;
        if (keys) {
          t.true(isCanonicalJson(mutated), `accepted ${JSON.stringify(mutated)}`);
          t.deepEqual(keys, Object.keys(JSON.parse(mutated) as object).sort());
        }
      },
    ),
    { numRuns: 3000 },
  );
});

test('property: the byte scan accepts only valid UTF-8 of canonical texts (byte-level mutations)', t => {
  const objectValue = dictionary(trickyString, trickyValue, { maxKeys: 5 }).filter(isWellFormedDeep);
  const fatal = new TextDecoder('utf-8', { fatal: true });
  fc.assert(
    fc.property(objectValue, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('insert', 'replace'), (value, at, byte, edit) => {
      const bytes = utf8(canonicalJson(value));
      const i = at % bytes.length;
      const mutated =
        edit === 'insert'
          ? Uint8Array.from([...bytes.subarray(0, i), byte, ...bytes.subarray(i)])
          : Uint8Array.from(bytes, (b, k) => (k === i ? byte : b));
      if (scanCanonicalObjectBytes(mutated, 0, mutated.length)) {
        let text: string | undefined;
        try {
          text = fatal.decode(mutated);
        } catch {
          text = undefined;
        }
        t.true(text !== undefined && isCanonicalJson(text), `accepted ${JSON.stringify([...mutated])}`);
      }
    }),
    { numRuns: 3000 },
  );
  // Invalid sequences inside a string: overlong, surrogate, truncated, too large, stray continuation.
  for (const seq of [[0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80], [0x80], [0xf8, 0x88, 0x80, 0x80, 0x80]]) {
    const bytes = Uint8Array.from([...utf8('{"a":"x'), ...seq, ...utf8('"}')]);
    t.is(scanCanonicalObjectBytes(bytes, 0, bytes.length), undefined, JSON.stringify(seq));
  }
  const valid = utf8('{"a":"é€😀"}');
  t.truthy(scanCanonicalObjectBytes(valid, 0, valid.length));
});
