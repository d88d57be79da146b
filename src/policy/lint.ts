/**
 * Warnings about a valid policy, for `ztaas policy check`: rules that can
 * never match, grants broader than anyone should mean, permits shadowed by
 * forbids, taints that are tested but never acquired (or the other way
 * round), and regular expressions prone to catastrophic backtracking.
 *
 * Warnings never change what the engine decides; they point at what the
 * operator probably did not mean.
 */
import { harden } from '../harden.js';
import { targetKindOf } from '../targets.js';
import type { ActionType } from '../types.js';
import { compileRule, compileTaint, makeSink, type CompiledRule } from './compile.js';
import { patternCovers, type AnyPattern } from './patterns.js';
import type { Condition, PolicyDocument, PolicyProblem } from './types.js';

const WRITE_LIKE: readonly ActionType[] = ['WRITE', 'EXECUTE'];

/**
 * Nested quantifiers such as `(a+)+` or `(a|aa)*` backtrack exponentially in
 * a backtracking engine. The policy's engine is RE2 (linear time), so this is
 * advice about intent and portability, not a safeguard the runtime relies on.
 */
const RISKY_REGEX = /\([^()]*[+*][^()]*\)[+*{]|\([^()]*\|[^()]*\)[+*{]/;

const patternsIn = (c: Condition | undefined, at: string, out: Array<{ at: string; pattern: string }>) => {
  if (!c) return;
  c.all?.forEach((x, i) => patternsIn(x, `${at}/all/${i}`, out));
  c.any?.forEach((x, i) => patternsIn(x, `${at}/any/${i}`, out));
  patternsIn(c.not, `${at}/not`, out);
  const walkArg = (m: Record<string, unknown>, here: string) => {
    if (typeof m.pattern === 'string') out.push({ at: `${here}/pattern`, pattern: m.pattern });
    if (m.each) walkArg(m.each as Record<string, unknown>, `${here}/each`);
    if (m.fields) for (const [k, v] of Object.entries(m.fields as Record<string, unknown>)) walkArg(v as Record<string, unknown>, `${here}/fields/${k}`);
  };
  if (c.args) for (const [k, v] of Object.entries(c.args)) walkArg(v as unknown as Record<string, unknown>, `${at}/args/${k}`);
};

/** Taints a condition requires positively at its top level (anyOf / allOf), i.e. taints that unlock a permit. */
const requiredTaints = (c: Condition | undefined): string[] =>
  c ? [...(c.taints?.anyOf ?? []), ...(c.taints?.allOf ?? []), ...(c.all ?? []).flatMap(requiredTaints)] : [];

const coversAll = (outer: readonly AnyPattern[] | undefined, inner: readonly AnyPattern[] | undefined): boolean => {
  if (outer === undefined) return true;
  if (inner === undefined) return false;
  return inner.every(i => outer.some(o => patternCovers(o, i)));
};

/** Warnings for a document that has passed validation. */
export const lintPolicy = (doc: PolicyDocument): PolicyProblem[] => {
  const warnings: PolicyProblem[] = [];
  const warn = (pointer: string, message: string) => warnings.push({ pointer, message });
  const declared = new Set((doc.taints ?? []).map(t => t.name));
  const tested = new Set<string>();
  const rules: CompiledRule[] = doc.rules.map((r, i) => {
    const sink = makeSink();
    const rule = compileRule(r, i, sink);
    for (const t of sink.taints) {
      tested.add(t);
      if (!declared.has(t)) warn(`/rules/${i}/when`, `taint ${JSON.stringify(t)} is never declared, so no agent ever acquires it`);
    }
    return rule;
  });
  (doc.taints ?? []).forEach((t, i) => {
    compileTaint(t, i, makeSink());
    if (!tested.has(t.name)) warn(`/taints/${i}`, `taint ${JSON.stringify(t.name)} is declared but no rule tests it`);
  });

  for (const rule of rules) {
    const at = rule.pointer;
    const src = rule.source;
    // Never matches.
    if (rule.cond && rule.cond.staticTruth({}) === 'no') warn(`${at}/when`, 'can never match: its conditions contradict each other');
    if (src.actions && rule.targets) {
      for (const a of src.actions) {
        if (rule.targets[targetKindOf(a)].length === 0) warn(`${at}/actions`, `never applies to ${a}: none of its targets is a ${targetKindOf(a)} pattern`);
      }
    }
    rule.targets?.url.forEach(p => {
      if (p.host === '*') warn(`${at}/targets/${(src.targets ?? []).indexOf(p.source)}`, 'host "*" is literal and matches no real host; write *.example.com for subdomains');
    });
    rule.targets?.path.forEach(p => {
      if (p.source.includes('//') || /\/$/.test(p.source) && p.source !== '/') warn(`${at}/targets/${(src.targets ?? []).indexOf(p.source)}`, 'has an empty segment and never matches a normalized path');
    });
    for (const { at: where, pattern } of (() => {
      const out: Array<{ at: string; pattern: string }> = [];
      patternsIn(src.when, `${at}/when`, out);
      return out;
    })()) {
      if (RISKY_REGEX.test(pattern)) warn(where, 'nested quantifiers backtrack catastrophically in backtracking engines (this runtime uses RE2, which does not); simplify the pattern');
    }
    if (rule.effect !== 'permit') continue;
    // Too broad.
    const everyAgent = rule.agents === undefined;
    if (!src.actions && !src.targets) warn(at, `permits every action on every target${everyAgent ? ' for every agent' : ''}`);
    else {
      for (const a of WRITE_LIKE) {
        if (!rule.actions.has(a)) continue;
        const paths = rule.targets?.path;
        if (paths === undefined || paths.some(p => p.prefix.length === 0 && !p.exact)) {
          warn(rule.targets ? `${at}/targets` : at, `permits ${a} anywhere in the file system (a /** grant)`);
        }
      }
      if (rule.actions.has('NETWORK')) {
        const urls = rule.targets?.url;
        if (urls === undefined) warn(at, 'permits NETWORK to every host (a * host grant)');
        else {
          urls.forEach(p => {
            if (p.hostSuffix !== undefined && p.hostSuffix.split('.').filter(Boolean).length <= 1) {
              warn(`${at}/targets/${(src.targets ?? []).indexOf(p.source)}`, `permits NETWORK to every host under ${p.hostSuffix} (a * host grant)`);
            }
          });
        }
      }
      if (rule.actions.has('TOOL')) {
        const tools = rule.targets?.tool;
        if (tools === undefined || tools.some(p => p.parts[0] === '*' && p.parts[1] === '*')) warn(rule.targets ? `${at}/targets` : at, 'permits every tool of every server');
      }
    }
    const unlocking = requiredTaints(src.when);
    if (unlocking.length > 0) warn(`${at}/when/taints`, `permits only because the agent carries ${unlocking.map(t => JSON.stringify(t)).join(', ')}; taints are meant to restrict, and an unreadable request acquires every taint`);
    // Shadowed by an unconditional forbid.
    for (const f of rules) {
      if (f.effect !== 'forbid' || (f.cond !== undefined && f.cond.staticTruth({}) !== 'yes')) continue;
      if (f.agents !== undefined && (rule.agents === undefined || [...rule.agents].some(a => !f.agents?.has(a)))) continue;
      if ([...rule.actions].some(a => !f.actions.has(a))) continue;
      const kinds = new Set([...rule.actions].map(targetKindOf));
      if ([...kinds].every(k => coversAll(f.targets?.[k], rule.targets?.[k]))) {
        warn(at, `is shadowed by forbid ${JSON.stringify(f.id)} (${f.pointer}): it can never allow anything`);
        break;
      }
    }
  }
  return warnings;
};
harden(lintPolicy);
