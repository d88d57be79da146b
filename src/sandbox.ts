/**
 * `makeSandbox`: the runtime as it runs inside the kernel vat — the kernel
 * (capability table, membranes, policy), the effectors, the vat host that
 * starts agent vats, and the audit vat's client — wired from the powers it
 * is given. It reaches for nothing itself: files, workers, processes, the
 * clock and timers all arrive in `powers` (see `sandbox-node-powers.ts`).
 *
 * Invariants:
 * - Every option is validated before anything starts: a bad option leaves
 *   nothing running.
 * - `execute` never rejects: denials and failures are outcomes with codes,
 *   each audited (see kernel.ts).
 * - `isBusy()` is true while anything is on its way: a request, an audit
 *   append, a running agent, a shutdown. The kernel vat's shell reports it
 *   so that the host process neither exits with a record unwritten nor is
 *   kept alive by an idle runtime.
 */
import { harden } from './harden.js';
import type { AuditSink, AuditVatSink, StartAuditVatOptions } from './audit/audit-client.js';
import { makePrewarmBundle, type ModulePowers } from './agent-modules.js';
import { makeCodeRunner, type CodePowers, type CodeRunResult, type CodeRunSpec } from './code-run.js';
import { ZtError, type ErrorCode } from './errors.js';
import { isRecord, makeLauncher, positiveInt, type LaunchSpec } from './launcher.js';
import type { McpCatalogueEvent, McpServerConfig, ToolListing } from './effectors/mcp.js';
import type { RuntimeEvent } from './runtime-events.js';
import type { NodeEffectors, NodeEffectorsOptions } from './effectors/node-effectors.js';
import { resolveFailureModes, type FailureModes } from './failure-modes.js';
import { makeKernel, type ApprovalHost, type CapabilityRecord, type CapabilityState, type KernelAuditSink, type KernelPowers } from './kernel.js';
import { CAPABILITY_CEILING_POLICY, loadPolicyText, validatePolicyDocument } from './policy.js';
import { ActionRequest, Capability, type Outcome } from './types.js';
import {
  DEFAULT_VAT_LIMITS,
  makeVatHost,
  type AgentHandle,
  type RunOutcome,
  type VatHostPowers,
  type VatIsolation,
  type VatLimits,
} from './vat-host.js';
import { DEFAULT_VAT_BUDGETS, resolveVatBudgets, type VatBudgets } from './vat-budget.js';
import { makeCapabilityDescriber, type CapabilitySetDescription } from './describe.js';
import { DEFAULT_ISOLATION, ISOLATION_LEVELS, isIsolationLevel, type IsolationProbe } from './isolation/process-vat.js';

export interface RuntimeLimits extends Partial<VatBudgets> {
  /** Largest number of bytes a single action may move. Default 16 MiB. */
  readonly maxBytes?: number;
  /** Default wall-clock deadline of an agent run, ms. Default 30 000. */
  readonly deadlineMs?: number;
  /** Default heap limit of an agent vat, MiB. Default 128. */
  readonly memoryMb?: number;
}

/** The runtime's options as they reach the kernel vat: plain data (`SandboxOptions` in the host adds `auditSink`). */
export interface SandboxConfig {
  /** Absolute folder of the embedded default store. */
  readonly storeDir: string;
  /** Policy document; default: `CAPABILITY_CEILING_POLICY` (a live capability is the whole authorization). */
  readonly policy?: unknown;
  readonly failureModes?: Partial<FailureModes>;
  readonly limits?: RuntimeLimits;
  /** `durable` (default): a decision is fsynced before its action runs. */
  readonly durability?: 'durable' | 'relaxed';
  /**
   * Agent vats kept started and waiting, for warm launches (each still
   * serves exactly one run). Default 0. Pooled vats are `worker` vats: a
   * pool needs `isolation: 'worker'` (refused with ZT_BAD_ARGUMENT otherwise). Pooled vats never keep the process
   * alive; each runs a trivial agent once, in a throwaway Compartment, so
   * its run path is compiled before a real agent arrives, and the pool is
   * refilled when a run ends.
   */
  readonly vatPoolSize?: number;
  /**
   * MCP servers whose tools TOOL capabilities can name (`server/tool`), by
   * name: `{ command, args?, env? }` (stdio) or `{ url }` (HTTP). Connected
   * lazily, closed on shutdown. `pins` (tool name → `sha256:<hex>`) pins
   * the tools that may be called; without it, tools are pinned on first use
   * in `<storeDir>/mcp-pins.json` (see effectors/mcp-catalogue.ts, rug pulls).
   */
  readonly mcpServers?: Readonly<Record<string, McpServerConfig>>;
  /**
   * The isolation level of every launch that names none. Default `process`
   * (see `DEFAULT_ISOLATION`); `worker` only when named here or in the
   * launch — a SES bug is then a host compromise, and memory limits cover
   * the JS heap only.
   */
  readonly isolation?: VatIsolation;
  /**
   * Absolute folder (a `node_modules`) that the packages a launch lists
   * (`packages`) are resolved from, by the kernel. The host's
   * `SandboxRuntime` defaults it to `./node_modules` of its working
   * directory; without it, a launch listing packages is refused.
   */
  readonly packagesDir?: string;
}

export interface SandboxPowers {
  readonly kernel: KernelPowers;
  readonly vatHost: VatHostPowers;
  readonly modules: ModulePowers;
  readonly startAuditVat: (options: StartAuditVatOptions) => AuditVatSink;
  readonly makeEffectors: (options: NodeEffectorsOptions) => NodeEffectors;
  readonly probeIsolation: () => Promise<IsolationProbe>;
  /**
   * Reads a text file of at most `maxBytes` bytes: its size is checked
   * (stat) before anything is read, and the read stops past the limit.
   * Resolves with `null` for a larger file.
   */
  readonly readText: (path: string, maxBytes: number) => Promise<string | null>;
  /** The parsers of submitted code (code mode, `runCode`). */
  readonly code: CodePowers;
}

/** What the kernel vat's shell hears from the runtime, unasked. */
export interface SandboxHooks {
  /** Runtime events (see runtime-events.ts); a listener that throws is ignored. */
  readonly onEvent?: (event: RuntimeEvent) => void;
}

/** The file, in the store, of trust-on-first-use MCP tool pins. */
export const MCP_PINS_FILE = 'mcp-pins.json';

/** Largest policy file `loadPolicyFile` reads; a larger one is refused (ZT_POLICY_TOO_LARGE) before it is read. */
export const MAX_POLICY_FILE_BYTES = 1024 * 1024;

export type { LaunchOptions, LaunchSpec } from './launcher.js';

const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

const GATEWAY_EVENTS: ReadonlySet<string> = new Set(['gateway.session-opened', 'gateway.session-closed', 'gateway.session-refused', 'gateway.call-refused', 'gateway.code-run']);
const GATEWAY_FIELD = /^[A-Za-z][A-Za-z0-9]{0,31}$/;

/** A gateway event as a record, or ZT_BAD_ARGUMENT. */
const gatewayRecord = (event: Record<string, unknown>, time: number): Record<string, unknown> => {
  const { type, time: _hostTime, ...fields } = event;
  if (typeof type !== 'string' || !GATEWAY_EVENTS.has(type)) throw new ZtError('ZT_BAD_ARGUMENT', `a gateway event type is one of ${[...GATEWAY_EVENTS].join(', ')}`);
  const entries = Object.entries(fields);
  if (entries.length > 16) throw new ZtError('ZT_BAD_ARGUMENT', 'a gateway event has at most 16 fields');
  for (const [key, value] of entries) {
    if (!GATEWAY_FIELD.test(key)) throw new ZtError('ZT_BAD_ARGUMENT', 'gateway event field names are short identifiers');
    const ok = (typeof value === 'string' && value.length <= 1000) || (typeof value === 'number' && Number.isFinite(value));
    if (!ok) throw new ZtError('ZT_BAD_ARGUMENT', `gateway event field ${key} must be a string of at most 1000 characters or a finite number`);
  }
  return { type, time, ...fields };
};


/**
 * Builds the runtime. `auditSink` replaces the audit vat (the kernel vat's
 * shell passes one when the host supplied its own sink); `approvalHost` is
 * where requests that need a person's approval are announced (the kernel
 * vat's shell passes the host application's end).
 */
export const makeSandbox = (powers: SandboxPowers, config: SandboxConfig, auditSink?: AuditSink, approvalHost?: ApprovalHost, hooks: SandboxHooks = {}) => {
  if (!isRecord(config)) throw new ZtError('ZT_BAD_ARGUMENT', 'options must be an object');
  const { storeDir } = config;
  if (typeof storeDir !== 'string' || !storeDir.startsWith('/')) throw new ZtError('ZT_BAD_ARGUMENT', 'storeDir must be an absolute path');
  const failureModes = resolveFailureModes(config.failureModes);
  const limits = config.limits ?? {};
  if (!isRecord(limits)) throw new ZtError('ZT_BAD_ARGUMENT', 'limits must be an object');
  const maxBytes = positiveInt('limits.maxBytes', limits.maxBytes, DEFAULT_MAX_BYTES);
  const defaults: VatLimits = harden({
    deadlineMs: positiveInt('limits.deadlineMs', limits.deadlineMs, DEFAULT_VAT_LIMITS.deadlineMs),
    memoryMb: positiveInt('limits.memoryMb', limits.memoryMb, DEFAULT_VAT_LIMITS.memoryMb),
    ...resolveVatBudgets(limits, DEFAULT_VAT_BUDGETS, ['maxBytes', 'deadlineMs', 'memoryMb']),
  });
  const durability = config.durability ?? 'durable';
  if (durability !== 'durable' && durability !== 'relaxed') throw new ZtError('ZT_BAD_ARGUMENT', 'durability must be "durable" or "relaxed"');
  const vatPoolSize = config.vatPoolSize === undefined ? 0 : positiveInt('vatPoolSize', config.vatPoolSize, 0);
  const isolation: unknown = config.isolation === undefined ? DEFAULT_ISOLATION : config.isolation;
  if (!isIsolationLevel(isolation)) throw new ZtError('ZT_BAD_ARGUMENT', `isolation must be one of ${ISOLATION_LEVELS.join(', ')}`);
  if (vatPoolSize > 0 && isolation !== 'worker') {
    // A pool of another level would never serve a launch: refused, not ignored.
    throw new ZtError('ZT_BAD_ARGUMENT', `vatPoolSize keeps worker vats ready; it needs isolation: 'worker' (the runtime's isolation is ${isolation})`);
  }
  const { packagesDir } = config;
  if (packagesDir !== undefined && (typeof packagesDir !== 'string' || !packagesDir.startsWith('/'))) throw new ZtError('ZT_BAD_ARGUMENT', 'packagesDir must be an absolute path');
  const policy = validatePolicyDocument(config.policy ?? CAPABILITY_CEILING_POLICY);
  const emit = (event: RuntimeEvent) => {
    try {
      hooks.onEvent?.(harden(event));
    } catch {
      // a listener never breaks the runtime
    }
  };
  /** MCP catalogue events: changes and acceptances are audited, catalogue changes announced. */
  const onMcpEvent = (event: McpCatalogueEvent) => {
    if (event.type === 'tools.changed') {
      emit({ type: 'tools.changed', server: event.server });
      return;
    }
    // Reported only after the kernel exists (tool listings start with calls).
    kernel.recordLater({ time: powers.kernel.now(), ...event });
  };
  // Validates the MCP configuration (throws before anything starts).
  const effectors = powers.makeEffectors({
    ...(config.mcpServers === undefined ? {} : { mcpServers: config.mcpServers }),
    mcpPinsPath: `${storeDir}/${MCP_PINS_FILE}`,
    onMcpEvent,
  });

  // Everything on its way to the log is counted: the host must not exit before it lands.
  let appending = 0;
  const counted = (sink: KernelAuditSink): KernelAuditSink =>
    harden({
      append: (record: Record<string, unknown>) => {
        appending += 1;
        const done = sink.append(record);
        void done.then(
          () => {
            appending -= 1;
          },
          () => {
            appending -= 1;
          },
        );
        return done;
      },
      ...(typeof sink.size === 'function' && typeof sink.read === 'function'
        ? { size: () => sink.size!(), read: (fromSeq: number, count: number) => sink.read!(fromSeq, count) }
        : {}),
    });

  const startAudit = () => powers.startAuditVat({ dir: `${storeDir}/audit`, durability, timeoutMs: failureModes.auditTimeoutMs });
  let audit: AuditSink = auditSink ?? startAudit();

  let running = 0;
  let working = 0;
  /** Brackets async work so that `isBusy()` covers it. */
  const busyWhile = <T>(work: () => Promise<T>): Promise<T> => {
    working += 1;
    let p: Promise<T>;
    try {
      p = work();
    } catch (err) {
      working -= 1;
      return Promise.reject(err);
    }
    return p.finally(() => {
      working -= 1;
    });
  };

  const kernel = makeKernel({
    powers: powers.kernel,
    audit: counted(audit),
    policy,
    effectors: effectors.effectors,
    grantValidators: effectors.grantValidators,
    failureModes,
    durability,
    maxBytes,
    ...(approvalHost === undefined ? {} : { approvalHost }),
    onHalt: agentId => {
      void vats.terminate(agentId, 'halted by failure mode');
    },
    onEvent: emit,
  });
  /** Typed descriptions of what an agent holds (src/describe.ts): for the operator and for caretakers' `describe()`. */
  const describer = makeCapabilityDescriber({
    getCapability: id => kernel.getCapability(id),
    listCapabilities: filter => kernel.listCapabilities(filter),
    isKnownAgent: agentId => kernel.agentActivity(agentId) !== undefined,
    now: () => powers.kernel.now(),
    servers: harden(Object.keys(config.mcpServers ?? {})),
    listTools: server => effectors.mcp.listTools(server),
  });
  const vats = makeVatHost({
    kernel,
    powers: powers.vatHost,
    describeCapability: (agentId, capabilityId, name) => busyWhile(() => describer.describeOne(agentId, capabilityId, name)),
    failureModes,
    poolSize: vatPoolSize,
    poolMemoryMb: defaults.memoryMb,
    ...(vatPoolSize > 0 ? { prewarmBundle: makePrewarmBundle(powers.modules) } : {}),
  });
  let closed: Promise<void> | undefined;

  const launcher = makeLauncher({
    powers: { modules: powers.modules, now: powers.kernel.now, sha256Hex: powers.kernel.sha256Hex, probeIsolation: powers.probeIsolation },
    kernel,
    vats,
    defaults,
    isolation,
    ...(packagesDir === undefined ? {} : { packagesDir }),
  });
  const countRun = <H extends { readonly result: Promise<unknown> }>(handle: H): H => {
    running += 1;
    void handle.result.finally(() => {
      running -= 1;
    });
    return handle;
  };
  const launchCounted = async (spec: LaunchSpec): Promise<AgentHandle> => countRun(await launcher.launchAgent(spec));
  const runCode = makeCodeRunner({
    powers: { code: powers.code, modules: powers.modules, now: powers.kernel.now, sha256Hex: powers.kernel.sha256Hex },
    kernel,
    admit: launcher.admit,
    addPackages: launcher.withPackages,
    start: (plan, bundle, extras) => countRun(launcher.start(plan, bundle, extras)),
  });

  const recoverAudit = async (sink?: AuditSink): Promise<{ resumed: boolean; written: number; lost: number }> => {
    await audit.close().catch(() => undefined);
    let next: AuditSink;
    if (sink) {
      next = sink;
    } else {
      const started = startAudit();
      await started.ready();
      next = started;
    }
    audit = next;
    return kernel.reattachAudit(counted(next));
  };

  const rotateAuditKey = async (): Promise<{ key: string; size: number; rootHash: string }> => {
    const sink = audit as Partial<AuditVatSink>;
    if (typeof sink.rotateKey !== 'function') {
      throw new ZtError('ZT_BAD_ARGUMENT', 'this runtime\'s audit sink has no checkpoint key to rotate');
    }
    await kernel.flush();
    return sink.rotateKey();
  };

  const loadPolicyFile = async (path: string, options: { revokeRefused?: boolean } = {}) => {
    if (typeof path !== 'string' || path === '') throw new ZtError('ZT_BAD_ARGUMENT', 'the policy file must be named by a path');
    let text: string | null;
    try {
      text = await powers.readText(path, MAX_POLICY_FILE_BYTES);
    } catch (err) {
      const os = (err as { code?: unknown })?.code;
      const code = os === 'ENOENT' || os === 'ENOTDIR' ? 'ZT_NOT_FOUND' : os === 'EACCES' || os === 'EPERM' ? 'ZT_ACCESS_DENIED' : os === 'EISDIR' ? 'ZT_NOT_A_FILE' : 'ZT_POLICY_INVALID';
      throw new ZtError(code, 'the policy file could not be read; the policy in force is unchanged', { path, cause: String((err as Error)?.message ?? err) });
    }
    if (text === null) throw new ZtError('ZT_POLICY_TOO_LARGE', `the policy file is larger than ${MAX_POLICY_FILE_BYTES} bytes`);
    const format = /\.json$/i.test(path) ? 'json' : /\.ya?ml$/i.test(path) ? 'yaml' : undefined;
    const document = loadPolicyText(text, powers.kernel.sha256Hex, powers.kernel.canonicalJson, format ? { format } : {});
    return kernel.setPolicy(document, options);
  };

  const shutdown = (): Promise<void> => {
    closed ??= busyWhile(async () => {
      await vats.terminateAll('runtime shutdown');
      await kernel.shutdown();
      await effectors.close();
      await audit.close();
    });
    return closed;
  };

  return harden({
    failureModes,
    registerAgent: (agentId: string, options: { labels?: readonly string[] } = {}) => kernel.registerAgent(agentId, options),
    issueCapability: (capability: Capability): CapabilityRecord => kernel.issueCapability(capability),
    getCapability: (id: string): CapabilityRecord | undefined => kernel.getCapability(id),
    listCapabilities: (filter: { agentId?: string; state?: CapabilityState } = {}): CapabilityRecord[] => kernel.listCapabilities(filter),
    execute: (request: ActionRequest): Promise<Outcome> => busyWhile(() => kernel.execute(request, 'api')),
    revokeCapability: (id: string, reason?: string): boolean => kernel.revokeCapability(id, reason),
    revokeAgent: (agentId: string, reason?: string): boolean => {
      const changed = kernel.revokeAgent(agentId, reason);
      void vats.terminate(agentId, reason ?? 'agent revoked');
      return changed;
    },
    loadPolicy: (document: unknown, options: { revokeRefused?: boolean } = {}) => kernel.setPolicy(document, options),
    loadPolicyFile: (path: string, options?: { revokeRefused?: boolean }) => busyWhile(() => loadPolicyFile(path, options)),
    policyHash: (): string => kernel.getPolicyHash(),
    answerApproval: (approvalId: string, answer: unknown): boolean => kernel.answerApproval(approvalId, answer),
    pendingApprovals: () => kernel.pendingApprovals(),
    launchAgent: (spec: LaunchSpec): Promise<AgentHandle> => busyWhile(() => launchCounted(spec)),
    /** Runs submitted code in a fresh vat and answers when the run has ended (see code-run.ts). */
    runCode: (spec: CodeRunSpec): Promise<CodeRunResult> => busyWhile(() => runCode(spec)),
    recoverAudit: (sink?: AuditSink) => busyWhile(() => recoverAudit(sink)),
    rotateAuditKey: () => busyWhile(rotateAuditKey),
    auditRead: (from: number, count: number) => busyWhile(() => audit.read(from, count)),
    auditSize: () => busyWhile(() => audit.size()),
    auditRootHash: () => busyWhile(() => audit.rootHash()),
    flush: () => busyWhile(() => kernel.flush()),
    /**
     * Records what an MCP gateway saw of a session (opened, closed, refused;
     * a call it had no tool for). Only those types, flat fields of bounded
     * strings and numbers; the time is the kernel's.
     */
    recordGatewayEvent: (event: Record<string, unknown>) =>
      busyWhile(async () => {
        await kernel.record(gatewayRecord(event, powers.kernel.now()));
      }),
    shutdown,
    /**
     * Records an operator operation refused at the kernel vat's edge, its
     * input escaped; never waits (a failure latches the audit fault as any
     * record's would).
     */
    recordRefusal: (operation: string, code: ErrorCode, input: unknown): void => {
      void kernel.record({ type: 'operator.refused', time: powers.kernel.now(), operation, code, input, escaped: true }).catch(() => undefined);
    },
    isBusy: (): boolean => appending > 0 || running > 0 || working > 0,
    /**
     * What `agentId` holds (live, unexpired), as TypeScript declarations and
     * JSON Schemas (src/describe.ts); `names` as `launchAgent`'s record form.
     * Not a use of any capability, and not recorded.
     */
    describeCapabilities: (agentId: string, options: { names?: Readonly<Record<string, string>> } = {}): Promise<CapabilitySetDescription> =>
      busyWhile(() => describer.describeCapabilities(agentId, options)),
    /** The tool catalogue of the configured MCP servers, with hashes and pin status (see effectors/mcp-catalogue.ts). */
    listTools: (server?: string): Promise<ToolListing[]> => busyWhile(() => effectors.mcp.listTools(server)),
    /** Accepts a tool's current definition (re-pins it); audited as `tool.accepted`, durably, before it resolves. */
    acceptTool: (server: string, tool: string, hash: string): Promise<void> =>
      busyWhile(async () => {
        await effectors.mcp.acceptTool(server, tool, hash);
        await kernel.flush();
      }),
  });
};
harden(makeSandbox);

export type Sandbox = ReturnType<typeof makeSandbox>;
export type { AgentHandle, RunOutcome };
