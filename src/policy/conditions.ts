/**
 * Conditions compiled to closures, once, when a policy is loaded.
 *
 * Invariants:
 * - a test reads only the request (its arguments) and the context the
 *   kernel recorded for it; never a clock, never ambient state, so the same
 *   inputs always give the same answer;
 * - a test that cannot be evaluated (context missing, argument absent or of
 *   the wrong type, a string too long for a pattern) THROWS; the engine
 *   turns that into a denial. Nothing is ever silently skipped;
 * - the same leaf closures serve the fast path (`test`), explanations
 *   (`explainCondition`) and issue-time reasoning (`staticTruth`), so the
 *   three cannot disagree about what a leaf means.
 */
import { harden } from '../harden.js';
import { ZtError, reasonOf, type ErrorCode } from '../errors.js';
import { normalizePath } from '../paths.js';
import { tryCompileRegex, type LinearRegex } from '../regex.js';
import {
  compilePathPattern,
  compileUrlPattern,
  hostMatches,
  parseUrlTarget,
  type ParsedUrl,
  type PathPattern,
  type UrlPattern,
} from './patterns.js';
import type { ArgMatcher, Condition, DecisionContext, DecisionRequest, Scalar, SetTest, TimeTest, Truth, UrlTest } from './types.js';

/** What is known about a grant at issue time. */
export interface Knowledge {
  readonly labels?: readonly string[];
  readonly time?: number;
}

export type CondTest = (req: DecisionRequest, ctx: DecisionContext | undefined, url: ParsedUrl | undefined) => boolean;

export interface CondNode {
  readonly kind: 'all' | 'any' | 'not' | 'leaf';
  /** JSON pointer of this test within its rule. */
  readonly at: string;
  /** The code a permit's denial is reported with when this test is the one that failed. */
  readonly code: ErrorCode;
  readonly children: readonly CondNode[];
  readonly test: CondTest;
  /** Three-valued truth from what is known before any use. */
  readonly staticTruth: (k: Knowledge) => Truth;
  readonly usesContext: boolean;
}

/** Collected while compiling: rate windows, argument names, taint names, regexes. */
export interface CondSink {
  rateWindows: Set<number>;
  argNames: Set<string>;
  taints: Set<string>;
  /** Problems found while compiling (pointer, message). */
  problems: Array<{ pointer: string; message: string }>;
}

export const MAX_PATTERN_INPUT = 4096;

const fail = (message: string): never => {
  throw new ZtError('ZT_POLICY_ERROR', message);
};

const needContext = (ctx: DecisionContext | undefined): DecisionContext =>
  ctx === undefined || ctx === null || typeof ctx !== 'object' ? fail('the rule needs the decision context, which is absent') : ctx;

const needNumber = (x: unknown, what: string): number =>
  typeof x === 'number' && Number.isFinite(x) ? x : fail(`${what} is not a finite number`);

const needStrings = (x: unknown, what: string): readonly string[] =>
  Array.isArray(x) ? (x as readonly string[]) : fail(`${what} is not a list`);

const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

const leaf = (
  at: string,
  code: ErrorCode,
  test: CondTest,
  usesContext: boolean,
  staticTruth: (k: Knowledge) => Truth = () => 'maybe',
): CondNode => harden({ kind: 'leaf', at, code, children: [], test, staticTruth, usesContext });

const andTruth = (ts: Truth[]): Truth => (ts.includes('no') ? 'no' : ts.every(t => t === 'yes') ? 'yes' : 'maybe');
const orTruth = (ts: Truth[]): Truth => (ts.includes('yes') ? 'yes' : ts.every(t => t === 'no') ? 'no' : 'maybe');
const notTruth = (t: Truth): Truth => (t === 'yes' ? 'no' : t === 'no' ? 'yes' : 'maybe');

const setTruth = (have: readonly string[], t: SetTest): boolean => {
  if (t.anyOf && !t.anyOf.some(x => have.includes(x))) return false;
  if (t.allOf && !t.allOf.every(x => have.includes(x))) return false;
  if (t.noneOf && t.noneOf.some(x => have.includes(x))) return false;
  return true;
};

const compileSetTest = (at: string, t: SetTest, read: (ctx: DecisionContext) => unknown, what: string, known?: (k: Knowledge) => readonly string[] | undefined): CondNode => {
  const anyOf = t.anyOf ? [...t.anyOf] : undefined;
  const allOf = t.allOf ? [...t.allOf] : undefined;
  const noneOf = t.noneOf ? [...t.noneOf] : undefined;
  const spec: SetTest = { ...(anyOf ? { anyOf } : {}), ...(allOf ? { allOf } : {}), ...(noneOf ? { noneOf } : {}) };
  const contradictory = (allOf ?? []).some(x => (noneOf ?? []).includes(x)) || (anyOf !== undefined && anyOf.every(x => (noneOf ?? []).includes(x)));
  return leaf(
    at,
    'ZT_POLICY_DENIED',
    (_req, ctx) => setTruth(needStrings(read(needContext(ctx)), what), spec),
    true,
    k => {
      if (contradictory) return 'no';
      const have = known?.(k);
      return have === undefined ? 'maybe' : setTruth(have, spec) ? 'yes' : 'no';
    },
  );
};

const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;

const instant = (x: string | number, pointer: string, sink: CondSink): number => {
  if (typeof x === 'number') return x;
  const ms = ISO_INSTANT.test(x) ? Date.parse(x) : NaN;
  if (!Number.isFinite(ms)) sink.problems.push({ pointer, message: 'must be an ISO 8601 date-time with a zone (e.g. 2025-01-31T17:00:00Z) or epoch milliseconds' });
  return ms;
};

const compileTime = (at: string, t: TimeTest, sink: CondSink): CondNode => {
  const from = t.notBefore === undefined ? -Infinity : instant(t.notBefore, `${at}/notBefore`, sink);
  const until = t.notAfter === undefined ? Infinity : instant(t.notAfter, `${at}/notAfter`, sink);
  const hours = t.hoursUtc;
  const days = t.weekdaysUtc ? WEEKDAYS.map(d => t.weekdaysUtc?.includes(d) ?? false) : undefined;
  const emptyHours = hours !== undefined && hours[0] === hours[1];
  const test: CondTest = (_req, ctx) => {
    const now = needNumber(needContext(ctx).time, 'context.time');
    if (now < from || now >= until) return false;
    if (hours) {
      const h = Math.floor(now / 3_600_000) % 24;
      const [a, b] = hours;
      if (a <= b ? h < a || h >= b : h < a && h >= b) return false;
    }
    if (days) {
      // 1970-01-01 was a Thursday (index 4).
      const d = (((Math.floor(now / 86_400_000) + 4) % 7) + 7) % 7;
      if (!days[d]) return false;
    }
    return true;
  };
  return leaf(at, 'ZT_POLICY_DENIED', test, true, k => {
    if (from >= until || emptyHours) return 'no';
    if (k.time !== undefined && k.time >= until) return 'no';
    return 'maybe';
  });
};

const isScalar = (x: unknown): x is Scalar => x === null || ['string', 'number', 'boolean'].includes(typeof x);

const typeOk = (x: unknown, type: NonNullable<ArgMatcher['type']>): boolean => {
  switch (type) {
    case 'string':
      return typeof x === 'string';
    case 'number':
      return typeof x === 'number' && Number.isFinite(x);
    case 'integer':
      return typeof x === 'number' && Number.isSafeInteger(x);
    case 'boolean':
      return typeof x === 'boolean';
    case 'null':
      return x === null;
    case 'array':
      return Array.isArray(x);
    case 'object':
      return x !== null && typeof x === 'object' && !Array.isArray(x);
  }
};

type ValueTest = (value: unknown, present: boolean) => boolean;

const own = (obj: unknown, key: string): boolean => obj !== null && typeof obj === 'object' && Object.prototype.hasOwnProperty.call(obj, key);

/** Compiles an argument matcher. `what` names the argument in error messages. */
const compileArgMatcher = (m: ArgMatcher, at: string, what: string, sink: CondSink): { test: ValueTest; contradictory: boolean } => {
  let re: LinearRegex | undefined;
  if (m.pattern !== undefined) {
    const attempt = tryCompileRegex(m.pattern);
    if ('regex' in attempt) re = attempt.regex;
    else sink.problems.push({ pointer: `${at}/pattern`, message: attempt.problem });
  }
  const compilePatterns = <P>(list: readonly string[] | undefined, key: string, compile: (s: string) => P): P[] | undefined =>
    list?.flatMap((s, i) => {
      try {
        return [compile(s)];
      } catch (err) {
        sink.problems.push({ pointer: `${at}/${key}/${i}`, message: reasonOf(err) ?? 'invalid pattern' });
        return [];
      }
    });
  const paths: PathPattern[] | undefined = compilePatterns(m.paths, 'paths', compilePathPattern);
  const urls: UrlPattern[] | undefined = compilePatterns(m.urls, 'urls', compileUrlPattern);
  const each = m.each ? compileArgMatcher(m.each, `${at}/each`, `${what}[]`, sink) : undefined;
  const fields = m.fields
    ? Object.entries(m.fields).map(([name, fm]) => ({ name, ...compileArgMatcher(fm, `${at}/fields/${escapePointer(name)}`, `${what}.${name}`, sink) }))
    : undefined;
  const inList = m.in ? [...m.in] : undefined;
  const notInList = m.notIn ? [...m.notIn] : undefined;
  const hasValueTests =
    m.type !== undefined || m.equals !== undefined || inList !== undefined || notInList !== undefined || re !== undefined || m.pattern !== undefined ||
    m.min !== undefined || m.max !== undefined || m.minLength !== undefined || m.maxLength !== undefined ||
    paths !== undefined || urls !== undefined || each !== undefined || fields !== undefined;
  const contradictory =
    m.present === false && hasValueTests ||
    (m.min !== undefined && m.max !== undefined && m.min > m.max) ||
    (m.minLength !== undefined && m.maxLength !== undefined && m.minLength > m.maxLength) ||
    (m.equals !== undefined && inList !== undefined && !inList.includes(m.equals)) ||
    (m.equals !== undefined && notInList !== undefined && notInList.includes(m.equals)) ||
    (each?.contradictory === true && m.minLength !== undefined && m.minLength > 0) ||
    (fields?.some(f => f.contradictory) ?? false);
  const { present, type, equals, min, max, minLength, maxLength } = m;
  const test: ValueTest = (value, isPresent) => {
    if (present === false) return !isPresent;
    if (!isPresent) return present === true ? false : fail(`argument ${what} is absent`);
    if (type !== undefined && !typeOk(value, type)) return false;
    if (equals !== undefined && value !== equals) return false;
    if (inList !== undefined && !(isScalar(value) && inList.includes(value))) return false;
    if (notInList !== undefined && isScalar(value) && notInList.includes(value)) return false;
    if (re !== undefined) {
      if (typeof value !== 'string') return fail(`argument ${what} is not a string`);
      if (value.length > MAX_PATTERN_INPUT) return fail(`argument ${what} is longer than ${MAX_PATTERN_INPUT} characters; patterns are not run on it`);
      if (!re.fullMatch(value)) return false;
    }
    if (min !== undefined || max !== undefined) {
      const n = needNumber(value, `argument ${what}`);
      if ((min !== undefined && n < min) || (max !== undefined && n > max)) return false;
    }
    if (minLength !== undefined || maxLength !== undefined) {
      if (typeof value !== 'string' && !Array.isArray(value)) return fail(`argument ${what} has no length`);
      const len = (value as string | unknown[]).length;
      if ((minLength !== undefined && len < minLength) || (maxLength !== undefined && len > maxLength)) return false;
    }
    if (paths !== undefined) {
      if (typeof value !== 'string') return fail(`argument ${what} is not a path`);
      let p: string;
      try {
        p = normalizePath(value);
      } catch {
        return fail(`argument ${what} is not an absolute path`);
      }
      if (!paths.some(pp => pp.matches(p))) return false;
    }
    if (urls !== undefined) {
      if (typeof value !== 'string') return fail(`argument ${what} is not a URL`);
      let u: ParsedUrl;
      try {
        u = parseUrlTarget(value);
      } catch {
        return fail(`argument ${what} is not an http(s) URL`);
      }
      if (!urls.some(up => up.matches(u))) return false;
    }
    if (each !== undefined) {
      if (!Array.isArray(value)) return fail(`argument ${what} is not a list`);
      for (let i = 0; i < value.length; i += 1) if (!each.test(value[i], true)) return false;
    }
    if (fields !== undefined) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return fail(`argument ${what} is not an object`);
      for (const f of fields) {
        const has = own(value, f.name);
        if (!f.test(has ? (value as Record<string, unknown>)[f.name] : undefined, has)) return false;
      }
    }
    return true;
  };
  return { test, contradictory };
};

const compileArgs = (at: string, args: Readonly<Record<string, ArgMatcher>>, sink: CondSink): CondNode => {
  const tests = Object.entries(args).map(([name, m]) => {
    sink.argNames.add(name);
    return { name, ...compileArgMatcher(m, `${at}/${escapePointer(name)}`, name, sink) };
  });
  const contradictory = tests.some(t => t.contradictory);
  return leaf(
    at,
    'ZT_ARGUMENT_DENIED',
    req => {
      const a = req.args;
      if (a !== undefined && (a === null || typeof a !== 'object')) return fail('the arguments are not an object');
      for (const t of tests) {
        const has = own(a, t.name);
        if (!t.test(has ? (a as Record<string, unknown>)[t.name] : undefined, has)) return false;
      }
      return true;
    },
    false,
    () => (contradictory ? 'no' : 'maybe'),
  );
};

const compileUrlTest = (at: string, u: UrlTest, sink: CondSink): CondNode => {
  const schemes = u.schemes ? [...u.schemes] : undefined;
  const ports = u.ports ? [...u.ports] : undefined;
  const hosts = u.hosts?.map(h => {
    const lower = h.toLowerCase();
    return lower.startsWith('*.') ? { exact: undefined, suffix: lower.slice(1) } : { exact: lower, suffix: undefined };
  });
  const paths = u.paths?.flatMap((p, i) => {
    try {
      return [compilePathPattern(p)];
    } catch (err) {
      sink.problems.push({ pointer: `${at}/paths/${i}`, message: reasonOf(err) ?? 'invalid pattern' });
      return [];
    }
  });
  return leaf(
    at,
    'ZT_POLICY_DENIED',
    (req, _ctx, parsed) => {
      const url = parsed ?? (req.actionType === 'NETWORK' ? parseUrlTarget(req.target) : fail('url conditions apply to NETWORK targets only'));
      if (schemes && !schemes.includes(url.scheme as 'http' | 'https')) return false;
      if (ports && !ports.includes(url.port)) return false;
      if (hosts && !hosts.some(h => hostMatches(url.host, h.exact, h.suffix))) return false;
      if (paths) {
        if (url.path === undefined) return fail('the URL path cannot be decoded');
        const p = url.path;
        if (!paths.some(pp => pp.matches(p))) return false;
      }
      return true;
    },
    false,
  );
};

const KEY_ORDER = ['labels', 'taints', 'time', 'maxUses', 'maxBytes', 'rate', 'maxAgeMs', 'url', 'args', 'all', 'any', 'not'] as const;

/** Compiles a condition object (every key must hold) found at pointer `at`. */
export const compileCondition = (cond: Condition, at: string, sink: CondSink): CondNode => {
  const children: CondNode[] = [];
  for (const key of KEY_ORDER) {
    const value = cond[key];
    if (value === undefined) continue;
    const here = `${at}/${key}`;
    switch (key) {
      case 'labels':
        children.push(compileSetTest(here, value as SetTest, ctx => ctx.agentLabels, 'context.agentLabels', k => k.labels));
        break;
      case 'taints': {
        const t = value as SetTest;
        for (const name of [...(t.anyOf ?? []), ...(t.allOf ?? []), ...(t.noneOf ?? [])]) sink.taints.add(name);
        children.push(compileSetTest(here, t, ctx => ctx.agentTaints, 'context.agentTaints'));
        break;
      }
      case 'time':
        children.push(compileTime(here, value as TimeTest, sink));
        break;
      case 'maxUses': {
        const n = value as number;
        children.push(leaf(here, 'ZT_EXHAUSTED', (_r, ctx) => needNumber(needContext(ctx).capability.uses, 'context.capability.uses') < n, true));
        break;
      }
      case 'maxBytes': {
        const n = value as number;
        children.push(leaf(here, 'ZT_BUDGET_EXHAUSTED', (_r, ctx) => needNumber(needContext(ctx).capability.bytes, 'context.capability.bytes') < n, true));
        break;
      }
      case 'rate': {
        const { max, windowMs } = value as { max: number; windowMs: number };
        const windowKey = String(windowMs);
        sink.rateWindows.add(windowMs);
        children.push(
          leaf(here, 'ZT_RATE_LIMITED', (_r, ctx) => {
            const rates = needContext(ctx).rates;
            if (!own(rates, windowKey)) return fail(`context.rates has no count for the ${windowKey} ms window`);
            return needNumber(rates[windowKey], `context.rates[${windowKey}]`) < max;
          }, true),
        );
        break;
      }
      case 'maxAgeMs': {
        const n = value as number;
        children.push(
          leaf(here, 'ZT_EXPIRED', (_r, ctx) => {
            const c = needContext(ctx);
            return needNumber(c.time, 'context.time') - needNumber(c.capability.issuedAt, 'context.capability.issuedAt') < n;
          }, true),
        );
        break;
      }
      case 'url':
        children.push(compileUrlTest(here, value as UrlTest, sink));
        break;
      case 'args':
        children.push(compileArgs(here, value as Readonly<Record<string, ArgMatcher>>, sink));
        break;
      case 'all': {
        const subs = (value as readonly Condition[]).map((c, i) => compileCondition(c, `${here}/${i}`, sink));
        children.push(combine('all', here, subs));
        break;
      }
      case 'any': {
        const subs = (value as readonly Condition[]).map((c, i) => compileCondition(c, `${here}/${i}`, sink));
        children.push(combine('any', here, subs));
        break;
      }
      case 'not':
        children.push(combine('not', here, [compileCondition(value as Condition, here, sink)]));
        break;
    }
  }
  return children.length === 1 ? (children[0] as CondNode) : combine('all', at, children);
};
harden(compileCondition);

const combine = (kind: 'all' | 'any' | 'not', at: string, children: CondNode[]): CondNode => {
  const usesContext = children.some(c => c.usesContext);
  let test: CondTest;
  let staticTruth: (k: Knowledge) => Truth;
  if (kind === 'not') {
    const only = children[0] as CondNode;
    const inner = only.test;
    test = (r, c, u) => !inner(r, c, u);
    staticTruth = k => notTruth(only.staticTruth(k));
  } else if (kind === 'any') {
    const tests = children.map(c => c.test);
    test = (r, c, u) => {
      for (let i = 0; i < tests.length; i += 1) if ((tests[i] as CondTest)(r, c, u)) return true;
      return false;
    };
    staticTruth = k => orTruth(children.map(c => c.staticTruth(k)));
  } else {
    const tests = children.map(c => c.test);
    if (tests.length === 2) {
      const [a, b] = tests as [CondTest, CondTest];
      test = (r, c, u) => a(r, c, u) && b(r, c, u);
    } else {
      test = (r, c, u) => {
        for (let i = 0; i < tests.length; i += 1) if (!(tests[i] as CondTest)(r, c, u)) return false;
        return true;
      };
    }
    staticTruth = k => andTruth(children.map(c => c.staticTruth(k)));
  }
  return harden({ kind, at, code: 'ZT_POLICY_DENIED', children, test, staticTruth, usesContext });
};

export interface CondExplanation {
  readonly holds: boolean;
  /** The innermost test that made the condition fail (AND chains are followed; `any`/`not` are reported whole). */
  readonly failed?: CondNode;
}

/** Evaluates like `node.test` (same leaves, same order) but says which test failed. Throws like `test`. */
export const explainCondition = (node: CondNode, req: DecisionRequest, ctx: DecisionContext | undefined, url: ParsedUrl | undefined): CondExplanation => {
  if (node.kind === 'all') {
    for (const child of node.children) {
      const r = explainCondition(child, req, ctx, url);
      if (!r.holds) return r;
    }
    return { holds: true };
  }
  return node.test(req, ctx, url) ? { holds: true } : { holds: false, failed: node };
};
harden(explainCondition);
