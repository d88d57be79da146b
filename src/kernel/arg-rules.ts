/**
 * Argument rules: a capability's `constraints.args`, compiled once at issue
 * and checked on every use.
 *
 * Invariants:
 * - Any doubt denies: a required argument that is absent, a forbidden one
 *   that is present, a value of the wrong type, outside its enum, bounds or
 *   length, or not matching its glob.
 * - `pattern` is a glob (src/glob.ts, no separator), never a regular
 *   expression, and a value longer than MAX_MATCHED_LENGTH is never
 *   matched: checking an agent-supplied string costs time bounded by the
 *   rule, whatever the string.
 */
import { harden } from '../harden.js';
import { compileGlob, type Glob } from '../glob.js';
import type { ArgumentRule, CapabilityConstraints } from '../types.js';

export type CompiledArgRules = ReadonlyArray<{ readonly name: string; readonly rule: ArgumentRule; readonly glob?: Glob }>;

/** Longest string value a `pattern` is matched against; longer values are denied. */
const MAX_MATCHED_LENGTH = 64 * 1024;

export const compileArgRules = (rules: CapabilityConstraints['args']): CompiledArgRules =>
  harden(
    Object.entries(rules ?? {}).map(([name, rule]) => ({
      name,
      rule,
      ...(rule.pattern === undefined ? {} : { glob: compileGlob(rule.pattern) }),
    })),
  );
harden(compileArgRules);

/** True when every named argument satisfies its rule. Any doubt denies. */
export const argsAllowed = (rules: CompiledArgRules, args: Readonly<Record<string, unknown>>): boolean => {
  for (const { name, rule, glob } of rules) {
    const present = Object.hasOwn(args, name) && args[name] !== undefined;
    if (!present) {
      if (rule.required) return false;
      continue;
    }
    if (rule.forbidden) return false;
    const value = args[name];
    if (rule.type !== undefined && typeof value !== rule.type) return false;
    if (rule.enum !== undefined && !rule.enum.includes(value as never)) return false;
    if (typeof value === 'string') {
      if (rule.maxLength !== undefined && value.length > rule.maxLength) return false;
      if (glob && (value.length > MAX_MATCHED_LENGTH || !glob.matches(value))) return false;
    } else if (glob || rule.maxLength !== undefined) {
      return false;
    }
    if (rule.min !== undefined || rule.max !== undefined) {
      if (typeof value !== 'number' || !Number.isFinite(value)) return false;
      if (rule.min !== undefined && value < rule.min) return false;
      if (rule.max !== undefined && value > rule.max) return false;
    }
  }
  return true;
};
harden(argsAllowed);
