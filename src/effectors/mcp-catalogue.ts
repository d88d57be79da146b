/**
 * MCP tool catalogue: the definitions a server announces, their hashes and
 * their pins. Invariant: a tool is `pinned` (usable) only when the hash of
 * its definition as announced now equals its pin; nothing here talks to a
 * server, it takes listings in (src/effectors/mcp.ts lists and calls).
 *
 * Rug pulls. Upstream servers are untrusted too: a server that changes a
 * tool's description or schemas after the operator (or the first listing)
 * saw it could steer agents with new instructions or widen what a call
 * sends. Every tool definition as announced (name, title, description,
 * inputSchema, outputSchema, annotations) is hashed (`sha256:` of its
 * canonical JSON, RFC 8785) and compared with its pin:
 * - config pins (`mcpServers.<name>.pins`): only the pinned tools, at those
 *   hashes, are usable; any other tool is `unpinned`;
 * - otherwise store pins, trust on first use: the first hash seen is pinned
 *   in the pin store (`<storeDir>/mcp-pins.json`) and kept across restarts.
 * A tool whose hash differs from its pin is `changed`; a changed or
 * unpinned tool is refused with ZT_TOOL_CHANGED before anything is sent to
 * the server, until the operator accepts it (`acceptTool`). A change is
 * reported once (`tool.changed`, for the audit log) when a listing (first
 * connection, reconnection, `notifications/tools/list_changed`, the refresh
 * before refusing an unknown tool, `listTools`) finds it.
 *
 * Pins in force change only after the store has saved them, one change at
 * a time (a listing and an acceptance never interleave). A store that
 * cannot be read, or holds anything but tool name → hash records, withholds
 * the tools (ZT_TOOL_FAILED) rather than trusting them anew.
 *
 * Listings are bounded: at most MAX_TOOLS tools, each definition at most
 * MAX_TOOL_DEFINITION_BYTES and all of them MAX_LISTING_BYTES of canonical
 * JSON; a larger listing is refused whole (ZT_TOO_LARGE), never truncated,
 * so no tool is silently missing. A definition that cannot be encoded (a
 * lone surrogate) refuses the listing with ZT_TOOL_FAILED.
 */
import { harden } from '../harden.js';
import { ZtError, assertZt } from '../errors.js';
import { canonicalJson } from '../audit/canonical.js';
import { isPlainRecord } from './settings.js';

/** Pins of one server's tools: tool name → `sha256:<hex>` of its canonical definition. */
export type McpToolPins = Readonly<Record<string, string>>;

/** A tool as its server announced it: the fields its hash covers. */
export interface McpToolInfo {
  readonly name: string;
  readonly title?: string;
  readonly description?: string;
  readonly inputSchema: unknown;
  readonly outputSchema?: unknown;
  readonly annotations?: unknown;
}

/** `pinned`: usable. `changed`: differs from its pin. `unpinned`: not among a server's config pins. */
export type ToolStatus = 'pinned' | 'changed' | 'unpinned';

/** One tool of the catalogue (`listTools`). */
export interface ToolListing extends McpToolInfo {
  readonly server: string;
  /** `sha256:<hex>` of the canonical JSON of the definition as announced. */
  readonly hash: string;
  readonly status: ToolStatus;
  /** The hash it is pinned to, if any. */
  readonly pinnedHash?: string;
}

/** Where trust-on-first-use pins are kept (`<storeDir>/mcp-pins.json` on Node). */
export interface McpPinStore {
  /** The pins by server; `{}` when nothing was pinned yet. Rejects when the store is unreadable or malformed. */
  load(): Promise<Record<string, Record<string, string>>>;
  /** Replaces the pins, atomically. */
  save(pins: Readonly<Record<string, Readonly<Record<string, string>>>>): Promise<void>;
}

/** What the effector reports: `tool.changed` and `tool.accepted` are for the audit log, `tools.changed` for the host. */
export type McpCatalogueEvent =
  | { readonly type: 'tool.changed'; readonly server: string; readonly tool: string; readonly pinnedHash: string; readonly seenHash: string }
  | { readonly type: 'tool.accepted'; readonly server: string; readonly tool: string; readonly hash: string; readonly previousHash?: string }
  | { readonly type: 'tools.changed'; readonly server: string };

/** A tool of a listing: its definition as announced (plain, hardened) and that definition's hash. */
export interface SeenTool {
  readonly info: McpToolInfo;
  readonly hash: string;
}

const TOOL_HASH = /^sha256:[0-9a-f]{64}$/;
/** Most tools one server may announce. */
export const MAX_TOOLS = 1024;
/** Largest canonical definition of one tool, in UTF-16 units. */
export const MAX_TOOL_DEFINITION_BYTES = 64 * 1024;
/** Largest canonical listing of one server. */
export const MAX_LISTING_BYTES = 4 * 1024 * 1024;

/** Whether `x` is a tool hash: `sha256:` and 64 lowercase hex digits. */
export const isToolHash = (x: unknown): x is string => typeof x === 'string' && TOOL_HASH.test(x);
harden(isToolHash);

/** Checks `mcpServers.<name>.pins` (absent, or tool name → hash); throws ZT_BAD_ARGUMENT. */
export const validatePins = (name: string, pins: unknown): void => {
  if (pins === undefined) return;
  assertZt(isPlainRecord(pins), 'ZT_BAD_ARGUMENT', `mcpServers.${name}.pins must be a record of tool name → "sha256:<hex>"`);
  for (const [tool, hash] of Object.entries(pins)) {
    assertZt(isToolHash(hash), 'ZT_BAD_ARGUMENT', `mcpServers.${name}.pins.${tool} must be "sha256:" and 64 lowercase hex digits`);
  }
};
harden(validatePins);

/** The fields a tool's hash covers, as announced (absent fields stay absent). */
const definitionOf = (tool: McpToolInfo): McpToolInfo => {
  const { name, title, description, inputSchema, outputSchema, annotations } = tool;
  return {
    name,
    ...(title === undefined ? {} : { title }),
    ...(description === undefined ? {} : { description }),
    inputSchema,
    ...(outputSchema === undefined ? {} : { outputSchema }),
    ...(annotations === undefined ? {} : { annotations }),
  };
};

/**
 * Bounds and hashes a server's tool list as it arrived. Throws ZT_TOO_LARGE
 * for a listing over the bounds, ZT_TOOL_FAILED for one that is malformed.
 */
export const hashListing = (tools: unknown, sha256Hex: (data: string) => string): Map<string, SeenTool> => {
  assertZt(Array.isArray(tools), 'ZT_TOOL_FAILED', 'the tool server sent a malformed tool list');
  if (tools.length > MAX_TOOLS) throw new ZtError('ZT_TOO_LARGE', `the tool server announced more than ${MAX_TOOLS} tools`);
  const out = new Map<string, SeenTool>();
  let total = 0;
  for (const tool of tools as unknown[]) {
    assertZt(isPlainRecord(tool) && typeof tool.name === 'string' && tool.name !== '', 'ZT_TOOL_FAILED', 'the tool server sent a malformed tool list');
    let json: string;
    let info: McpToolInfo;
    try {
      // A plain copy first (the canonical encoder refuses anything else), then the canonical text.
      info = harden(JSON.parse(JSON.stringify(definitionOf(tool as unknown as McpToolInfo))) as McpToolInfo);
      json = canonicalJson(info);
    } catch {
      throw new ZtError('ZT_TOOL_FAILED', 'the tool server announced a tool definition that is not plain JSON text');
    }
    if (json.length > MAX_TOOL_DEFINITION_BYTES) throw new ZtError('ZT_TOO_LARGE', `the tool server announced a tool definition larger than ${MAX_TOOL_DEFINITION_BYTES} bytes`);
    total += json.length;
    if (total > MAX_LISTING_BYTES) throw new ZtError('ZT_TOO_LARGE', `the tool server announced a tool list larger than ${MAX_LISTING_BYTES} bytes`);
    assertZt(!out.has(info.name), 'ZT_TOOL_FAILED', 'the tool server announced the same tool twice');
    out.set(info.name, harden({ info, hash: `sha256:${sha256Hex(json)}` }));
  }
  return out;
};
harden(hashListing);

const isPlainPins = (x: unknown): x is Record<string, Record<string, string>> =>
  isPlainRecord(x) && Object.values(x).every(server => isPlainRecord(server) && Object.values(server).every(isToolHash));

/** Pins kept in memory only (no store given): trust on first use for this effector's life. */
const memoryPinStore = (): McpPinStore => {
  let kept: Record<string, Record<string, string>> = {};
  return harden({
    load: async () => JSON.parse(JSON.stringify(kept)) as Record<string, Record<string, string>>,
    save: async (pins: Readonly<Record<string, Readonly<Record<string, string>>>>) => {
      kept = JSON.parse(JSON.stringify(pins)) as Record<string, Record<string, string>>;
    },
  });
};

export interface McpPinKeeperOptions {
  /** A server's config pins, when its configuration has them (then the store is never used for it). */
  readonly configPinsOf: (server: string) => McpToolPins | undefined;
  /** Where trust-on-first-use pins are kept; default: in memory. */
  readonly pinStore?: McpPinStore;
  /** Tool changes, acceptances and catalogue changes; a listener that throws is ignored. */
  readonly onEvent?: (event: McpCatalogueEvent) => void;
}

/**
 * The pins of the configured servers' tools: `pinOf` / `statusOf` read
 * them, `observe` takes a fresh listing in (pins new tools, reports
 * changes), `accept` re-pins one tool in the store.
 */
export const makeMcpPinKeeper = (options: McpPinKeeperOptions) => {
  const { configPinsOf } = options;
  const pinStore = options.pinStore ?? memoryPinStore();
  const emit = (event: McpCatalogueEvent) => {
    try {
      options.onEvent?.(harden(event));
    } catch {
      // a reporter's failure never reaches a call
    }
  };

  // Pins: loaded once from the store (again after a failed load), changed only under `serially`.
  let storePins: Record<string, Record<string, string>> | undefined;
  let loading: Promise<Record<string, Record<string, string>>> | undefined;
  const loadPins = (): Promise<Record<string, Record<string, string>>> => {
    if (storePins) return Promise.resolve(storePins);
    loading ??= pinStore.load().then(
      pins => {
        if (!isPlainPins(pins)) throw new ZtError('ZT_TOOL_FAILED', 'the MCP tool pin store is malformed; tools stay withheld until it is repaired');
        storePins = JSON.parse(JSON.stringify(pins)) as Record<string, Record<string, string>>;
        return storePins;
      },
      (err: unknown) => {
        loading = undefined;
        if (err instanceof ZtError) throw err;
        throw new ZtError('ZT_TOOL_FAILED', 'the MCP tool pin store could not be read; tools stay withheld', { cause: String((err as Error)?.message ?? err) });
      },
    );
    return loading;
  };
  let queue: Promise<unknown> = Promise.resolve();
  /** Pin changes one at a time (a listing and an acceptance never interleave). */
  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => undefined);
    return next;
  };
  /** Writes `next` and only then makes it the pins in force. */
  const savePins = async (next: Record<string, Record<string, string>>) => {
    try {
      await pinStore.save(harden(JSON.parse(JSON.stringify(next)) as Record<string, Record<string, string>>));
    } catch (err) {
      throw new ZtError('ZT_TOOL_FAILED', 'the MCP tool pins could not be saved; the tools stay withheld', { cause: String((err as Error)?.message ?? err) });
    }
    storePins = next;
  };
  /** The last listing of each server (across reconnections), to notice a change. */
  const lastListing = new Map<string, ReadonlyMap<string, SeenTool>>();
  /** Changes already reported, by server: `tool\nseenHash`. */
  const reported = new Map<string, Set<string>>();

  const pinOf = (server: string, tool: string): string | undefined => {
    const configPins = configPinsOf(server);
    if (configPins) return Object.hasOwn(configPins, tool) ? configPins[tool] : undefined;
    const pins = storePins?.[server];
    return pins && Object.hasOwn(pins, tool) ? pins[tool] : undefined;
  };
  const statusOf = (server: string, tool: string, hash: string): ToolStatus => {
    const pinned = pinOf(server, tool);
    if (pinned === undefined) return 'unpinned';
    return pinned === hash ? 'pinned' : 'changed';
  };

  /**
   * Takes in a fresh listing of `server`: pins new tools (store pins, trust
   * on first use), reports each change once, and reports a catalogue that
   * differs from the last listing.
   */
  const observe = (server: string, seen: Map<string, SeenTool>): Promise<void> =>
    serially(async () => {
      // A server pinned in its configuration never needs the store.
      if (!configPinsOf(server)) {
        const pins = await loadPins();
        const mine = pins[server] ?? {};
        const added = [...seen.values()].filter(t => !Object.hasOwn(mine, t.info.name));
        if (added.length > 0) {
          const next = { ...pins, [server]: { ...mine, ...Object.fromEntries(added.map(t => [t.info.name, t.hash])) } };
          await savePins(next);
        }
      }
      let newlyChanged = false;
      const done = reported.get(server) ?? new Set<string>();
      reported.set(server, done);
      for (const { info, hash } of seen.values()) {
        const pinnedHash = pinOf(server, info.name);
        if (pinnedHash === undefined || pinnedHash === hash) continue;
        const key = `${info.name}\n${hash}`;
        if (done.has(key)) continue;
        done.add(key);
        newlyChanged = true;
        emit({ type: 'tool.changed', server, tool: info.name, pinnedHash, seenHash: hash });
      }
      const before = lastListing.get(server);
      lastListing.set(server, seen);
      const differs = before !== undefined && (before.size !== seen.size || [...seen.values()].some(t => before.get(t.info.name)?.hash !== t.hash));
      if (differs || newlyChanged) emit({ type: 'tools.changed', server });
    });

  /**
   * Pins `server/tool` to `hash` in the store (the caller has checked that
   * the server is store-pinned and announces that hash now) and reports
   * `tool.accepted` and `tools.changed`.
   */
  const accept = (server: string, tool: string, hash: string): Promise<{ server: string; tool: string; hash: string; previousHash?: string }> =>
    serially(async () => {
      const pins = await loadPins();
      const previousHash = pins[server]?.[tool];
      await savePins({ ...pins, [server]: { ...(pins[server] ?? {}), [tool]: hash } });
      // A later change of this tool is reported again, whatever it changes to.
      const done = reported.get(server);
      for (const key of [...(done ?? [])]) if (key.startsWith(`${tool}\n`)) done?.delete(key);
      emit({ type: 'tool.accepted', server, tool, hash, ...(previousHash === undefined ? {} : { previousHash }) });
      emit({ type: 'tools.changed', server });
      return harden({ server, tool, hash, ...(previousHash === undefined ? {} : { previousHash }) });
    });

  return harden({ pinOf, statusOf, observe, accept });
};
harden(makeMcpPinKeeper);

export type McpPinKeeper = ReturnType<typeof makeMcpPinKeeper>;
