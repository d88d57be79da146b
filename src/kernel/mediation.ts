/**
 * The mediated path of one request: decide → commit → perform → settle.
 *
 * Invariants:
 * - No action executes unless (1) the agent is registered and live, (2) the
 *   capability exists, is held by that agent, is live, unexpired and has uses
 *   left, (3) it grants this action type and target, (4) the policy permits
 *   it, and (5) the decision record is durable in the audit log (in
 *   `relaxed` durability, the action may start while the record is on its
 *   way, and its result is withheld unless the record lands).
 * - Every request yields exactly one decision record; every executed action
 *   one outcome record. A result is returned only once both are durable and
 *   only if it could be recorded (its digest is part of the outcome record).
 * - Uses are counted and taints acquired when a request is allowed, before it
 *   runs: a call that fails half-way may still have had an effect.
 * - A request the policy permits only with a person's approval waits for
 *   the answer (approvals.ts) before anything is consumed; after a yes it is
 *   decided again and goes on only if still permitted with no approval the
 *   answer did not cover. Its one decision record carries the approval.
 * - `execute` never rejects: every failure is an outcome with a code.
 * - A request from outside the kernel (the seed API) is checked once, where
 *   it enters (`admit`): its fields are well-formed strings and its
 *   arguments plain data (src/plain-data.ts), copied. The membrane checks
 *   an agent's call the same way at the vat boundary and hands the request
 *   to `executeChecked`. Past that point nothing checks them again.
 * - A request refused at the boundary (malformed, or arguments that are
 *   not plain data) and a call the membrane refused are recorded alike: one
 *   decision record of one shape (`refusalRecord`), whatever the cause.
 */
import { harden } from '../harden.js';
import { ErrorCodes, ZtError, codeOf, reasonOf, type ErrorCode } from '../errors.js';
import { boundaryCodeOf, boundedSize, copyPlainData, digestText, faithfulText, isWellFormedString, recordableArgs } from '../plain-data.js';
import type { Policy } from '../policy.js';
import { checkTarget, patternMatches, type ParsedUrl } from '../targets.js';
import { ActionRequest, isActionType, type AuditRef, type Outcome } from '../types.js';
import type { FailureModes } from '../failure-modes.js';
import type { AgentRegistry } from './agents.js';
import type { CapabilityTable, CapEntry, InFlight } from './capability-table.js';
import type { ApprovalRecord, Approvals } from './approvals.js';
import type { Decider, Evaluation } from './decision.js';
import type { EffectRun, EffectRunner } from './effect.js';
import type { RecordDurably, RequestVia } from './types.js';

const pickArgs = (args: Readonly<Record<string, unknown>>, names: readonly string[]): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  for (const name of names) if (Object.hasOwn(args, name)) out[name] = args[name];
  return out;
};

const outcomeOf = (
  requestId: string,
  status: Outcome['status'],
  audit: Outcome['audit'],
  extra: { result?: unknown; code?: ErrorCode; message?: string },
): Outcome =>
  harden({
    requestId,
    status,
    ok: status === 'succeeded',
    ...(status === 'succeeded'
      ? { result: extra.result }
      : { error: { code: extra.code ?? 'ZT_EFFECT_FAILED', message: extra.message ?? ErrorCodes[extra.code ?? 'ZT_EFFECT_FAILED'] } }),
    audit,
  });

/** The message of an error an agent may see: its own words without the code prefix, else the code's text. */
const messageOf = (err: unknown, code: ErrorCode) => reasonOf(err) ?? ErrorCodes[code];

export interface MediationPowers {
  readonly now: () => number;
  readonly makeRequestId: () => string;
  readonly sha256Hex: (data: string) => string;
  readonly canonicalJson: (value: unknown) => string;
  readonly record: RecordDurably;
  readonly currentPolicy: () => Policy;
  readonly decider: Decider;
  readonly table: Pick<CapabilityTable, 'entry' | 'chainOf' | 'noteExpired'>;
  readonly agents: Pick<AgentRegistry, 'noteActivity' | 'acquireTaints' | 'busy'>;
  readonly effects: EffectRunner;
  readonly approvals: Pick<Approvals, 'request'>;
  /** Halts an agent a failure mode says must stop. */
  readonly halt: (agentId: string, code: ErrorCode) => void;
}

export interface MediationOptions {
  readonly failureModes: Pick<FailureModes, 'policyError' | 'auditUnavailable'>;
  readonly durability: 'durable' | 'relaxed';
}

/** A mediation path's powers and options, read by each step. */
interface Mediator extends MediationPowers, MediationOptions {}

/** An allowed request on its way: what was asked, decided and recorded about it. */
interface Allowed {
  readonly request: ActionRequest;
  readonly requestId: string;
  readonly time: number;
  readonly evaluation: Evaluation;
  /** The decision record (taints acquired are added to it when committed). */
  readonly requestRecord: Record<string, unknown>;
  readonly live: CapEntry;
}

/**
 * The boundary of the seed API: a request as the operator's code built it
 * becomes a request the kernel trusts, or ZT_BAD_ARGUMENT (ZT_NOT_RECORDABLE
 * for text the log cannot record: a lone surrogate). Its ids and target are
 * strings the audit log can record; its arguments are copied as plain data
 * (src/plain-data.ts).
 */
const admitted = new WeakSet<ActionRequest>();

export const admit = (raw: unknown): ActionRequest => {
  // A request this function returned is admitted already: never checked twice.
  if (raw instanceof ActionRequest && admitted.has(raw)) return raw;
  const request = raw instanceof ActionRequest ? raw : new ActionRequest(raw as never);
  const { capabilityId, agentId, actionType, target } = request;
  if (!isWellFormedString(agentId) || !isWellFormedString(capabilityId) || !isWellFormedString(target)) {
    throw new ZtError('ZT_NOT_RECORDABLE', 'ids and target must be Unicode text (no lone surrogate)');
  }
  const args = copyPlainData(request.args) as ActionRequest['args'];
  const checked = new ActionRequest({ capabilityId, agentId, actionType, target, args });
  admitted.add(checked);
  return checked;
};
harden(admit);

/** What a refusal record says of the request; read defensively from whatever was sent. */
interface Refused {
  readonly via: RequestVia;
  readonly agentId: unknown;
  readonly capabilityId: unknown;
  readonly actionType: unknown;
  /** The method called, for a call the membrane refused. */
  readonly method?: string;
  readonly code: ErrorCode;
}

/**
 * The decision record of a request refused before it was decided: the same
 * fields whatever the cause. Strings the caller sent are recorded only as
 * the audit log can encode them (cut, lone surrogates replaced).
 */
const refusalRecord = (m: Mediator, requestId: string, refused: Refused): Record<string, unknown> => {
  // An id a caller sent is recorded as it is if it could be an id, else as a bounded digest.
  const text = (v: unknown) => (typeof v !== 'string' ? null : v.length <= 128 && isWellFormedString(v) ? v : digestText(v, m.sha256Hex));
  return {
    type: 'request',
    time: m.now(),
    requestId,
    via: refused.via,
    agentId: text(refused.agentId),
    capabilityId: text(refused.capabilityId),
    actionType: isActionType(refused.actionType) ? refused.actionType : null,
    ...(refused.method === undefined ? {} : methodField(refused.method)),
    decision: 'deny',
    code: refused.code,
    decidedBy: 'kernel',
    rules: [],
    policyHash: m.currentPolicy().hash,
  };
};

/** The method of a refused call as the record holds it: escaped, and marked, when it is not Unicode text. */
const methodField = (method: string): Record<string, string> => {
  const { text, escaped } = faithfulText(method, 64);
  return escaped ? { method: text, methodEscaped: 'ZT_NOT_RECORDABLE' } : { method: text };
};

/** A request refused at the boundary: denied like any other, and recorded with what could be read of it. */
const denyAtBoundary = async (m: Mediator, raw: unknown, via: RequestVia, err: unknown): Promise<Outcome> => {
  const requestId = m.makeRequestId();
  const fields = (raw !== null && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const pick = (k: string): unknown => {
    try {
      return fields[k];
    } catch {
      return null;
    }
  };
  const code = boundaryCodeOf(err);
  const ref = await m
    .record(refusalRecord(m, requestId, { via, agentId: pick('agentId'), capabilityId: pick('capabilityId'), actionType: pick('actionType'), code }))
    .catch(() => undefined);
  return outcomeOf(requestId, 'denied', ref ? { decision: ref } : {}, { code, message: messageOf(err, code) });
};

/** Most bytes of the arguments a policy reads that a decision record holds verbatim (for replay). */
const MAX_POLICY_ARGS = 16 * 1024;

/**
 * The arguments the policy read, verbatim for replay while they fit
 * `MAX_POLICY_ARGS`; past it, in their bounded audit form, marked so
 * replay knows it cannot re-ask the policy with them.
 */
const recordablePolicyArgs = (m: Mediator, picked: Record<string, unknown>): Record<string, unknown> =>
  boundedSize(picked, MAX_POLICY_ARGS) <= MAX_POLICY_ARGS
    ? { policyArgs: picked }
    : { policyArgs: recordableArgs(picked, m), policyArgsDigested: true };

/** The decision record: what was asked, what was decided and by whom, what replay needs, and any approval (with the code it denied with). */
const decisionRecord = (
  m: Mediator,
  request: ActionRequest,
  via: RequestVia,
  requestId: string,
  time: number,
  evaluation: Evaluation,
  approval?: { record: ApprovalRecord; code: ErrorCode | undefined },
  runId?: string,
): Record<string, unknown> => {
  const { entry, recordedTarget, args, decisionRequest } = evaluation;
  const decision = approval?.code === undefined ? evaluation.decision : { ...evaluation.decision, allowed: false, code: approval.code };
  const policy = m.currentPolicy();
  return {
    type: 'request',
    time,
    requestId,
    via,
    ...(runId === undefined ? {} : { runId }),
    agentId: request.agentId,
    capabilityId: request.capabilityId,
    actionType: request.actionType,
    target: recordedTarget,
    ...(args ? { args } : {}),
    decision: decision.allowed ? 'allow' : 'deny',
    ...(decision.code ? { code: decision.code } : {}),
    // Which stage decided: the kernel's capability checks, or the policy (replayable).
    decidedBy: decisionRequest ? 'policy' : 'kernel',
    rules: decision.rules,
    policyHash: decision.policyHash,
    ...(entry ? { uses: entry.uses } : {}),
    // What replay needs to re-ask the policy: its context, and verbatim the arguments its conditions read.
    ...(decisionRequest?.context ? { context: decisionRequest.context } : {}),
    ...(decisionRequest && policy.argNames.length > 0 ? recordablePolicyArgs(m, pickArgs(request.args, policy.argNames)) : {}),
    ...(approval ? { approval: approval.record } : {}),
  };
};

/** Records a denial (the denial stands even if it cannot be recorded) and applies the policy-error failure mode. */
const deny = async (m: Mediator, request: ActionRequest, requestId: string, requestRecord: Record<string, unknown>, code: ErrorCode): Promise<Outcome> => {
  let ref: AuditRef | undefined;
  try {
    ref = await m.record(requestRecord);
  } catch {
    // The denial stands either way; the latched fault denies what follows.
  }
  if (code === 'ZT_POLICY_ERROR' && m.failureModes.policyError === 'halt') m.halt(request.agentId, code);
  return outcomeOf(requestId, 'denied', ref ? { decision: ref } : {}, { code, message: ErrorCodes[code] });
};

/**
 * Commits an allowed request before it runs: the taints the policy
 * attaches (named in the decision record), and one use on every link of
 * the capability's chain. Returns the chain.
 */
const commit = (m: Mediator, allowed: Allowed): CapEntry[] => {
  const { request, evaluation, requestRecord, live, time } = allowed;
  const policy = m.currentPolicy();
  const { decisionRequest } = evaluation;
  const newTaints = decisionRequest ? m.agents.acquireTaints(request.agentId, policy.taintsFor(decisionRequest)) : [];
  if (newTaints.length > 0) requestRecord.taintsAcquired = newTaints;
  const chain = live.delegated ? m.table.chainOf(live) : [live];
  for (const link of chain) {
    link.uses += 1;
    if (link.spec.constraints.rate) link.useTimes.push(time);
    if (policy.rateWindows.length > 0) link.policyUseTimes.push(time);
  }
  return chain;
};

/**
 * Re-checks a further target reached while carrying out an allowed
 * request (a redirect hop): same capability pattern, policy in force,
 * capability still live. Each hop is audited and durable before use. A URL
 * hop is parsed once: the pattern, the policy and the effector (through the
 * verdict) read that parsed form.
 */
const recheck = async (m: Mediator, allowed: Allowed, hop: string) => {
  const { request, live: entry, requestId } = allowed;
  let target: string | undefined;
  let url: ParsedUrl | undefined;
  let code: ErrorCode | undefined;
  let rules: readonly string[] = [];
  try {
    const checked = checkTarget(request.actionType, hop);
    ({ target, url } = checked);
    if (entry.state !== 'live') code = 'ZT_REVOKED';
    else if (!patternMatches(entry.pattern, checked)) code = 'ZT_WRONG_TARGET';
    else {
      const policy = m.currentPolicy();
      const decision = policy.decide({
        agentId: request.agentId,
        actionType: request.actionType,
        target,
        ...(url === undefined ? {} : { parsedUrl: url }),
        args: request.args,
        ...(policy.needsContext ? { context: m.decider.contextFor(request.agentId, entry, m.now()) } : {}),
      });
      rules = decision.rules;
      if (!decision.allowed) code = decision.code ?? 'ZT_POLICY_DENIED';
    }
  } catch (err) {
    code = codeOf(err) === 'ZT_BAD_ARGUMENT' ? 'ZT_WRONG_TARGET' : 'ZT_POLICY_ERROR';
  }
  await m.record({
    type: 'request.hop',
    time: m.now(),
    requestId,
    target: target ?? null,
    decision: code ? 'deny' : 'allow',
    ...(code ? { code } : {}),
    rules,
    policyHash: m.currentPolicy().hash,
  });
  return harden(code ? { allowed: false, code } : { allowed: true, target, ...(url === undefined ? {} : { url }) });
};

/** A succeeded run whose result cannot be encoded canonically is withheld: it could not be recorded. */
const digestResult = (m: Mediator, run: EffectRun): { run: EffectRun; resultDigest?: string } => {
  if (run.status !== 'succeeded') return { run };
  try {
    return { run, resultDigest: m.sha256Hex(m.canonicalJson(run.result ?? null)) };
  } catch {
    return { run: { status: 'failed', code: 'ZT_EFFECT_FAILED', message: 'the action returned data that cannot be recorded', effectCompleted: run.effectCompleted } };
  }
};

/**
 * Records the outcome and returns it once the decision and the outcome are
 * both durable; withholds the result otherwise, or when the call was cut
 * while its outcome was being recorded.
 */
const settle = async (m: Mediator, allowed: Allowed, signal: AbortSignal, decided: { ref: AuditRef | undefined; pending: Promise<AuditRef> }, performed: EffectRun): Promise<Outcome> => {
  const { request, requestId, live } = allowed;
  const { run, resultDigest } = digestResult(m, performed);
  const { status, code, effectCompleted } = run;
  const outcomeRecord = {
    type: 'outcome',
    time: m.now(),
    requestId,
    status,
    ...(code ? { code } : {}),
    ...(effectCompleted ? { effectCompleted } : {}),
    ...(status === 'succeeded' ? { bytes: live.bytes } : {}),
    ...(resultDigest !== undefined ? { resultDigest } : {}),
  };
  let decisionRef = decided.ref;
  let outcomeRef: AuditRef;
  try {
    // Sent right away (after the decision, in order); in relaxed mode both acknowledgements are awaited together.
    const pendingOutcome = m.record(outcomeRecord);
    pendingOutcome.catch(() => undefined); // awaited on the next line but one
    decisionRef ??= await decided.pending;
    outcomeRef = await pendingOutcome;
  } catch {
    // The effect happened but could not be recorded: withhold its result.
    if (m.failureModes.auditUnavailable === 'halt') m.halt(request.agentId, 'ZT_AUDIT_UNAVAILABLE');
    return outcomeOf(requestId, 'failed', decisionRef ? { decision: decisionRef } : {}, { code: 'ZT_AUDIT_UNAVAILABLE', message: ErrorCodes.ZT_AUDIT_UNAVAILABLE });
  }
  if (status === 'succeeded' && signal.aborted) {
    // Revoked while the outcome was being recorded: the revocation record
    // lists this request as cut in flight, and its result is withheld.
    const cutCode = codeOf(signal.reason) ?? 'ZT_REVOKED';
    return outcomeOf(requestId, 'failed', { decision: decisionRef, outcome: outcomeRef }, { code: cutCode, message: ErrorCodes[cutCode] });
  }
  return outcomeOf(requestId, status, { decision: decisionRef, outcome: outcomeRef }, { result: run.result, code, message: run.message });
};

/**
 * Runs an allowed, committed request while it is registered in flight:
 * the decision record (awaited first unless `relaxed`), the effect, the
 * outcome.
 */
const perform = async (m: Mediator, allowed: Allowed, chain: readonly CapEntry[], controller: AbortController): Promise<Outcome> => {
  const { request, requestId, evaluation, requestRecord, live } = allowed;
  let decisionRef: AuditRef | undefined;
  // Durable (default): the decision is on disk before the action runs.
  // Relaxed (opted into, and said in every record): the action starts
  // while the decision is on its way; the result is still withheld
  // unless both records are acknowledged.
  const pendingDecision = m.record(requestRecord);
  if (m.durability === 'durable') {
    try {
      decisionRef = await pendingDecision;
    } catch {
      if (m.failureModes.auditUnavailable === 'halt') m.halt(request.agentId, 'ZT_AUDIT_UNAVAILABLE');
      return outcomeOf(requestId, 'denied', {}, { code: 'ZT_AUDIT_UNAVAILABLE', message: ErrorCodes.ZT_AUDIT_UNAVAILABLE });
    }
  } else {
    pendingDecision.catch(() => undefined); // awaited in `settle`, before anything is returned
  }
  const run = await m.effects.run({
    request,
    entry: live,
    chain,
    target: evaluation.target,
    url: evaluation.url,
    controller,
    recheck: hop => recheck(m, allowed, hop),
  });
  return await settle(m, allowed, controller.signal, { ref: decisionRef, pending: pendingDecision }, run);
};

/**
 * The whole mediated path for one request from outside the kernel: the
 * boundary, then `executeChecked`. Never rejects: every failure is an
 * outcome with a code.
 */
const execute = async (m: Mediator, raw: ActionRequest, via: RequestVia): Promise<Outcome> => {
  let request: ActionRequest;
  try {
    request = admit(raw);
  } catch (err) {
    return await denyAtBoundary(m, raw, via, err);
  }
  return await executeChecked(m, request, via);
};

/** Decides a request at `time`, noting an expiry the decision found. */
const evaluate = (m: Mediator, request: ActionRequest, time: number): Evaluation => {
  const evaluation = m.decider.evaluate(request, time);
  const { decision, entry } = evaluation;
  if (decision.code === 'ZT_EXPIRED' && entry) {
    for (const link of entry.delegated ? m.table.chainOf(entry) : [entry]) {
      const { expiresAt } = link.spec.constraints;
      if (expiresAt !== undefined && time >= expiresAt) m.table.noteExpired(link);
    }
  }
  return evaluation;
};

/**
 * The mediated path for a request already checked at a boundary (`admit`,
 * or the membrane's check of an agent's call). Never rejects.
 */
const executeChecked = async (m: Mediator, request: ActionRequest, via: RequestVia, runId?: string): Promise<Outcome> => {
  const requestId = m.makeRequestId();
  let time = m.now();
  m.agents.noteActivity(request.agentId);

  let evaluation = evaluate(m, request, time);
  let approval: { record: ApprovalRecord; code: ErrorCode | undefined } | undefined;
  const need = evaluation.decision.allowed ? evaluation.approval : undefined;
  if (need) {
    const { target, args } = evaluation;
    const verdict = await m.approvals.request({ request, requestId, entry: evaluation.entry as CapEntry, target, recordedArgs: args, need });
    if (verdict.approved) {
      // Nothing was consumed while it waited: decided again, now.
      time = m.now();
      evaluation = evaluate(m, request, time);
      const uncovered = evaluation.approval?.ruleIds.some(id => !need.ruleIds.includes(id)) === true;
      approval = { record: verdict.record, code: evaluation.decision.allowed && uncovered ? 'ZT_APPROVAL_DENIED' : undefined };
    } else {
      approval = { record: verdict.record, code: verdict.code };
    }
  }
  const { decision, entry } = evaluation;
  const requestRecord = decisionRecord(m, request, via, requestId, time, evaluation, approval, runId);
  if (!decision.allowed || approval?.code !== undefined) return await deny(m, request, requestId, requestRecord, approval?.code ?? decision.code ?? 'ZT_POLICY_DENIED');

  const allowed: Allowed = { request, requestId, time, evaluation, requestRecord, live: entry as CapEntry };
  const chain = commit(m, allowed);
  const controller = new AbortController();
  const call: InFlight = { requestId, agentId: request.agentId, controller };
  allowed.live.inFlight.add(call);
  m.agents.busy(request.agentId, +1);
  try {
    return await perform(m, allowed, chain, controller);
  } finally {
    allowed.live.inFlight.delete(call);
    m.agents.busy(request.agentId, -1);
  }
};

/**
 * Records a call the membrane refused before it became a request (a
 * method outside the interface, arguments that are not plain data): one
 * decision record, like every other invocation.
 */
const refuse = async (m: Mediator, call: { agentId: string; capabilityId: string; method: string; code: ErrorCode }) => {
  const entry = m.table.entry(call.capabilityId);
  const { agentId, capabilityId, method, code } = call;
  await m
    .record(refusalRecord(m, m.makeRequestId(), { via: 'vat', agentId, capabilityId, actionType: entry?.spec.actionType, method, code }))
    .catch(() => undefined);
};

export const makeMediation = (powers: MediationPowers, options: MediationOptions) => {
  const m: Mediator = { ...powers, ...options };
  return harden({
    execute: (request: ActionRequest, via: RequestVia): Promise<Outcome> => execute(m, request, via),
    /** `runId`: the run of the vat whose call this is (its decision record carries it). */
    executeChecked: (request: ActionRequest, via: RequestVia, runId?: string): Promise<Outcome> => executeChecked(m, request, via, runId),
    refuse: (call: { agentId: string; capabilityId: string; method: string; code: ErrorCode }): Promise<void> => refuse(m, call),
  });
};
harden(makeMediation);

export type Mediation = ReturnType<typeof makeMediation>;
