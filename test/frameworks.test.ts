/**
 * Agent frameworks get governed tools in one line: the Vercel AI SDK
 * (`ztaas/ai-sdk`) and the OpenAI Agents SDK (`ztaas/openai-agents`), each
 * driven by a scripted model through the framework's own tool loop. Every
 * tool call is a request through the kernel; a denial is a tool result the
 * model sees (the next model call receives it), not an exception. This file
 * imports the package by name, as an application does (no lockdown).
 */
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateText, stepCountIs } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { Agent, Usage, run, setTracingDisabled, type Model, type ModelRequest, type ModelResponse } from '@openai/agents';
import { Capability, SandboxRuntime } from 'ztaas';
import { toolsFor as aiSdkTools } from 'ztaas/ai-sdk';
import { toolsFor as openAiAgentsTools } from 'ztaas/openai-agents';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = join(repo, 'test/fixtures/effectors/mcp-fixture-server.js');

setTracingDisabled(true);

/** A runtime with one agent: its notes folder (but not the secret in it) and the fixture server's echo tool. */
const makeSandbox = (t: { teardown(fn: () => Promise<void> | void): void }) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-frameworks-'));
  const notes = join(dir, 'notes');
  const sandbox = new SandboxRuntime({
    storeDir: join(dir, 'store'),
    mcpServers: { fx: { command: process.execPath, args: [FIXTURE, 'stdio'] } },
    policy: {
      version: 1,
      rules: [
        { id: 'read-notes', effect: 'permit', actions: ['READ'], targets: [`${notes}/**`] },
        { id: 'no-secrets', effect: 'forbid', actions: ['READ'], targets: [`${notes}/secret*`] },
        { id: 'echo', effect: 'permit', actions: ['TOOL'], targets: ['fx/echo'] },
      ],
    },
  });
  t.teardown(async () => {
    await sandbox.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });
  const notesDir = notes;
  mkdirSync(notesDir, { recursive: true });
  writeFileSync(join(notesDir, 'plan.txt'), 'ship the gateway\n');
  writeFileSync(join(notesDir, 'secret.txt'), 'the launch codes\n');
  sandbox.registerAgent('researcher');
  sandbox.issueCapability(new Capability({ id: 'notes', actionType: 'READ', target: `${notesDir}/**`, holder: 'researcher' }));
  sandbox.issueCapability(new Capability({ id: 'echo', actionType: 'TOOL', target: 'fx/echo', holder: 'researcher' }));
  return { sandbox, notes: notesDir };
};

const requestsOf = async (sandbox: SandboxRuntime) => {
  await sandbox.audit.flush();
  const records = await sandbox.audit.read(0, await sandbox.audit.size());
  return records.filter(r => r.type === 'request' && r.agentId === 'researcher');
};

test.serial('Vercel AI SDK: a mock model calls governed tools in generateText; the denial is a tool result it reads', async t => {
  const { sandbox, notes } = makeSandbox(t);
  const tools = await aiSdkTools(sandbox, 'researcher');
  t.deepEqual(Object.keys(tools).sort(), ['fx__echo', 'list_directory', 'read_file']);

  const prompts: string[] = [];
  const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } };
  let call = 0;
  const model = new MockLanguageModelV4({
    doGenerate: async options => {
      prompts.push(JSON.stringify(options.prompt));
      call += 1;
      if (call === 1) {
        return {
          content: [
            { type: 'tool-call', toolCallId: 'c1', toolName: 'read_file', input: JSON.stringify({ path: join(notes, 'plan.txt') }) },
            { type: 'tool-call', toolCallId: 'c2', toolName: 'read_file', input: JSON.stringify({ path: join(notes, 'secret.txt') }) },
            { type: 'tool-call', toolCallId: 'c3', toolName: 'fx__echo', input: JSON.stringify({ text: 'hello' }) },
          ],
          finishReason: { unified: 'tool-calls', raw: undefined },
          usage,
          warnings: [],
        } as never;
      }
      return { content: [{ type: 'text', text: 'The plan is to ship the gateway; the secret was refused.' }], finishReason: { unified: 'stop', raw: undefined }, usage, warnings: [] } as never;
    },
  });
  const result = await generateText({ model, tools, stopWhen: stepCountIs(4), prompt: 'What is in my notes?' });
  t.is(result.text, 'The plan is to ship the gateway; the secret was refused.');
  const outputs = Object.fromEntries(result.steps[0]?.toolResults.map(r => [r.toolCallId, r.output]) ?? []);
  t.is(outputs.c1, 'ship the gateway\n');
  t.regex(String(outputs.c2), /^ZT_POLICY_DENIED: .*\(rule: no-secrets\)$/);
  t.is(outputs.c3, 'hello');
  // The model's second call saw the denial as data.
  t.regex(prompts[1] ?? '', /ZT_POLICY_DENIED/);
  const requests = await requestsOf(sandbox);
  t.is(requests.length, 3, 'each tool call is one mediated request');
  t.deepEqual(requests.map(r => r.decision).sort(), ['allow', 'allow', 'deny']);
});

/** A scripted model for the Agents SDK: tool calls first, then a final answer. */
const scriptedModel = (calls: Array<{ name: string; args: unknown }>, answer: string, seen: string[]): Model => {
  let turn = 0;
  return {
    async getResponse(request: ModelRequest): Promise<ModelResponse> {
      seen.push(JSON.stringify(request.input));
      turn += 1;
      const output =
        turn === 1
          ? calls.map((c, i) => ({ type: 'function_call', callId: `call-${i}`, name: c.name, arguments: JSON.stringify(c.args), status: 'completed' }))
          : [{ type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: answer }] }];
      return { usage: new Usage(), output: output as never };
    },
    async *getStreamedResponse() {
      throw new Error('not streamed');
    },
  };
};

test.serial('OpenAI Agents SDK: a scripted model runs governed function tools; the denial is a tool output it reads', async t => {
  const { sandbox, notes } = makeSandbox(t);
  const tools = await openAiAgentsTools(sandbox, 'researcher');
  t.deepEqual(tools.map(x => x.name).sort(), ['fx__echo', 'list_directory', 'read_file']);
  const seen: string[] = [];
  const model = scriptedModel(
    [
      { name: 'list_directory', args: { path: notes } },
      { name: 'read_file', args: { path: join(notes, 'secret.txt') } },
      { name: 'fx__echo', args: { text: 'from the agents sdk' } },
    ],
    'done',
    seen,
  );
  const agent = new Agent({ name: 'researcher', instructions: 'Use the tools.', tools, model });
  const result = await run(agent, 'List my notes.');
  t.is(result.finalOutput, 'done');
  const outputs = result.newItems.filter(item => item.type === 'tool_call_output_item').map(item => String((item as unknown as { output: unknown }).output));
  t.is(outputs.length, 3);
  t.true(outputs.some(o => o.includes('plan.txt') && o.includes('secret.txt')), 'the listing');
  t.true(outputs.some(o => /^ZT_POLICY_DENIED: .*\(rule: no-secrets\)$/.test(o)), 'the denial, as the tool output');
  t.true(outputs.includes('from the agents sdk'));
  t.regex(seen[1] ?? '', /ZT_POLICY_DENIED/, 'the model saw the denial');
  const requests = await requestsOf(sandbox);
  t.is(requests.length, 3);
  t.is(requests.filter(r => r.decision === 'deny').length, 1);
});
