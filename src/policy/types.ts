/**
 * The policy language and the engine's contract with the kernel, as types.
 *
 * Everything here is plain data: a policy document is JSON (or YAML that
 * parses to the same JSON), and a decision request is data the kernel can
 * record verbatim, so any decision can be replayed later from the audit log
 * against the same or another policy version.
 */
import type { ErrorCode } from '../errors.js';
import type { ParsedUrl } from '../targets.js';
import type { ActionType } from '../types.js';

export type RuleEffect = 'permit' | 'forbid';

/** A test over a set of strings (agent labels, agent taints). */
export interface SetTest {
  /** Holds when the set contains at least one of these. */
  readonly anyOf?: readonly string[];
  /** Holds when the set contains all of these. */
  readonly allOf?: readonly string[];
  /** Holds when the set contains none of these. */
  readonly noneOf?: readonly string[];
}

export type Scalar = string | number | boolean | null;

/**
 * A test over one argument of the call. All given keys must hold. A value
 * test on an argument that is absent, or of the wrong type, is an
 * evaluation error (the rule denies); test presence with `present`.
 */
export interface ArgMatcher {
  /** `true`: the argument must be present; `false`: it must be absent. */
  readonly present?: boolean;
  readonly type?: 'string' | 'number' | 'integer' | 'boolean' | 'null' | 'array' | 'object';
  readonly equals?: Scalar;
  /** Enumeration: the value is one of these. */
  readonly in?: readonly Scalar[];
  readonly notIn?: readonly Scalar[];
  /** A regular expression the whole string must match (strings of at most 4096 characters). */
  readonly pattern?: string;
  /** Inclusive numeric range. */
  readonly min?: number;
  readonly max?: number;
  /** Inclusive length range for strings and arrays. */
  readonly minLength?: number;
  readonly maxLength?: number;
  /** Path globs; the value is normalized (absolute, no `.`/`..`) before matching. */
  readonly paths?: readonly string[];
  /** URL patterns (`scheme://host[:port]/path-glob`); the value is parsed and normalized first. */
  readonly urls?: readonly string[];
  /** Every element of an array argument must match. */
  readonly each?: ArgMatcher;
  /** Tests over properties of an object argument. */
  readonly fields?: Readonly<Record<string, ArgMatcher>>;
}

/** Tests over the parsed URL of a NETWORK target. */
export interface UrlTest {
  readonly schemes?: readonly ('http' | 'https')[];
  /** Host names, or `*.suffix` for any subdomain of suffix. */
  readonly hosts?: readonly string[];
  /** Ports, default ports included (80 for http, 443 for https). */
  readonly ports?: readonly number[];
  /** Path globs over the decoded, normalized path. */
  readonly paths?: readonly string[];
}

/** Tests over the kernel clock (`context.time`, ms since the epoch, UTC). */
export interface TimeTest {
  /** ISO 8601 date-time or epoch ms: holds from this instant on. */
  readonly notBefore?: string | number;
  /** ISO 8601 date-time or epoch ms: holds until this instant (exclusive). */
  readonly notAfter?: string | number;
  /** UTC hours `[from, to)`, 0–24; `from > to` wraps past midnight. */
  readonly hoursUtc?: readonly [number, number];
  readonly weekdaysUtc?: readonly ('mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun')[];
}

/**
 * A condition: every key given must hold (AND). `all`, `any` and `not`
 * combine conditions; `any` is evaluated left to right and stops at the
 * first branch that holds.
 */
export interface Condition {
  readonly all?: readonly Condition[];
  readonly any?: readonly Condition[];
  readonly not?: Condition;
  /** The agent's labels (groups), given when it was registered. */
  readonly labels?: SetTest;
  /** The taints the agent has acquired (see `PolicyDocument.taints`). */
  readonly taints?: SetTest;
  readonly time?: TimeTest;
  /** Holds while the capability has been used fewer than this many times. */
  readonly maxUses?: number;
  /** Holds while the capability has moved fewer than this many bytes. */
  readonly maxBytes?: number;
  /** Holds while the capability was used fewer than `max` times in the last `windowMs`. */
  readonly rate?: { readonly max: number; readonly windowMs: number };
  /** Holds while the capability is younger than this (ms since issue). */
  readonly maxAgeMs?: number;
  readonly args?: Readonly<Record<string, ArgMatcher>>;
  readonly url?: UrlTest;
}

export interface PolicyRule {
  readonly id: string;
  readonly effect: RuleEffect;
  readonly description?: string;
  /** Agent ids this rule applies to; omitted or `['*']` means every agent. */
  readonly agents?: readonly string[];
  /** Action types; omitted means every action type its targets fit. */
  readonly actions?: readonly ActionType[];
  /**
   * Target patterns; omitted means every target. A pattern applies to the
   * action types of its kind: `/path/glob` to READ, WRITE, EXECUTE;
   * `scheme://host/path-glob` to NETWORK; `server/tool` to TOOL.
   */
  readonly targets?: readonly string[];
  /** Further conditions over agent, arguments and context. */
  readonly when?: Condition;
  /**
   * `permit` rules only: a call this rule permits also needs a person's
   * approval, asked by the host; no answer within `timeoutMs` (an integer,
   * 1 ms to one day) denies (ZT_APPROVAL_TIMEOUT). `prompt` (at most 1000
   * characters) is shown to the approver.
   */
  readonly approval?: RuleApproval;
}

/** A permit rule's `approval`. */
export interface RuleApproval {
  readonly timeoutMs: number;
  readonly prompt?: string;
}

/**
 * What a permitting decision needs before it may proceed: a person's
 * approval, because of these matched permit rules; the shortest of their
 * timeouts; the first of their prompts (in document order).
 */
export interface ApprovalRequirement {
  readonly ruleIds: readonly string[];
  readonly timeoutMs: number;
  readonly prompt?: string;
}

/** A taint an agent acquires when it performs a matching action. */
export interface TaintDeclaration {
  readonly name: string;
  readonly description?: string;
  readonly agents?: readonly string[];
  readonly actions?: readonly ActionType[];
  readonly targets?: readonly string[];
}

/** Permission for holders (`from`) to delegate capabilities to other agents (`to`). */
export interface DelegationRule {
  readonly id: string;
  readonly description?: string;
  readonly from: readonly string[];
  readonly to: readonly string[];
  readonly actions?: readonly ActionType[];
  readonly targets?: readonly string[];
}

/** A delegation as the kernel asks about it. */
export interface DelegationRequest {
  readonly from: string;
  readonly to: string;
  readonly actionType: ActionType;
  /** The delegated target (a pattern or a concrete target). */
  readonly target: string;
}

/** The action types whose targets a tool argument can name. */
export type ResourceAction = 'READ' | 'WRITE' | 'EXECUTE' | 'NETWORK';

/**
 * Tool arguments that name resources: for a TOOL call whose target matches
 * `targets`, each argument in `args` (a key of the call's `arguments`; a
 * string, or a list of strings) is also decided as a request of its action
 * type on that path or URL, so file and URL rules apply to it exactly as to
 * READ, WRITE, EXECUTE or NETWORK.
 */
export interface ToolResourceDeclaration {
  readonly description?: string;
  /** Tool patterns (`server/tool`, `*` within a part). */
  readonly targets: readonly string[];
  /** Argument name → the action type its value is a target of. */
  readonly args: Readonly<Record<string, ResourceAction>>;
}

export interface PolicyDocument {
  readonly version: 1;
  readonly description?: string;
  readonly taints?: readonly TaintDeclaration[];
  readonly rules: readonly PolicyRule[];
  readonly delegations?: readonly DelegationRule[];
  readonly toolResources?: readonly ToolResourceDeclaration[];
}

/**
 * What the kernel supplies at use time. Absent at issue time. Every field is
 * plain data so the request can be recorded and replayed.
 */
export interface DecisionContext {
  /** Kernel clock, ms since the epoch. The policy never reads a clock itself. */
  readonly time: number;
  /** Labels (groups) given at `registerAgent`. */
  readonly agentLabels: readonly string[];
  /** Taints the agent has acquired so far (union of `taintsFor` of its executed requests). */
  readonly agentTaints: readonly string[];
  readonly capability: {
    readonly id: string;
    /** Uses before this call. */
    readonly uses: number;
    /** Bytes moved before this call. */
    readonly bytes: number;
    readonly issuedAt: number;
  };
  /** Window in ms (as a decimal string) → uses of this capability in that window before this call. */
  readonly rates: Readonly<Record<string, number>>;
}

export interface DecisionRequest {
  readonly agentId: string;
  readonly actionType: ActionType;
  /** The target, normalized per action type (`normalizeTarget`). */
  readonly target: string;
  /**
   * For NETWORK: the target as the kernel parsed it (`parseUrlTarget`), so
   * the policy does not parse it again. Used only when its `href` is
   * `target`; without it (replay, `ztaas policy explain`) the policy parses
   * the target itself, to the same result.
   */
  readonly parsedUrl?: ParsedUrl;
  /** The call's arguments, plain data. */
  readonly args?: Readonly<Record<string, unknown>>;
  /** Absent at issue time; required by rules whose conditions read it. */
  readonly context?: DecisionContext;
}

export interface Decision {
  readonly allowed: boolean;
  /**
   * Set when denied: ZT_POLICY_ERROR (a rule errored), ZT_POLICY_DENIED (a
   * forbid matched, or nothing permitted), or, when the only permits in
   * scope failed on a limit, that limit's code (ZT_RATE_LIMITED,
   * ZT_BUDGET_EXHAUSTED, ZT_EXHAUSTED, ZT_EXPIRED, ZT_ARGUMENT_DENIED).
   */
  readonly code?: ErrorCode;
  /**
   * The rules that decided, in document order: when allowed, the matching
   * permits; when denied, the erroring rules, else the matching forbids,
   * else the permits in scope whose conditions did not hold (possibly none).
   */
  readonly rules: readonly string[];
  /** Content hash of the policy that decided (`sha256:<hex>` of its canonical JSON). */
  readonly policyHash: string;
}

/** A grant as the kernel presents it at issue time. */
export interface GrantRequest {
  readonly holder: string;
  readonly actionType: ActionType;
  /** The capability's target pattern. */
  readonly target: string;
  /** The holder's labels, when known; unknown labels make label conditions "maybe". */
  readonly labels?: readonly string[];
  /** Kernel clock at issue time, when known (a permit whose `notAfter` has passed can never hold). */
  readonly time?: number;
}

export type Truth = 'yes' | 'no' | 'maybe';

/** One rule's part in a decision, for `explain`. */
export interface RuleTrace {
  readonly rule: string;
  readonly effect: RuleEffect;
  /** Where the rule stopped applying, or `match` when it matched. */
  readonly stage: 'agent' | 'action' | 'target' | 'condition' | 'error' | 'match';
  /** For `condition` and `error`: the JSON pointer (within the rule) of the failing test. */
  readonly at?: string;
  /** The code a failed condition is reported with. */
  readonly code?: ErrorCode;
  readonly error?: string;
}

export interface Explanation {
  readonly decision: Decision;
  readonly request: DecisionRequest;
  readonly trace: readonly RuleTrace[];
  /** Taints the agent would acquire by this request. */
  readonly taints: readonly string[];
  /** For a TOOL call with declared resource arguments: the explanation of each resource request derived from it. */
  readonly resources?: readonly Explanation[];
}

export interface Policy {
  readonly hash: string;
  readonly document: PolicyDocument;
  /** Windows (ms) for which the kernel must count recent uses into `context.rates`. */
  readonly rateWindows: readonly number[];
  /** Top-level argument names that conditions read (the kernel records these verbatim for replay). */
  readonly argNames: readonly string[];
  /** True when some rule reads `context` (the kernel must pass it). */
  readonly needsContext: boolean;
  decide(request: DecisionRequest): Decision;
  /**
   * At issue time: could this grant ever be used? Denies when no `permit`
   * can match it, or an unconditional `forbid` covers all of it.
   */
  decideGrant(grant: GrantRequest): Decision;
  /** The taints an agent acquires when this request is executed. */
  taintsFor(request: DecisionRequest): readonly string[];
  /**
   * For a permitting decision: the approval its matched permit rules
   * (`decision.rules`) ask for, or `undefined` when none asks (always
   * `undefined` for a denial).
   */
  approvalFor(decision: Decision): ApprovalRequirement | undefined;
  /**
   * May `from` give `to` its own copy of a capability for this action and
   * target? Only an explicit `delegations` entry permits; default deny.
   */
  decideDelegation(request: DelegationRequest): Decision;
  /** The decision with every rule's part in it; slower, for tooling. */
  explain(request: DecisionRequest): Explanation;
}

/** A problem or warning about a policy document, located. */
export interface PolicyProblem {
  /** JSON pointer into the document. */
  readonly pointer: string;
  readonly message: string;
  /** 1-based, when the document came from text. */
  readonly line?: number;
  readonly column?: number;
}
