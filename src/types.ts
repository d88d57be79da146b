/**
 * The seed API's value types: action types, capability grants, action
 * requests and outcomes. All of them are immutable once constructed; the
 * kernel keeps mutable capability state (uses, revocation) in its own table,
 * never in objects a caller holds.
 */
import { harden } from './harden.js';
import { ZtError, assertZt, type ErrorCode } from './errors.js';
import { globSyntaxProblem } from './glob.js';

/** A frozen object plus a union type: erasable TypeScript, no `enum`. */
export const ActionType = Object.freeze({
  READ: 'READ',
  WRITE: 'WRITE',
  EXECUTE: 'EXECUTE',
  NETWORK: 'NETWORK',
  TOOL: 'TOOL',
} as const);
export type ActionType = (typeof ActionType)[keyof typeof ActionType];

const ACTION_TYPES: ReadonlySet<string> = new Set(Object.values(ActionType));
export const isActionType = (x: unknown): x is ActionType =>
  typeof x === 'string' && ACTION_TYPES.has(x);
harden(isActionType);

/** Limits a capability carries. They can only narrow what the policy allows. */
export interface CapabilityConstraints {
  /** Kernel-clock milliseconds after which the capability is expired. */
  readonly expiresAt?: number;
  /** Number of invocations allowed in total. */
  readonly maxUses?: number;
  /** Largest number of bytes a single read or write may move. */
  readonly maxBytes?: number;
  /** At most `max` uses within any `windowMs` window (kernel clock). */
  readonly rate?: { readonly max: number; readonly windowMs: number };
  /** Total bytes all uses together may move (reads, writes, output). */
  readonly bytesBudget?: number;
  /**
   * Constraints on named arguments of each call (`args` of the request):
   * each value must satisfy its rule, or the call is denied with
   * ZT_ARGUMENT_DENIED. Arguments without a rule are left to the effector.
   */
  readonly args?: Readonly<Record<string, ArgumentRule>>;
  /**
   * Settings for the effector of this action type (plain JSON data), e.g.
   * for EXECUTE the argument patterns and environment allow-list, for
   * NETWORK the methods. Validated by the effector when the capability is
   * issued; they can only narrow what the effector would otherwise do.
   */
  readonly effect?: Readonly<Record<string, unknown>>;
}

/**
 * A rule for one argument. `pattern` is a glob over the whole string value
 * (`*` any run of characters, `?` one character; braces, classes, escapes
 * and extglobs are refused, src/glob.ts): globs, not regular expressions,
 * so matching agent-supplied strings is linear in the kernel.
 */
export interface ArgumentRule {
  readonly required?: boolean;
  /** The argument must be absent. */
  readonly forbidden?: boolean;
  readonly type?: 'string' | 'number' | 'boolean';
  readonly enum?: readonly (string | number | boolean | null)[];
  readonly pattern?: string;
  readonly maxLength?: number;
  readonly min?: number;
  readonly max?: number;
}

export interface CapabilityInit {
  readonly id: string;
  readonly actionType: ActionType;
  /** Exact absolute path or glob pattern (`*` within a segment, `**` across segments). */
  readonly target: string;
  /** The one agent this capability is issued to. Required: zero trust has no "anyone". */
  readonly holder: string;
  readonly constraints?: CapabilityConstraints;
}

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@/~-]{0,127}$/;
export const isValidId = (x: unknown): x is string =>
  typeof x === 'string' && ID_PATTERN.test(x);
harden(isValidId);

const isNonNegativeInteger = (x: unknown): x is number =>
  typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/** Most values an argument rule's `enum` may list. */
export const MAX_ENUM_VALUES = 4096;

/** A plain array of at most `max` elements with no holes; checked without iterating it. */
const isDenseList = (x: unknown, max: number): x is unknown[] =>
  Array.isArray(x) && Object.getPrototypeOf(x) === Array.prototype && x.length <= max && Reflect.ownKeys(x).length === x.length + 1;

const RULE_KEYS = new Set(['required', 'forbidden', 'type', 'enum', 'pattern', 'maxLength', 'min', 'max']);

const checkArgumentRules = (args: unknown): Readonly<Record<string, ArgumentRule>> => {
  assertZt(args !== null && typeof args === 'object' && !Array.isArray(args), 'ZT_BAD_ARGUMENT', 'constraints.args must be an object of rules');
  const out: Record<string, ArgumentRule> = {};
  for (const [name, rule] of Object.entries(args as Record<string, unknown>)) {
    const where = `constraints.args.${name}`;
    assertZt(rule !== null && typeof rule === 'object' && !Array.isArray(rule), 'ZT_BAD_ARGUMENT', `${where} must be an object`);
    const r = rule as Record<string, unknown>;
    for (const key of Object.keys(r)) assertZt(RULE_KEYS.has(key), 'ZT_BAD_ARGUMENT', `${where}.${key} is not a known rule`);
    assertZt(r.required === undefined || typeof r.required === 'boolean', 'ZT_BAD_ARGUMENT', `${where}.required must be a boolean`);
    assertZt(r.forbidden === undefined || typeof r.forbidden === 'boolean', 'ZT_BAD_ARGUMENT', `${where}.forbidden must be a boolean`);
    assertZt(r.type === undefined || r.type === 'string' || r.type === 'number' || r.type === 'boolean', 'ZT_BAD_ARGUMENT', `${where}.type must be string, number or boolean`);
    // Length and density before any element is read: a sparse array of length 2³²−1 is refused, never iterated.
    assertZt(r.enum === undefined || isDenseList(r.enum, MAX_ENUM_VALUES), 'ZT_BAD_ARGUMENT', `${where}.enum must be a dense array of at most ${MAX_ENUM_VALUES} primitives`);
    assertZt(r.enum === undefined || (r.enum as unknown[]).every(v => v === null || ['string', 'number', 'boolean'].includes(typeof v)), 'ZT_BAD_ARGUMENT', `${where}.enum must be an array of primitives`);
    assertZt(r.pattern === undefined || (typeof r.pattern === 'string' && r.pattern.length <= 1024), 'ZT_BAD_ARGUMENT', `${where}.pattern must be a glob string`);
    assertZt(r.pattern === undefined || globSyntaxProblem(r.pattern) === undefined, 'ZT_BAD_ARGUMENT', `${where}.pattern: ${globSyntaxProblem(String(r.pattern)) ?? ''}`);
    for (const k of ['maxLength', 'min', 'max'] as const) {
      assertZt(r[k] === undefined || (typeof r[k] === 'number' && Number.isFinite(r[k])), 'ZT_BAD_ARGUMENT', `${where}.${k} must be a finite number`);
    }
    out[name] = Object.freeze({ ...r, ...(Array.isArray(r.enum) ? { enum: Object.freeze([...r.enum]) } : {}) }) as ArgumentRule;
  }
  return Object.freeze(out);
};

const checkConstraints = (c: unknown): CapabilityConstraints => {
  if (c === undefined) return Object.freeze({});
  assertZt(c !== null && typeof c === 'object' && !Array.isArray(c), 'ZT_BAD_ARGUMENT', 'constraints must be an object');
  const { expiresAt, maxUses, maxBytes, effect, rate, bytesBudget, args, ...rest } = c as Record<string, unknown>;
  const extra = Object.keys(rest);
  assertZt(extra.length === 0, 'ZT_BAD_ARGUMENT', `unknown constraint ${JSON.stringify(extra[0])}`);
  assertZt(expiresAt === undefined || isNonNegativeInteger(expiresAt), 'ZT_BAD_ARGUMENT', 'constraints.expiresAt must be a non-negative integer (ms)');
  assertZt(maxUses === undefined || (isNonNegativeInteger(maxUses) && maxUses > 0), 'ZT_BAD_ARGUMENT', 'constraints.maxUses must be a positive integer');
  assertZt(maxBytes === undefined || isNonNegativeInteger(maxBytes), 'ZT_BAD_ARGUMENT', 'constraints.maxBytes must be a non-negative integer');
  assertZt(effect === undefined || (effect !== null && typeof effect === 'object' && !Array.isArray(effect)), 'ZT_BAD_ARGUMENT', 'constraints.effect must be an object');
  let effectCopy: Record<string, unknown> | undefined;
  if (effect !== undefined) {
    try {
      effectCopy = harden(JSON.parse(JSON.stringify(effect)) as Record<string, unknown>);
    } catch {
      throw new ZtError('ZT_BAD_ARGUMENT', 'constraints.effect must be plain JSON data');
    }
  }
  assertZt(bytesBudget === undefined || isNonNegativeInteger(bytesBudget), 'ZT_BAD_ARGUMENT', 'constraints.bytesBudget must be a non-negative integer');
  let rateCopy: { max: number; windowMs: number } | undefined;
  if (rate !== undefined) {
    const r = rate as Record<string, unknown>;
    assertZt(
      r !== null && typeof r === 'object' && isNonNegativeInteger(r.max) && r.max > 0 && isNonNegativeInteger(r.windowMs) && r.windowMs > 0 && Object.keys(r).length === 2,
      'ZT_BAD_ARGUMENT',
      'constraints.rate must be { max: positive integer, windowMs: positive integer }',
    );
    rateCopy = Object.freeze({ max: r.max as number, windowMs: r.windowMs as number });
  }
  const argsCopy = args === undefined ? undefined : checkArgumentRules(args);
  return Object.freeze({
    ...(effectCopy === undefined ? {} : { effect: effectCopy }),
    ...(rateCopy === undefined ? {} : { rate: rateCopy }),
    ...(bytesBudget === undefined ? {} : { bytesBudget }),
    ...(argsCopy === undefined ? {} : { args: argsCopy }),
    ...(expiresAt === undefined ? {} : { expiresAt }),
    ...(maxUses === undefined ? {} : { maxUses }),
    ...(maxBytes === undefined ? {} : { maxBytes }),
  }) as CapabilityConstraints;
};

/**
 * A capability grant as the operator writes it. Constructing one validates
 * its shape; issuing it (`SandboxRuntime.issueCapability`) is what gives it
 * force, after the policy has been consulted.
 */
export class Capability {
  readonly id: string;
  readonly actionType: ActionType;
  readonly target: string;
  readonly holder: string;
  readonly constraints: CapabilityConstraints;
  constructor(init: CapabilityInit) {
    assertZt(init !== null && typeof init === 'object', 'ZT_BAD_ARGUMENT', 'Capability needs an options object');
    const { id, actionType, target, holder, constraints } = init;
    assertZt(isValidId(id), 'ZT_BAD_ARGUMENT', 'capability id must match [A-Za-z0-9][A-Za-z0-9._:@/~-]{0,127}');
    assertZt(isActionType(actionType), 'ZT_BAD_ARGUMENT', `actionType must be one of ${[...ACTION_TYPES].join(', ')}`);
    assertZt(typeof target === 'string' && target.length > 0, 'ZT_BAD_ARGUMENT', 'target must be a non-empty string');
    assertZt(holder !== undefined && holder !== null && holder !== '', 'ZT_NO_HOLDER', 'a capability must name its holder (holder: agentId); there is no "anyone"');
    assertZt(isValidId(holder), 'ZT_BAD_ARGUMENT', 'holder must be a valid agent id');
    this.id = id;
    this.actionType = actionType;
    this.target = target;
    this.holder = holder;
    this.constraints = checkConstraints(constraints);
    Object.freeze(this);
  }
}
harden(Capability);

/** Data an action carries besides its target: for WRITE, `{ content }`. */
export type ActionArgs = Readonly<Record<string, unknown>>;

export interface ActionRequestInit {
  readonly capabilityId: string;
  readonly agentId: string;
  readonly actionType: ActionType;
  readonly target: string;
  readonly args?: ActionArgs;
}

/** One request to act, made by (or on behalf of) an agent, presenting a capability. */
export class ActionRequest {
  readonly capabilityId: string;
  readonly agentId: string;
  readonly actionType: ActionType;
  readonly target: string;
  readonly args: ActionArgs;
  constructor(init: ActionRequestInit) {
    assertZt(init !== null && typeof init === 'object', 'ZT_BAD_ARGUMENT', 'ActionRequest needs an options object');
    const { capabilityId, agentId, actionType, target, args } = init;
    assertZt(typeof capabilityId === 'string' && capabilityId !== '', 'ZT_BAD_ARGUMENT', 'capabilityId must be a non-empty string');
    assertZt(typeof agentId === 'string' && agentId !== '', 'ZT_BAD_ARGUMENT', 'agentId must be a non-empty string');
    assertZt(isActionType(actionType), 'ZT_BAD_ARGUMENT', `actionType must be one of ${[...ACTION_TYPES].join(', ')}`);
    assertZt(typeof target === 'string' && target !== '', 'ZT_BAD_ARGUMENT', 'target must be a non-empty string');
    assertZt(args === undefined || (args !== null && typeof args === 'object' && !Array.isArray(args)), 'ZT_BAD_ARGUMENT', 'args must be an object');
    this.capabilityId = capabilityId;
    this.agentId = agentId;
    this.actionType = actionType;
    this.target = target;
    this.args = Object.freeze({ ...(args ?? {}) });
    Object.freeze(this);
  }
}
harden(ActionRequest);

export interface AuditRef {
  readonly seq: number;
  readonly leafHash: string;
}

export type OutcomeStatus = 'succeeded' | 'denied' | 'failed';

export interface OutcomeError {
  readonly code: ErrorCode;
  readonly message: string;
}

/**
 * What `executeAction` (and every mediated call) yields. Exactly one of
 * `result` (succeeded) or `error` (denied, failed) is present. `audit` names
 * the record of the decision and, when the action ran, of its outcome.
 */
export interface Outcome {
  readonly requestId: string;
  readonly status: OutcomeStatus;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: OutcomeError;
  readonly audit: {
    readonly decision?: AuditRef;
    readonly outcome?: AuditRef;
  };
}
