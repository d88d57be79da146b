/**
 * A scripted "LLM session" through the MCP gateway: a fixed transcript of
 * the tool calls an agent's loop would make, played by the MCP SDK's
 * `Client` (over stdio, and over Streamable HTTP) in front of the real
 * filesystem server (rooted at a temp project folder) and server-everything.
 * Some calls are allowed, some denied, one waits for an approval the
 * operator gives with `ztaas approve` while the call waits, one is revoked
 * mid-call with `ztaas revoke`, and the next call for the revoked tool is
 * refused. Every client-visible result is checked against the transcript,
 * then the audit log, then `ztaas audit verify` on the closed gateway's
 * store.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { EVERYTHING, FILESYSTEM, auditRecords, connectHttp, connectStdio, makeToken, makeWorkspace, startHttpGateway, textOf, waitFor, ztaas, type Workspace } from './_gateway.js';

/** What the operator does while a step's call is pending. */
type Operator = 'approve' | 'approve-if-asked' | 'revoke';

interface Step {
  readonly tool: string;
  readonly arguments: Record<string, unknown>;
  /** `ok`, or the code the refusal's text starts with. */
  readonly expect: 'ok' | `ZT_${string}`;
  /** What the client sees: the text of a success, or the rest of a refusal's text. */
  readonly text?: RegExp;
  /** The mediated request the kernel records for this call: its target and decision (none: refused before the kernel). */
  readonly request?: { readonly target: string; readonly decision?: 'allow' | 'deny'; readonly rules?: readonly string[] };
  readonly operator?: Operator;
}

const README = '# Project\nA small project the agent works on.\n';
const APP = 'export const answer = 42;\n';
const SUMMARY = '# Summary\nThe project exports one constant.\n';

/** The fixed transcript (paths below the project folder P, the secret S outside it). */
const transcript = (P: string, S: string): Step[] => [
  // Look around.
  { tool: 'fs__list_directory', arguments: { path: P }, expect: 'ok', text: /\[FILE\] README\.md[\s\S]*\[DIR\] drafts|\[DIR\] drafts[\s\S]*\[FILE\] README\.md/, request: { target: 'fs/list_directory', decision: 'allow' } },
  { tool: 'fs__read_text_file', arguments: { path: join(P, 'README.md') }, expect: 'ok', text: /^# Project\nA small project the agent works on\.\n$/, request: { target: 'fs/read_text_file', decision: 'allow' } },
  { tool: 'fs__read_text_file', arguments: { path: join(P, 'src', 'app.js') }, expect: 'ok', text: /answer = 42/, request: { target: 'fs/read_text_file', decision: 'allow' } },
  // Wander off: outside the project, directly and by a path that climbs out of it.
  { tool: 'fs__read_text_file', arguments: { path: S }, expect: 'ZT_POLICY_DENIED', text: /\(rule: fs-only-project\)$/, request: { target: 'fs/read_text_file', decision: 'deny', rules: ['fs-only-project'] } },
  { tool: 'fs__read_text_file', arguments: { path: `${P}/../secrets/key.txt` }, expect: 'ZT_POLICY_DENIED', text: /\(rule: fs-only-project\)$/, request: { target: 'fs/read_text_file', decision: 'deny', rules: ['fs-only-project'] } },
  // A tool the agent holds no capability for, and one the upstream server does not have.
  { tool: 'everything__get-env', arguments: {}, expect: 'ZT_TOOL_UNKNOWN' },
  { tool: 'fs__delete_everything', arguments: {}, expect: 'ZT_TOOL_UNKNOWN' },
  // Edit the source: the write capability is narrowed to drafts/. A person may be asked (the policy asks for
  // every write; the narrowing is checked when the effect runs), and approves: an approval does not widen a capability.
  { tool: 'fs__write_file', arguments: { path: join(P, 'src', 'app.js'), content: 'hacked' }, expect: 'ZT_ARGUMENT_DENIED', request: { target: 'fs/write_file' }, operator: 'approve-if-asked' },
  // Write a draft: the policy asks a person, who approves while the call waits.
  { tool: 'fs__write_file', arguments: { path: join(P, 'drafts', 'summary.md'), content: SUMMARY }, expect: 'ok', text: /summary\.md/, request: { target: 'fs/write_file', decision: 'allow' }, operator: 'approve' },
  { tool: 'everything__get-sum', arguments: { a: 19, b: 23 }, expect: 'ok', text: /\b42\b/, request: { target: 'everything/get-sum', decision: 'allow' } },
  // A long operation, revoked while it runs; the tool is then gone.
  { tool: 'everything__trigger-long-running-operation', arguments: { duration: 300, steps: 300 }, expect: 'ZT_REVOKED', request: { target: 'everything/trigger-long-running-operation', decision: 'allow' }, operator: 'revoke' },
  { tool: 'everything__trigger-long-running-operation', arguments: { duration: 1, steps: 1 }, expect: 'ZT_TOOL_UNKNOWN' },
  // What was not revoked still works.
  { tool: 'fs__read_text_file', arguments: { path: join(P, 'drafts', 'summary.md') }, expect: 'ok', text: /^# Summary\n/, request: { target: 'fs/read_text_file', decision: 'allow' } },
];

const AGENT = 'assistant';
const APPROVER = 'reviewer-ana';

/** The project folder, the secret beside it, and the gateway's configuration. */
const setUp = (t: ExecutionContext, transport: Record<string, unknown>, agentExtra: Record<string, unknown> = {}): { ws: Workspace; P: string; S: string } => {
  const ws = makeWorkspace(t, {});
  const P = join(ws.dir, 'project');
  const S = join(ws.dir, 'secrets', 'key.txt');
  mkdirSync(join(P, 'src'), { recursive: true });
  mkdirSync(join(P, 'drafts'));
  mkdirSync(join(ws.dir, 'secrets'));
  writeFileSync(join(P, 'README.md'), README);
  writeFileSync(join(P, 'src', 'app.js'), APP);
  writeFileSync(S, 'sk-do-not-leak\n');
  const config = {
    store: './store',
    policy: {
      version: 1,
      rules: [
        { id: 'fs-read', effect: 'permit', actions: ['TOOL'], targets: ['fs/read_text_file', 'fs/list_directory'] },
        { id: 'fs-only-project', effect: 'forbid', actions: ['TOOL'], targets: ['fs/*'], when: { not: { args: { arguments: { fields: { path: { paths: [P, `${P}/**`] } } } } } } },
        { id: 'drafts-with-approval', effect: 'permit', actions: ['TOOL'], targets: ['fs/write_file'], approval: { timeoutMs: 90_000, prompt: 'The assistant wants to write a draft.' } },
        { id: 'everything-tools', effect: 'permit', actions: ['TOOL'], targets: ['everything/get-sum', 'everything/trigger-long-running-operation'] },
      ],
    },
    servers: {
      fs: { command: '${node}', args: [FILESYSTEM, P] },
      everything: { command: '${node}', args: [EVERYTHING, 'stdio'] },
    },
    agents: {
      [AGENT]: {
        ...agentExtra,
        grants: [
          { id: 'read', actionType: 'TOOL', target: 'fs/read_text_file' },
          { id: 'list', actionType: 'TOOL', target: 'fs/list_directory' },
          {
            id: 'write-drafts',
            actionType: 'TOOL',
            target: 'fs/write_file',
            constraints: { effect: { inputSchema: { type: 'object', properties: { path: { type: 'string', pattern: `^${P.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/drafts/[^/]+$` } }, required: ['path'] } } },
          },
          { id: 'sum', actionType: 'TOOL', target: 'everything/get-sum' },
          { id: 'long-op', actionType: 'TOOL', target: 'everything/trigger-long-running-operation' },
        ],
      },
    },
    ...transport,
  };
  writeFileSync(ws.config, JSON.stringify(config, null, 2));
  return { ws, P, S };
};

/** The operator's part, while the step's call is pending. */
const operate = async (t: ExecutionContext, ws: Workspace, step: Step, requestsBefore: number, settled: () => boolean): Promise<void> => {
  if (step.operator === 'approve' || step.operator === 'approve-if-asked') {
    let pending: Array<{ approvalId: string; agentId: string; target: string; args?: unknown }> = [];
    await waitFor(
      async () => {
        if (step.operator === 'approve-if-asked' && settled()) return true;
        const listed = await ztaas('approvals', '--store', ws.store, '--json');
        pending = listed.code === 0 ? (JSON.parse(listed.stdout) as typeof pending) : [];
        return pending.length === 1;
      },
      60_000,
      'the write to wait for approval',
    );
    if (pending.length === 0) return;
    t.like(pending[0], { agentId: AGENT, target: 'fs/write_file' });
    t.deepEqual((pending[0]?.args as { arguments?: unknown } | undefined)?.arguments, step.arguments, 'the operator is shown the arguments');
    const answered = await ztaas('approve', pending[0]?.approvalId as string, '--store', ws.store, '--by', APPROVER, '--note', 'a draft is fine');
    t.is(answered.code, 0, answered.stderr);
  } else if (step.operator === 'revoke') {
    // In flight: the kernel has decided (and recorded) the call, the effect is running.
    await waitFor(
      () => auditRecords(ws.store).filter(r => r.type === 'request').length > requestsBefore && auditRecords(ws.store).some(r => r.type === 'request' && r.target === step.request?.target && r.decision === 'allow'),
      60_000,
      'the long operation to be under way',
    );
    const revoked = await ztaas('revoke', '--store', ws.store, '--capability', 'long-op', '--reason', 'the operation ran too long');
    t.is(revoked.code, 0, revoked.stderr);
  }
};

/** Plays the transcript, the operator acting beside it, and checks what the client saw at each step. */
const play = async (t: ExecutionContext, client: Client, ws: Workspace, steps: Step[]): Promise<void> => {
  let listChanged = 0;
  client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
    listChanged += 1;
  });
  const listed = (await client.listTools()).tools.map(x => x.name).sort();
  t.deepEqual(listed, ['everything__get-sum', 'everything__trigger-long-running-operation', 'fs__list_directory', 'fs__read_text_file', 'fs__write_file']);

  for (const [i, step] of steps.entries()) {
    const what = `step ${i} (${step.tool} → ${step.expect})`;
    const requestsBefore = auditRecords(ws.store).filter(r => r.type === 'request').length;
    let done = false;
    const call = client.callTool({ name: step.tool, arguments: step.arguments }, undefined, { timeout: 240_000 }).finally(() => {
      done = true;
    });
    const [result] = await Promise.all([call, operate(t, ws, step, requestsBefore, () => done)]);
    const text = textOf(result);
    if (step.expect === 'ok') {
      t.falsy(result.isError, `${what}: ${text}`);
    } else {
      t.true(result.isError, `${what}: ${text}`);
      t.true(text.startsWith(`${step.expect}: `), `${what}: ${text}`);
      t.is((result._meta?.['ztaas/error'] as { code?: string } | undefined)?.code, step.expect, what);
      t.notRegex(text, /sk-do-not-leak/, `${what}: nothing of the secret`);
    }
    if (step.text !== undefined) t.regex(text, step.text, what);
    if (step.operator === 'revoke') {
      await waitFor(() => listChanged > 0, 20_000, 'tools/list_changed after the revocation');
      t.false((await client.listTools()).tools.some(x => x.name === step.tool), 'the revoked tool is no longer listed');
    }
  }
};

/** The audit log against the transcript, then the log's own verification. */
const checkLog = async (t: ExecutionContext, ws: Workspace, steps: Step[], transport: 'stdio' | 'http') => {
  const records = auditRecords(ws.store);
  const requests = records.filter(r => r.type === 'request' && r.agentId === AGENT);
  const mediated = steps.filter(s => s.request !== undefined);
  t.is(requests.length, mediated.length, 'one request record per mediated call');
  const outcomes = new Map(records.filter(r => r.type === 'outcome').map(r => [r.requestId, r]));
  for (const [i, step] of mediated.entries()) {
    const r = requests[i] as Record<string, unknown>;
    const what = `request ${i}: ${step.tool} → ${step.expect}`;
    t.like(r, { target: step.request?.target, actionType: 'TOOL' }, what);
    if (step.request?.decision !== undefined) t.is(r.decision, step.request.decision, what);
    if (step.request?.rules !== undefined) t.deepEqual(r.rules, step.request.rules, what);
    const outcome = outcomes.get(r.requestId);
    if (r.decision === 'allow') {
      // Every allowed call has its outcome: succeeded, or failed with the code the client saw.
      t.like(outcome, step.expect === 'ok' ? { status: 'succeeded' } : { status: 'failed', code: step.expect }, what);
    } else {
      t.is(r.code, step.expect, what);
      t.is(outcome, undefined, `${what}: a denied call has no effect`);
    }
    if (step.operator === 'approve' || (step.operator === 'approve-if-asked' && r.approval !== undefined)) {
      // The person's answer is part of the decision record; the question was recorded first.
      t.like(r.approval, { answer: 'approved', by: APPROVER, via: 'cli', note: 'a draft is fine', ruleIds: ['drafts-with-approval'] }, what);
      t.true(records.some(x => x.type === 'approval.requested' && x.requestId === r.requestId && x.agentId === AGENT && x.prompt === 'The assistant wants to write a draft.'), what);
    }
  }
  // Refusals before the kernel: recorded with their code.
  for (const step of steps.filter(s => s.request === undefined)) {
    t.true(records.some(r => r.type === 'gateway.call-refused' && r.agentId === AGENT && r.tool === step.tool && r.code === step.expect), `call-refused for ${step.tool}`);
  }
  // The revocation, naming the call it cut.
  const longOp = requests.find(r => r.target === 'everything/trigger-long-running-operation');
  t.like(records.find(r => r.type === 'capability.revoked' && r.capabilityId === 'long-op'), { holder: AGENT, reason: 'the operation ran too long', inFlight: [longOp?.requestId] });
  // The session.
  t.true(records.some(r => r.type === 'gateway.session-opened' && r.agentId === AGENT && r.transport === transport));
  t.true(records.some(r => r.type === 'gateway.session-closed' && r.agentId === AGENT && r.transport === transport));
  t.false(JSON.stringify(records).includes('sk-do-not-leak'), 'the secret never reached the log');

  const verified = await ztaas('audit', 'verify', '--store', ws.store);
  t.is(verified.code, 0, verified.stderr || verified.stdout);
  t.regex(verified.stdout, /^OK: /);
};

test.serial('a scripted LLM session over stdio: allowed, denied, approved, revoked mid-call; the client sees the transcript, the log records it and verifies', async t => {
  const { ws, P, S } = setUp(t, { stdio: { agent: AGENT } });
  const steps = transcript(P, S);
  const { client, stderr } = await connectStdio(t, ws);
  await play(t, client, ws, steps);
  await client.close();
  // The gateway ends with its client; its last record is the shutdown.
  await waitFor(() => auditRecords(ws.store).at(-1)?.type === 'runtime.shutdown', 30_000, `the gateway to shut down: ${stderr()}`);
  t.is(readFileSync(join(P, 'drafts', 'summary.md'), 'utf8'), SUMMARY, 'the approved draft was written');
  t.is(readFileSync(join(P, 'src', 'app.js'), 'utf8'), APP, 'the source was not touched');
  await checkLog(t, ws, steps, 'stdio');
});

test.serial('the same session over Streamable HTTP with a bearer token', async t => {
  const token = makeToken();
  const { ws, P, S } = setUp(t, { http: { host: '127.0.0.1', port: 0, path: '/mcp' } }, { tokenSha256: token.hash });
  const steps = transcript(P, S);
  const { url, child } = await startHttpGateway(t, ws);
  const client = await connectHttp(t, url, token.token);
  await play(t, client, ws, steps);
  // The client ends its session (HTTP DELETE), then the operator stops the gateway.
  await (client.transport as StreamableHTTPClientTransport).terminateSession();
  await client.close();
  await waitFor(() => auditRecords(ws.store).some(r => r.type === 'gateway.session-closed'), 30_000, 'the session to be recorded as closed');
  child.kill('SIGTERM');
  await new Promise(resolve => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)));
  t.true(existsSync(join(P, 'drafts', 'summary.md')));
  t.is(readFileSync(join(P, 'src', 'app.js'), 'utf8'), APP);
  await checkLog(t, ws, steps, 'http');
});
