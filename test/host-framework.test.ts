/**
 * A real agent framework's tool loop, with every tool call mediated by
 * `executeAction`: LangGraph's StateGraph with its prebuilt ToolNode, driven
 * by a scripted chat model in place of an LLM.
 *
 * Threat: the model asks for a file its agent holds no capability for. The
 * tool must get a denial with its code (never the content), both calls must
 * leave a decision record, and the framework — which runs its whole loop
 * inside AsyncLocalStorage — must survive the runtime in its host process.
 * This file deliberately skips the locked-down harness (`_prepare.js`) and
 * imports the package by name, as a host program does.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { AIMessage, HumanMessage, ToolMessage, type BaseMessage } from '@langchain/core/messages';
import type { ChatResult } from '@langchain/core/outputs';
import { AsyncLocalStorageProviderSingleton } from '@langchain/core/singletons';
import { tool } from '@langchain/core/tools';
import { END, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';
import { ToolNode, toolsCondition } from '@langchain/langgraph/prebuilt';
import { ActionRequest, ActionType, Capability, SandboxRuntime, type Outcome } from 'ztaas';

/**
 * A chat model that answers with the next message of a script, tool calls
 * included (the fakes in `@langchain/core/utils/testing` answer with text
 * only, or always with the same message).
 */
class ScriptedChatModel extends BaseChatModel {
  readonly #script: AIMessage[];
  #turn = 0;
  constructor(script: AIMessage[]) {
    super({});
    this.#script = script;
  }
  override _llmType() {
    return 'scripted';
  }
  override async _generate(_messages: BaseMessage[]): Promise<ChatResult> {
    const message = this.#script[this.#turn];
    this.#turn += 1;
    if (!message) throw new Error('the script has no more turns');
    return { generations: [{ text: typeof message.content === 'string' ? message.content : '', message }] };
  }
}

test('a LangGraph tool loop reads a permitted file and is denied another, every call audited', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ztaas-host-framework-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const report = join(dir, 'report.txt');
  const secret = join(dir, 'secret.txt');
  writeFileSync(report, 'quarterly results\n');
  writeFileSync(secret, 'the launch codes\n');

  // The host, as an application sets it up at startup.
  const sandbox = new SandboxRuntime({ storeDir: join(dir, 'store') });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('analyst');
  sandbox.issueCapability(new Capability({ id: 'report', actionType: ActionType.READ, target: report, holder: 'analyst' }));

  // The tool the model is given: each call is a request on the agent's capability.
  const outcomes: Outcome[] = [];
  const frameworkContexts: boolean[] = [];
  const readFile = tool(
    async ({ path }: { path: string }) => {
      frameworkContexts.push(AsyncLocalStorageProviderSingleton.getInstance().getStore() !== undefined);
      const outcome = await sandbox.executeAction(
        new ActionRequest({ capabilityId: 'report', agentId: 'analyst', actionType: ActionType.READ, target: path }),
      );
      outcomes.push(outcome);
      if (!outcome.ok) throw new Error(`${outcome.error?.code}: ${outcome.error?.message}`);
      return String(outcome.result);
    },
    {
      name: 'read_file',
      description: 'Reads a text file the agent has been given.',
      schema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
    },
  );

  const model = new ScriptedChatModel([
    new AIMessage({ content: '', tool_calls: [{ id: 'call-report', name: 'read_file', args: { path: report } }] }),
    new AIMessage({ content: '', tool_calls: [{ id: 'call-secret', name: 'read_file', args: { path: secret } }] }),
    new AIMessage({ content: 'The report says the quarter was good; the other file is off limits.' }),
  ]);
  const graph = new StateGraph(MessagesAnnotation)
    .addNode('agent', async state => ({ messages: [await model.invoke(state.messages)] }))
    .addNode('tools', new ToolNode([readFile]))
    .addEdge(START, 'agent')
    .addConditionalEdges('agent', toolsCondition, ['tools', END])
    .addEdge('tools', 'agent')
    .compile();

  const final = await graph.invoke({ messages: [new HumanMessage('Summarise the report, then the secret.')] });

  t.deepEqual(frameworkContexts, [true, true], 'the tool ran inside the framework\'s async context');
  const toolMessages = final.messages.filter((m): m is ToolMessage => m instanceof ToolMessage);
  t.deepEqual(toolMessages.map(m => m.tool_call_id), ['call-report', 'call-secret']);
  const [allowed, denied] = toolMessages;
  t.is(allowed?.status, 'success');
  t.is(allowed?.content, 'quarterly results\n');
  t.is(denied?.status, 'error');
  t.regex(String(denied?.content), /ZT_WRONG_TARGET/);
  t.false(String(denied?.content).includes('launch codes'));
  t.is(final.messages.at(-1)?.content, 'The report says the quarter was good; the other file is off limits.');

  t.like(outcomes, [
    { status: 'succeeded', ok: true },
    { status: 'denied', ok: false, error: { code: 'ZT_WRONG_TARGET' } },
  ]);
  await sandbox.audit.flush();
  const decisions = await Promise.all(
    outcomes.map(async outcome => {
      const seq = outcome.audit.decision?.seq;
      if (seq === undefined) return undefined;
      const [record] = await sandbox.audit.read(seq, 1);
      return record;
    }),
  );
  t.like(decisions, [
    { type: 'request', agentId: 'analyst', capabilityId: 'report', actionType: 'READ', target: report, decision: 'allow' },
    { type: 'request', agentId: 'analyst', capabilityId: 'report', actionType: 'READ', target: secret, decision: 'deny', code: 'ZT_WRONG_TARGET' },
  ]);
  t.is(decisions[0]?.requestId, outcomes[0]?.requestId);
  t.is(decisions[1]?.requestId, outcomes[1]?.requestId);
});
