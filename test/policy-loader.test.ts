/**
 * The policy loader: YAML and JSON text with located problems, the
 * published JSON Schema, and fuzzing with malformed files. Every malformed
 * input must be rejected with ZT_POLICY_INVALID and a list of problems;
 * none may crash the runtime or change the policy in force.
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fc, testProp } from '@fast-check/ava';
import { Ajv } from 'ajv';
import { test } from './_prepare.js';
import { makeTestKernel } from './_kernel.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { codeOf } from '../src/errors.js';
import { loadPolicyText, makePolicyValidator, parsePolicyText, POLICY_JSON_SCHEMA, type PolicyProblem } from '../src/policy.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const fixture = (name: string) => readFileSync(new URL(`../../test/fixtures/policy/${name}`, import.meta.url), 'utf8');
const problemsOf = (err: unknown) => (err as { details: { problems: PolicyProblem[] } }).details.problems;
const validator = makePolicyValidator();

test('YAML and JSON spellings of one policy load to the same policy hash', t => {
  const yaml = loadPolicyText(fixture('example.yaml'), sha, canonicalJson, { validator });
  const json = loadPolicyText(JSON.stringify(yaml.document), sha, canonicalJson, { validator, format: 'json' });
  t.is(json.hash, yaml.hash);
  t.deepEqual([...yaml.rateWindows], [60_000]);
  t.true(yaml.decide({
    agentId: 'a',
    actionType: 'READ',
    target: '/data/q3.csv',
    context: { time: 0, agentLabels: ['analyst'], agentTaints: [], capability: { id: 'c', uses: 0, bytes: 0, issuedAt: 0 }, rates: { '60000': 0 } },
  }).allowed);
});

test('problems in a YAML file are reported with line and column, all at once', t => {
  const err = t.throws(() => loadPolicyText(fixture('invalid.yaml'), sha, canonicalJson, { validator }));
  t.is(codeOf(err), 'ZT_POLICY_INVALID');
  t.deepEqual(
    problemsOf(err).map(p => `${p.line}:${p.column} ${p.pointer}: ${p.message}`),
    [
      '7:15 /rules/1/actions/0: must be one of "READ", "WRITE", "EXECUTE", "NETWORK", "TOOL"',
      '6:13 /rules/1/effect: must be one of "permit", "forbid"',
      '5:9 /rules/1/id: duplicate rule id "ok" (first at /rules/0)',
      '8:15 /rules/1/targets/0: invalid tool pattern: a tool pattern is "server/tool" (with * wildcards)',
      '15:26 /rules/2/when/args/path/pattern: is not a valid RE2 regular expression: missing closing ): `(`',
      '1:10 /version: must be 1',
    ],
  );
  t.regex(err?.message ?? '', /^ZT_POLICY_INVALID: policy rejected \(6 problems\): 7:15 \/rules\/1\/actions\/0/);
});

test('YAML syntax errors, duplicate keys and JSON-only files are located', t => {
  const syntax = parsePolicyText('version: 1\nrules:\n  - id: a\n    effect: [permit\n');
  t.true(syntax.problems.length > 0);
  t.true((syntax.problems[0]?.line ?? 0) >= 4, 'at or after the unclosed bracket');
  const dup = parsePolicyText('version: 1\nversion: 1\nrules: []\n');
  t.regex(dup.problems[0]?.message ?? '', /syntax error/);
  t.is(dup.problems[0]?.line, 2);
  const yamlInJson = parsePolicyText('version: 1\nrules: []\n', { format: 'json' });
  t.regex(yamlInJson.problems[0]?.message ?? '', /not valid JSON/);
  t.regex(parsePolicyText('').problems[0]?.message ?? '', /empty/);
  t.regex(parsePolicyText('version: 1\nrules: []\n---\nversion: 1\nrules: []\n').problems[0]?.message ?? '', /more than one YAML document/);
});

test('attack: a YAML alias bomb is refused, not expanded', t => {
  // "Billion laughs": each level doubles the previous through aliases.
  let text = 'a0: &a0 [x, x]\n';
  for (let i = 1; i < 30; i += 1) text += `a${i}: &a${i} [*a${i - 1}, *a${i - 1}]\n`;
  text += 'version: 1\nrules: []\n';
  const err = t.throws(() => loadPolicyText(text, sha, canonicalJson, { validator }));
  t.is(codeOf(err), 'ZT_POLICY_INVALID');
});

test('attack: YAML-specific types and tags cannot smuggle non-data into a policy', t => {
  // Custom tags, binary and set types are not part of the core schema: they are problems, not values.
  for (const text of ['version: !!binary aGVsbG8=\nrules: []\n', 'version: 1\nrules: !custom []\n', 'version: 1\nrules: !!set {a}\n']) {
    const err = t.throws(() => loadPolicyText(text, sha, canonicalJson, { validator }));
    t.is(codeOf(err), 'ZT_POLICY_INVALID', text);
  }
});

test('the published JSON Schema is the one the loader uses, and accepts the example policies', t => {
  const published = JSON.parse(readFileSync(new URL('../../docs/policy.schema.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  t.deepEqual(published, JSON.parse(JSON.stringify(POLICY_JSON_SCHEMA)), 'docs/policy.schema.json is generated from src/policy/schema.ts');
  const check = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(published);
  const example = parsePolicyText(fixture('example.yaml')).document;
  t.true(check(example), JSON.stringify(check.errors));
  const vectors = JSON.parse(fixture('vectors.json')) as { policies: Record<string, unknown> };
  for (const doc of Object.values(vectors.policies)) t.true(check(doc));
  t.false(check({ version: 1, rules: [{ id: 'x', effect: 'allow' }] }));
});

const assertRejectedCleanly = (t: { is: (a: unknown, b: unknown, m?: string) => void; true: (a: boolean, m?: string) => void }, err: unknown, what: string) => {
  t.is(codeOf(err), 'ZT_POLICY_INVALID', what);
  const problems = problemsOf(err);
  t.true(Array.isArray(problems) && problems.length > 0, `${what}: problems listed`);
  t.true(problems.every(p => typeof p.pointer === 'string' && typeof p.message === 'string' && p.message.length > 0), `${what}: each problem has a pointer and a message`);
};

const base = fixture('example.yaml');
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.constantFrom(':', '-', '[', ']', '{', '}', '\n', '  ', '*', '&a', '!!', '"', "'", '#', '\t', '\0', '..', 'FLY', '/../', '*a', '- id: x\n    effect: permit\n') }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);
const mutate = (text: string, ms: Array<{ kind: 'delete' | 'insert' | 'truncate'; at: number; len?: number; text?: string }>) =>
  ms.reduce((s, m) => {
    const at = m.at % (s.length + 1);
    if (m.kind === 'delete') return s.slice(0, at) + s.slice(at + (m.len ?? 1));
    if (m.kind === 'insert') return s.slice(0, at) + (m.text ?? '') + s.slice(at);
    return s.slice(0, at);
  }, text);

testProp('fuzz: mutated YAML files either load or are rejected cleanly with ZT_POLICY_INVALID', [fc.array(mutation, { minLength: 1, maxLength: 4 })], (t, ms) => {
  const text = mutate(base, ms);
  try {
    const p = loadPolicyText(text, sha, canonicalJson, { validator });
    t.regex(p.hash, /^sha256:[0-9a-f]{64}$/);
  } catch (err) {
    assertRejectedCleanly(t, err, JSON.stringify(text.slice(0, 80)));
  }
}, { numRuns: 400 });

testProp('fuzz: arbitrary text is rejected cleanly', [fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), fc.json())], (t, text) => {
  try {
    loadPolicyText(text, sha, canonicalJson, { validator });
    t.fail('arbitrary text is not a policy');
  } catch (err) {
    assertRejectedCleanly(t, err, JSON.stringify(text.slice(0, 80)));
  }
}, { numRuns: 400 });

testProp('fuzz: arbitrary values and near-policies never change the policy in force', [fc.oneof(
  fc.anything(),
  fc.record({ version: fc.oneof(fc.constant(1), fc.anything()), rules: fc.array(fc.dictionary(fc.constantFrom('id', 'effect', 'agents', 'actions', 'targets', 'when', 'extra'), fc.anything(), { maxKeys: 6 }), { maxLength: 3 }) }),
)], (t, value) => {
  const { kernel } = makeTestKernel({ policy: { version: 1, rules: [{ id: 'only-data', effect: 'permit', actions: ['READ'], targets: ['/data/**'] }] } });
  const before = kernel.getPolicyHash();
  try {
    const after = kernel.setPolicy(value);
    t.not(after, before, 'a value that loads is a different policy');
  } catch (err) {
    assertRejectedCleanly(t, err, 'value');
    t.is(kernel.getPolicyHash(), before, 'the policy in force is unchanged');
  }
}, { numRuns: 150 });
