/**
 * Resource policy follows the resource, whatever the channel: tool
 * arguments the policy declares as paths or URLs (`toolResources`) are
 * decided as the READ, WRITE, EXECUTE or NETWORK requests they amount to.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from './_prepare.js';
import { makeTempDir, makeTestKernel } from './_kernel.js';
import { canonicalJson } from '../src/audit/canonical.js';
import { policyCommand } from '../src/cli/policy.js';
import { codeOf } from '../src/errors.js';
import { makeMcpToolEffectors } from '../src/effectors/mcp.js';
import { makeNodeMcpPowers } from '../src/effectors/mcp-node-powers.js';
import { loadPolicyText, makePolicy, type PolicyProblem } from '../src/policy.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const FILESYSTEM = join(repo, 'node_modules/@modelcontextprotocol/server-filesystem/dist/index.js');
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const problemsOf = (err: unknown) => (err as { details: { problems: PolicyProblem[] } }).details.problems;

const READ_TOOLS = ['fs/read_file', 'fs/read_text_file', 'fs/read_media_file', 'fs/list_directory', 'fs/get_file_info'];

/** The policy of the report: the data directory is readable, its secrets are not. */
const policyFor = (dir: string, declare: boolean) => ({
  version: 1,
  rules: [
    { id: 'fs-tools', effect: 'permit', actions: ['TOOL'], targets: [...READ_TOOLS, 'fs/read_multiple_files'] },
    { id: 'read-data', effect: 'permit', actions: ['READ'], targets: [`${dir}/**`] },
    { id: 'no-secrets', effect: 'forbid', actions: ['READ'], targets: [`${dir}/secrets/**`] },
  ],
  ...(declare
    ? {
        toolResources: [
          { targets: READ_TOOLS, args: { path: 'READ' } },
          { targets: ['fs/read_multiple_files'], args: { paths: 'READ' } },
        ],
      }
    : {}),
});

const setUp = (t: { teardown(fn: () => unknown): void }, declare: boolean) => {
  const { dir, cleanup } = makeTempDir('ztaas-toolres-');
  t.teardown(cleanup);
  mkdirSync(join(dir, 'secrets'));
  mkdirSync(join(dir, 'public'));
  writeFileSync(join(dir, 'notes.txt'), 'remember the milk');
  writeFileSync(join(dir, 'secrets', 'id_rsa'), 'PRIVATE KEY MATERIAL');
  const tool = makeMcpToolEffectors({ servers: { fs: { command: process.execPath, args: [FILESYSTEM, dir] } }, powers: makeNodeMcpPowers() });
  t.teardown(tool.close);
  const { kernel, sink } = makeTestKernel({ policy: policyFor(dir, declare), effectors: { TOOL: tool.effector } });
  kernel.registerAgent('a');
  for (const target of ['fs/read_file', 'fs/read_multiple_files']) {
    kernel.issueCapability(new Capability({ id: target.replace('/', '-'), actionType: ActionType.TOOL, target, holder: 'a' }));
  }
  const call = (target: string, args: Record<string, unknown>) =>
    kernel.execute(new ActionRequest({ capabilityId: target.replace('/', '-'), agentId: 'a', actionType: ActionType.TOOL, target, args: { arguments: args } }), 'api');
  return { dir, kernel, sink, call };
};

test.serial('the tool channel was a way around a READ forbid when its arguments were not declared', async t => {
  // The original failure, kept as the control: TOOL fs/read_file is
  // permitted, and no file rule sees the path it names.
  const { dir, call } = setUp(t, false);
  const leak = await call('fs/read_file', { path: join(dir, 'secrets', 'id_rsa') });
  t.true(leak.ok);
  t.regex(JSON.stringify(leak.result), /PRIVATE KEY MATERIAL/);
});

test.serial('read_file of a path a READ forbid covers is denied, through the real filesystem MCP server', async t => {
  // Attack: an agent holding the filesystem server's read_file tool asks it
  // for a file the policy forbids it to READ, directly, through `..`, and
  // inside a list of otherwise permitted files.
  const { dir, kernel, sink, call } = setUp(t, true);
  const fine = await call('fs/read_file', { path: join(dir, 'notes.txt') });
  t.true(fine.ok, JSON.stringify(fine.error));
  t.regex(JSON.stringify(fine.result), /remember the milk/);

  const direct = await call('fs/read_file', { path: join(dir, 'secrets', 'id_rsa') });
  t.false(direct.ok);
  t.is(direct.error?.code, 'ZT_POLICY_DENIED');
  const dotted = await call('fs/read_file', { path: `${dir}/public/../secrets/id_rsa` });
  t.is(dotted.error?.code, 'ZT_POLICY_DENIED');
  const listed = await call('fs/read_multiple_files', { paths: [join(dir, 'notes.txt'), join(dir, 'secrets', 'id_rsa')] });
  t.is(listed.error?.code, 'ZT_POLICY_DENIED');
  const outside = await call('fs/read_file', { path: '/etc/hostname' });
  t.is(outside.error?.code, 'ZT_POLICY_DENIED', 'no READ permit covers it: default deny, as for READ');

  // What cannot be read as a path is not allowed.
  t.is((await call('fs/read_file', { path: 'secrets/id_rsa' })).error?.code, 'ZT_ARGUMENT_DENIED', 'a relative path');
  t.is((await call('fs/read_file', { path: '~/secrets/id_rsa' })).error?.code, 'ZT_ARGUMENT_DENIED');
  t.is((await call('fs/read_file', {})).error?.code, 'ZT_ARGUMENT_DENIED', 'absent');
  t.is((await call('fs/read_file', { path: 42 })).error?.code, 'ZT_ARGUMENT_DENIED');
  t.is((await call('fs/read_multiple_files', { paths: [join(dir, 'notes.txt'), 7] })).error?.code, 'ZT_ARGUMENT_DENIED');

  await kernel.flush();
  const denials = sink.records.filter(r => r.type === 'request' && r.decision === 'deny' && r.code === 'ZT_POLICY_DENIED' && (r.rules as string[]).includes('no-secrets'));
  t.is(denials.length, 3, 'each denial names the READ forbid that decided it');
  const recorded = sink.records.find(r => r.type === 'request' && r.decision === 'allow') as { rules: string[]; policyArgs?: { arguments?: unknown } };
  t.deepEqual(recorded.rules, ['fs-tools', 'read-data'], 'an allowed call names the TOOL and the READ permits');
  t.deepEqual(recorded.policyArgs?.arguments, { path: join(dir, 'notes.txt') }, 'the arguments the policy read are recorded for replay');
  t.false(JSON.stringify(sink.records).includes('PRIVATE KEY MATERIAL'));
});

test('URL and write arguments, taints and explanations follow the derived requests', t => {
  const policy = makePolicy(
    {
      version: 1,
      taints: [{ name: 'secret', actions: ['READ'], targets: ['/data/secrets/**'] }],
      rules: [
        { id: 'tools', effect: 'permit', actions: ['TOOL'] },
        { id: 'read', effect: 'permit', actions: ['READ', 'WRITE'], targets: ['/data/**'] },
        { id: 'api', effect: 'permit', actions: ['NETWORK'], targets: ['https://api.example.com/**'] },
        { id: 'no-admin', effect: 'forbid', actions: ['NETWORK'], targets: ['https://api.example.com/admin/**'] },
      ],
      toolResources: [
        { targets: ['web/fetch'], args: { url: 'NETWORK' } },
        { targets: ['fs/move_*'], args: { source: 'WRITE', destination: 'WRITE' } },
        { targets: ['fs/read_*'], args: { path: 'READ' } },
      ],
    },
    sha,
    canonicalJson,
  );
  const tool = (target: string, args: Record<string, unknown>) => ({ agentId: 'a', actionType: 'TOOL' as const, target, args: { arguments: args } });
  t.true(policy.decide(tool('web/fetch', { url: 'https://api.example.com/v1/x' })).allowed);
  t.like(policy.decide(tool('web/fetch', { url: 'https://API.example.com:443/v1/../admin/users' })), { allowed: false, code: 'ZT_POLICY_DENIED', rules: ['no-admin'] });
  t.is(policy.decide(tool('web/fetch', { url: 'file:///etc/passwd' })).code, 'ZT_ARGUMENT_DENIED');
  t.is(policy.decide(tool('fs/move_file', { source: '/data/a', destination: '/etc/cron.d/x' })).code, 'ZT_POLICY_DENIED');
  t.true(policy.decide(tool('fs/move_file', { source: '/data/a', destination: '/data/b' })).allowed);
  t.true(policy.decide(tool('other/thing', { path: '/etc/passwd' })).allowed, 'undeclared tools are decided by the rules alone');
  t.deepEqual([...policy.taintsFor(tool('fs/read_file', { path: '/data/secrets/k' }))], ['secret'], 'the READ taint is acquired through the tool');
  t.true(policy.argNames.includes('arguments'));
  const explained = policy.explain(tool('web/fetch', { url: 'https://api.example.com/admin/x' }));
  t.false(explained.decision.allowed);
  t.is(explained.resources?.length, 1);
  t.like(explained.resources?.[0], { request: { actionType: 'NETWORK', target: 'https://api.example.com/admin/x' }, decision: { allowed: false, rules: ['no-admin'] } });
});

test('toolResources declarations are validated at load, located', t => {
  const text = `version: 1
rules:
  - { id: tools, effect: permit, actions: [TOOL] }
toolResources:
  - targets: ['fs/{read,write}_file']
    args: { path: READ }
  - targets: ['fs/x']
    args: { path: TOOL }
`;
  const err = t.throws(() => loadPolicyText(text, sha, canonicalJson));
  t.is(codeOf(err), 'ZT_POLICY_INVALID');
  const got = problemsOf(err).map(p => `${p.line}:${p.column} ${p.pointer}`);
  t.deepEqual(got, ['5:15 /toolResources/0/targets/0', '8:19 /toolResources/1/args/path']);
});

test('policy explain shows the resource a tool argument names, and its DENY', async t => {
  const { dir, cleanup } = makeTempDir('ztaas-toolres-cli-');
  t.teardown(cleanup);
  const file = join(dir, 'p.json');
  writeFileSync(file, JSON.stringify(policyFor('/data', true)));
  let out = '';
  const status = await policyCommand('explain', [file, '--agent', 'a', '--action', 'TOOL', '--target', 'fs/read_file', '--args', JSON.stringify({ arguments: { path: '/data/secrets/id_rsa' } })], {
    out: s => (out += s),
    err: s => (out += s),
    readText: p => readFile(p, 'utf8'),
  });
  t.is(status, 0);
  t.regex(out, /^decision: DENY \(ZT_POLICY_DENIED\)  rules: no-secrets$/m);
  t.regex(out, /^resource: READ \/data\/secrets\/id_rsa \(a declared tool argument\): DENY \(ZT_POLICY_DENIED\)  rules: no-secrets$/m);
});
