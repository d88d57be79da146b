/**
 * `SandboxRuntime`: the seed API, in the host application, as a thin client
 * of the kernel vat.
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
 *
 * The kernel — capability table, membranes, policy, effectors, the vat host
 * and the audit vat's client — runs in its own locked-down worker (the
 * kernel vat, vats/kernel-main.ts). This module and everything it imports
 * leave the host realm as it was: no lockdown, no frozen intrinsics, no
 * replaced globals, so a host's own errors keep their stacks and
 * `AsyncLocalStorage` works around every call. Only plain data crosses.
 */
import { resolve as resolvePath } from 'node:path';
import { harden } from './harden.js';
import type { AuditSink } from './audit/audit-client.js';
import { MODULE_LIMITS } from './agent-modules.js';
import type { CodeRunResult, CodeRunSpec } from './code-run.js';
import type { ApprovalAnswer, ApprovalHandler, ApprovalRequest } from './approval.js';
import { ZtError, codeOf, isErrorCode } from './errors.js';
import { readField } from './operator-input.js';
import { resolveFailureModes, type FailureModes } from './failure-modes.js';
import type { CapabilityRecord, CapabilityState } from './kernel.js';
import { makeKernelLink, type KernelLink, type KernelLinkPowers } from './kernel-link.js';
import { makeNodeKernelLinkPowers } from './kernel-link-node-powers.js';
import { kernelUnavailable, type SinkOp } from './kernel-protocol.js';
import type { LaunchOptions, SandboxConfig } from './sandbox.js';
import type { ToolListing } from './effectors/mcp.js';
import type { CapabilitySetDescription } from './describe.js';
import type { RuntimeEvent } from './runtime-events.js';
import { assertSink, input, isArrayOrUnreadable, makeApprovalDesk, makeEventHub, optionsOrEmpty, pickFields, requestData, unrecordedOutcome } from './runtime-host.js';
import type { ActionRequest, Capability, Outcome } from './types.js';
import type { AgentHandle, RunOutcome } from './vat-host.js';

export type { LaunchOptions, RuntimeLimits } from './sandbox.js';
export type { CodeLanguage, CodeRunError, CodeRunResult, ConsoleLine } from './code-run.js';

/** The options of `runCode`: `launchAgent`'s, with `source` (and its `language`) in place of `module`. */
export type CodeRunOptions = CodeRunSpec;
export type { RuntimeEvent, RevocationCause } from './runtime-events.js';
export type { ToolListing, ToolStatus } from './effectors/mcp.js';
export type { CapabilityDescription, CapabilitySetDescription, MethodDescription, JsonSchema } from './describe.js';

export interface SandboxOptions extends Omit<SandboxConfig, 'storeDir'> {
  /** Folder of the embedded default store. Default: `.ztaas` in the working directory. */
  readonly storeDir?: string;
  /**
   * Advanced: an audit sink to use instead of starting the audit vat. It
   * lives in the host; the kernel reaches it through the kernel vat's port.
   */
  readonly auditSink?: AuditSink;
}



export class SandboxRuntime {
  readonly storeDir: string;
  readonly failureModes: FailureModes;
  #link: KernelLink;
  #sinks = new Map<number, AuditSink>();
  #sinkGen = 0;
  #runs = new Map<string, (outcome: RunOutcome) => void>();
  #ended = new Map<string, RunOutcome>();
  #closed: Promise<void> | undefined;
  #approvals = makeApprovalDesk((approvalId, answer) => this.#link.answerApproval(approvalId, answer));
  #events = makeEventHub();

  /**
   * `powers` starts the kernel vat (default: a worker thread of this
   * process, `makeNodeKernelLinkPowers()`); embedders and tests may supply
   * their own.
   */
  constructor(options: SandboxOptions = {}, powers: KernelLinkPowers = makeNodeKernelLinkPowers()) {
    if (options === null || typeof options !== 'object' || isArrayOrUnreadable(options)) throw new ZtError('ZT_BAD_ARGUMENT', 'options must be an object');
    // The sink first (it holds functions), then the rest as plain data.
    const sinkField = readField(options, 'auditSink');
    if (!sinkField.ok) throw new ZtError('ZT_BAD_ARGUMENT', 'options.auditSink could not be read');
    const auditSink = sinkField.value === undefined ? undefined : assertSink(sinkField.value);
    let plain: Record<string, unknown>;
    try {
      plain = { ...(options as Record<string, unknown>) };
    } catch {
      throw new ZtError('ZT_BAD_ARGUMENT', 'options could not be read (a getter or a proxy threw)');
    }
    delete plain.auditSink;
    const rest = input('options', [plain])[0] as Omit<SandboxOptions, 'auditSink'>;
    if (rest.storeDir !== undefined && typeof rest.storeDir !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'storeDir must be a path');
    this.storeDir = resolvePath(rest.storeDir ?? '.ztaas');
    if (rest.packagesDir !== undefined && typeof rest.packagesDir !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'packagesDir must be a path');
    // Packages for agents resolve from here (by the kernel): the working directory's node_modules unless named.
    const packagesDir = resolvePath(rest.packagesDir ?? 'node_modules');
    if (auditSink !== undefined) this.#sinks.set(0, auditSink);
    // The kernel vat validates every option again; the host needs this one first.
    const timeoutMs = resolveFailureModes(rest.failureModes).kernelTimeoutMs;
    this.#link = makeKernelLink(powers, {
      timeoutMs,
      handlers: {
        runEnded: (runId, outcome) => this.#runEnded(runId, outcome as RunOutcome),
        sink: (gen, op, args) => this.#sinkOp(gen, op, args),
        approval: raw => this.#approvals.requested(raw),
        approvalClosed: approvalId => this.#approvals.closed(approvalId),
        died: error => {
          for (const [runId] of this.#runs) this.#runEnded(runId, undefined, error);
          this.#approvals.clear();
        },
        event: event => this.#events.dispatch(event),
      },
    });
    try {
      const init = this.#link.callSync('init', [{ ...rest, storeDir: this.storeDir, packagesDir, hostAuditSink: auditSink !== undefined }]) as { failureModes: FailureModes };
      this.failureModes = harden(init.failureModes);
    } catch (err) {
      // A bad option leaves nothing running.
      void this.#link.close();
      throw err;
    }
    Object.freeze(this);
  }

  #runEnded(runId: string, outcome: RunOutcome | undefined, error?: ZtError) {
    const agentId = runId.slice(0, runId.lastIndexOf('#'));
    const result: RunOutcome =
      outcome && typeof outcome === 'object'
        ? harden(outcome)
        : harden({ agentId, runId, status: 'failed', ok: false, error: { code: error?.code ?? 'ZT_KERNEL_UNAVAILABLE', message: error?.reason ?? 'the kernel vat is gone' } });
    const resolve = this.#runs.get(runId);
    if (resolve) {
      this.#runs.delete(runId);
      resolve(result);
    } else {
      this.#ended.set(runId, result);
    }
  }

  /**
   * Registers a handler of requests that need a person's approval (a
   * policy rule with `approval`). Each handler is called for each request,
   * those pending now included; the first definite answer wins, `undefined`
   * leaves the request pending, and a handler that throws or rejects counts
   * as no answer. The kernel checks every answer: a malformed one denies
   * (ZT_APPROVAL_DENIED). Returns a function that unregisters the handler.
   */
  onApproval(handler: ApprovalHandler): () => void {
    return this.#approvals.onApproval(handler);
  }

  /** The requests waiting for a person's approval now (each gone once answered, timed out or cut). */
  pendingApprovals(): ApprovalRequest[] {
    return this.#approvals.pending();
  }

  /**
   * Answers a pending approval: `{ approved, by, note?, via? }` (`by`
   * names who answered; all of it is recorded). Throws ZT_BAD_ARGUMENT for
   * a malformed answer; returns false when no approval is pending under
   * that id (answered already, timed out or cut).
   */
  answerApproval(approvalId: string, answer: ApprovalAnswer): boolean {
    return this.#approvals.answer(approvalId, answer);
  }

  async #sinkOp(gen: number, op: SinkOp, args: readonly unknown[]): Promise<unknown> {
    const sink = this.#sinks.get(gen);
    if (!sink) throw new ZtError('ZT_AUDIT_UNAVAILABLE', 'no such audit sink');
    switch (op) {
      case 'append':
        return sink.append(args[0] as Record<string, unknown>);
      case 'read':
        return sink.read(args[0] as number, args[1] as number);
      case 'size':
        return sink.size();
      case 'rootHash':
        return sink.rootHash();
      case 'close':
        this.#sinks.delete(gen);
        return sink.close();
      default:
        throw new ZtError('ZT_BAD_ARGUMENT', 'unknown audit sink operation');
    }
  }

  /**
   * Registers an agent id, with optional labels (groups) the policy can
   * match. Agents start with nothing: no capability, no vat.
   */
  registerAgent(agentId: string, options: { labels?: readonly string[] } = {}): void {
    this.#link.callSync('registerAgent', input('registerAgent', [agentId, options]));
  }

  /**
   * Issues a capability to the agent named by its `holder`. Throws
   * ZT_NO_HOLDER without one, ZT_UNKNOWN_AGENT for an unregistered holder,
   * ZT_POLICY_DENIED when the policy would never permit the grant.
   */
  issueCapability(capability: Capability): CapabilityRecord {
    const fields = pickFields('issueCapability', capability ?? {}, ['id', 'actionType', 'target', 'holder', 'constraints']);
    return harden(this.#link.callSync('issueCapability', input('issueCapability', [fields])) as CapabilityRecord);
  }

  getCapability(id: string): CapabilityRecord | undefined {
    const record = this.#link.callSync('getCapability', input('getCapability', [id])) as CapabilityRecord | null;
    return record === null ? undefined : harden(record);
  }

  listCapabilities(filter: { agentId?: string; state?: CapabilityState } = {}): CapabilityRecord[] {
    return harden(this.#link.callSync('listCapabilities', [optionsOrEmpty('listCapabilities', filter)]) as CapabilityRecord[]);
  }

  /**
   * Runs one request through the kernel. Never rejects: denials and failures
   * are outcomes with codes. The outcome is the caller's own plain-data copy
   * of the kernel's (which the kernel keeps hardened); it is not frozen again
   * here: on the call path, a second deep freeze would cost a third of the
   * host → kernel-vat hop.
   */
  executeAction(request: ActionRequest): Promise<Outcome> {
    let sent: Promise<unknown>;
    try {
      sent = this.#link.call('execute', [requestData(request)]);
    } catch (err) {
      return Promise.resolve(unrecordedOutcome(err));
    }
    return sent.then(
      outcome => outcome as Outcome,
      (err: unknown) => {
        if (codeOf(err) === 'ZT_BAD_ARGUMENT' && !this.#link.isDead()) {
          // Arguments that are not plain data: the kernel denies and records the request.
          return this.#link.call('execute', [{ ...requestData(request), args: '[not plain data]' }]).then(outcome => outcome as Outcome, unrecordedOutcome);
        }
        return unrecordedOutcome(err);
      },
    );
  }

  /** Revokes at once: calls in flight are aborted with ZT_REVOKED. Returns false if already revoked. */
  revokeCapability(id: string, reason?: string): boolean {
    return this.#link.callSync('revokeCapability', input('revokeCapability', [id, reason])) as boolean;
  }

  /** Revokes an agent: all its capabilities, and its running vat is terminated. */
  revokeAgent(agentId: string, reason?: string): boolean {
    return this.#link.callSync('revokeAgent', input('revokeAgent', [agentId, reason])) as boolean;
  }

  /**
   * Replaces the policy; the next invocation is decided by it. Throws
   * ZT_POLICY_INVALID (listing every problem) and keeps the policy in force
   * if the document is invalid. Live capabilities the new policy would no
   * longer grant are revoked (audited), unless `revokeRefused: false`.
   */
  loadPolicy(document: unknown, options: { revokeRefused?: boolean } = {}): { policyHash: string; refused: string[]; revoked: string[] } {
    return harden(this.#link.callSync('loadPolicy', input('loadPolicy', [document, options])) as { policyHash: string; refused: string[]; revoked: string[] });
  }

  /** Loads a policy file (YAML or JSON, by extension or content) as `loadPolicy` does. */
  async loadPolicyFile(path: string, options: { revokeRefused?: boolean } = {}): Promise<{ policyHash: string; refused: string[]; revoked: string[] }> {
    const [p, o] = input('loadPolicyFile', [path, options]);
    if (typeof p !== 'string' || p === '') throw new ZtError('ZT_BAD_ARGUMENT', 'the policy file must be named by a path');
    return harden((await this.#link.call('loadPolicyFile', [resolvePath(p), o])) as { policyHash: string; refused: string[]; revoked: string[] });
  }

  /**
   * Subscribes to runtime events pushed by the kernel vat: capability
   * issues and revocations (with their `cause`: `api`, `cascade`,
   * `agent`, `policy`, `expired`), agent revocations, policy loads and MCP
   * catalogue changes (`tools.changed`). Listeners are called
   * asynchronously (never inside the call that caused the event), in
   * order; one that throws is contained. Returns the unsubscribe function.
   */
  onEvent(listener: (event: RuntimeEvent) => void): () => void {
    return this.#events.subscribe(listener);
  }

  /**
   * The tool catalogue of the configured MCP servers (or of `server`):
   * each tool as its server announces it now, with `hash` (`sha256:` of its
   * canonical definition) and `status` against its pin (`pinned`,
   * `changed`, `unpinned`; only `pinned` tools can be called). Connects to
   * servers as the TOOL effector does. An unknown server is
   * ZT_TOOL_UNKNOWN; a server that cannot be reached rejects with
   * ZT_TOOL_FAILED, a listing over the bounds with ZT_TOO_LARGE.
   */
  async listTools(server?: string): Promise<ToolListing[]> {
    const [name] = input('listTools', [server]);
    if (name !== undefined && typeof name !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'listTools takes a server name or nothing');
    return harden((await this.#link.call('listTools', name === undefined ? [] : [name])) as ToolListing[]);
  }

  /**
   * What `agentId` holds, for a model to read: per live (unexpired)
   * capability, the methods its caretaker answers with JSON Schemas of their
   * arguments and results, and a TypeScript declaration; and the whole
   * `declare const caps: { … };`. TOOL capabilities are typed from their
   * tool's upstream schema (listed now) and the grant's narrowing; a tool
   * that is not pinned is described as withheld. `names` (name → id, as
   * `launchAgent`'s record form) names and selects the capabilities; without
   * it, every live capability is named after its id (see src/describe.ts)
   * and `names` in the answer is what to launch with. Not a use of any
   * capability. ZT_UNKNOWN_AGENT for an agent never registered.
   */
  async describeCapabilities(agentId: string, options: { names?: Readonly<Record<string, string>> } = {}): Promise<CapabilitySetDescription> {
    const [id, o] = input('describeCapabilities', [agentId, options]);
    if (typeof id !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'describeCapabilities needs an agent id');
    return harden((await this.#link.call('describeCapabilities', [id, o])) as CapabilitySetDescription);
  }

  /**
   * Accepts a tool's definition as its server announces it now: `hash`
   * must be its current hash (from `listTools`; ZT_BAD_ARGUMENT otherwise).
   * Re-pins it in the store's pin file, records `tool.accepted` and emits
   * `tools.changed`. A server whose pins are in its configuration
   * (`mcpServers.<name>.pins`) is refused with ZT_BAD_ARGUMENT: change the
   * configuration instead.
   */
  async acceptTool(server: string, name: string, hash: string): Promise<void> {
    await this.#link.call('acceptTool', input('acceptTool', [server, name, hash]));
  }

  get policyHash(): string {
    return this.#link.callSync('policyHash') as string;
  }

  /**
   * Runs untrusted agent code in its own vat. Rejects with a ZT_MODULE_*
   * code if the module graph reaches outside the agent's folder, with
   * ZT_UNKNOWN_CAPABILITY / ZT_WRONG_HOLDER / ZT_REVOKED for a capability the
   * agent cannot be given.
   */
  async launchAgent(options: LaunchOptions): Promise<AgentHandle> {
    const [checked] = input('launchAgent', [options]);
    if (checked === null || typeof checked !== 'object' || Array.isArray(checked)) throw new ZtError('ZT_BAD_ARGUMENT', 'launchAgent needs an options object');
    const given = checked as Record<string, unknown>;
    const spec = { ...given, ...(typeof given.module === 'string' ? { module: resolvePath(given.module) } : {}) };
    const { agentId, runId } = (await this.#link.call('launchAgent', [spec])) as { agentId: string; runId: string };
    const result = new Promise<RunOutcome>(resolve => {
      const early = this.#ended.get(runId);
      if (early) {
        this.#ended.delete(runId);
        resolve(early);
      } else if (this.#link.isDead()) {
        this.#runEnded(runId, undefined, kernelUnavailable());
        resolve(this.#ended.get(runId) as RunOutcome);
        this.#ended.delete(runId);
      } else {
        this.#runs.set(runId, resolve);
      }
    });
    const link = this.#link;
    return harden({
      agentId,
      runId,
      result,
      terminate: async (reason?: string): Promise<RunOutcome> => {
        await link.call('terminateRun', [runId, input('terminate', [reason])[0]]).catch(() => undefined);
        return result;
      },
    });
  }

  /**
   * Code mode: runs `source` — JavaScript, or TypeScript with erasable
   * syntax (`language: 'typescript'`; types are stripped, positions kept) —
   * in a fresh vat, with the same checks and guarantees as `launchAgent`,
   * and resolves once the run has ended with `{ ok, value?, error?, mode,
   * console, consoleTruncated, runId?, audit }`.
   *
   * A source with `export default` is an agent module (`main({ caps, input
   * })`); one without exports is the body of `async function main({ caps,
   * input })`, so top-level `await` and `return` work. Problems in the code
   * are answers, not rejections: a syntax error or non-erasable TypeScript
   * (ZT_CODE_SYNTAX), an import (ZT_MODULE_FORBIDDEN), a throw
   * (ZT_AGENT_THREW / ZT_AGENT_REJECTED), each with its `line` and
   * `column` in the submitted source where they can be told. Rejects, as
   * `launchAgent` does, for what the caller got wrong: ZT_BAD_ARGUMENT,
   * ZT_MODULE_TOO_LARGE (over `MODULE_LIMITS.maxTotalBytes`),
   * ZT_UNKNOWN_AGENT, ZT_UNKNOWN_CAPABILITY, ZT_WRONG_HOLDER, ZT_REVOKED,
   * ZT_ISOLATION_UNAVAILABLE.
   */
  async runCode(options: CodeRunOptions): Promise<CodeRunResult> {
    if (options === null || typeof options !== 'object' || isArrayOrUnreadable(options)) throw new ZtError('ZT_BAD_ARGUMENT', 'runCode needs an options object');
    // A source too large is refused before anything copies it (UTF-8 takes at least a byte per UTF-16 unit).
    const source = readField(options, 'source');
    if (source.ok && typeof source.value === 'string' && source.value.length > MODULE_LIMITS.maxTotalBytes) {
      throw new ZtError('ZT_MODULE_TOO_LARGE', `the source is larger than ${MODULE_LIMITS.maxTotalBytes} bytes`);
    }
    const [checked] = input('runCode', [options]);
    return harden((await this.#link.call('runCode', [checked])) as CodeRunResult);
  }

  /**
   * After an audit outage (the runtime has been denying everything with
   * ZT_AUDIT_UNAVAILABLE): reconnects to the store — a new audit vat on the
   * same folder, or `sink` — writes what happened meanwhile (marked
   * `recordedLate`), and resumes. If more happened than could be held, the
   * gap is recorded and the runtime keeps denying.
   */
  async recoverAudit(sink?: AuditSink): Promise<{ resumed: boolean; written: number; lost: number }> {
    let gen: number | null = null;
    if (sink !== undefined) {
      const checked = assertSink(sink);
      this.#sinkGen += 1;
      gen = this.#sinkGen;
      this.#sinks.set(gen, checked);
    }
    return harden((await this.#link.call('recoverAudit', [gen])) as { resumed: boolean; written: number; lost: number });
  }

  /** Read access to the audit log for the operator. */
  get audit(): Pick<AuditSink, 'read' | 'size' | 'rootHash'> & { flush(): Promise<void> } {
    const link = this.#link;
    return harden({
      read: async (from: number, count: number) => (await link.call('auditRead', input('audit.read', [from, count]))) as Array<Record<string, unknown>>,
      size: async () => (await link.call('auditSize')) as number,
      rootHash: async () => (await link.call('auditRootHash')) as string,
      flush: async () => {
        await link.call('flush');
      },
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
    return harden((await this.#link.call('rotateAuditKey')) as { key: string; size: number; rootHash: string });
  }

  /**
   * Records what an MCP gateway saw of a session: `gateway.session-opened`,
   * `-closed`, `-refused` or `gateway.call-refused`, with flat string and
   * number fields (ZT_BAD_ARGUMENT otherwise). Resolves once recorded.
   */
  async recordGatewayEvent(event: Readonly<Record<string, unknown>>): Promise<void> {
    await this.#link.call('recordGatewayEvent', input('recordGatewayEvent', [event]));
  }

  /** Terminates every vat, records the shutdown, closes the audit log and ends the kernel vat. Idempotent. */
  shutdown(): Promise<void> {
    this.#closed ??= (async () => {
      try {
        await this.#link.call('shutdown');
      } catch (err) {
        // A kernel that is already gone has nothing left to shut down.
        if (!(isErrorCode(codeOf(err)) && codeOf(err) === 'ZT_KERNEL_UNAVAILABLE')) {
          await this.#link.close();
          // Always with a code (a full disk, say, is not a code-less rejection).
          throw codeOf(err) === undefined ? new ZtError('ZT_SHUTDOWN_FAILED', 'the runtime could not close cleanly', { cause: String((err as Error)?.message ?? err) }) : err;
        }
      }
      await this.#link.close();
    })();
    return this.#closed;
  }
}
harden(SandboxRuntime);
