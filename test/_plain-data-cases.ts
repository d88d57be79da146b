/**
 * The table of argument values checked at every boundary into the kernel
 * (src/plain-data.ts): the same names as the `argument-probe` fixture agent
 * builds in its vat. `vat` is what the membrane does with the value an
 * agent passes; `api` what the seed API does with it as an argument of
 * `executeAction`, after the host's structured clone (which runs getters
 * and turns class instances into plain records in the caller's own process,
 * before anything reaches the kernel). `recorded` is the copy the kernel
 * acts on and records, for a value it accepts; `code` the refusal's code
 * when it is not ZT_BAD_ARGUMENT.
 */
export type Verdict = 'accepted' | 'refused';

export interface PlainDataCase {
  readonly name: string;
  readonly make: () => unknown;
  readonly vat: Verdict;
  readonly api: Verdict;
  readonly recorded?: unknown;
  /** The code of a refusal: ZT_BAD_ARGUMENT, or ZT_NOT_RECORDABLE for text the log cannot record. */
  readonly code?: 'ZT_NOT_RECORDABLE';
}

/** The code a refused case is refused with. */
export const refusalCode = (c: PlainDataCase): string => c.code ?? 'ZT_BAD_ARGUMENT';

const deep = (n: number): unknown => {
  let v: unknown = 0;
  for (let i = 0; i < n; i += 1) v = [v];
  return v;
};

export const PLAIN_DATA_CASES: readonly PlainDataCase[] = [
  { name: 'plain', make: () => ({ a: [1, 'x', true, null], b: { c: -1.5 } }), vat: 'accepted', api: 'accepted', recorded: { a: [1, 'x', true, null], b: { c: -1.5 } } },
  { name: 'nan', make: () => NaN, vat: 'refused', api: 'refused' },
  { name: 'infinity', make: () => Infinity, vat: 'refused', api: 'refused' },
  { name: 'minus-infinity', make: () => -Infinity, vat: 'refused', api: 'refused' },
  { name: 'minus-zero', make: () => -0, vat: 'accepted', api: 'accepted', recorded: 0 },
  { name: 'lone-surrogate', make: () => 'a\ud800b', vat: 'refused', api: 'refused', code: 'ZT_NOT_RECORDABLE' },
  { name: 'lone-surrogate-key', make: () => ({ ['\udc00']: 1 }), vat: 'refused', api: 'refused', code: 'ZT_NOT_RECORDABLE' },
  { name: 'sparse-array', make: () => [1, , 3], vat: 'refused', api: 'refused' },
  { name: 'huge-array', make: () => new Array(65_537).fill(0), vat: 'refused', api: 'refused' },
  { name: 'huge-string', make: () => 'x'.repeat(16 * 1024 * 1024 + 1), vat: 'refused', api: 'refused' },
  { name: 'deep-nesting', make: () => deep(70), vat: 'refused', api: 'refused' },
  { name: 'date', make: () => new Date(0), vat: 'refused', api: 'refused' },
  { name: 'map', make: () => new Map([['a', 1]]), vat: 'refused', api: 'refused' },
  {
    name: 'class-instance',
    make: () =>
      new (class Point {
        x = 1;
      })(),
    vat: 'refused',
    api: 'accepted',
    recorded: { x: 1 },
  },
  { name: 'null-prototype', make: () => Object.assign(Object.create(null) as object, { a: 1 }), vat: 'accepted', api: 'accepted', recorded: { a: 1 } },
  { name: 'symbol', make: () => Symbol('s'), vat: 'refused', api: 'refused' },
  { name: 'bigint', make: () => 1n, vat: 'refused', api: 'refused' },
  { name: 'undefined-in-array', make: () => [1, undefined], vat: 'refused', api: 'refused' },
  { name: 'undefined-property', make: () => ({ a: undefined, b: 1 }), vat: 'accepted', api: 'accepted', recorded: { b: 1 } },
  {
    name: 'getter',
    make: () => ({
      get a() {
        return 1;
      },
    }),
    vat: 'refused',
    api: 'accepted',
    recorded: { a: 1 },
  },
  {
    name: 'cycle',
    make: () => {
      const o: Record<string, unknown> = { a: 1 };
      o.self = o;
      return o;
    },
    vat: 'refused',
    api: 'refused',
  },
  { name: 'function', make: () => () => 1, vat: 'refused', api: 'refused' },
];
