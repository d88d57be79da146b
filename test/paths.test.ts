import { fc, testProp } from '@fast-check/ava';
import { posix } from 'node:path';
import { test } from './_prepare.js';
import { compileTargetPattern, normalizePath } from '../src/paths.js';

test('normalizePath resolves . and .. lexically and refuses relative paths', t => {
  t.is(normalizePath('/a/./b//c/../d'), '/a/b/d');
  t.is(normalizePath('/../../etc/passwd'), '/etc/passwd');
  t.is(normalizePath('/'), '/');
  t.throws(() => normalizePath('a/b'), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => normalizePath('/a\0b'), { message: /^ZT_BAD_ARGUMENT\b/ });
});

test('target patterns: exact, * within a segment, ** across segments', t => {
  const exact = compileTargetPattern('/data/a.txt');
  t.true(exact.exact);
  t.true(exact.matches('/data/a.txt'));
  t.false(exact.matches('/data/a.txtx'));
  const star = compileTargetPattern('/data/*.txt');
  t.true(star.matches('/data/a.txt'));
  t.false(star.matches('/data/sub/a.txt'));
  const deep = compileTargetPattern('/data/**');
  t.true(deep.matches('/data'));
  t.true(deep.matches('/data/x/y/z'));
  t.false(deep.matches('/database'));
  const mid = compileTargetPattern('/data/**/r.txt');
  t.true(mid.matches('/data/r.txt'));
  t.true(mid.matches('/data/a/b/r.txt'));
  t.false(mid.matches('/data/a/b/r.txt/x'));
  t.throws(() => compileTargetPattern('/data/../etc'), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => compileTargetPattern('/data/a**'), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => compileTargetPattern('relative/*'), { message: /^ZT_BAD_ARGUMENT\b/ });
});

const segment = fc.constantFrom('a', 'b', 'data', '.', '..', '', 'x.txt');
const pathArb = fc.array(segment, { maxLength: 8 }).map(segs => `/${segs.join('/')}`);

testProp('normalization is idempotent', [pathArb], (t, p) => {
  const once = normalizePath(p);
  t.is(normalizePath(once), once);
  t.false(once.split('/').includes('..'));
});

testProp('a path that resolves outside /data never matches /data/**', [pathArb], (t, p) => {
  const pattern = compileTargetPattern('/data/**');
  const normalized = normalizePath(`/data/${p}`);
  t.is(pattern.matches(normalized), normalized === '/data' || normalized.startsWith('/data/'));
});

testProp('normalizePath agrees with path.posix.normalize (trailing slash dropped)', [pathArb.map(p => p.replace(/^\/+/, '/'))], (t, p) => {
  const reference = posix.normalize(p).replace(/(.)\/$/, '$1');
  t.is(normalizePath(p), reference);
});
