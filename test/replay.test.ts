/**
 * Replay: a recorded session re-decides with zero differences against its
 * recorded policy; against a stricter policy it lists exactly the decisions
 * that change. The session uses context-dependent rules (labels, taints,
 * rates) so replay must use the recorded context, not the present.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from './_prepare.js';
import { ActionRequest, ActionType, Capability, SandboxRuntime } from '../src/index.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));

test('a recorded session replays with zero differences, and a stricter policy shows exactly what changes', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const name of ['report.txt', 'secret.txt']) writeFileSync(join(dir, name), name);
  const out = join(dir, 'out.txt');
  const policy = {
    version: 1,
    taints: [{ name: 'secrets', actions: ['READ'], targets: [`${dir}/secret*`] }],
    rules: [
      { id: 'analysts-read', effect: 'permit', actions: ['READ'], targets: [`${dir}/**`], when: { labels: { anyOf: ['analyst'] } } },
      { id: 'write-out', effect: 'permit', actions: ['WRITE'], targets: [out], when: { rate: { max: 2, windowMs: 60_000 } } },
      { id: 'no-leak-after-secrets', effect: 'forbid', actions: ['WRITE'], when: { taints: { anyOf: ['secrets'] } } },
    ],
  };
  const storeDir = join(dir, 'store');
  const sandbox = new SandboxRuntime({ storeDir, policy });
  sandbox.registerAgent('ann', { labels: ['analyst'] });
  sandbox.registerAgent('bob');
  const cap = (id: string, holder: string, actionType: ActionType, target: string) => sandbox.issueCapability(new Capability({ id, holder, actionType, target }));
  cap('ann-read', 'ann', ActionType.READ, `${dir}/*.txt`);
  cap('ann-write', 'ann', ActionType.WRITE, out);
  // bob has no analyst label: the policy refuses the grant itself.
  t.throws(() => cap('bob-read', 'bob', ActionType.READ, `${dir}/report.txt`), { message: /^ZT_POLICY_DENIED\b/ });
  const act = async (capabilityId: string, agentId: string, actionType: ActionType, target: string) =>
    (await sandbox.executeAction(new ActionRequest({ capabilityId, agentId, actionType, target, ...(actionType === ActionType.WRITE ? { args: { content: 'x' } } : {}) }))).error?.code ?? 'ok';
  const codes = [
    await act('ann-read', 'ann', ActionType.READ, join(dir, 'report.txt')),
    await act('ann-write', 'ann', ActionType.WRITE, out),
    await act('ann-write', 'ann', ActionType.WRITE, out),
    await act('ann-write', 'ann', ActionType.WRITE, out), // rate: third write in the window
    await act('ann-read', 'ann', ActionType.READ, join(dir, 'secret.txt')), // acquires the taint
    await act('ann-write', 'ann', ActionType.WRITE, out), // tainted
  ];
  t.deepEqual(codes, ['ok', 'ok', 'ok', 'ZT_RATE_LIMITED', 'ok', 'ZT_POLICY_DENIED']);
  await sandbox.shutdown();

  const same = await run(process.execPath, [cli, 'audit', 'replay', '--store', storeDir, '--json']);
  const report = JSON.parse(same.stdout) as { replayed: number; differences: unknown[]; problems: unknown[] };
  t.is(report.replayed, 6);
  t.deepEqual(report.differences, []);
  t.deepEqual(report.problems, []);

  // Stricter: analysts may not read secrets at all.
  const stricter = { ...policy, rules: [...policy.rules, { id: 'no-secrets', effect: 'forbid', actions: ['READ'], targets: [`${dir}/secret*`] }] };
  const file = join(dir, 'stricter.json');
  writeFileSync(file, JSON.stringify(stricter));
  const changed = await run(process.execPath, [cli, 'audit', 'replay', '--store', storeDir, '--policy', file, '--json']);
  const diff = JSON.parse(changed.stdout) as { differences: Array<{ target: string; recorded: { decision: string }; replayed: { decision: string; rules: string[] } }> };
  t.deepEqual(
    diff.differences.map(d => [d.target, d.recorded.decision, d.replayed.decision, d.replayed.rules]),
    [[join(dir, 'secret.txt'), 'allow', 'deny', ['no-secrets']]],
  );

  // A policy that reads an argument the recorded one never read: the
  // record does not hold it, so those decisions are reported as not
  // replayable (ZT_NOT_REPLAYABLE), never as policy errors or differences.
  const readsContent = {
    ...policy,
    rules: [...policy.rules, { id: 'short-writes', effect: 'forbid', actions: ['WRITE'], when: { args: { content: { pattern: '^.{100,}$' } } } }],
  };
  const readsFile = join(dir, 'reads-content.json');
  writeFileSync(readsFile, JSON.stringify(readsContent));
  const reads = await run(process.execPath, [cli, 'audit', 'replay', '--store', storeDir, '--policy', readsFile, '--json']);
  const readsReport = JSON.parse(reads.stdout) as { replayed: number; differences: unknown[]; notReplayable: Array<{ seq: number; code: string; arguments: string[] }>; problems: unknown[] };
  t.is(readsReport.replayed, 0);
  t.deepEqual(readsReport.differences, []);
  t.is(readsReport.notReplayable.length, 6);
  t.true(readsReport.notReplayable.every(n => n.code === 'ZT_NOT_REPLAYABLE' && n.arguments.join() === 'content'));
  const human = await run(process.execPath, [cli, 'audit', 'replay', '--store', storeDir, '--policy', readsFile]);
  t.regex(human.stdout, /#\d+: ZT_NOT_REPLAYABLE: the policy reads content, which the record does not hold/);
});
