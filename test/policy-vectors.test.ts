/**
 * The policy vector table (test/fixtures/policy/vectors.json): every vector
 * runs, none is skipped; each names its policy, a request (or a grant, or a
 * taint query) and the expected decision with its deciding rules. Each
 * vector also runs through `explain`, which must reach the same decision.
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { test } from './_prepare.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { makePolicy, makePolicyValidator, type DecisionContext, type DecisionRequest, type GrantRequest, type Policy } from '../src/policy.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

interface Vector {
  name: string;
  policy: string;
  request?: DecisionRequest;
  grant?: GrantRequest;
  taintsFor?: DecisionRequest;
  context?: Partial<Omit<DecisionContext, 'capability'>> & { capability?: Partial<DecisionContext['capability']> };
  noContext?: boolean;
  expect: { allowed: boolean; code?: string; rules: string[] } | string[];
}

const fixture = JSON.parse(readFileSync(new URL('../../test/fixtures/policy/vectors.json', import.meta.url), 'utf8')) as {
  policies: Record<string, unknown>;
  vectors: Vector[];
};

const validator = makePolicyValidator();
const policies = new Map<string, Policy>(Object.entries(fixture.policies).map(([name, doc]) => [name, makePolicy(doc, sha, canonicalJson, { validator })]));

const T0 = 1_700_000_000_000;
const contextFor = (policy: Policy, v: Vector): DecisionContext => {
  const c = v.context ?? {};
  return {
    time: c.time ?? T0,
    agentLabels: c.agentLabels ?? [],
    agentTaints: c.agentTaints ?? [],
    capability: { id: 'cap', uses: 0, bytes: 0, issuedAt: c.time ?? T0, ...c.capability },
    rates: c.rates ?? Object.fromEntries(policy.rateWindows.map(w => [String(w), 0])),
  };
};

test('the vector table is complete and every vector names a known policy', t => {
  t.true(fixture.vectors.length >= 80);
  for (const v of fixture.vectors) {
    t.true(policies.has(v.policy), v.name);
    t.is([v.request, v.grant, v.taintsFor].filter(x => x !== undefined).length, 1, v.name);
  }
  t.is(new Set(fixture.vectors.map(v => v.name)).size, fixture.vectors.length, 'vector names are unique');
});

for (const v of fixture.vectors) {
  test(`vector: ${v.name}`, t => {
    const policy = policies.get(v.policy) as Policy;
    if (v.taintsFor) {
      t.deepEqual([...policy.taintsFor(v.taintsFor)], v.expect);
      return;
    }
    const expected = v.expect as { allowed: boolean; code?: string; rules: string[] };
    if (v.grant) {
      const d = policy.decideGrant(v.grant);
      t.deepEqual({ allowed: d.allowed, code: d.code, rules: [...d.rules] }, { code: undefined, ...expected });
      t.is(d.policyHash, policy.hash);
      return;
    }
    const request = v.request as DecisionRequest;
    const full: DecisionRequest = v.noContext ? request : { ...request, context: contextFor(policy, v) };
    const d = policy.decide(full);
    t.deepEqual({ allowed: d.allowed, code: d.code, rules: [...d.rules] }, { code: undefined, ...expected });
    t.is(d.policyHash, policy.hash);
    t.true(Object.isFrozen(d) && Object.isFrozen(d.rules), 'decisions are hardened');
    t.deepEqual(policy.explain(full).decision, d, 'explain reaches the same decision');
  });
}
