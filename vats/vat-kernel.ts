/**
 * The kernel vat: the runtime (`makeSandbox`) behind the operations the
 * host's `SandboxRuntime` may ask for, one method each.
 *
 * The host application is the operator, but what it sends crossed a realm
 * boundary as structured-clone data: every value is checked again here
 * (capabilities and requests are rebuilt with their validating
 * constructors inside the kernel), and every answer is plain data. Agent
 * runs are named by their run id; their outcomes are announced with
 * `notify` when they end.
 */
import { harden } from '../src/harden.js';
import type { AuditSink } from '../src/audit/audit-client.js';
import { ZtError, codeOf, reasonOf } from '../src/errors.js';
import type { CodeRunSpec } from '../src/code-run.js';
import type { ApprovalHost } from '../src/kernel.js';
import { copyOperatorInput, escapeForRecord } from '../src/operator-input.js';
import { makeSandbox, type AgentHandle, type LaunchSpec, type Sandbox, type SandboxConfig, type SandboxPowers } from '../src/sandbox.js';
import type { SyncMethod, AsyncMethod } from '../src/kernel-protocol.js';
import { Capability, type ActionRequest, type CapabilityInit } from '../src/types.js';
import type { RuntimeEvent } from '../src/runtime-events.js';

export interface KernelVatPowers {
  readonly sandbox: SandboxPowers;
  /** Announces the end of a run to the host. */
  notifyRunEnded(runId: string, outcome: unknown): void;
  /** An audit sink that forwards to the sink the host supplied (generation `gen`). */
  makeHostSink(gen: number): AuditSink;
  /** Announces requests that need a person's approval to the host, and the end of their waits. */
  readonly approvalHost: ApprovalHost;
  /** Sends a runtime event to the host (plain data). */
  notifyEvent?(event: RuntimeEvent): void;
}

export interface InitConfig extends SandboxConfig {
  /** The host supplied its own audit sink (generation 0). */
  readonly hostAuditSink?: boolean;
}

const asRecord = (x: unknown, what: string): Record<string, unknown> => {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) throw new ZtError('ZT_BAD_ARGUMENT', `${what} must be an object`);
  return x as Record<string, unknown>;
};

const optionalReason = (reason: unknown): string | undefined => {
  if (reason === undefined) return undefined;
  if (typeof reason !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'a reason must be a string');
  return reason;
};

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

export const buildRootObject = (vatPowers: KernelVatPowers) => {
  let sandbox: Sandbox | undefined;
  const runs = new Map<string, AgentHandle>();

  const live = (): Sandbox => {
    if (!sandbox) throw new ZtError('ZT_SHUT_DOWN', 'the kernel has not been initialised');
    return sandbox;
  };

  /**
   * Every operator operation checks its arguments first, before anything
   * reads them (the host checked them too; this edge does not rely on it):
   * bounded plain data, or ZT_BAD_ARGUMENT. An input the log cannot record
   * (a lone surrogate) is refused with ZT_NOT_RECORDABLE, and the refusal
   * is recorded with the input escaped.
   */
  const checked =
    <R>(operation: string, fn: (...args: unknown[]) => R) =>
    (...raw: unknown[]): R => {
      const { args, unrecordable } = copyOperatorInput(operation, raw);
      if (unrecordable) {
        sandbox?.recordRefusal(operation, 'ZT_NOT_RECORDABLE', escapeForRecord(args));
        throw new ZtError('ZT_NOT_RECORDABLE', `${operation}: an input holds a lone UTF-16 surrogate (not Unicode text); the audit log cannot record it`);
      }
      return fn(...args);
    };

  const sync: Record<SyncMethod, (...args: unknown[]) => unknown> = {
    init: (raw: unknown) => {
      const [config] = copyOperatorInput('options', [raw]).args;
      if (sandbox) throw new ZtError('ZT_BAD_ARGUMENT', 'the kernel is already initialised');
      const { hostAuditSink, ...rest } = asRecord(config, 'options') as unknown as InitConfig;
      const onEvent = vatPowers.notifyEvent ? (event: RuntimeEvent) => vatPowers.notifyEvent?.(event) : undefined;
      sandbox = makeSandbox(vatPowers.sandbox, rest, hostAuditSink === true ? vatPowers.makeHostSink(0) : undefined, vatPowers.approvalHost, onEvent ? { onEvent } : {});
      return { failureModes: { ...sandbox.failureModes } };
    },
    registerAgent: checked('registerAgent', (agentId: unknown, options: unknown) =>
      live().registerAgent(agentId as string, options === undefined ? {} : (asRecord(options, 'registerAgent options') as { labels?: readonly string[] }))),
    issueCapability: checked('issueCapability', (init: unknown) => live().issueCapability(new Capability(asRecord(init, 'a capability') as unknown as CapabilityInit))),
    getCapability: checked('getCapability', (id: unknown) => live().getCapability(id as string) ?? null),
    listCapabilities: checked('listCapabilities', (filter: unknown) =>
      live().listCapabilities(filter === undefined ? {} : (asRecord(filter, 'the filter') as { agentId?: string; state?: 'live' | 'revoked' }))),
    revokeCapability: checked('revokeCapability', (id: unknown, reason: unknown) => live().revokeCapability(id as string, optionalReason(reason))),
    revokeAgent: checked('revokeAgent', (agentId: unknown, reason: unknown) => live().revokeAgent(agentId as string, optionalReason(reason))),
    loadPolicy: checked('loadPolicy', (document: unknown, options: unknown) =>
      live().loadPolicy(document, options === undefined ? {} : (asRecord(options, 'loadPolicy options') as { revokeRefused?: boolean }))),
    policyHash: () => live().policyHash(),
  };

  const async: Record<AsyncMethod, (...args: unknown[]) => Promise<unknown>> = {
    // As it came: the kernel admits it (src/kernel/mediation.ts `admit`),
    // or denies and records it as malformed.
    execute: async (init: unknown) => live().execute(init as ActionRequest),
    launchAgent: checked('launchAgent', async (spec: unknown) => {
      const handle = await live().launchAgent(asRecord(spec, 'launchAgent options') as unknown as LaunchSpec);
      runs.set(handle.runId, handle);
      void handle.result.then(outcome => {
        runs.delete(handle.runId);
        vatPowers.notifyRunEnded(handle.runId, outcome);
      });
      return { agentId: handle.agentId, runId: handle.runId };
    }),
    // Answered when the run has ended (a run is bounded by its deadline; shutdown ends it).
    runCode: checked('runCode', async (spec: unknown) => live().runCode(asRecord(spec, 'runCode options') as unknown as CodeRunSpec)),
    terminateRun: checked('terminateRun', async (runId: unknown, reason: unknown) => {
      const handle = typeof runId === 'string' ? runs.get(runId) : undefined;
      // A run that already ended answers with nothing: its outcome was announced.
      if (!handle) return null;
      return handle.terminate(optionalReason(reason));
    }),
    loadPolicyFile: checked('loadPolicyFile', async (path: unknown, options: unknown) =>
      live().loadPolicyFile(path as string, options === undefined ? {} : (asRecord(options, 'loadPolicyFile options') as { revokeRefused?: boolean }))),
    recoverAudit: async (hostSinkGen: unknown) => {
      if (hostSinkGen === undefined || hostSinkGen === null) return live().recoverAudit();
      if (typeof hostSinkGen !== 'number' || !Number.isSafeInteger(hostSinkGen)) throw new ZtError('ZT_BAD_ARGUMENT', 'bad audit sink');
      return live().recoverAudit(vatPowers.makeHostSink(hostSinkGen));
    },
    rotateAuditKey: async () => live().rotateAuditKey(),
    auditRead: checked('auditRead', async (from: unknown, count: unknown) => {
      if (!isCount(from) || !isCount(count)) throw new ZtError('ZT_BAD_ARGUMENT', 'audit.read needs a first seq and a count, non-negative integers');
      return live().auditRead(from, count);
    }),
    auditSize: async () => live().auditSize(),
    auditRootHash: async () => live().auditRootHash(),
    flush: async () => live().flush(),
    listTools: checked('listTools', async (server: unknown) => {
      if (server !== undefined && server !== null && typeof server !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'listTools takes a server name or nothing');
      return live().listTools(typeof server === 'string' ? server : undefined);
    }),
    acceptTool: checked('acceptTool', async (server: unknown, tool: unknown, hash: unknown) => {
      if (typeof server !== 'string' || typeof tool !== 'string' || typeof hash !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'acceptTool needs a server, a tool name and a hash, strings');
      await live().acceptTool(server, tool, hash);
      return null;
    }),
    describeCapabilities: checked('describeCapabilities', async (agentId: unknown, options: unknown) => {
      if (typeof agentId !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'describeCapabilities needs an agent id');
      const o = options === undefined || options === null ? {} : asRecord(options, 'describeCapabilities options');
      if (o.names !== undefined) asRecord(o.names, 'names');
      return live().describeCapabilities(agentId, o.names === undefined ? {} : { names: o.names as Record<string, string> });
    }),
    recordGatewayEvent: checked('recordGatewayEvent', async (event: unknown) => live().recordGatewayEvent(asRecord(event, 'a gateway event'))),
    shutdown: async () => {
      if (!sandbox) return;
      try {
        await sandbox.shutdown();
      } catch (err) {
        // Never a code-less rejection (an OS error on a full disk, say): the operator gets a code.
        if (codeOf(err) !== undefined) throw err;
        throw new ZtError('ZT_SHUTDOWN_FAILED', reasonOf(err) ?? 'the runtime could not close cleanly', { cause: err instanceof Error ? err.message : String(err) });
      }
    },
  };

  return harden({
    sync: harden(sync),
    async: harden(async),
    /** A person's answer from the host: as it came (the kernel checks it; a malformed one denies). */
    answerApproval: (approvalId: unknown, answer: unknown): boolean => (sandbox && typeof approvalId === 'string' ? sandbox.answerApproval(approvalId, answer) : false),
    isBusy: (): boolean => sandbox?.isBusy() ?? false,
  });
};
harden(buildRootObject);

export type KernelVatRoot = ReturnType<typeof buildRootObject>;
