/**
 * Human approval of a call, end to end on a real `SandboxRuntime`: a
 * policy rule with `approval` makes a permitted call wait for a person's
 * answer (an `onApproval` handler, or `answerApproval` while it is
 * pending). A yes lets it proceed; a no, a malformed answer, silence past
 * the rule's timeout, or a revocation while it waits each deny with their
 * own code, consume nothing, and are recorded with what the approver saw
 * and who answered; replay uses the recorded answer. No lockdown here: this
 * file runs as a host application does.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  ActionRequest,
  ActionType,
  Capability,
  SandboxRuntime,
  codeOf,
  validatePolicyDocument,
  type ApprovalRequest,
  type Outcome,
  type PolicyDocument,
} from '../src/index.js';
import { makePolicy } from '../src/policy.js';
import { sha256Hex } from '../src/node-powers.js';
import { canonicalJson } from '../src/audit/canonical.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));

const tempDir = async (t: { teardown(fn: () => Promise<void>): void }) => {
  const dir = await mkdtemp(join(tmpdir(), 'ztaas-approval-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
};

const approvalPolicy = (dir: string, approval: { timeoutMs: number; prompt?: string }): PolicyDocument => ({
  version: 1,
  rules: [
    { id: 'read-data', effect: 'permit', actions: ['READ'], targets: [`${dir}/*.txt`] },
    { id: 'read-secret-with-approval', effect: 'permit', actions: ['READ'], targets: [`${dir}/secret.txt`], approval },
  ],
});

/**
 * A runtime whose policy asks for approval to read secret.txt, an agent `a`
 * and its capability `cap`. The timeout is generous: every runtime a
 * concurrent test starts holds the host thread in its synchronous setup
 * calls for a moment, and an answer given on that thread waits for it.
 */
const setup = async (t: ExecutionContext, approval: { timeoutMs: number; prompt?: string } = { timeoutMs: 120_000, prompt: 'Let agent a read the secret?' }) => {
  const dir = await tempDir(t);
  const secret = join(dir, 'secret.txt');
  await writeFile(secret, 'the secret');
  await writeFile(join(dir, 'open.txt'), 'open data');
  const storeDir = join(dir, 'store');
  const sandbox = new SandboxRuntime({ storeDir, policy: approvalPolicy(dir, approval) });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('a');
  sandbox.issueCapability(new Capability({ id: 'cap', actionType: ActionType.READ, target: `${dir}/*.txt`, holder: 'a' }));
  const read = (target = secret): Promise<Outcome> => sandbox.executeAction(new ActionRequest({ capabilityId: 'cap', agentId: 'a', actionType: ActionType.READ, target }));
  return { dir, secret, storeDir, sandbox, read };
};

/** Polls until `pendingApprovals()` holds `n` requests. */
const pending = async (sandbox: SandboxRuntime, n = 1): Promise<ApprovalRequest[]> => {
  for (let i = 0; i < 500; i += 1) {
    const list = sandbox.pendingApprovals();
    if (list.length === n) return list;
    await new Promise(resolve => setTimeout(resolve, 10));
  }
  throw Error(`expected ${n} pending approvals, found ${sandbox.pendingApprovals().length}`);
};

const allRecords = async (sandbox: SandboxRuntime) => {
  await sandbox.audit.flush();
  return sandbox.audit.read(0, await sandbox.audit.size());
};

test('a call the policy permits only with approval proceeds once an onApproval handler says yes; the log holds what was shown and who answered', async t => {
  const { sandbox, read, secret } = await setup(t);
  const asked: ApprovalRequest[] = [];
  sandbox.onApproval(request => {
    asked.push(request);
    return { approved: true, by: 'alice@example.com', note: 'fine for this task' };
  });
  const outcome = await read();
  t.is(outcome.status, 'succeeded');
  t.is(outcome.result, 'the secret');
  t.is(asked.length, 1);
  const [request] = asked as [ApprovalRequest];
  t.like(request, {
    requestId: outcome.requestId,
    agentId: 'a',
    capabilityId: 'cap',
    actionType: 'READ',
    target: secret,
    ruleIds: ['read-secret-with-approval'],
    prompt: 'Let agent a read the secret?',
    timeoutMs: 120_000,
  });
  t.is(typeof request.approvalId, 'string');
  t.true(request.expiresAt > Date.now() - 60_000);
  t.deepEqual(sandbox.pendingApprovals(), []);
  t.is(sandbox.getCapability('cap')?.uses, 1);

  const records = await allRecords(sandbox);
  const requested = records.find(r => r.type === 'approval.requested');
  t.like(requested, { approvalId: request.approvalId, requestId: outcome.requestId, target: secret, prompt: 'Let agent a read the secret?', ruleIds: ['read-secret-with-approval'], expiresAt: request.expiresAt });
  t.regex(String(requested?.argsDigest), /^[0-9a-f]{64}$/);
  const decisions = records.filter(r => r.type === 'request');
  t.is(decisions.length, 1, 'exactly one decision record');
  const [decision] = decisions;
  t.is(decision?.seq, outcome.audit.decision?.seq);
  t.true(Number(decision?.seq) > Number(requested?.seq), 'the request for approval is recorded before the decision');
  t.like(decision, {
    decision: 'allow',
    rules: ['read-data', 'read-secret-with-approval'],
    approval: { approvalId: request.approvalId, answer: 'approved', by: 'alice@example.com', via: 'onApproval', note: 'fine for this task', requestedSeq: requested?.seq },
  });
  t.is(typeof (decision?.approval as { answeredAt?: unknown }).answeredAt, 'number');
});

test('a call no approval rule matches does not wait', async t => {
  const { sandbox, read, dir } = await setup(t);
  let asked = 0;
  sandbox.onApproval(() => {
    asked += 1;
    return undefined;
  });
  const outcome = await read(join(dir, 'open.txt'));
  t.is(outcome.result, 'open data');
  t.is(asked, 0);
});

test('answerApproval answers a pending request; pendingApprovals shows what the approver sees until then', async t => {
  const { sandbox, read, secret } = await setup(t);
  const outcome = read();
  const [request] = (await pending(sandbox)) as [ApprovalRequest];
  t.like(request, { agentId: 'a', capabilityId: 'cap', actionType: 'READ', target: secret, ruleIds: ['read-secret-with-approval'], prompt: 'Let agent a read the secret?', timeoutMs: 120_000 });
  t.deepEqual(request.args, {});
  t.true(Object.isFrozen(request));
  // Malformed answers from the operator are refused, and leave it pending.
  for (const bad of [{ approved: 'yes', by: 'bob' }, { approved: true }, { approved: true, by: '' }, { approved: true, by: 'bob', extra: 1 }, { approved: true, by: 'bob', note: 'x'.repeat(1001) }, null]) {
    t.is(codeOf(t.throws(() => sandbox.answerApproval(request.approvalId, bad as never))), 'ZT_BAD_ARGUMENT', JSON.stringify(bad));
  }
  t.is(codeOf(t.throws(() => sandbox.answerApproval(42 as never, { approved: true, by: 'bob' }))), 'ZT_BAD_ARGUMENT');
  t.is(sandbox.pendingApprovals().length, 1);
  t.false(sandbox.answerApproval('no-such-approval', { approved: true, by: 'bob' }));
  t.true(sandbox.answerApproval(request.approvalId, { approved: true, by: 'bob', via: 'cli', note: 'checked' }));
  t.deepEqual(sandbox.pendingApprovals(), []);
  t.false(sandbox.answerApproval(request.approvalId, { approved: false, by: 'mallory' }), 'only the first answer counts');
  const done = await outcome;
  t.is(done.result, 'the secret');
  const [decision] = await sandbox.audit.read(done.audit.decision?.seq ?? -1, 1);
  t.like(decision, { decision: 'allow', approval: { answer: 'approved', by: 'bob', via: 'cli', note: 'checked' } });
});

test('an approver who says no denies the call with ZT_APPROVAL_DENIED, and nothing is consumed', async t => {
  const { sandbox, read } = await setup(t);
  sandbox.onApproval(() => ({ approved: false, by: 'carol', note: 'not now' }));
  const outcome = await read();
  t.is(outcome.status, 'denied');
  t.is(outcome.error?.code, 'ZT_APPROVAL_DENIED');
  t.is(outcome.result, undefined);
  t.is(sandbox.getCapability('cap')?.uses, 0, 'a call denied by its approver spends no use');
  const [decision] = await sandbox.audit.read(outcome.audit.decision?.seq ?? -1, 1);
  t.like(decision, { type: 'request', decision: 'deny', code: 'ZT_APPROVAL_DENIED', decidedBy: 'policy', approval: { answer: 'denied', by: 'carol', note: 'not now', code: 'ZT_APPROVAL_DENIED' } });
  const records = await allRecords(sandbox);
  t.is(records.filter(r => r.type === 'request').length, 1);
  t.is(records.filter(r => r.type === 'outcome').length, 0, 'nothing ran');
});

test('silence past the rule\'s timeout denies with ZT_APPROVAL_TIMEOUT (the kernel\'s clock decides)', async t => {
  const { sandbox, read } = await setup(t, { timeoutMs: 150 });
  const started = Date.now();
  const outcome = await read();
  t.is(outcome.error?.code, 'ZT_APPROVAL_TIMEOUT');
  t.true(Date.now() - started >= 140);
  t.deepEqual(sandbox.pendingApprovals(), []);
  t.is(sandbox.getCapability('cap')?.uses, 0);
  const [decision] = await sandbox.audit.read(outcome.audit.decision?.seq ?? -1, 1);
  t.like(decision, { decision: 'deny', code: 'ZT_APPROVAL_TIMEOUT', approval: { answer: 'timeout', timeoutMs: 150 } });
  t.false(sandbox.answerApproval(String((decision?.approval as { approvalId: string }).approvalId), { approved: true, by: 'late' }), 'a late answer finds nothing pending');
});

test('revoking the capability while its call waits for approval cuts the wait at once with ZT_REVOKED', async t => {
  // Attack: a call parked on an approval outlives the revocation of its
  // capability, and a later "yes" runs it anyway.
  const { sandbox, read } = await setup(t);
  const outcome = read();
  const [request] = (await pending(sandbox)) as [ApprovalRequest];
  t.true(sandbox.revokeCapability('cap', 'incident'));
  const done = await outcome;
  t.is(done.error?.code, 'ZT_REVOKED');
  t.deepEqual(sandbox.pendingApprovals(), [], 'the pending entry is gone');
  t.false(sandbox.answerApproval(request.approvalId, { approved: true, by: 'too-late' }));
  const records = await allRecords(sandbox);
  t.like(records.find(r => r.type === 'request'), { decision: 'deny', code: 'ZT_REVOKED', approval: { answer: 'cut', code: 'ZT_REVOKED' } });
  t.like(records.find(r => r.type === 'capability.revoked'), { capabilityId: 'cap', inFlight: [done.requestId] });
});

test('revoking the agent while its call waits for approval cuts the wait with ZT_REVOKED', async t => {
  const { sandbox, read } = await setup(t);
  const asked: string[] = [];
  // A handler that never answers: the request stays pending until the cut.
  sandbox.onApproval(request => {
    asked.push(request.approvalId);
    return new Promise<undefined>(() => undefined);
  });
  const outcome = read();
  await pending(sandbox);
  t.true(sandbox.revokeAgent('a'));
  t.is((await outcome).error?.code, 'ZT_REVOKED');
  t.is(asked.length, 1);
  t.deepEqual(sandbox.pendingApprovals(), []);
});

test('shutting down while a call waits for approval ends the wait with ZT_SHUT_DOWN', async t => {
  const { sandbox, read } = await setup(t);
  const outcome = read();
  await pending(sandbox);
  await sandbox.shutdown();
  t.is((await outcome).error?.code, 'ZT_SHUT_DOWN');
  t.deepEqual(sandbox.pendingApprovals(), []);
});

test('a handler that throws or rejects is no answer: the host survives, nothing is approved, and another answer still counts', async t => {
  const { sandbox, read } = await setup(t);
  let calls = 0;
  sandbox.onApproval(() => {
    calls += 1;
    throw Error('handler bug');
  });
  sandbox.onApproval(async () => {
    calls += 1;
    throw Error('async handler bug');
  });
  const undecided = sandbox.onApproval(() => {
    calls += 1;
    return undefined;
  });
  const outcome = read();
  await pending(sandbox);
  await new Promise(resolve => setTimeout(resolve, 50));
  t.is(calls, 3, 'every handler is asked');
  t.is(sandbox.pendingApprovals().length, 1, 'still pending');
  undecided();
  // A handler registered while a request is pending is asked about it too.
  sandbox.onApproval(() => ({ approved: true, by: 'dave' }));
  const done = await outcome;
  t.is(done.result, 'the secret');
  t.is(calls, 3, 'an unsubscribed handler is not asked again');
  t.is(codeOf(t.throws(() => sandbox.onApproval('not a function' as never))), 'ZT_BAD_ARGUMENT');
});

test('a malformed answer from a handler denies (ZT_APPROVAL_DENIED): the kernel checks every answer and never takes one as a yes', async t => {
  // Attack: a buggy or hostile approval channel answers with something that
  // is truthy but is not an answer ({ approved: 'yes' }, no approver named).
  const { sandbox, read } = await setup(t);
  const answers: unknown[] = [{ approved: 'yes', by: 'eve' }, { approved: true }, { approved: true, by: 'eve', admin: true }, 'yes', { approved: true, by: 'x'.repeat(300) }];
  for (const answer of answers) {
    const off = sandbox.onApproval(() => answer as never);
    const outcome = await read();
    off();
    t.is(outcome.error?.code, 'ZT_APPROVAL_DENIED', JSON.stringify(answer).slice(0, 80));
    const [decision] = await sandbox.audit.read(outcome.audit.decision?.seq ?? -1, 1);
    t.like(decision, { decision: 'deny', code: 'ZT_APPROVAL_DENIED', approval: { answer: 'malformed' } });
    t.is(typeof (decision?.approval as { problem?: unknown }).problem, 'string');
  }
  t.is(sandbox.getCapability('cap')?.uses, 0);
});

test('approval is refused on a forbid rule and checked for its bounds (ZT_POLICY_INVALID, located)', t => {
  const problemsOf = (approval: unknown, effect = 'permit') => {
    const err = t.throws(() => validatePolicyDocument({ version: 1, rules: [{ id: 'r', effect, approval }] }));
    t.is(codeOf(err), 'ZT_POLICY_INVALID');
    return ((err as { details?: { problems?: Array<{ pointer: string; message: string }> } }).details?.problems ?? []).map(p => `${p.pointer}: ${p.message}`);
  };
  t.deepEqual(problemsOf({ timeoutMs: 1000 }, 'forbid'), ['/rules/0/approval: approval is allowed on permit rules only (a forbid rule denies whatever a person answers)']);
  t.true(problemsOf({ timeoutMs: 0 }).some(p => p.startsWith('/rules/0/approval/timeoutMs')));
  t.true(problemsOf({ timeoutMs: 1.5 }).some(p => p.startsWith('/rules/0/approval/timeoutMs')));
  t.true(problemsOf({ timeoutMs: 86_400_001 }).some(p => p.startsWith('/rules/0/approval/timeoutMs')));
  t.true(problemsOf({}).some(p => p === '/rules/0/approval/timeoutMs: is required'));
  t.true(problemsOf({ timeoutMs: 1000, prompt: 'x'.repeat(1001) }).some(p => p.startsWith('/rules/0/approval/prompt')));
  t.true(problemsOf({ timeoutMs: 1000, prompt: 7 }).some(p => p.startsWith('/rules/0/approval/prompt')));
  t.true(problemsOf({ timeoutMs: 1000, approvers: ['x'] }).some(p => p === '/rules/0/approval/approvers: unknown property'));
  t.notThrows(() => validatePolicyDocument({ version: 1, rules: [{ id: 'r', effect: 'permit', approval: { timeoutMs: 86_400_000, prompt: 'ok?' } }] }));
});

test('the approval a decision needs: every matched permit rule that asks, the shortest timeout, the first prompt', t => {
  const policy = makePolicy(
    {
      version: 1,
      rules: [
        { id: 'plain', effect: 'permit', actions: ['READ'] },
        { id: 'slow', effect: 'permit', actions: ['READ'], targets: ['/data/**'], approval: { timeoutMs: 60_000 } },
        { id: 'fast', effect: 'permit', actions: ['READ'], targets: ['/data/x'], approval: { timeoutMs: 5_000, prompt: 'first prompt' } },
        { id: 'other', effect: 'permit', actions: ['READ'], targets: ['/data/x'], approval: { timeoutMs: 9_000, prompt: 'second prompt' } },
        { id: 'never', effect: 'forbid', actions: ['READ'], targets: ['/data/blocked'] },
      ],
    },
    sha256Hex,
    canonicalJson,
  );
  const need = (target: string) => policy.approvalFor(policy.decide({ agentId: 'a', actionType: 'READ', target }));
  t.deepEqual(need('/data/x'), { ruleIds: ['slow', 'fast', 'other'], timeoutMs: 5_000, prompt: 'first prompt' });
  t.deepEqual(need('/data/y'), { ruleIds: ['slow'], timeoutMs: 60_000 });
  t.is(need('/elsewhere'), undefined);
  t.is(need('/data/blocked'), undefined, 'a denial needs no approval');
});

test('replay treats the recorded answer as part of the decision: approved replays as allow, denied and timed out as their denials', async t => {
  const { dir, sandbox, read, storeDir } = await setup(t, { timeoutMs: 2_000 });
  let next: 'yes' | 'no' | 'silence' = 'yes';
  sandbox.onApproval(() => (next === 'yes' ? { approved: true, by: 'alice', via: 'cli' } : next === 'no' ? { approved: false, by: 'bob' } : undefined));
  const codes: string[] = [];
  for (const answer of ['yes', 'no', 'silence'] as const) {
    next = answer;
    codes.push((await read()).error?.code ?? 'ok');
  }
  codes.push((await read(join(dir, 'open.txt'))).error?.code ?? 'ok');
  t.deepEqual(codes, ['ok', 'ZT_APPROVAL_DENIED', 'ZT_APPROVAL_TIMEOUT', 'ok']);
  await sandbox.shutdown();

  const replay = async (...extra: string[]) => {
    const { stdout } = await run(process.execPath, [cli, 'audit', 'replay', '--store', storeDir, '--json', ...extra]);
    return JSON.parse(stdout) as {
      replayed: number;
      differences: Array<{ recorded: { decision: string; code?: string; approval?: string }; replayed: { decision: string; code?: string; approval?: string } }>;
      problems: string[];
      approvals: Array<{ answer: string; by?: string; via?: string; replayed: { decision: string; code?: string; approval?: string } }>;
    };
  };
  const same = await replay();
  t.deepEqual(same.problems, []);
  t.is(same.replayed, 4);
  t.deepEqual(same.differences, [], 'the recorded answers replay to the recorded decisions');
  t.deepEqual(
    same.approvals.map(a => [a.answer, a.by, a.replayed.decision, a.replayed.code]),
    [
      ['approved', 'alice', 'allow', undefined],
      ['denied', 'bob', 'deny', 'ZT_APPROVAL_DENIED'],
      ['timeout', undefined, 'deny', 'ZT_APPROVAL_TIMEOUT'],
    ],
  );
  t.is(same.approvals[0]?.via, 'cli');

  // Against a policy without approval: the calls a person refused would now be allowed.
  const relaxed = join(dir, 'relaxed.json');
  await writeFile(relaxed, JSON.stringify({ version: 1, rules: [{ id: 'read-data', effect: 'permit', actions: ['READ'], targets: [`${dir}/*.txt`] }] }));
  const against = await replay('--policy', relaxed);
  t.deepEqual(
    against.differences.filter(d => d.recorded.decision !== d.replayed.decision).map(d => [d.recorded.code, d.replayed.decision]),
    [
      ['ZT_APPROVAL_DENIED', 'allow'],
      ['ZT_APPROVAL_TIMEOUT', 'allow'],
    ],
  );
  // The human-readable report names the answers.
  const { stdout } = await run(process.execPath, [cli, 'audit', 'replay', '--store', storeDir]);
  t.regex(stdout, /approval approval-\S+: approved by "alice" via "cli" -> allow/);
  t.regex(stdout, /approval approval-\S+: denied by "bob" via "onApproval" -> deny ZT_APPROVAL_DENIED/);
});
