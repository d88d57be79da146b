/**
 * `ztaas/openai-agents`: an agent's capabilities as OpenAI Agents SDK
 * function tools.
 *
 *   import { Agent, run } from '@openai/agents';
 *   import { toolsFor } from 'ztaas/openai-agents';
 *   const agent = new Agent({ name: 'researcher', tools: await toolsFor(sandbox, 'research-agent') });
 *   await run(agent, 'Summarize the notes');
 *
 * Each tool is one of the agent's live capabilities (src/governed-tools.ts)
 * with its JSON Schema (non-strict: an upstream schema is passed as it is,
 * narrowed by the grant); every call is one request through the kernel. A
 * refusal is the tool's output — `ZT_POLICY_DENIED: … (rule: …)` — never
 * an exception in the run loop. `@openai/agents` is a peer dependency.
 */
import { tool, type FunctionTool } from '@openai/agents';
import { harden } from './harden.js';
import { makeGovernedTools, resultText, type GovernedToolsOptions, type ToolRuntime } from './governed-tools.js';

/** The agent's tools now; a capability revoked later is refused by the kernel when called. */
export const toolsFor = async (sandbox: ToolRuntime, agentId: string, options: GovernedToolsOptions = {}): Promise<FunctionTool[]> => {
  const governed = makeGovernedTools(sandbox, agentId, options);
  try {
    const listed = await governed.list();
    return listed.map(
      entry =>
        tool({
          name: entry.name,
          description: entry.description ?? entry.title ?? entry.name,
          parameters: { type: 'object', properties: {}, ...entry.inputSchema } as never,
          strict: false,
          execute: async (input: unknown) => {
            const result = await governed.call(entry.name, typeof input === 'string' ? (JSON.parse(input) as unknown) : input);
            return result.ok ? resultText(result) : result.text;
          },
        }) as unknown as FunctionTool,
    );
  } finally {
    governed.close();
  }
};
harden(toolsFor);
