/**
 * The effectors the runtime uses on Node: one per action type, wired to
 * their Node adapters, plus the issue-time validators of each type's
 * `effect` settings and `close()` for what outlives a call (MCP clients and
 * their server processes).
 *
 *   const { effectors, grantValidators, close } = makeNodeEffectors({
 *     mcpServers: { everything: { command: process.execPath, args: [entry, 'stdio'] } },
 *   });
 *
 * `resolve` replaces DNS resolution for the HTTP effector (tests point test
 * names at 127.0.0.1 or 169.254.169.254 this way).
 */
import { harden } from '../harden.js';
import type { ActionType } from '../types.js';
import { makeReadEffector, makeWriteEffector, validateReadGrant, validateWriteGrant } from './files.js';
import { makeNodeFileEffectorPowers } from './files-node-powers.js';
import { makeHttpEffector, validateNetworkGrant, type ResolvedAddress } from './http.js';
import { makeNodeHttpPowers } from './http-node-powers.js';
import { makeMcpToolEffectors, type McpCatalogueEvent, type McpServerConfig, type ToolListing } from './mcp.js';
import { makeNodeMcpPinStore, makeNodeMcpPowers } from './mcp-node-powers.js';
import { makeExecuteEffector, validateExecuteGrant } from './process.js';
import { makeNodeProcessPowers } from './process-node-powers.js';
import type { Effector, GrantValidator } from './types.js';

export interface NodeEffectorsOptions {
  /** MCP servers the operator configures, by name (the `server` of `server/tool` targets). */
  readonly mcpServers?: Readonly<Record<string, McpServerConfig>>;
  /** DNS resolution for NETWORK (default: the OS resolver, all addresses). */
  readonly resolve?: (hostname: string) => Promise<readonly ResolvedAddress[]>;
  /** The file of trust-on-first-use MCP tool pins (default: kept in memory only). */
  readonly mcpPinsPath?: string;
  /** MCP catalogue events: tool changes and acceptances (to audit), catalogue changes. */
  readonly onMcpEvent?: (event: McpCatalogueEvent) => void;
}

/** The MCP tool catalogue, for the operator (see mcp.ts). */
export interface McpCatalogue {
  listTools(server?: string): Promise<ToolListing[]>;
  acceptTool(server: string, tool: string, hash: string): Promise<{ server: string; tool: string; hash: string; previousHash?: string }>;
}

export interface NodeEffectors {
  readonly effectors: Readonly<Partial<Record<ActionType, Effector>>>;
  readonly grantValidators: Readonly<Partial<Record<ActionType, GrantValidator>>>;
  /** Closes MCP clients and stops their servers; later TOOL calls fail with ZT_SHUT_DOWN. */
  close(): Promise<void>;
  readonly mcp: McpCatalogue;
}

export const makeNodeEffectors = (options: NodeEffectorsOptions = {}): NodeEffectors => {
  const files = makeNodeFileEffectorPowers();
  const mcp = makeMcpToolEffectors({
    servers: options.mcpServers,
    powers: makeNodeMcpPowers(),
    ...(options.mcpPinsPath === undefined ? {} : { pinStore: makeNodeMcpPinStore(options.mcpPinsPath) }),
    ...(options.onMcpEvent === undefined ? {} : { onEvent: options.onMcpEvent }),
  });
  return harden({
    effectors: harden({
      READ: makeReadEffector(files),
      WRITE: makeWriteEffector(files),
      EXECUTE: makeExecuteEffector(makeNodeProcessPowers()),
      NETWORK: makeHttpEffector(makeNodeHttpPowers(options.resolve ? { resolve: options.resolve } : {})),
      TOOL: mcp.effector,
    }),
    grantValidators: harden({
      READ: validateReadGrant,
      WRITE: validateWriteGrant,
      EXECUTE: validateExecuteGrant,
      NETWORK: validateNetworkGrant,
      TOOL: mcp.validateGrant,
    }),
    close: mcp.close,
    mcp: harden({ listTools: mcp.listTools, acceptTool: mcp.acceptTool }),
  });
};
harden(makeNodeEffectors);
