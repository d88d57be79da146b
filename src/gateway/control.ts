/**
 * The gateway's control socket: what `ztaas approvals`, `approve`, `deny`,
 * `revoke`, `gateway reload` and `tools` ask a running gateway. Pure: one
 * JSON request in, one JSON answer out.
 *
 * Invariants:
 * - Every request is validated; anything else is ZT_BAD_ARGUMENT. Answers
 *   carry `ok` and, on failure, a stable `code`.
 * - Who answers an approval is recorded as the CLI names them (`by`) with
 *   `via: 'cli'`; the socket is reachable only by the store's owner (mode
 *   0600 in a 0700 folder).
 */
import { harden } from '../harden.js';
import { ZtError, codeOf, reasonOf } from '../errors.js';
import type { Gateway } from './gateway.js';

export const MAX_CONTROL_BYTES = 64 * 1024;

export interface Revocation {
  readonly kind: 'agent' | 'capability';
  readonly id: string;
  readonly reason: string;
  readonly time: number;
}

export interface ControlRuntime {
  pendingApprovals(): readonly unknown[];
  answerApproval(approvalId: string, answer: { approved: boolean; by: string; note?: string; via?: string }): boolean;
  revokeAgent(agentId: string, reason?: string): boolean;
  revokeCapability(id: string, reason?: string): boolean;
  listTools(server?: string): Promise<readonly unknown[]>;
  acceptTool(server: string, name: string, hash: string): Promise<void>;
}

export interface ControlContext {
  readonly runtime: ControlRuntime;
  readonly gateway: Pick<Gateway, 'noteRevoked' | 'sessions'>;
  readonly persist: (revocation: Revocation) => void;
  readonly reload: () => Promise<unknown>;
  readonly now: () => number;
}

const text = (x: unknown, name: string, max = 1000): string => {
  if (typeof x !== 'string' || x === '' || x.length > max) throw new ZtError('ZT_BAD_ARGUMENT', `${name} must be a non-empty string of at most ${max} characters`);
  return x;
};

const optionalText = (x: unknown, name: string): string | undefined => (x === undefined ? undefined : text(x, name));

const run = async (request: Record<string, unknown>, ctx: ControlContext): Promise<unknown> => {
  switch (request.op) {
    case 'approvals':
      return ctx.runtime.pendingApprovals();
    case 'answer': {
      const approvalId = text(request.approvalId, 'approvalId', 200);
      if (typeof request.approved !== 'boolean') throw new ZtError('ZT_BAD_ARGUMENT', 'approved must be true or false');
      const by = text(request.by, 'by', 200);
      const note = optionalText(request.note, 'note');
      const answered = ctx.runtime.answerApproval(approvalId, { approved: request.approved, by, via: 'cli', ...(note === undefined ? {} : { note }) });
      if (!answered) throw new ZtError('ZT_NOT_FOUND', `no approval ${approvalId} is pending (answered, timed out or cut by a revocation)`);
      return { answered: true };
    }
    case 'revoke': {
      const reason = optionalText(request.reason, 'reason') ?? 'revoked by the operator (gateway control)';
      if ((request.agentId === undefined) === (request.capabilityId === undefined)) throw new ZtError('ZT_BAD_ARGUMENT', 'name exactly one of agentId or capabilityId');
      if (request.agentId !== undefined) {
        const agentId = text(request.agentId, 'agentId', 200);
        const revoked = ctx.runtime.revokeAgent(agentId, reason);
        ctx.persist({ kind: 'agent', id: agentId, reason, time: ctx.now() });
        ctx.gateway.noteRevoked(agentId);
        return { revoked };
      }
      const capabilityId = text(request.capabilityId, 'capabilityId', 200);
      const revoked = ctx.runtime.revokeCapability(capabilityId, reason);
      ctx.persist({ kind: 'capability', id: capabilityId, reason, time: ctx.now() });
      return { revoked };
    }
    case 'reload':
      return ctx.reload();
    case 'tools':
      return ctx.runtime.listTools(optionalText(request.server, 'server'));
    case 'accept-tool':
      await ctx.runtime.acceptTool(text(request.server, 'server', 200), text(request.name, 'name', 200), text(request.hash, 'hash', 200));
      return { accepted: true };
    case 'sessions':
      return ctx.gateway.sessions().map(s => ({ agentId: s.agentId, sessionId: s.sessionId, transport: s.transport }));
    default:
      throw new ZtError('ZT_BAD_ARGUMENT', 'unknown control operation');
  }
};

/** Answers one control request (a JSON line). Never throws. */
export const handleControl = async (line: string, ctx: ControlContext): Promise<Record<string, unknown>> => {
  try {
    let request: unknown;
    try {
      request = JSON.parse(line);
    } catch {
      throw new ZtError('ZT_BAD_ARGUMENT', 'a control request is one JSON object on one line');
    }
    if (request === null || typeof request !== 'object' || Array.isArray(request)) throw new ZtError('ZT_BAD_ARGUMENT', 'a control request is a JSON object');
    return { ok: true, value: await run(request as Record<string, unknown>, ctx) };
  } catch (err) {
    return { ok: false, code: codeOf(err) ?? 'ZT_BAD_ARGUMENT', message: reasonOf(err) ?? String((err as Error)?.message ?? err) };
  }
};
harden(handleControl);
