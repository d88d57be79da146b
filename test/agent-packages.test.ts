/**
 * Packages for agents: the operator lists packages an agent may import,
 * resolved by the kernel from the runtime's `packagesDir` and loaded into
 * the agent's Compartment as part of its confined module graph. Each
 * package may import only what its own list names; builtins are never
 * available; a package's files stay in its folder. Fixture packages are in
 * test/fixtures/packages/node_modules; `yaml` is this repository's own
 * dependency. No lockdown here: this file runs as a host application does.
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SandboxRuntime, type SandboxOptions } from '../src/index.js';
import { resolveModuleSpecifier } from '../src/agent-specifiers.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = join(repo, 'test/fixtures/packages');
const fixturePackages = join(fixtures, 'node_modules');
const agent = (name: string) => join(fixtures, 'agents', name, 'index.js');

/** A runtime on a temporary store (worker vats unless named), with agent `a` registered. */
const world = async (t: { teardown(fn: () => Promise<void>): void }, options: SandboxOptions = {}) => {
  const dir = await mkdtemp(join(tmpdir(), 'ztaas-packages-'));
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store'), isolation: 'worker', ...options });
  t.teardown(async () => {
    await sandbox.shutdown();
    await rm(dir, { recursive: true, force: true });
  });
  sandbox.registerAgent('a');
  return sandbox;
};

const codeOf = (err: unknown) => String((err as Error)?.message ?? err).split(':')[0];

test('an agent imports yaml (listed) and parses and stringifies a document; the launch record names the package, its version and digest', async t => {
  // packagesDir defaults to the working directory's node_modules: this repository's (ava runs from its root).
  const sandbox = await world(t);
  const handle = await sandbox.launchAgent({ agentId: 'a', module: agent('yaml-agent'), packages: ['yaml'], input: { text: 'name: demo\ncount: 1\n' } });
  const outcome = await handle.result;
  t.is(outcome.status, 'completed', JSON.stringify(outcome.error));
  t.deepEqual(outcome.value, { parsed: { name: 'demo', count: 2 }, text: 'name: demo\ncount: 2\n' });
  const records = await sandbox.audit.read(0, 1000);
  const launched = records.find(r => r.type === 'agent.launched' && r.runId === handle.runId) as { packages?: { name: string; version: string; files: number; sha256: string }[] };
  t.is(launched.packages?.length, 1);
  t.like(launched.packages?.[0], { name: 'yaml', version: '2.9.1' });
  t.true((launched.packages?.[0]?.files ?? 0) > 10);
  t.regex(launched.packages?.[0]?.sha256 ?? '', /^[0-9a-f]{64}$/);
});

test('the default process isolation: an agent importing a listed package runs in a child process', async t => {
  const sandbox = await world(t, { packagesDir: fixturePackages, isolation: 'process' });
  const handle = await sandbox.launchAgent({ agentId: 'a', module: agent('greeter'), packages: { greets: {}, 'uses-greets': { imports: ['greets'] } }, input: { name: 'ada' } });
  const outcome = await handle.result;
  t.is(outcome.status, 'completed', JSON.stringify(outcome.error));
  t.is(outcome.value, 'hello, ada, welcome');
  const records = await sandbox.audit.read(0, 1000);
  const launched = records.find(r => r.type === 'agent.launched' && r.runId === handle.runId) as { isolation?: string; packages?: { name: string; version: string }[] };
  t.is(launched.isolation, 'process');
  t.deepEqual(launched.packages?.map(p => [p.name, p.version]), [['greets', '1.2.3'], ['uses-greets', '0.1.0']]);
});

test('escape: an agent importing a package that is not listed for it is refused with ZT_MODULE_FORBIDDEN', async t => {
  // The package is installed and another one is listed: only the list counts.
  const sandbox = await world(t, { packagesDir: fixturePackages });
  const err = await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: agent('unlisted'), packages: ['uses-greets'] }));
  t.is(codeOf(err), 'ZT_MODULE_FORBIDDEN');
  t.regex(String(err?.message), /the agent cannot import "greets"/);
  // No list at all: the agent's imports of packages are refused as before.
  const none = await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: agent('unlisted') }));
  t.is(codeOf(none), 'ZT_MODULE_FORBIDDEN');
});

test('escape: a package importing a package not on its own list is refused with ZT_MODULE_FORBIDDEN naming the importer', async t => {
  // Both packages are listed for the agent, but `uses-greets` was given no imports of its own.
  const sandbox = await world(t, { packagesDir: fixturePackages });
  const err = await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: agent('greeter'), packages: { greets: {}, 'uses-greets': {} } }));
  t.is(codeOf(err), 'ZT_MODULE_FORBIDDEN');
  t.regex(String(err?.message), /package uses-greets cannot import "greets"/);
  // With the import allowed, the same graph loads and runs.
  const handle = await sandbox.launchAgent({ agentId: 'a', module: agent('greeter'), packages: { greets: {}, 'uses-greets': { imports: ['greets'] } }, input: { name: 'bo' } });
  t.is((await handle.result).value, 'hello, bo, welcome');
});

test('escape: a package importing a builtin (node:fs) is refused with ZT_MODULE_FORBIDDEN', async t => {
  const sandbox = await world(t, { packagesDir: fixturePackages });
  const err = await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: agent('fs-user'), packages: ['uses-fs'] }));
  t.is(codeOf(err), 'ZT_MODULE_FORBIDDEN');
  t.regex(String(err?.message), /package uses-fs cannot import "node:fs"/);
  // A builtin cannot be listed as a package either.
  const listed = await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: agent('fs-user'), packages: ['fs'] }));
  t.is(codeOf(listed), 'ZT_BAD_ARGUMENT');
});

test('escape: a package file that symlinks outside the package folder is refused with ZT_MODULE_OUTSIDE', async t => {
  // escapes/lib/secret.js is a symlink to a module beside node_modules.
  const sandbox = await world(t, { packagesDir: fixturePackages });
  const err = await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: agent('escaper'), packages: ['escapes'] }));
  t.is(codeOf(err), 'ZT_MODULE_OUTSIDE');
  t.regex(String(err?.message), /resolves outside the folder of package escapes/);
});

test('a CommonJS-only package is refused with ZT_MODULE_FORBIDDEN saying it is not an ES module', async t => {
  const sandbox = await world(t, { packagesDir: fixturePackages });
  const err = await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: agent('cjs-user'), packages: ['cjs-only'] }));
  t.is(codeOf(err), 'ZT_MODULE_FORBIDDEN');
  t.regex(String(err?.message), /not an ES module/);
});

test('bad package options are refused with ZT_BAD_ARGUMENT before anything runs', async t => {
  const sandbox = await world(t, { packagesDir: fixturePackages });
  for (const packages of [{ greets: { imports: ['missing'] } }, { 'Not A Name': {} }, { greets: { extra: true } }, 'greets']) {
    const err = await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: agent('greeter'), packages: packages as never }));
    t.is(codeOf(err), 'ZT_BAD_ARGUMENT', JSON.stringify(packages));
  }
  const missing = await t.throwsAsync(sandbox.launchAgent({ agentId: 'a', module: agent('unlisted'), packages: ['not-installed'] }));
  t.is(codeOf(missing), 'ZT_MODULE_NOT_FOUND');
});

test('runCode: a module imports yaml when listed; a script imports it dynamically; unlisted imports are refused', async t => {
  const sandbox = await world(t, { packagesDir: join(repo, 'node_modules') });
  const module = "import { parse, stringify } from 'yaml';\nexport default async function main({ input }) { return stringify({ ...parse(input), ok: true }); }\n";
  const result = await sandbox.runCode({ agentId: 'a', source: module, input: 'a: 1\n', packages: ['yaml'] });
  t.true(result.ok, JSON.stringify(result.error));
  t.is(result.value, 'a: 1\nok: true\n');
  const records = await sandbox.audit.read(0, 1000);
  const launched = records.find(r => r.seq === result.audit.launched?.seq) as { packages?: { name: string }[] };
  t.deepEqual(launched.packages?.map(p => p.name), ['yaml']);

  const script = "const YAML = await import('yaml');\nreturn YAML.parse('[1, 2]');\n";
  const scripted = await sandbox.runCode({ agentId: 'a', source: script, packages: ['yaml'] });
  t.true(scripted.ok, JSON.stringify(scripted.error));
  t.deepEqual(scripted.value, [1, 2]);

  // Not listed: refused before anything runs, as before.
  const refused = await sandbox.runCode({ agentId: 'a', source: module, input: 'a: 1\n' });
  t.false(refused.ok);
  t.is(refused.error?.code, 'ZT_MODULE_FORBIDDEN');
  // Listed packages do not open other imports: a builtin, another package.
  const builtin = await sandbox.runCode({ agentId: 'a', source: "import fs from 'node:fs';\nexport default () => 1;\n", packages: ['yaml'] });
  t.is(builtin.error?.code, 'ZT_MODULE_FORBIDDEN');
  const dynamic = await sandbox.runCode({ agentId: 'a', source: "try { await import('ajv'); return 'loaded'; } catch (e) { return e.code; }\n", packages: ['yaml'] });
  t.is(dynamic.value, 'ZT_MODULE_FORBIDDEN');
});

test('escape: the vat resolves bare specifiers only through the kernel\'s table, and keeps relative imports in their package', t => {
  // The vat does not trust the graph to be vetted: the same resolver runs in
  // its Compartment's resolveHook, with the import table the kernel built.
  const imports = { 'file:///agent/': { yaml: 'file:///packages/yaml/browser/index.js' }, 'file:///packages/yaml/': {} };
  t.is(resolveModuleSpecifier('yaml', 'file:///agent/index.js', imports), 'file:///packages/yaml/browser/index.js');
  t.is(resolveModuleSpecifier('./dist/x.js', 'file:///packages/yaml/browser/index.js', imports), 'file:///packages/yaml/browser/dist/x.js');
  const code = (fn: () => unknown) => {
    try {
      fn();
      return 'resolved';
    } catch (err) {
      return codeOf(err);
    }
  };
  // A package cannot import what only the agent may, nor a builtin, even if a table names it.
  t.is(code(() => resolveModuleSpecifier('yaml', 'file:///packages/greets/index.js', imports)), 'ZT_MODULE_FORBIDDEN');
  t.is(code(() => resolveModuleSpecifier('node:fs', 'file:///agent/index.js', { 'file:///agent/': { 'node:fs': 'file:///agent/x.js' } })), 'ZT_MODULE_FORBIDDEN');
  // Relative imports leave neither a package nor the agent for the other.
  t.is(code(() => resolveModuleSpecifier('../../agent/index.js', 'file:///packages/yaml/index.js', imports)), 'ZT_MODULE_OUTSIDE');
  t.is(code(() => resolveModuleSpecifier('../other/index.js', 'file:///packages/yaml/index.js', imports)), 'ZT_MODULE_OUTSIDE');
  t.is(code(() => resolveModuleSpecifier('/packages/yaml/index.js', 'file:///agent/index.js', imports)), 'ZT_MODULE_OUTSIDE');
  t.is(code(() => resolveModuleSpecifier('../@scope/other/x.js', 'file:///packages/@scope/pkg/x.js', imports)), 'ZT_MODULE_OUTSIDE');
});
