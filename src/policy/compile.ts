/**
 * Compiles the rules and taint declarations of a (schema-valid) policy
 * document: agent sets, effective action types, target patterns grouped by
 * kind, and condition closures. Problems a schema cannot see (malformed
 * patterns, a target whose kind fits none of the rule's actions, bad
 * regular expressions or instants) are reported with their JSON pointer.
 */
import { harden } from '../harden.js';
import { reasonOf } from '../errors.js';
import type { TargetKind } from '../targets.js';
import { targetKindOf } from '../targets.js';
import type { ActionType } from '../types.js';
import { compileCondition, type CondNode, type CondSink } from './conditions.js';
import { compilePattern, KIND_ACTIONS, patternKind, type PathPattern, type ToolPattern, type UrlPattern } from './patterns.js';
import type { PolicyRule, RuleEffect, TaintDeclaration } from './types.js';

export const ALL_ACTIONS: readonly ActionType[] = harden(['READ', 'WRITE', 'EXECUTE', 'NETWORK', 'TOOL']);

export interface TargetsByKind {
  readonly path: readonly PathPattern[];
  readonly url: readonly UrlPattern[];
  readonly tool: readonly ToolPattern[];
}

export interface CompiledScope {
  /** Position in the document (rules and taints are numbered separately). */
  readonly index: number;
  readonly id: string;
  /** Undefined: every agent. */
  readonly agents: ReadonlySet<string> | undefined;
  /** The action types the rule can apply to. */
  readonly actions: ReadonlySet<ActionType>;
  /** Undefined: every target. */
  readonly targets: TargetsByKind | undefined;
  /** JSON pointer of the rule in the document. */
  readonly pointer: string;
}

export interface CompiledRule extends CompiledScope {
  readonly effect: RuleEffect;
  readonly cond: CondNode | undefined;
  readonly source: PolicyRule;
}

export interface CompiledTaint extends CompiledScope {
  readonly source: TaintDeclaration;
}

export const makeSink = (): CondSink => ({ rateWindows: new Set(), argNames: new Set(), taints: new Set(), problems: [] });
harden(makeSink);

const compileScope = (
  spec: { agents?: readonly string[]; actions?: readonly ActionType[]; targets?: readonly string[] },
  index: number,
  id: string,
  pointer: string,
  sink: CondSink,
): CompiledScope => {
  const agents = spec.agents && !spec.agents.includes('*') ? new Set(spec.agents) : undefined;
  let targets: TargetsByKind | undefined;
  const kinds = new Set<TargetKind>();
  if (spec.targets) {
    const path: PathPattern[] = [];
    const url: UrlPattern[] = [];
    const tool: ToolPattern[] = [];
    const actionKinds = spec.actions ? new Set(spec.actions.map(targetKindOf)) : undefined;
    spec.targets.forEach((source, i) => {
      const kind = patternKind(source);
      const at = `${pointer}/targets/${i}`;
      if (actionKinds && !actionKinds.has(kind)) {
        sink.problems.push({
          pointer: at,
          message: `a ${kind} pattern fits none of the rule's actions (${[...(spec.actions ?? [])].join(', ')}); ${kind} patterns apply to ${KIND_ACTIONS[kind].join(', ')}`,
        });
        return;
      }
      try {
        const p = compilePattern(kind, source);
        kinds.add(kind);
        if (p.kind === 'path') path.push(p);
        else if (p.kind === 'url') url.push(p);
        else tool.push(p);
      } catch (err) {
        sink.problems.push({ pointer: at, message: `invalid ${kind} pattern: ${reasonOf(err) ?? 'malformed'}` });
      }
    });
    targets = harden({ path, url, tool });
  }
  const actions = new Set<ActionType>(spec.actions ?? (spec.targets ? [...kinds].flatMap(k => KIND_ACTIONS[k]) : ALL_ACTIONS));
  return { index, id, agents, actions, targets, pointer };
};

export const compileRule = (rule: PolicyRule, index: number, sink: CondSink): CompiledRule => {
  const pointer = `/rules/${index}`;
  const scope = compileScope(rule, index, rule.id, pointer, sink);
  const cond = rule.when ? compileCondition(rule.when, `${pointer}/when`, sink) : undefined;
  return harden({ ...scope, effect: rule.effect, cond, source: rule });
};
harden(compileRule);

export const compileTaint = (decl: TaintDeclaration, index: number, sink: CondSink): CompiledTaint => {
  const pointer = `/taints/${index}`;
  return harden({ ...compileScope(decl, index, decl.name, pointer, sink), source: decl });
};
harden(compileTaint);

/** Does the scope's agent and action part admit this request? */
export const scopeAdmits = (s: CompiledScope, agentId: string, actionType: ActionType): boolean =>
  (s.agents === undefined || s.agents.has(agentId)) && s.actions.has(actionType);
harden(scopeAdmits);
