/**
 * Properties of the policy engine over generated policies and requests:
 * monotonicity (forbids only take away, permits only give), determinism,
 * agreement between the fast path and `explain`, path normalization, and
 * agreement between the policy's URL matcher and the capability side's.
 */
import { createHash } from 'node:crypto';
import { fc, testProp } from '@fast-check/ava';
import './_prepare.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { normalizePath } from '../src/paths.js';
import { makePolicy, makePolicyValidator, type DecisionRequest, type PolicyRule } from '../src/policy.js';
import { compileUrlPattern, parseUrlTarget, isNormalPath } from '../src/policy/patterns.js';
import { compileTarget } from '../src/targets.js';
import type { ActionType } from '../src/types.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const validator = makePolicyValidator();
const load = (rules: PolicyRule[]) => makePolicy({ version: 1, rules }, sha, canonicalJson, { validator });

const seg = fc.constantFrom('data', 'secrets', 'out', 'a', 'b', 'x.txt');
const pathPattern = fc
  .tuple(fc.array(seg, { minLength: 0, maxLength: 3 }), fc.constantFrom('', '/**', '/*', '/*.txt'))
  .map(([segs, tail]) => (segs.length === 0 && tail === '' ? '/**' : `/${segs.join('/')}${tail}`));
const rawSeg = fc.constantFrom('data', 'secrets', 'out', 'a', 'b', 'x.txt', '.', '..', '');
const rawPath = fc.array(rawSeg, { maxLength: 6 }).map(s => `/${s.join('/')}`);
const agent = fc.constantFrom('alice', 'bob', 'carol');
const action = fc.constantFrom<ActionType>('READ', 'WRITE', 'EXECUTE');
const label = fc.constantFrom('analyst', 'intern', 'admin');

const condition = fc.oneof(
  fc.constant(undefined),
  fc.record({ labels: fc.record({ anyOf: fc.array(label, { minLength: 1, maxLength: 2 }) }) }),
  fc.record({ maxUses: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ args: fc.constant({ size: { min: 0, max: 10 } }) }),
  fc.record({ not: fc.record({ labels: fc.record({ noneOf: fc.array(label, { minLength: 1, maxLength: 2 }) }) }) }),
);

const ruleArb = (effect: 'permit' | 'forbid' | undefined) =>
  fc
    .record({
      effect: effect ? fc.constant(effect) : fc.constantFrom<'permit' | 'forbid'>('permit', 'forbid'),
      agents: fc.option(fc.array(agent, { minLength: 1, maxLength: 2 }), { nil: undefined }),
      actions: fc.option(fc.uniqueArray(action, { minLength: 1, maxLength: 2 }), { nil: undefined }),
      targets: fc.option(fc.array(pathPattern, { minLength: 1, maxLength: 2 }), { nil: undefined }),
      when: condition,
    })
    .map(r => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as Omit<PolicyRule, 'id'>);

const rulesArb = fc.array(ruleArb(undefined), { maxLength: 12 }).map(rs => rs.map((r, i) => ({ id: `r${i}`, ...r }) as PolicyRule));

const requestArb: fc.Arbitrary<DecisionRequest> = fc.record({
  agentId: agent,
  actionType: action,
  target: rawPath,
  args: fc.oneof(fc.constant(undefined), fc.record({ size: fc.oneof(fc.integer({ min: -5, max: 20 }), fc.constant('big')) })),
  context: fc.oneof(
    fc.constant(undefined),
    fc.record({
      time: fc.constant(0),
      agentLabels: fc.uniqueArray(label, { maxLength: 3 }),
      agentTaints: fc.constant([]),
      capability: fc.record({ id: fc.constant('c'), uses: fc.integer({ min: 0, max: 6 }), bytes: fc.constant(0), issuedAt: fc.constant(0) }),
      rates: fc.constant({}),
    }),
  ),
}).map(r => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as DecisionRequest);

testProp('adding a forbid never turns a deny into an allow', [rulesArb, ruleArb('forbid'), fc.nat(), requestArb], (t, rules, forbid, at, req) => {
  const before = load(rules).decide(req);
  const withForbid = [...rules];
  withForbid.splice(at % (rules.length + 1), 0, { id: 'added-forbid', ...forbid } as PolicyRule);
  const after = load(withForbid).decide(req);
  if (!before.allowed) t.false(after.allowed);
  else if (!after.allowed) t.true(after.rules.includes('added-forbid'), 'an allow can only be taken away by the added forbid itself');
  else t.deepEqual(after.rules, before.rules);
}, { numRuns: 300 });

testProp('removing a permit never turns a deny into an allow', [rulesArb, fc.nat(), requestArb], (t, rules, at, req) => {
  const permits = rules.filter(r => r.effect === 'permit');
  const before = load(rules).decide(req);
  if (permits.length === 0) {
    t.false(before.allowed, 'without permits, everything is denied');
    return;
  }
  const victim = permits[at % permits.length] as PolicyRule;
  const after = load(rules.filter(r => r !== victim)).decide(req);
  if (before.allowed) {
    t.pass();
  } else if (before.code === 'ZT_POLICY_ERROR' && before.rules.includes(victim.id)) {
    // A permit that errors denies the request (it never counts as "skip");
    // removing it removes that denial's cause, so here an allow may follow.
    t.pass();
  } else {
    t.false(after.allowed);
  }
}, { numRuns: 300 });

testProp('decisions are deterministic: same inputs, same decision, from the fast path, explain and a reloaded policy', [rulesArb, requestArb], (t, rules, req) => {
  const p = load(rules);
  const first = p.decide(req);
  t.deepEqual(p.decide(req), first);
  t.deepEqual(p.decide(JSON.parse(JSON.stringify(req)) as DecisionRequest), first, 'a recorded (JSON round-tripped) request replays to the same decision');
  t.deepEqual(load(JSON.parse(JSON.stringify(rules)) as PolicyRule[]).decide(req), first);
  t.deepEqual(p.explain(req).decision, first);
  // The explanation's trace agrees with the decision's deciding rules.
  const matched = p.explain(req).trace.filter(x => x.stage === 'match');
  if (first.allowed) t.deepEqual([...first.rules], matched.filter(x => x.effect === 'permit').map(x => x.rule));
  if (first.code === 'ZT_POLICY_DENIED' && matched.some(x => x.effect === 'forbid')) t.deepEqual([...first.rules], matched.filter(x => x.effect === 'forbid').map(x => x.rule));
}, { numRuns: 400 });

testProp('the index gives the same decision as a linear scan of every rule', [rulesArb, requestArb], (t, rules, req) => {
  // Reference: each rule alone (no index can skip anything in a one-rule policy), combined by the stated precedence.
  const p = load(rules);
  const verdicts = rules.map(r => ({ r, d: load([r]).decide(req) }));
  const errors = verdicts.filter(v => v.d.code === 'ZT_POLICY_ERROR').map(v => v.r.id);
  const forbids = verdicts.filter(v => v.r.effect === 'forbid' && v.d.rules.length === 1 && v.d.code === 'ZT_POLICY_DENIED').map(v => v.r.id);
  const permits = verdicts.filter(v => v.d.allowed).map(v => v.r.id);
  const d = p.decide(req);
  if (errors.length > 0) t.deepEqual([d.code, [...d.rules]], ['ZT_POLICY_ERROR', errors]);
  else if (forbids.length > 0) t.deepEqual([d.code, [...d.rules]], ['ZT_POLICY_DENIED', forbids]);
  else if (permits.length > 0) t.deepEqual([d.allowed, [...d.rules]], [true, permits]);
  else t.false(d.allowed);
}, { numRuns: 400 });

testProp('path normalization is idempotent and the fast normal-path test never admits an unnormalized path', [rawPath], (t, p) => {
  const once = normalizePath(p);
  t.is(normalizePath(once), once);
  t.true(isNormalPath(once) || once.split('/').some(s => s.startsWith('.')));
  if (isNormalPath(p)) t.is(normalizePath(p), p);
}, { numRuns: 500 });

testProp('attack: a path that resolves outside a permitted tree never matches it', [fc.array(seg, { minLength: 1, maxLength: 3 }), rawPath], (t, tree, raw) => {
  // The agent spells a target with `..` / `.` / `//` segments hoping the
  // permit for /<tree>/** matches the spelling rather than the real path.
  const root = `/${tree.join('/')}`;
  const p = load([{ id: 'tree', effect: 'permit', actions: ['READ'], targets: [`${root}/**`] }]);
  const resolved = normalizePath(raw);
  const inside = resolved === root || resolved.startsWith(`${root}/`);
  t.is(p.decide({ agentId: 'a', actionType: 'READ', target: raw }).allowed, inside);
  t.is(p.decide({ agentId: 'a', actionType: 'READ', target: `${root}/${raw.slice(1)}` }).allowed, normalizePath(`${root}/${raw.slice(1)}`).startsWith(root), 'prefixing the tree does not help');
}, { numRuns: 500 });

const host = fc.constantFrom('example.com', 'api.example.com', 'EXAMPLE.com', 'a.b.example.com', 'example.org', '127.0.0.1', '[::1]');
const urlPath = fc.array(fc.constantFrom('v1', 'admin', '..', '.', '%2e%2e', 'a%20b', 'x'), { maxLength: 4 }).map(s => `/${s.join('/')}`);
const urlArb = fc.tuple(fc.constantFrom('http', 'https'), host, fc.constantFrom('', ':443', ':80', ':8080'), urlPath).map(([s, h, port, p]) => `${s}://${h}${port}${p}`);
const urlPatternArb = fc
  .tuple(fc.constantFrom('http', 'https'), fc.constantFrom('example.com', '*.example.com', 'api.example.com', '127.0.0.1'), fc.constantFrom('', ':8080'), fc.constantFrom('', '/', '/v1/**', '/admin/*', '/**'))
  .map(([s, h, port, p]) => `${s}://${h}${port}${p}`);

testProp('URL patterns match exactly what the capability side matches', [urlPatternArb, urlArb], (t, pattern, url) => {
  const mine = compileUrlPattern(pattern);
  const theirs = compileTarget('NETWORK', pattern);
  const parsed = parseUrlTarget(url);
  t.is(mine.matches(parsed), theirs.matches(url));
  // The kernel matches the capability on the parsed form: the same answer as on the string.
  t.is(theirs.matchesParsed?.(parsed), theirs.matches(url));
}, { numRuns: 500 });

const urlRuleArb = fc.record({
  effect: fc.constantFrom<'permit' | 'forbid'>('permit', 'forbid'),
  target: urlPatternArb,
  when: fc.oneof(fc.constant(undefined), fc.record({ url: fc.record({ ports: fc.constant([443, 8080]) }) }), fc.record({ url: fc.record({ paths: fc.constant(['/v1/**']) }) })),
});

testProp(
  'a NETWORK decision is the same with the kernel\'s parsed target, without it, and with one for another target (ignored)',
  [fc.array(urlRuleArb, { minLength: 1, maxLength: 4 }), urlArb, urlArb],
  (t, specs, raw, other) => {
    const rules = specs.map((s, i) => ({ id: `r${i}`, effect: s.effect, actions: ['NETWORK' as const], targets: [s.target], ...(s.when ? { when: s.when } : {}) })) as PolicyRule[];
    const p = load(rules);
    const parsed = parseUrlTarget(raw);
    const req: DecisionRequest = { agentId: 'a', actionType: 'NETWORK', target: parsed.href };
    const plain = p.decide(req);
    t.deepEqual(p.decide({ ...req, parsedUrl: parsed }), plain);
    // A parsed form whose href is not the target is not trusted: the target is parsed again.
    t.deepEqual(p.decide({ ...req, parsedUrl: parseUrlTarget(other) }), plain);
    t.deepEqual(p.explain({ ...req, parsedUrl: parseUrlTarget(other) }).decision, plain);
    t.deepEqual(p.taintsFor({ ...req, parsedUrl: parsed }), p.taintsFor(req));
  },
  { numRuns: 300 },
);
