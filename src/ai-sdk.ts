/**
 * `ztaas/ai-sdk`: an agent's capabilities as Vercel AI SDK tools.
 *
 *   import { generateText, stepCountIs } from 'ai';
 *   import { toolsFor } from 'ztaas/ai-sdk';
 *   const tools = await toolsFor(sandbox, 'research-agent');
 *   await generateText({ model, tools, stopWhen: stepCountIs(5), prompt });
 *
 * Each tool is one of the agent's live capabilities (src/governed-tools.ts),
 * with its JSON Schema (an upstream MCP tool's own, narrowed by the grant);
 * every `execute` is one request through the kernel. A refusal is the
 * tool's result — `ZT_POLICY_DENIED: … (rule: …)` — which the model reads
 * and adapts to; it is never thrown into the framework's loop. `ai` is a
 * peer dependency: install it beside ztaas.
 */
import { jsonSchema, tool, type ToolSet } from 'ai';
import { harden } from './harden.js';
import { makeGovernedTools, resultText, type GovernedToolsOptions, type ToolRuntime } from './governed-tools.js';

/** The agent's tools now; a capability revoked later is refused by the kernel when called. */
export const toolsFor = async (sandbox: ToolRuntime, agentId: string, options: GovernedToolsOptions = {}): Promise<ToolSet> => {
  const governed = makeGovernedTools(sandbox, agentId, options);
  try {
    const tools: ToolSet = {};
    for (const listed of await governed.list()) {
      tools[listed.name] = tool({
        description: listed.description ?? listed.title ?? listed.name,
        inputSchema: jsonSchema({ ...listed.inputSchema } as Parameters<typeof jsonSchema>[0]),
        execute: async (input: unknown) => {
          const result = await governed.call(listed.name, input);
          return result.ok ? resultText(result) : result.text;
        },
      });
    }
    return tools;
  } finally {
    // The set is a snapshot: it needs no change notifications.
    governed.close();
  }
};
harden(toolsFor);
