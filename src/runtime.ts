/**
 * `SandboxRuntime`: the seed API as a thin class over the kernel, the vat
 * host and the audit vat, wired with Node powers.
 *
 *   const sandbox = new SandboxRuntime({ storeDir: './.ztaas' });
 *   sandbox.registerAgent('my-agent');
 *   sandbox.issueCapability(new Capability({ id: 'read-file-cap',
 *     actionType: ActionType.READ, target: '/tmp/data.txt', holder: 'my-agent' }));
 *   const outcome = await sandbox.executeAction(new ActionRequest({
 *     capabilityId: 'read-file-cap', agentId: 'my-agent',
 *     actionType: ActionType.READ, target: '/tmp/data.txt' }));
 *
 * Every grant names its holder; there is no grant to "anyone".
 */
import { harden } from './harden.js';
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { startAuditVat, type AuditSink, type AuditVatSink } from './audit/audit-client.js';
import { canonicalJson } from './audit/canonical.js';
import { getPrewarmBundle, loadAgentBundle, type ModuleCache } from './agent-modules.js';
import { ZtError, codeOf } from './errors.js';
import type { McpServerConfig } from './effectors/mcp.js';
import { makeNodeEffectors, type NodeEffectors } from './effectors/node-effectors.js';
import { resolveFailureModes, type FailureModes } from './failure-modes.js';
import { makeKernel, type CapabilityRecord, type CapabilityState, type Kernel } from './kernel.js';
import {
  makeNodeKernelPowers,
  makeNodeModulePowers,
  sha256Hex,
  makeNodeVatHostPowers,
} from './node-powers.js';
import { CAPABILITY_CEILING_POLICY, loadPolicyText, validatePolicyDocument } from './policy.js';
import { ActionRequest, ActionType, Capability, type Outcome } from './types.js';
import { DEFAULT_VAT_LIMITS, makeVatHost, type AgentHandle, type VatHost, type VatIsolation, type VatLimits } from './vat-host.js';
import { assertIsolationAvailable, isIsolationLevel, type IsolationProbe } from './isolation/process-vat.js';
import { makeProcessVatStarter, probeIsolation } from './isolation/process-vat-node-powers.js';

export interface RuntimeLimits {
  /** Largest number of bytes a single action may move. Default 16 MiB. */
  readonly maxBytes?: number;
  /** Default wall-clock deadline of an agent run, ms. Default 30 000. */
  readonly deadlineMs?: number;
  /** Default heap limit of an agent vat, MiB. Default 128. */
  readonly memoryMb?: number;
}

export interface SandboxOptions {
  /** Folder of the embedded default store. Default: `.ztaas` in the working directory. */
  readonly storeDir?: string;
  /** Policy document; default: `CAPABILITY_CEILING_POLICY` (a live capability is the whole authorization). */
  readonly policy?: unknown;
  readonly failureModes?: Partial<FailureModes>;
  readonly limits?: RuntimeLimits;
  /** `durable` (default): a decision is fsynced before its action runs. */
  readonly durability?: 'durable' | 'relaxed';
  /**
   * Agent vats kept started and waiting, for warm launches (each still
   * serves exactly one run). Default 0. Pooled vats never keep the process
   * alive; each runs a trivial agent once, in a throwaway Compartment, so
   * its run path is compiled before a real agent arrives, and the pool is
   * refilled when a run ends.
   */
  readonly vatPoolSize?: number;
  /**
   * MCP servers whose tools TOOL capabilities can name (`server/tool`), by
   * name: `{ command, args?, env? }` (stdio) or `{ url }` (HTTP). Connected
   * lazily, closed on shutdown.
   */
  readonly mcpServers?: Readonly<Record<string, McpServerConfig>>;
  /** Advanced: an audit sink to use instead of starting the audit vat. */
  readonly auditSink?: AuditSink;
}

export interface LaunchOptions {
  readonly agentId: string;
  /** Absolute path of the agent's entry module, or of its folder (entry `index.js`). */
  readonly module: string;
  /**
   * The capabilities to hand to the agent, all held by it; nothing else is
   * reachable. An array of ids (`caps[id]` in the agent), or a record of
   * names to ids (`caps[name]`).
   */
  readonly capabilities?: readonly string[] | Readonly<Record<string, string>>;
  /** Plain data given to the agent as `input`. */
  readonly input?: unknown;
  readonly limits?: Partial<VatLimits>;
  /**
   * `worker` (default): a worker thread. `process`: a child process under OS
   * containment (bubblewrap namespaces, seccomp, rlimits, Node's permission
   * model); fails with ZT_ISOLATION_UNAVAILABLE where it cannot be
   * established. `process-weak`: the same without bubblewrap, only when named;
   * every record of the agent then says so. See docs/ISOLATION.md.
   */
  readonly isolation?: VatIsolation;
}

const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

const positiveInt = (name: string, value: unknown, fallback: number): number => {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new ZtError('ZT_BAD_ARGUMENT', `${name} must be a positive integer`);
  }
  return value;
};

export class SandboxRuntime {
  readonly storeDir: string;
  readonly failureModes: FailureModes;
  #kernel: Kernel;
  #vats: VatHost;
  #audit: AuditSink;
  #startAudit: () => AuditVatSink;
  #effectors: NodeEffectors;
  #defaults: VatLimits;
  #closed: Promise<void> | undefined;
  #moduleCache: ModuleCache = new Map();
  #isolationProbe: Promise<IsolationProbe> | undefined;

  constructor(options: SandboxOptions = {}) {
    if (options === null || typeof options !== 'object') throw new ZtError('ZT_BAD_ARGUMENT', 'options must be an object');
    this.storeDir = resolvePath(options.storeDir ?? '.ztaas');
    this.failureModes = resolveFailureModes(options.failureModes);
    const limits = options.limits ?? {};
    const maxBytes = positiveInt('limits.maxBytes', limits.maxBytes, DEFAULT_MAX_BYTES);
    this.#defaults = harden({
      deadlineMs: positiveInt('limits.deadlineMs', limits.deadlineMs, DEFAULT_VAT_LIMITS.deadlineMs),
      memoryMb: positiveInt('limits.memoryMb', limits.memoryMb, DEFAULT_VAT_LIMITS.memoryMb),
    });
    const durability = options.durability ?? 'durable';
    if (durability !== 'durable' && durability !== 'relaxed') throw new ZtError('ZT_BAD_ARGUMENT', 'durability must be "durable" or "relaxed"');
    const vatPoolSize = options.vatPoolSize === undefined ? 0 : positiveInt('vatPoolSize', options.vatPoolSize, 0);
    // Validate everything before starting the audit vat, so a bad option leaves nothing running.
    const policy = validatePolicyDocument(options.policy ?? CAPABILITY_CEILING_POLICY);
    // Validates the MCP configuration (throws before anything starts).
    this.#effectors = makeNodeEffectors(options.mcpServers === undefined ? {} : { mcpServers: options.mcpServers });
    this.#startAudit = () => startAuditVat({ dir: `${this.storeDir}/audit`, durability, timeoutMs: this.failureModes.auditTimeoutMs });
    this.#audit = options.auditSink ?? this.#startAudit();
    this.#kernel = makeKernel({
      powers: makeNodeKernelPowers(),
      audit: this.#audit,
      policy,
      effectors: this.#effectors.effectors,
      grantValidators: this.#effectors.grantValidators,
      failureModes: this.failureModes,
      durability,
      maxBytes,
      onHalt: agentId => {
        void this.#vats.terminate(agentId, 'halted by failure mode');
      },
    });
    const workerPowers = makeNodeVatHostPowers();
    let processStarter: ReturnType<typeof makeProcessVatStarter> | undefined;
    this.#vats = makeVatHost({
      kernel: this.#kernel,
      powers: harden({
        ...workerPowers,
        startAgentWorker: ({ memoryMb, isolation = 'worker' }: { memoryMb: number; isolation?: VatIsolation }) => {
          if (isolation === 'worker') return workerPowers.startAgentWorker({ memoryMb });
          processStarter ??= makeProcessVatStarter();
          return processStarter.start({ memoryMb, level: isolation });
        },
      }),
      failureModes: this.failureModes,
      poolSize: vatPoolSize,
      poolMemoryMb: this.#defaults.memoryMb,
      ...(vatPoolSize > 0 ? { prewarmBundle: getPrewarmBundle() } : {}),
    });
    Object.freeze(this);
  }

  /**
   * Registers an agent id, with optional labels (groups) the policy can
   * match. Agents start with nothing: no capability, no vat.
   */
  registerAgent(agentId: string, options: { labels?: readonly string[] } = {}): void {
    this.#kernel.registerAgent(agentId, options);
  }

  /**
   * Issues a capability to the agent named by its `holder`. Throws
   * ZT_NO_HOLDER without one, ZT_UNKNOWN_AGENT for an unregistered holder,
   * ZT_POLICY_DENIED when the policy would never permit the grant.
   */
  issueCapability(capability: Capability): CapabilityRecord {
    return this.#kernel.issueCapability(capability);
  }

  getCapability(id: string): CapabilityRecord | undefined {
    return this.#kernel.getCapability(id);
  }

  listCapabilities(filter: { agentId?: string; state?: CapabilityState } = {}): CapabilityRecord[] {
    return this.#kernel.listCapabilities(filter);
  }

  /** Runs one request through the kernel. Never rejects: denials and failures are outcomes with codes. */
  executeAction(request: ActionRequest): Promise<Outcome> {
    return this.#kernel.execute(request, 'api');
  }

  /** Revokes at once: calls in flight are aborted with ZT_REVOKED. Returns false if already revoked. */
  revokeCapability(id: string, reason?: string): boolean {
    return this.#kernel.revokeCapability(id, reason);
  }

  /** Revokes an agent: all its capabilities, and its running vat is terminated. */
  revokeAgent(agentId: string, reason?: string): boolean {
    const changed = this.#kernel.revokeAgent(agentId, reason);
    void this.#vats.terminate(agentId, reason ?? 'agent revoked');
    return changed;
  }

  /**
   * Replaces the policy; the next invocation is decided by it. Throws
   * ZT_POLICY_INVALID (listing every problem) and keeps the policy in force
   * if the document is invalid. Live capabilities the new policy would no
   * longer grant are revoked (audited), unless `revokeRefused: false`.
   */
  loadPolicy(document: unknown, options: { revokeRefused?: boolean } = {}): { policyHash: string; refused: string[]; revoked: string[] } {
    return this.#kernel.setPolicy(document, options);
  }

  /** Loads a policy file (YAML or JSON, by extension or content) as `loadPolicy` does. */
  async loadPolicyFile(path: string, options: { revokeRefused?: boolean } = {}): Promise<{ policyHash: string; refused: string[]; revoked: string[] }> {
    const text = await readFile(path, 'utf8');
    const format = /\.json$/i.test(path) ? 'json' : /\.ya?ml$/i.test(path) ? 'yaml' : undefined;
    const policy = loadPolicyText(text, sha256Hex, canonicalJson, format ? { format } : {});
    return this.#kernel.setPolicy(policy, options);
  }

  get policyHash(): string {
    return this.#kernel.getPolicyHash();
  }

  /**
   * Runs untrusted agent code in its own vat. Rejects with a ZT_MODULE_*
   * code if the module graph reaches outside the agent's folder, with
   * ZT_UNKNOWN_CAPABILITY / ZT_WRONG_HOLDER / ZT_REVOKED for a capability the
   * agent cannot be given.
   */
  async launchAgent(options: LaunchOptions): Promise<AgentHandle> {
    if (options === null || typeof options !== 'object') throw new ZtError('ZT_BAD_ARGUMENT', 'launchAgent needs an options object');
    const { agentId, module, capabilities = [], input = null } = options;
    if (!this.#kernel.hasAgent(agentId)) {
      throw new ZtError(this.#kernel.agentActivity(agentId) ? 'ZT_AGENT_REVOKED' : 'ZT_UNKNOWN_AGENT', `agent ${String(agentId)} cannot be launched`);
    }
    if (capabilities === null || typeof capabilities !== 'object') throw new ZtError('ZT_BAD_ARGUMENT', 'capabilities must be an array of ids or a record of names to ids');
    const names = Array.isArray(capabilities) ? undefined : harden({ ...(capabilities as Record<string, string>) });
    const ids: string[] = Array.isArray(capabilities) ? [...(capabilities as string[])] : Object.values(names as Record<string, string>);
    if (names) {
      for (const name of Object.keys(names)) {
        if (!/^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/.test(name) || name === '__proto__') throw new ZtError('ZT_BAD_ARGUMENT', `capability name ${JSON.stringify(name)} must be an identifier`);
      }
    }
    for (const id of ids) {
      const record = typeof id === 'string' ? this.#kernel.getCapability(id) : undefined;
      if (!record) throw new ZtError('ZT_UNKNOWN_CAPABILITY', `no capability ${String(id)}`);
      if (record.holder !== agentId) throw new ZtError('ZT_WRONG_HOLDER', `capability ${id} is held by another agent`);
      if (record.state !== 'live') throw new ZtError('ZT_REVOKED', `capability ${id} has been revoked`);
    }
    try {
      canonicalJson(input);
    } catch {
      throw new ZtError('ZT_BAD_ARGUMENT', 'input must be plain JSON data');
    }
    const limits: VatLimits = harden({
      deadlineMs: positiveInt('limits.deadlineMs', options.limits?.deadlineMs, this.#defaults.deadlineMs),
      memoryMb: positiveInt('limits.memoryMb', options.limits?.memoryMb, this.#defaults.memoryMb),
    });
    const isolation: VatIsolation = options.isolation ?? 'worker';
    if (!isIsolationLevel(isolation)) throw new ZtError('ZT_BAD_ARGUMENT', 'isolation must be worker, process or process-weak');
    if (isolation !== 'worker') {
      // Fail closed: the level is established or the launch is refused, naming what is missing.
      this.#isolationProbe ??= probeIsolation();
      try {
        assertIsolationAvailable(await this.#isolationProbe, isolation);
      } catch (err) {
        await this.#kernel
          .record({ type: 'agent.launch-failed', time: Date.now(), agentId, module: String(module), isolation, code: codeOf(err) ?? 'ZT_ISOLATION_UNAVAILABLE', message: (err as Error).message })
          .catch(() => undefined);
        throw err;
      }
      if (isolation === 'process-weak') this.#kernel.markWeakIsolation(agentId, isolation);
    }
    let bundle;
    try {
      bundle = await loadAgentBundle(makeNodeModulePowers(), module, this.#moduleCache);
      // A simple bound: forget everything when the cache grows past 512 modules.
      if (this.#moduleCache.size > 512) this.#moduleCache.clear();
    } catch (err) {
      const code = codeOf(err) ?? 'ZT_MODULE_SYNTAX';
      await this.#kernel
        .record({ type: 'agent.launch-failed', time: Date.now(), agentId, module: String(module), code })
        .catch(() => undefined);
      throw err instanceof ZtError ? err : new ZtError(code, 'the agent module could not be loaded');
    }
    return this.#vats.launch({ agentId, bundle, capabilityIds: ids, ...(names ? { names } : {}), input: harden(structuredClone(input)), limits, isolation });
  }

  /**
   * After an audit outage (the runtime has been denying everything with
   * ZT_AUDIT_UNAVAILABLE): reconnects to the store — a new audit vat on the
   * same folder, or `sink` — writes what happened meanwhile (marked
   * `recordedLate`), and resumes. If more happened than could be held, the
   * gap is recorded and the runtime keeps denying.
   */
  async recoverAudit(sink?: AuditSink): Promise<{ resumed: boolean; written: number; lost: number }> {
    await this.#audit.close().catch(() => undefined);
    let next: AuditSink;
    if (sink) {
      next = sink;
    } else {
      const started = this.#startAudit();
      await started.ready();
      next = started;
    }
    this.#audit = next;
    return this.#kernel.reattachAudit(next);
  }

  /** Read access to the audit log for the operator. */
  get audit(): Pick<AuditSink, 'read' | 'size' | 'rootHash'> & { flush(): Promise<void> } {
    const sink = this.#audit;
    const kernel = this.#kernel;
    return harden({
      read: (from: number, count: number) => sink.read(from, count),
      size: () => sink.size(),
      rootHash: () => sink.rootHash(),
      flush: () => kernel.flush(),
    });
  }

  /**
   * Rotates the audit log's checkpoint signing key. The audit vat generates
   * the successor (the kernel never sees a private key), records the
   * rotation in the log, and commits a handover checkpoint signed by both
   * keys to the store's key chain; later checkpoints are signed by the new
   * key. Resolves with the new verifier key and the handover's tree head.
   * Fails with ZT_BAD_ARGUMENT when the runtime was given an audit sink
   * that cannot rotate keys, and ZT_AUDIT_UNAVAILABLE when the vat cannot.
   */
  async rotateAuditKey(): Promise<{ key: string; size: number; rootHash: string }> {
    const sink = this.#audit as Partial<AuditVatSink>;
    if (typeof sink.rotateKey !== 'function') {
      throw new ZtError('ZT_BAD_ARGUMENT', 'this runtime\'s audit sink has no checkpoint key to rotate');
    }
    await this.#kernel.flush();
    return sink.rotateKey();
  }

  /** Terminates every vat, records the shutdown and closes the audit log. Idempotent. */
  shutdown(): Promise<void> {
    if (!this.#closed) {
      this.#closed = (async () => {
        await this.#vats.terminateAll('runtime shutdown');
        await this.#kernel.shutdown();
        await this.#effectors.close();
        await this.#audit.close();
      })();
    }
    return this.#closed;
  }
}
harden(SandboxRuntime);
