/**
 * Code mode (`runCode`), from the host as an application uses it: source
 * text an LLM wrote runs in a fresh vat with only the capabilities named,
 * and every answer — value, console, errors with their position in the
 * submitted source, audit references — is data a model can read, with no
 * host path in it. No lockdown here: this file runs as a host application
 * does.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ActionType, Capability, SandboxRuntime, type CodeRunResult, type SandboxOptions } from '../src/index.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));

/** A runtime of worker vats on a temporary store, with a data file and an agent holding a READ capability on it. */
const world = async (t: { teardown(fn: () => Promise<void>): void }, options: SandboxOptions = {}) => {
  const dir = await mkdtemp(join(tmpdir(), 'ztaas-run-code-'));
  const dataFile = join(dir, 'data.txt');
  await writeFile(dataFile, 'alpha\nbeta\ngamma\n');
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store'), isolation: 'worker', ...options });
  t.teardown(async () => {
    await sandbox.shutdown();
    await rm(dir, { recursive: true, force: true });
  });
  sandbox.registerAgent('coder');
  sandbox.issueCapability(new Capability({ id: 'data', actionType: ActionType.READ, target: dataFile, holder: 'coder' }));
  return { dir, dataFile, sandbox };
};

/** No host path in anything a run answers: not the temporary folder, not the repository, not an internal module name. */
const assertNoHostPath = (t: { false(actual: boolean, message?: string): void }, dir: string, result: CodeRunResult) => {
  const json = JSON.stringify(result);
  t.false(json.includes(dir), `the temporary folder leaked: ${json}`);
  t.false(json.includes(repo.replace(/\/$/, '')), `the repository path leaked: ${json}`);
  t.false(json.includes('file:///agent'), `an internal module name leaked: ${json}`);
};

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

test('a script reads a file through its capability and returns a summary; its console and audit references come back', async t => {
  const { dir, sandbox } = await world(t);
  const source = [
    'const text = await E(caps.report).read();',
    "const lines = text.trim().split('\\n');",
    "console.log('read', lines.length, 'lines');",
    "console.warn('first is', lines[0]);",
    'return { lines: lines.length, first: lines[0], title: input.title, caps: Object.keys(caps) };',
  ].join('\n');
  const result = await sandbox.runCode({ agentId: 'coder', source, capabilities: { report: 'data' }, input: { title: 'Q3' } });
  t.true(result.ok);
  t.is(result.mode, 'script');
  t.deepEqual(result.value, { lines: 3, first: 'alpha', title: 'Q3', caps: ['report'] });
  t.deepEqual(result.console, [
    { level: 'log', text: 'read 3 lines' },
    { level: 'warn', text: 'first is alpha' },
  ]);
  t.false(result.consoleTruncated);
  t.is(typeof result.runId, 'string');
  assertNoHostPath(t, dir, result);

  // The log holds the run under its id: the launch (with the source's digest, size and text), the call, the end.
  await sandbox.audit.flush();
  const records = await sandbox.audit.read(0, 1000);
  const launched = records.find(r => r.seq === result.audit.launched?.seq);
  t.like(launched, { type: 'agent.launched', runId: result.runId, module: '(code)', capabilities: ['data'] });
  t.deepEqual((launched as { submitted?: unknown }).submitted, { language: 'javascript', mode: 'script', sha256: sha256(source), bytes: Buffer.byteLength(source), source });
  t.like(records.find(r => r.seq === result.audit.finished?.seq), { type: 'agent.finished', runId: result.runId, status: 'completed' });
  t.true(records.some(r => r.type === 'request' && r.agentId === 'coder' && r.capabilityId === 'data' && r.decision === 'allow'));
});

test('a module with export default runs as an agent module, and a sync throw in it reports ZT_AGENT_THREW at its line', async t => {
  const { dir, sandbox } = await world(t);
  const ok = await sandbox.runCode({ agentId: 'coder', source: 'export default function main({ input }) {\n  return input * 2;\n}\n', input: 21 });
  t.like(ok, { ok: true, value: 42, mode: 'module' });
  const threw = await sandbox.runCode({ agentId: 'coder', source: "// a comment\nexport default function main() {\n  const x = 1;\n  throw new RangeError('too far ' + x);\n}\n" });
  t.like(threw, { ok: false, mode: 'module', error: { code: 'ZT_AGENT_THREW', message: 'too far 1', line: 4, column: 9 } });
  assertNoHostPath(t, dir, threw);
});

test('the console is bounded: at most 200 lines and 64 KiB, flagged when cut', async t => {
  const { sandbox } = await world(t);
  const many = await sandbox.runCode({ agentId: 'coder', source: "for (let i = 0; i < 300; i += 1) console.log('line', i);\nreturn 'done';" });
  t.like(many, { ok: true, value: 'done', consoleTruncated: true });
  t.is(many.console.length, 200);
  t.deepEqual(many.console[199], { level: 'log', text: 'line 199' });
  const wide = await sandbox.runCode({ agentId: 'coder', source: "for (let i = 0; i < 40; i += 1) console.log(String(i).padEnd(3000, '.'));" });
  t.like(wide, { ok: true, consoleTruncated: true });
  t.is(wide.console.reduce((n, line) => n + line.text.length, 0), 64 * 1024);
  t.false('value' in wide);
});

test('a syntax error comes back as data with its line and column, and is recorded; no vat starts', async t => {
  const { dir, sandbox } = await world(t);
  const source = 'const a = 1;\nconst b = a +;\nreturn b;\n';
  const result = await sandbox.runCode({ agentId: 'coder', source });
  t.like(result, { ok: false, error: { code: 'ZT_CODE_SYNTAX', line: 2, column: 14 } });
  t.is(typeof result.error?.message, 'string');
  t.is(result.runId, undefined);
  t.deepEqual(result.console, []);
  assertNoHostPath(t, dir, result);
  await sandbox.audit.flush();
  const records = await sandbox.audit.read(0, 1000);
  const refused = records.find(r => r.seq === result.audit.refused?.seq);
  t.like(refused, { type: 'agent.launch-failed', agentId: 'coder', code: 'ZT_CODE_SYNTAX', line: 2, column: 14, submitted: { sha256: sha256(source) } });
  t.false(records.some(r => r.type === 'agent.launched'));

  // An unclosed block is reported at the end of the submitted source, not in a wrapper.
  const unclosed = await sandbox.runCode({ agentId: 'coder', source: 'if (true) {\n  return 1;\n' });
  t.like(unclosed, { ok: false, error: { code: 'ZT_CODE_SYNTAX', line: 3, column: 1 } });
});

test('an error thrown after an await is ZT_AGENT_REJECTED at its line and column in the submitted source', async t => {
  const { dir, sandbox } = await world(t);
  const result = await sandbox.runCode({ agentId: 'coder', source: "const x = 1;\nawait null;\n\n  throw new Error('late ' + x);\n" });
  t.like(result, { ok: false, mode: 'script', error: { code: 'ZT_AGENT_REJECTED', message: 'late 1', line: 4, column: 9 } });
  const typeError = await sandbox.runCode({ agentId: 'coder', source: 'const o = null;\nreturn o.field;\n' });
  t.like(typeError, { ok: false, error: { code: 'ZT_AGENT_REJECTED', line: 2 } });
  t.regex(typeError.error?.message ?? '', /null/);
  // A thrown value that is not an Error has no stack: no position is claimed.
  const thrownString = await sandbox.runCode({ agentId: 'coder', source: "throw 'plain';" });
  t.like(thrownString, { ok: false, error: { code: 'ZT_AGENT_REJECTED', message: 'plain' } });
  t.is(thrownString.error?.line, undefined);
  assertNoHostPath(t, dir, result);
});

test('TypeScript with erasable syntax runs, positions kept', async t => {
  const { dir, sandbox } = await world(t);
  const source = [
    'interface Row { name: string; size: number }',
    'type Rows = readonly Row[];',
    'const rows: Rows = (input as { rows: Row[] }).rows;',
    'const total = (xs: Rows): number => xs.reduce((n: number, r: Row) => n + r.size, 0);',
    'if (rows.length === 0) throw new Error(`no rows`);',
    'return { total: total(rows), names: rows.map((r): string => r.name) satisfies string[] };',
  ].join('\n');
  const ok = await sandbox.runCode({ agentId: 'coder', language: 'typescript', source, input: { rows: [{ name: 'a', size: 2 }, { name: 'b', size: 3 }] } });
  t.like(ok, { ok: true, mode: 'script', value: { total: 5, names: ['a', 'b'] } });
  const empty = await sandbox.runCode({ agentId: 'coder', language: 'typescript', source, input: { rows: [] } });
  t.like(empty, { ok: false, error: { code: 'ZT_AGENT_REJECTED', message: 'no rows', line: 5, column: 30 } });
  const moduleTs = await sandbox.runCode({ agentId: 'coder', language: 'typescript', source: 'export default async function main({ input }: { input: number }): Promise<number> {\n  return input + 1;\n}\n', input: 1 });
  t.like(moduleTs, { ok: true, mode: 'module', value: 2 });
  assertNoHostPath(t, dir, empty);
});

test('TypeScript that cannot be erased (an enum, a namespace) is refused with ZT_CODE_SYNTAX at its position', async t => {
  const { dir, sandbox } = await world(t);
  const enumRun = await sandbox.runCode({ agentId: 'coder', language: 'typescript', source: 'const a: number = 1;\nenum Color { Red, Green }\nreturn Color.Red;\n' });
  t.like(enumRun, { ok: false, error: { code: 'ZT_CODE_SYNTAX', line: 2, column: 1 } });
  t.regex(enumRun.error?.message ?? '', /enum/);
  const namespaceRun = await sandbox.runCode({ agentId: 'coder', language: 'typescript', source: 'namespace N { export const a = 1 }\nreturn N.a;\n' });
  t.like(namespaceRun, { ok: false, error: { code: 'ZT_CODE_SYNTAX', line: 1 } });
  // The same text as JavaScript: type annotations are a syntax error there.
  const asJs = await sandbox.runCode({ agentId: 'coder', source: 'const a: number = 1;\nreturn a;\n' });
  t.like(asJs, { ok: false, error: { code: 'ZT_CODE_SYNTAX', line: 1, column: 8 } });
  assertNoHostPath(t, dir, enumRun);
});

test('an import is refused with ZT_MODULE_FORBIDDEN at its position, static or dynamic, before anything runs', async t => {
  // Attack: submitted code reaches for Node's file system (or any package)
  // instead of the capabilities it was given.
  const { dir, sandbox } = await world(t);
  const staticImport = await sandbox.runCode({ agentId: 'coder', source: "\nimport { readFileSync } from 'node:fs';\nreturn readFileSync('/etc/passwd', 'utf8');\n" });
  t.like(staticImport, { ok: false, error: { code: 'ZT_MODULE_FORBIDDEN', line: 2, column: 1 } });
  t.is(staticImport.runId, undefined);
  const dynamicImport = await sandbox.runCode({ agentId: 'coder', source: "const fs = await import('node:fs');\nreturn 1;\n" });
  t.like(dynamicImport, { ok: false, error: { code: 'ZT_MODULE_FORBIDDEN', line: 1, column: 18 } });
  const reexport = await sandbox.runCode({ agentId: 'coder', source: "export * from 'node:fs';\nexport default () => 1;\n" });
  t.like(reexport, { ok: false, error: { code: 'ZT_MODULE_FORBIDDEN', line: 1 } });
  const named = await sandbox.runCode({ agentId: 'coder', source: 'export const x = 1;\n' });
  t.like(named, { ok: false, error: { code: 'ZT_MODULE_NO_MAIN' } });
  assertNoHostPath(t, dir, staticImport);
});

test('only the capabilities named are reachable; an unknown, foreign or revoked one refuses the run', async t => {
  const { sandbox, dataFile } = await world(t);
  sandbox.registerAgent('other');
  sandbox.issueCapability(new Capability({ id: 'theirs', actionType: ActionType.READ, target: dataFile, holder: 'other' }));
  await t.throwsAsync(sandbox.runCode({ agentId: 'coder', source: 'return 1;', capabilities: ['nope'] }), { code: 'ZT_UNKNOWN_CAPABILITY' });
  await t.throwsAsync(sandbox.runCode({ agentId: 'coder', source: 'return 1;', capabilities: ['theirs'] }), { code: 'ZT_WRONG_HOLDER' });
  await t.throwsAsync(sandbox.runCode({ agentId: 'nobody', source: 'return 1;' }), { code: 'ZT_UNKNOWN_AGENT' });
  // Nothing named: nothing reachable, not even what the agent holds.
  const none = await sandbox.runCode({ agentId: 'coder', source: 'return Object.keys(caps).length;' });
  t.like(none, { ok: true, value: 0 });
  sandbox.revokeCapability('data', 'test');
  await t.throwsAsync(sandbox.runCode({ agentId: 'coder', source: 'return 1;', capabilities: ['data'] }), { code: 'ZT_REVOKED' });
});

test('bad options are ZT_BAD_ARGUMENT, an oversized source ZT_MODULE_TOO_LARGE', async t => {
  const { sandbox } = await world(t);
  await t.throwsAsync(sandbox.runCode({ agentId: 'coder', source: 42 } as never), { code: 'ZT_BAD_ARGUMENT' });
  await t.throwsAsync(sandbox.runCode({ agentId: 'coder', source: 'return 1;', language: 'python' } as never), { code: 'ZT_BAD_ARGUMENT' });
  await t.throwsAsync(sandbox.runCode(null as never), { code: 'ZT_BAD_ARGUMENT' });
  await t.throwsAsync(sandbox.runCode({ agentId: 'coder', source: 'return 1;', limits: { deadlineMs: -1 } }), { code: 'ZT_BAD_ARGUMENT' });
  await t.throwsAsync(sandbox.runCode({ agentId: 'coder', source: 'return 1;', input: { f: () => 1 } }), { code: 'ZT_BAD_ARGUMENT' });
  await t.throwsAsync(sandbox.runCode({ agentId: 'coder', source: `return 1;\n//${'x'.repeat(8 * 1024 * 1024)}` }), { code: 'ZT_MODULE_TOO_LARGE' });
  // Multi-byte text is measured in UTF-8 bytes.
  await t.throwsAsync(sandbox.runCode({ agentId: 'coder', source: `return 1;\n//${'é'.repeat(4 * 1024 * 1024)}` }), { code: 'ZT_MODULE_TOO_LARGE' });
});

test('a runaway script ends at its deadline with ZT_DEADLINE', async t => {
  const { dir, sandbox } = await world(t);
  const started = Date.now();
  const result = await sandbox.runCode({ agentId: 'coder', source: "console.log('spinning');\nwhile (true) {}\n", limits: { deadlineMs: 500 } });
  t.like(result, { ok: false, error: { code: 'ZT_DEADLINE' } });
  t.true(Date.now() - started < 10_000);
  assertNoHostPath(t, dir, result);
  // As for any vat failure, the agent's capabilities are revoked (failure mode `vatFailure`).
  t.is(sandbox.getCapability('data')?.state, 'revoked');
});

test('a run under process isolation (bubblewrap) answers the same way', async t => {
  const { dir, sandbox } = await world(t);
  const result = await sandbox.runCode({
    agentId: 'coder',
    isolation: 'process',
    capabilities: { report: 'data' },
    language: 'typescript',
    source: "const text: string = await E(caps.report).read();\nconsole.info('chars', text.length);\nif (text) throw new TypeError('stop here');\n",
  });
  t.like(result, { ok: false, mode: 'script', error: { code: 'ZT_AGENT_REJECTED', message: 'stop here', line: 3, column: 17 } });
  t.deepEqual(result.console, [{ level: 'info', text: 'chars 17' }]);
  await sandbox.audit.flush();
  const records = await sandbox.audit.read(0, 1000);
  t.like(records.find(r => r.seq === result.audit.launched?.seq), { type: 'agent.launched', isolation: 'process', runId: result.runId });
  assertNoHostPath(t, dir, result);
});

test('launchAgent shares the admission: a launch\'s own deadline wins over the runtime\'s default', async t => {
  // Regression: the per-vat budgets, resolved after the deadline, carried the
  // runtime's default deadline and hid the launch's own.
  const { sandbox } = await world(t, { limits: { deadlineMs: 60_000 } });
  const spinner = fileURLToPath(new URL('../../test/fixtures/agents/spinner', import.meta.url));
  const started = Date.now();
  const run = await (await sandbox.launchAgent({ agentId: 'coder', module: spinner, limits: { deadlineMs: 400 } })).result;
  t.is(run.error?.code, 'ZT_DEADLINE');
  t.regex(run.error?.message ?? '', /400 ms/);
  t.true(Date.now() - started < 20_000);
});

test('with a vat pool (vatPoolSize, worker vats) a code run takes a pooled vat, and every run gets one of its own', async t => {
  const { sandbox } = await world(t, { vatPoolSize: 1 });
  const runs: CodeRunResult[] = [];
  for (let i = 0; i < 3; i += 1) {
    // The pool refills after the turn in which a run ends.
    await new Promise(resolve => setTimeout(resolve, 50));
    runs.push(await sandbox.runCode({ agentId: 'coder', source: 'return input * 2;', input: i }));
  }
  t.deepEqual(
    runs.map(r => r.value),
    [0, 2, 4],
  );
  t.is(new Set(runs.map(r => r.runId)).size, 3);
  await sandbox.audit.flush();
  const records = await sandbox.audit.read(0, 1000);
  for (const run of runs) {
    t.like(records.find(r => r.seq === run.audit.launched?.seq), { type: 'agent.launched', runId: run.runId, isolation: 'worker', warm: true });
    t.like(records.find(r => r.seq === run.audit.finished?.seq), { type: 'agent.finished', runId: run.runId, status: 'completed' });
  }
});
