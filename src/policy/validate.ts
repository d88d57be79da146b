/**
 * Validation of policy documents: all or nothing.
 *
 * Invariants:
 * - a document is accepted only if it is plain JSON data (no accessors,
 *   prototypes, cycles, non-finite numbers), conforms to the published JSON
 *   Schema (checked with ajv against `POLICY_JSON_SCHEMA` itself), and every
 *   pattern, regular expression and instant in it compiles;
 * - a rejected document yields ZT_POLICY_INVALID with `details.problems`
 *   listing every problem found, each with its JSON pointer; nothing of it
 *   is ever partly applied, so the policy in force stays in force;
 * - validation never throws anything but ZT_POLICY_INVALID, whatever the
 *   input (the loader fuzz test holds it to that).
 */
import { harden } from '../harden.js';
import { Ajv, type ErrorObject } from 'ajv';
import { ZtError } from '../errors.js';
import { compileRule, compileTaint, makeSink } from './compile.js';
import { compileToolResources } from './tool-resources.js';
import { POLICY_JSON_SCHEMA } from './schema.js';
import type { PolicyDocument, PolicyProblem, ToolResourceDeclaration } from './types.js';

export const MAX_DEPTH = 48;
export const MAX_NODES = 200_000;

const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** Checks that `value` is plain JSON data; returns problems (at most a few: the first of each kind). */
export const plainDataProblems = (value: unknown): PolicyProblem[] => {
  const problems: PolicyProblem[] = [];
  /** The objects on the path from the root: a repeat is a cycle (shared values are fine). */
  const seen = new Set<object>();
  let nodes = 0;
  const walk = (v: unknown, at: string, depth: number): void => {
    if (problems.length >= 20) return;
    nodes += 1;
    if (nodes > MAX_NODES) {
      if (nodes === MAX_NODES + 1) problems.push({ pointer: at, message: `the document has more than ${MAX_NODES} values` });
      return;
    }
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) problems.push({ pointer: at, message: 'must be a finite number' });
      return;
    }
    if (typeof v !== 'object') {
      problems.push({ pointer: at, message: `a ${typeof v} is not JSON data` });
      return;
    }
    if (depth > MAX_DEPTH) {
      problems.push({ pointer: at, message: `nested deeper than ${MAX_DEPTH} levels` });
      return;
    }
    if (seen.has(v)) {
      problems.push({ pointer: at, message: 'a cycle is not JSON data' });
      return;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    const isArray = Array.isArray(v);
    if (!isArray && proto !== Object.prototype && proto !== null) {
      problems.push({ pointer: at, message: 'must be a plain object' });
      return;
    }
    seen.add(v);
    walkKeys(v, at, depth, isArray);
    seen.delete(v);
  };
  const walkKeys = (v: object, at: string, depth: number, isArray: boolean): void => {
    for (const key of Reflect.ownKeys(v)) {
      if (typeof key === 'symbol') {
        problems.push({ pointer: at, message: 'symbol-keyed properties are not JSON data' });
        return;
      }
      if (isArray && key === 'length') continue;
      const desc = Object.getOwnPropertyDescriptor(v, key);
      const here = `${at}/${escapePointer(key)}`;
      if (!desc || !('value' in desc)) {
        problems.push({ pointer: here, message: 'accessor properties are not JSON data' });
        continue;
      }
      walk(desc.value, here, depth + 1);
    }
    if (isArray) {
      const arr = v as unknown[];
      for (let i = 0; i < arr.length; i += 1) {
        if (!Object.prototype.hasOwnProperty.call(arr, i)) {
          problems.push({ pointer: `${at}/${i}`, message: 'sparse arrays are not JSON data' });
          break;
        }
      }
    }
  };
  walk(value, '', 0);
  return problems;
};
harden(plainDataProblems);

const FRIENDLY_PATTERNS: ReadonlyArray<[RegExp, string]> = [
  [/\/(rule|taint)\/properties\/(id|name)\/pattern$/, 'must be an id: a letter or digit, then up to 127 of A-Z a-z 0-9 . _ : @ / -'],
  [/\/agents\/items\/pattern$/, 'must be an agent id or "*"'],
  [/\/setTest\/properties\/\w+\/items\/pattern$|\/taint\/properties\/name\/pattern$/, 'must be a name: a letter or digit, then up to 63 of A-Z a-z 0-9 . _ : -'],
  [/\/hosts\/items\/pattern$/, 'must be a host name, *.suffix, or [IPv6]'],
];

const describe = (e: ErrorObject): PolicyProblem => {
  const params = e.params as Record<string, unknown>;
  const at = e.instancePath;
  switch (e.keyword) {
    case 'additionalProperties':
      return { pointer: `${at}/${escapePointer(String(params.additionalProperty))}`, message: 'unknown property' };
    case 'required':
      return { pointer: `${at}/${escapePointer(String(params.missingProperty))}`, message: 'is required' };
    case 'enum':
      return { pointer: at, message: `must be one of ${(params.allowedValues as unknown[]).map(v => JSON.stringify(v)).join(', ')}` };
    case 'const':
      return { pointer: at, message: `must be ${JSON.stringify(params.allowedValue)}` };
    case 'type':
      return { pointer: at, message: `must be of type ${String(params.type).replace(/,/g, ' or ')}` };
    case 'minItems':
      return { pointer: at, message: params.limit === 1 ? 'must not be empty (omit it to match everything)' : `must have at least ${String(params.limit)} items` };
    case 'minProperties':
      return { pointer: at, message: 'must not be empty' };
    case 'uniqueItems':
      return { pointer: at, message: `must not repeat items (${String(params.j)} and ${String(params.i)} are equal)` };
    case 'pattern': {
      const friendly = FRIENDLY_PATTERNS.find(([re]) => re.test(e.schemaPath));
      return { pointer: at, message: friendly ? friendly[1] : `must match ${String(params.pattern)}` };
    }
    case 'propertyNames':
      return { pointer: at, message: `property name ${JSON.stringify(params.propertyName)} is not allowed` };
    default:
      return { pointer: at, message: e.message ?? `fails ${e.keyword}` };
  }
};

const under = (pointer: string, prefix: string) => pointer === prefix || pointer.startsWith(`${prefix}/`);

export interface PolicyValidator {
  /** Every problem with the document, in document order; empty when it is valid. */
  problems(doc: unknown): PolicyProblem[];
  /** Returns the document, or throws ZT_POLICY_INVALID with `details.problems`. */
  validate(doc: unknown): PolicyDocument;
}

/** Orders problems by pointer segments, numerically where they are indices. */
const byPointer = (a: PolicyProblem, b: PolicyProblem): number => {
  const sa = a.pointer.split('/');
  const sb = b.pointer.split('/');
  for (let i = 0; i < Math.min(sa.length, sb.length); i += 1) {
    const x = sa[i] as string;
    const y = sb[i] as string;
    if (x === y) continue;
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) return nx - ny;
    return x < y ? -1 : 1;
  }
  return sa.length - sb.length;
};

export const rejectPolicy = (problems: readonly PolicyProblem[]): never => {
  const shown = problems.slice(0, 10).map(p => `${p.line !== undefined ? `${p.line}:${p.column ?? 1} ` : ''}${p.pointer || '/'}: ${p.message}`);
  const more = problems.length > 10 ? `; … ${problems.length - 10} more` : '';
  throw new ZtError('ZT_POLICY_INVALID', `policy rejected (${problems.length} problem${problems.length === 1 ? '' : 's'}): ${shown.join('; ')}${more}`, {
    problems: harden(problems.map(p => ({ ...p }))),
  });
};
harden(rejectPolicy);

/**
 * Makes a validator: one compiled schema, reusable for many documents.
 * (Compiling the schema takes milliseconds; validating a document, microseconds.)
 */
export const makePolicyValidator = (): PolicyValidator => {
  // The schema itself is checked against the meta-schema by the tests (test/policy-loader.test.ts);
  // skipping that here and the code optimizer cuts compile time by about 5×.
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, validateSchema: false, code: { optimize: false } });
  const check = ajv.compile(POLICY_JSON_SCHEMA);

  const problems = (doc: unknown): PolicyProblem[] => {
    try {
      const plain = plainDataProblems(doc);
      if (plain.length > 0) return plain;
      const found: PolicyProblem[] = [];
      if (!check(doc)) {
        const seen = new Set<string>();
        for (const e of check.errors ?? []) {
          const p = describe(e);
          const key = `${p.pointer}\0${p.message}`;
          if (!seen.has(key)) {
            seen.add(key);
            found.push(p);
          }
        }
      }
      // What the schema cannot see, for every rule and taint the schema found clean.
      if (doc !== null && typeof doc === 'object' && !Array.isArray(doc)) {
        const { rules, taints } = doc as { rules?: unknown; taints?: unknown };
        const sink = makeSink();
        const clean = (pointer: string) => !found.some(p => under(p.pointer, pointer));
        if (Array.isArray(rules)) {
          const ids = new Map<string, number>();
          rules.forEach((rule: unknown, i: number) => {
            const at = `/rules/${i}`;
            const id = (rule as { id?: unknown } | null)?.id;
            if (typeof id === 'string') {
              const first = ids.get(id);
              if (first !== undefined) found.push({ pointer: `${at}/id`, message: `duplicate rule id ${JSON.stringify(id)} (first at /rules/${first})` });
              else ids.set(id, i);
            }
            if (rule === null || typeof rule !== 'object' || Array.isArray(rule)) return;
            // Compile the parts the schema found clean, so their problems are listed too.
            const r = rule as Record<string, unknown>;
            if (r.effect === 'forbid' && r.approval !== undefined) {
              found.push({ pointer: `${at}/approval`, message: 'approval is allowed on permit rules only (a forbid rule denies whatever a person answers)' });
            }
            const part = (key: string) => (r[key] !== undefined && clean(`${at}/${key}`) ? { [key]: r[key] } : {});
            compileRule({ id: 'x', effect: 'permit', ...part('agents'), ...part('actions'), ...part('targets'), ...part('when') } as never, i, sink);
          });
        }
        if (Array.isArray(taints)) {
          const names = new Map<string, number>();
          taints.forEach((taint: unknown, i: number) => {
            const at = `/taints/${i}`;
            const name = (taint as { name?: unknown } | null)?.name;
            if (typeof name === 'string') {
              const first = names.get(name);
              if (first !== undefined) found.push({ pointer: `${at}/name`, message: `duplicate taint ${JSON.stringify(name)} (first at /taints/${first})` });
              else names.set(name, i);
            }
            if (taint === null || typeof taint !== 'object' || Array.isArray(taint)) return;
            const r = taint as Record<string, unknown>;
            const part = (key: string) => (r[key] !== undefined && clean(`${at}/${key}`) ? { [key]: r[key] } : {});
            compileTaint({ name: 'x', ...part('agents'), ...part('actions'), ...part('targets') } as never, i, sink);
          });
        }
        const { toolResources } = doc as { toolResources?: unknown };
        if (Array.isArray(toolResources)) {
          // Compile the declarations the schema found clean (the others keep their places, empty).
          const empty = { targets: [], args: {} };
          compileToolResources(toolResources.map((d: unknown, i) => (clean(`/toolResources/${i}`) ? d : empty)) as ToolResourceDeclaration[], sink);
        }
        found.push(...sink.problems);
      }
      return found.sort(byPointer);
    } catch (err) {
      // Whatever went wrong (a stack overflow on a pathological value), the verdict is "invalid".
      return [{ pointer: '', message: `the document could not be validated (${err instanceof RangeError ? 'too deeply nested' : 'malformed'})` }];
    }
  };

  const validate = (doc: unknown): PolicyDocument => {
    const found = problems(doc);
    if (found.length > 0) rejectPolicy(found);
    return doc as PolicyDocument;
  };

  return harden({ problems, validate });
};
harden(makePolicyValidator);

/**
 * The validator used when none is passed: the schema compiled once, when
 * this module loads. It is a constant in the sense a compiled RegExp is:
 * it holds no authority and carries nothing from one call to the next
 * (ajv's per-call `errors` are read synchronously right after the call).
 * Compiling per load instead cost tens of milliseconds of blocked event
 * loop each time a runtime or kernel started.
 */
const SHARED_VALIDATOR = makePolicyValidator();

/** The validator compiled at module load; `makePolicy` and `validatePolicyDocument` use it by default. */
export const sharedPolicyValidator = (): PolicyValidator => SHARED_VALIDATOR;
harden(sharedPolicyValidator);

/**
 * Validates a policy document, listing every problem with its location.
 * Throws ZT_POLICY_INVALID with `details.problems`; the caller's policy in
 * force is untouched.
 */
export const validatePolicyDocument = (doc: unknown): PolicyDocument => SHARED_VALIDATOR.validate(doc);
harden(validatePolicyDocument);
