/**
 * An agent's capabilities as tools a model can call: what the MCP gateway
 * lists and calls, and what the framework adapters (`ztaas/ai-sdk`,
 * `ztaas/openai-agents`) hand to agent frameworks.
 *
 * Invariants:
 * - The tools are exactly those of the agent's live capabilities
 *   (src/gateway/tools.ts): upstream MCP tools it holds TOOL capabilities
 *   for (pinned definitions only) and the native effectors (`read_file`,
 *   `list_directory`, `write_file`, `run_program`, `fetch_url`).
 * - Every call is one request through the kernel (`executeAction`): never
 *   rejects; a refusal comes back as data — the code, the kernel's reason
 *   and, for a policy decision, the deciding rules — so a model can read it
 *   and adapt. Nothing about other agents or the rest of the policy.
 * - The list is rebuilt when the runtime says something changed (a
 *   capability issued or revoked, the agent revoked, a policy reload, an
 *   upstream tool list changing); `close()` stops listening.
 */
import { harden } from './harden.js';
import { codeOf, reasonOf } from './errors.js';
import { compileTarget } from './targets.js';
import { ActionRequest, type Outcome } from './types.js';
import { makeToolCatalogue, type HeldCapability, type ListedTool, type RoutedCall, type ToolCatalogue, type UpstreamTool } from './gateway/tools.js';

/** What governed tools need of a `SandboxRuntime`. */
export interface ToolRuntime {
  listCapabilities(filter: { agentId?: string; state?: 'live' }): readonly HeldCapability[];
  executeAction(request: ActionRequest): Promise<Outcome>;
  listTools(server?: string): Promise<readonly UpstreamTool[]>;
  onEvent(listener: (event: { readonly type: string; readonly agentId?: unknown }) => void): () => void;
  readonly audit: { read(from: number, count: number): Promise<ReadonlyArray<Record<string, unknown>>> };
}

/** The result of one governed call, as data. */
export type GovernedResult =
  | { readonly ok: true; readonly shape: RoutedCall['shape']; readonly result: unknown }
  | {
      readonly ok: false;
      readonly code: string;
      readonly message: string;
      readonly rules: readonly string[];
      readonly text: string;
      /** False when the call never reached the kernel (no such tool, arguments not an object). */
      readonly mediated: boolean;
    };

/** A server part of a TOOL pattern (`*`, `fs-*`) against a configured server's name, by the TOOL target matcher. */
const serverPatternMatches = (pattern: string, name: string): boolean => {
  try {
    return compileTarget('TOOL', `${pattern}/x`).matches(`${name}/x`);
  } catch {
    return false;
  }
};

const isRecord = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

/** `CODE: reason (rule: a, b)`: what a refused call tells the model. */
export const refusalText = (code: string, message: string, rules: readonly string[]) => `${code}: ${message}${rules.length > 0 ? ` (rule: ${rules.join(', ')})` : ''}`;
harden(refusalText);

/** The deciding rules of a policy decision, from the request's decision record. */
const rulesOf = async (runtime: Pick<ToolRuntime, 'audit'>, outcome: Outcome): Promise<readonly string[]> => {
  const seq = outcome.audit.decision?.seq;
  const code = outcome.error?.code;
  if ((code !== 'ZT_POLICY_DENIED' && code !== 'ZT_POLICY_ERROR') || typeof seq !== 'number') return [];
  try {
    const [rec] = await runtime.audit.read(seq, 1);
    const rules = rec !== undefined && rec.requestId === outcome.requestId && Array.isArray(rec.rules) ? rec.rules : [];
    return rules.filter((r): r is string => typeof r === 'string').slice(0, 10);
  } catch {
    return [];
  }
};

const refusal = (code: string, message: string, rules: readonly string[], mediated: boolean): GovernedResult =>
  harden({ ok: false, code, message, rules: [...rules], text: refusalText(code, message, rules), mediated });

export interface GovernedTools {
  /** The tools now (rebuilt after a change). */
  list(): Promise<readonly ListedTool[]>;
  /** One mediated call; never rejects. */
  call(name: string, args: unknown): Promise<GovernedResult>;
  /** Subscribes to "the list changed"; returns an unsubscribe. */
  onChange(listener: () => void): () => void;
  close(): void;
}

export interface GovernedToolsOptions {
  /**
   * The configured upstream servers: a TOOL capability naming a server
   * pattern (`*` or `fs-*`) lists the matching ones. Without it, only
   * servers named exactly are listed.
   */
  readonly servers?: readonly string[];
  /** The kernel's clock, to leave out expired capabilities (default: none are). */
  readonly now?: () => number;
  /** Where a server that cannot be listed is reported (its tools are then absent). */
  readonly log?: (line: string) => void;
}

export const makeGovernedTools = (runtime: ToolRuntime, agentId: string, options: GovernedToolsOptions = {}): GovernedTools => {
  let cached: Promise<ToolCatalogue> | undefined;
  const listeners = new Set<() => void>();

  const build = async (): Promise<ToolCatalogue> => {
    // An expired capability stays `live` in the table (every use is refused): it lists nothing.
    const now = options.now?.();
    const held = runtime.listCapabilities({ agentId, state: 'live' }).filter(c => !(now !== undefined && typeof c.constraints?.expiresAt === 'number' && c.constraints.expiresAt <= now));
    const named = [...new Set(held.filter(c => c.actionType === 'TOOL').map(c => c.target.split('/')[0] as string))];
    const servers = new Set<string>();
    for (const name of named) {
      if (!name.includes('*')) servers.add(name);
      else for (const configured of options.servers ?? []) if (serverPatternMatches(name, configured)) servers.add(configured);
    }
    const lists = await Promise.all(
      [...servers].map(name =>
        runtime.listTools(name).catch((err: unknown) => {
          options.log?.(`the tools of ${name} could not be listed: ${codeOf(err) ?? ''} ${reasonOf(err) ?? String(err)}`);
          return [] as UpstreamTool[];
        }),
      ),
    );
    return makeToolCatalogue(held, lists.flat());
  };

  const catalogue = () => {
    if (cached === undefined) {
      const building = build();
      cached = building;
      building.catch(() => {
        if (cached === building) cached = undefined;
      });
    }
    return cached;
  };

  const stop = runtime.onEvent(event => {
    const mine = event.agentId === undefined || event.agentId === agentId;
    const relevant = event.type === 'policy.loaded' || event.type === 'tools.changed' || ((event.type === 'capability.revoked' || event.type === 'capability.issued' || event.type === 'agent.revoked') && mine);
    if (!relevant) return;
    cached = undefined;
    for (const listener of [...listeners]) {
      try {
        listener();
      } catch {
        // one listener's failure is not another's
      }
    }
  });

  const call = async (name: string, args: unknown): Promise<GovernedResult> => {
    let routed: RoutedCall;
    try {
      if (args !== undefined && !isRecord(args)) return refusal('ZT_BAD_ARGUMENT', 'tool arguments must be an object', [], false);
      routed = (await catalogue()).route(name, (args ?? {}) as Record<string, unknown>);
    } catch (err) {
      return refusal(codeOf(err) ?? 'ZT_BAD_ARGUMENT', reasonOf(err) ?? 'the call was refused', [], false);
    }
    const outcome = await runtime.executeAction(new ActionRequest({ capabilityId: routed.capabilityId, agentId, actionType: routed.actionType, target: routed.target, args: routed.args }));
    if (outcome.ok) return harden({ ok: true, shape: routed.shape, result: outcome.result });
    return refusal(outcome.error?.code ?? 'ZT_EFFECT_FAILED', outcome.error?.message ?? 'the call failed', await rulesOf(runtime, outcome), true);
  };

  return harden({
    list: async () => (await catalogue()).tools,
    call,
    onChange: (listener: () => void) => {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    close: () => {
      stop();
      listeners.clear();
    },
  });
};
harden(makeGovernedTools);

/** A successful result as text a model reads (an MCP tool's text content, a file's text, or JSON). */
export const resultText = (result: Extract<GovernedResult, { ok: true }>): string => {
  const value = result.result;
  if (result.shape === 'tool' && isRecord(value) && Array.isArray(value.content)) {
    const texts = value.content.map(item => (isRecord(item) && item.type === 'text' && typeof item.text === 'string' ? item.text : JSON.stringify(item)));
    return `${value.isError === true ? 'the tool reported an error: ' : ''}${texts.join('\n')}`;
  }
  if (result.shape === 'text' && typeof value === 'string') return value;
  return JSON.stringify(value);
};
harden(resultText);
