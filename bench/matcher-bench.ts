/**
 * Matcher benchmark: what the linear-time regular expressions (RE2, via
 * re2js) and the glob matcher cost on the policy's hot path, next to the
 * host `RegExp` they replace, measured in the same run under SES lockdown.
 *
 * - argument patterns: `pattern` conditions as the policy compiled them
 *   before (`new RegExp('^(?:p)$', 'u')`) and now (RE2 `testExact`), on
 *   ordinary values and on the hostile `(a+)+b` / `aaaa…c` pair (the old
 *   engine is run at 22 characters only: each added `a` doubles its time);
 * - globs: path patterns through src/glob.ts against the backtracking
 *   RegExp translation they were once compiled to;
 * - whole decisions: a TOOL call whose condition holds a `pattern`, and a
 *   TOOL call whose declared path argument is also decided as a READ
 *   (`toolResources`), next to the same call with no declaration.
 *
 * Per-operation figures are medians (and 99th percentiles) over batches of
 * operations timed together, so sub-microsecond costs are not lost in the
 * timer's resolution. Runnable alone: `node dist/bench/matcher-bench.js`.
 */
import '../src/init.js';
import { pathToFileURL } from 'node:url';
import { canonicalJson } from '../src/audit/canonical.js';
import { compileGlob } from '../src/glob.js';
import { sha256Hex } from '../src/node-powers.js';
import { makePolicy, type DecisionRequest } from '../src/policy.js';
import { compileRegex } from '../src/regex.js';

export interface MatcherBenchRow {
  readonly name: string;
  readonly p50Us: number;
  readonly p99Us: number;
}

const percentile = (sorted: readonly number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

/** Per-operation cost of `op` (called with 0, 1, 2…): `batches` batches of `batch` calls each. */
const measure = (op: (i: number) => unknown, batch = 1000, batches = 200): { p50Us: number; p99Us: number } => {
  let sink = 0;
  for (let i = 0; i < batch * 20; i += 1) if (op(i)) sink += 1; // warm-up
  const samples: number[] = [];
  for (let b = 0; b < batches; b += 1) {
    const start = performance.now();
    for (let i = 0; i < batch; i += 1) if (op(b * batch + i)) sink += 1;
    samples.push(((performance.now() - start) * 1000) / batch);
  }
  if (sink < 0) throw Error('unreachable');
  samples.sort((a, b) => a - b);
  return { p50Us: percentile(samples, 0.5), p99Us: percentile(samples, 0.99) };
};

/** The glob as the backtracking RegExp it was once compiled to (the baseline). */
const globAsRegExp = (glob: string): RegExp => {
  const escape = (s: string) => s.replace(/[.+^${}()|[\]\\?*]/g, '\\$&');
  const segments = glob.split('/').slice(1);
  const body = segments
    .map((seg, i) => {
      if (seg === '**') return i === segments.length - 1 ? '(?:/.*)?' : '(?:/[^/]+)*';
      return `/${[...seg].map(ch => (ch === '*' ? '[^/]*' : ch === '?' ? '[^/]' : escape(ch))).join('')}`;
    })
    .join('');
  return new RegExp(`^${body}$`, 'u');
};

export const runMatcherBench = (): MatcherBenchRow[] => {
  const rows: MatcherBenchRow[] = [];
  const row = (name: string, r: { p50Us: number; p99Us: number }) => rows.push(harden({ name, ...r }));

  // Argument patterns on ordinary values.
  const patterns: ReadonlyArray<readonly [string, readonly string[]]> = [
    ['[a-z0-9_-]{1,64}', ['report_2024-q3', 'x', 'UPPER', 'a'.repeat(64)]],
    ['report-\\d{4}-\\d{2}\\.csv', ['report-2024-09.csv', 'report-24-9.csv', 'report-2024-09.csv.exe']],
    ['[^@\\s]+@(?:[a-z0-9-]+\\.)+[a-z]{2,}', ['alice@example.com', 'bob@mail.example.org', 'not an address']],
  ];
  for (const [source, values] of patterns) {
    const old = new RegExp(`^(?:${source})$`, 'u');
    const re2 = compileRegex(source);
    for (const v of values) if (old.test(v) !== re2.fullMatch(v)) throw Error(`the engines disagree on ${source} / ${v}`);
    row(`arg pattern ${source.slice(0, 24)}: RegExp (before)`, measure(i => old.test(values[i % values.length] as string)));
    row(`arg pattern ${source.slice(0, 24)}: RE2 (now)`, measure(i => re2.fullMatch(values[i % values.length] as string)));
  }
  row('compile an arg pattern: RegExp (before)', measure(i => new RegExp(`^(?:[a-z0-9_-]{1,${(i % 60) + 1}})$`, 'u'), 100, 50));
  row('compile an arg pattern: RE2 (now)', measure(i => compileRegex(`[a-z0-9_-]{1,${(i % 60) + 1}}`), 100, 50));

  // The hostile pair.
  const nested = new RegExp('^(?:(a+)+b)$', 'u');
  const start = performance.now();
  nested.test(`${'a'.repeat(22)}c`);
  rows.push(harden({ name: '(a+)+b on a×22 + c: RegExp (before), one run', p50Us: (performance.now() - start) * 1000, p99Us: NaN }));
  const linear = compileRegex('(a+)+b');
  row('(a+)+b on a×22 + c: RE2 (now)', measure(() => linear.fullMatch(`${'a'.repeat(22)}c`), 100, 50));
  const long = `${'a'.repeat(4000)}c`;
  row('(a+)+b on a×4000 + c: RE2 (now; RegExp: beyond the age of the universe)', measure(() => linear.fullMatch(long), 10, 50));

  // Globs against their RegExp translation.
  const globs = ['/data/**', '/data/*/reports/*.csv', '/data/**/secret/*', '/home/*/.ssh/**'];
  const paths = ['/data/a/reports/q3.csv', '/data/x/y/z/secret/key', '/home/alice/.ssh/id_rsa', '/etc/passwd', '/data/a/b/c/d/e/f/g.txt'];
  for (const g of globs) {
    const ours = compileGlob(g, { separator: '/', globstar: true });
    const old = globAsRegExp(g);
    for (const p of paths) if (ours.matches(p) !== old.test(p)) throw Error(`the matchers disagree on ${g} / ${p}`);
    row(`glob ${g}: RegExp translation (before)`, measure(i => old.test(paths[i % paths.length] as string)));
    row(`glob ${g}: src/glob.ts (now)`, measure(i => ours.matches(paths[i % paths.length] as string)));
  }
  row('compile a glob with its syntax check: src/glob.ts (now)', measure(i => compileGlob(`/data/d${i % 100}/**/*.csv`, { separator: '/', globstar: true }), 100, 50));

  // Whole decisions.
  const policy = makePolicy(
    {
      version: 1,
      rules: [
        { id: 'tag', effect: 'permit', actions: ['TOOL'], targets: ['srv/tag'], when: { args: { arguments: { fields: { label: { pattern: '[a-z0-9_-]{1,64}' } } } } } },
        { id: 'fs', effect: 'permit', actions: ['TOOL'], targets: ['fs/read_file', 'plain/read_file'] },
        ...Array.from({ length: 100 }, (_, i) => ({ id: `r${i}`, effect: i % 10 === 9 ? 'forbid' : 'permit', actions: ['READ'], targets: [i % 10 === 9 ? `/data/d${i - 1}/secret/**` : `/data/d${i}/**`] })),
      ],
      toolResources: [{ targets: ['fs/read_file'], args: { path: 'READ' } }],
    },
    sha256Hex,
    canonicalJson,
  );
  const tool = (target: string, args: Record<string, unknown>): DecisionRequest => harden({ agentId: 'a', actionType: 'TOOL', target, args: { arguments: args } });
  const tagOk = tool('srv/tag', { label: 'report_2024-q3' });
  const tagBad = tool('srv/tag', { label: 'NOT OK' });
  row('decision: TOOL call, pattern condition holds (RE2)', measure(() => policy.decide(tagOk).allowed));
  row('decision: TOOL call, pattern condition fails (RE2; the denial names the failing test)', measure(() => policy.decide(tagBad).allowed));
  const reads = Array.from({ length: 20 }, (_, k) => `/data/d${(k * 7) % 100}/${k % 3 === 0 ? 'secret/' : ''}f${k}.txt`);
  const plainCalls = reads.map(p => tool('plain/read_file', { path: p }));
  const declaredCalls = reads.map(p => tool('fs/read_file', { path: p }));
  row('decision: TOOL call, path argument not declared', measure(i => policy.decide(plainCalls[i % plainCalls.length] as DecisionRequest).allowed));
  row('decision: TOOL call, path argument declared (also decided as READ, 100 path rules)', measure(i => policy.decide(declaredCalls[i % declaredCalls.length] as DecisionRequest).allowed));
  return harden(rows);
};
harden(runMatcherBench);

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const fmt = (x: number) => (Number.isNaN(x) ? '—' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(3));
  console.log(`matcher bench — node ${process.version}; under lockdown; per operation\n`);
  console.log(`${'figure'.padEnd(84)}  ${'p50 µs'.padStart(10)}  ${'p99 µs'.padStart(10)}`);
  for (const r of runMatcherBench()) console.log(`${r.name.padEnd(84)}  ${fmt(r.p50Us).padStart(10)}  ${fmt(r.p99Us).padStart(10)}`);
}
