import { fc, testProp } from '@fast-check/ava';
import { test } from './_prepare.js';
import { codeOf } from '../src/errors.js';
import { compileGlob, globSyntaxProblem } from '../src/glob.js';

// Reference semantics, as regular expressions (fine for the short inputs of
// the properties below; these are the backtracking forms the matcher must
// agree with without inheriting their worst case).
const escape = (s: string) => s.replace(/[.+^${}()|[\]\\?*]/g, '\\$&');
const plainReference = (glob: string) =>
  new RegExp(`^${[...glob].map(ch => (ch === '*' ? '[\\s\\S]*' : ch === '?' ? '[\\s\\S]' : escape(ch))).join('')}$`);
const segmentReference = (glob: string) =>
  new RegExp(`^${[...glob].map(ch => (ch === '*' ? '[^/]*' : ch === '?' ? '[^/]' : escape(ch))).join('')}$`);
/** An absolute path glob: `/seg/seg`, `**` as a whole segment. */
const pathReference = (glob: string) => {
  const segments = glob.split('/').slice(1);
  const body = segments
    .map((seg, i) => {
      if (seg === '**') return i === segments.length - 1 ? '(?:/.*)?' : '(?:/[^/]+)*';
      return `/${[...seg].map(ch => (ch === '*' ? '[^/]*' : ch === '?' ? '[^/]' : escape(ch))).join('')}`;
    })
    .join('');
  return new RegExp(`^${body}$`);
};

const chars = (alphabet: readonly string[], maxLength: number) =>
  fc.array(fc.constantFrom(...alphabet), { maxLength }).map(a => a.join(''));

test('without a separator: * any run, ? one character, everything else literal', t => {
  const g = compileGlob('re*rt-?.(a) +b@c');
  t.true(g.matches('report-1.(a) +b@c'));
  t.true(g.matches('rert-x.(a) +b@c'));
  t.true(g.matches('re\n/any/thing\nrt-\n.(a) +b@c'));
  t.false(g.matches('report-12.(a) +b@c'));
  t.false(g.matches('report-1.a +b@c'));
  t.false(g.matches('xreport-1.(a) +b@c'));
  t.true(compileGlob('').matches(''));
  t.false(compileGlob('').matches('a'));
  t.true(compileGlob('*').matches(''));
  t.true(compileGlob('**').matches('a/b'));
});

test('syntax other dialects read as operators is refused, never taken literally', t => {
  // Attack (on the operator): `forbid /data/{secrets,keys}/**` read literally
  // matches no real path, and the forbid silently fails open.
  for (const [pattern, reason] of [
    ['/data/{secrets,keys}/**', /braces/],
    ['/data/file}', /braces/],
    ['/data/[sk]ecrets/**', /character classes/],
    ['/data/x]', /character classes/],
    ['/data/a\\*', /escapes/],
    ['/data/!(public)/**', /extglobs/],
    ['/data/+(a)', /extglobs/],
    ['/data/@(a|b)', /extglobs/],
    ['/data/*(a)', /extglobs/],
    ['/data/?(a)', /extglobs/],
    ['!report-*', /negation/],
  ] as const) {
    t.regex(globSyntaxProblem(pattern) ?? '', reason, pattern);
    const err = t.throws(() => compileGlob(pattern, pattern.startsWith('/') ? { separator: '/', globstar: true } : {}), undefined, pattern);
    t.is(codeOf(err), 'ZT_BAD_ARGUMENT', pattern);
  }
  for (const fine of ['/data/report (1).txt', '/data/a!b', '/data/a+b', '/data/**', 'x@y']) t.is(globSyntaxProblem(fine), undefined, fine);
});

test('with a separator: * and ? stay within a segment', t => {
  const g = compileGlob('srv*/read_?', { separator: '/' });
  t.true(g.matches('srv/read_a'));
  t.true(g.matches('srv-1/read_b'));
  t.false(g.matches('srv/x/read_a'));
  t.false(g.matches('srv/read_ab'));
  t.false(g.matches('srv/read_/'));
  t.false(g.matches('srv'));
  t.false(g.matches('srv/read_a/'));
  // Without globstar, ** is two stars within one segment.
  t.true(compileGlob('**/x', { separator: '/' }).matches('abc/x'));
  t.false(compileGlob('**/x', { separator: '/' }).matches('a/b/x'));
});

test('with globstar: ** spans whole segments; a trailing ** spans the rest', t => {
  const mid = compileGlob('/data/**/r.txt', { separator: '/', globstar: true });
  t.true(mid.matches('/data/r.txt'));
  t.true(mid.matches('/data/a/b/r.txt'));
  t.false(mid.matches('/data/a//r.txt'));
  t.false(mid.matches('/data/a/b/r.txt/x'));
  const deep = compileGlob('/data/**', { separator: '/', globstar: true });
  t.true(deep.matches('/data'));
  t.true(deep.matches('/data/'));
  t.true(deep.matches('/data/x//y/z'));
  t.false(deep.matches('/database'));
  t.false(deep.matches('/data/x\ny'));
  t.true(compileGlob('/**', { separator: '/', globstar: true }).matches(''));
  t.false(compileGlob('/**', { separator: '/', globstar: true }).matches('data'));
});

test('bad options are refused', t => {
  t.throws(() => compileGlob('a', { globstar: true }), { instanceOf: TypeError });
  t.throws(() => compileGlob('a', { separator: '//' }), { instanceOf: TypeError });
  t.throws(() => compileGlob('a', { separator: '*' }), { instanceOf: TypeError });
});

testProp(
  'without a separator, the matcher agrees with the reference',
  [chars(['a', 'b', '*', '?', '.', '\n'], 8), chars(['a', 'b', '.', '\n', '/'], 12)],
  (t, glob, text) => {
    t.is(compileGlob(glob).matches(text), plainReference(glob).test(text));
  },
  { numRuns: 2000 },
);

testProp(
  'with a separator, the matcher agrees with the reference',
  [chars(['a', 'b', '*', '?', '/'], 8), chars(['a', 'b', '/', '\n'], 10)],
  (t, glob, text) => {
    t.is(compileGlob(glob, { separator: '/' }).matches(text), segmentReference(glob).test(text));
  },
  { numRuns: 2000 },
);

const pathSegment = fc.constantFrom('a', 'b', '*', '?', '**', 'a*', '*b', '', 'ab');
const pathGlob = fc.array(pathSegment, { minLength: 1, maxLength: 5 }).map(segs => `/${segs.join('/')}`);
const textSegment = fc.constantFrom('a', 'b', 'ab', 'ba', '', '\n', 'a\r', '\u2028');
const pathText = fc.oneof(
  fc.array(textSegment, { maxLength: 6 }).map(segs => `/${segs.join('/')}`),
  chars(['a', '/', '\n'], 6),
);

/** A glob and a text made from it (its wildcards filled in), so that many pairs match. */
const globAndInstance = pathGlob.chain(glob =>
  fc
    .tuple(...glob.split('/').map(seg => (seg === '**' ? fc.array(textSegment, { maxLength: 2 }).map(a => a.join('/')) : fc.constant(seg.replace(/\*/g, 'ab').replace(/\?/g, 'b')))))
    .map(parts => [glob, parts.join('/').replace(/\/\/+/g, '/')] as const),
);

testProp(
  'with globstar, the matcher agrees with the reference on absolute path globs',
  [fc.oneof(fc.tuple(pathGlob, pathText), globAndInstance)],
  (t, [glob, text]) => {
    t.is(compileGlob(glob, { separator: '/', globstar: true }).matches(text), pathReference(glob).test(text));
  },
  { numRuns: 5000 },
);

/** A text that counts how often the matcher reads a character of it. */
const countingText = (text: string) => {
  let reads = 0;
  const view = {
    length: text.length,
    charCodeAt: (i: number) => {
      reads += 1;
      return text.charCodeAt(i);
    },
    indexOf: (s: string, from?: number) => text.indexOf(s, from),
    startsWith: (s: string, from?: number) => {
      reads += s.length;
      return text.startsWith(s, from);
    },
  };
  return { text: view as unknown as string, reads: () => reads };
};

test('a pathological pattern costs steps linear in the text, not exponential in its stars', t => {
  // *a*a*a*a*a*a*b against 10,000 `a`s: a backtracking RegExp tries every
  // way to split the run among six stars before failing.
  const n = 10_000;
  const counted = countingText('a'.repeat(n));
  t.false(compileGlob('*a*a*a*a*a*a*b').matches(counted.text));
  t.true(counted.reads() <= 4 * n, `${counted.reads()} reads`);

  const segment = countingText(`/${'a'.repeat(n)}`);
  t.false(compileGlob('/*a*a*a*a*a*a*b', { separator: '/' }).matches(segment.text));
  t.true(segment.reads() <= 4 * n, `${segment.reads()} reads`);
});

test('pathological patterns finish on 10,000 characters (generous bound)', t => {
  const n = 10_000;
  const started = Date.now();
  t.false(compileGlob('*a*a*a*a*a*a*b').matches('a'.repeat(n)));
  t.false(compileGlob('/*a*a*a*a*a*a*b', { separator: '/', globstar: true }).matches(`/${'a'.repeat(n)}`));
  t.false(compileGlob('/**/**/**/**/**/**/b', { separator: '/', globstar: true }).matches('/a'.repeat(n / 2)));
  t.false(compileGlob('/**/a*a*a*a*b/**/**/c', { separator: '/', globstar: true }).matches(`/${'a'.repeat(n / 2)}`.repeat(2)));
  t.true(Date.now() - started < 1000);
});
