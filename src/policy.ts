/**
 * The policy engine's public face. Capabilities say who holds what; the
 * policy says what may ever be granted and under which conditions a grant
 * may be used. The implementation lives in `src/policy/`:
 *
 * - `types.ts`       the language (rules, conditions, taints) and the kernel contract
 * - `schema.ts`      the published JSON Schema (docs/policy.schema.json)
 * - `validate.ts`    all-or-nothing validation with located problems (ZT_POLICY_INVALID)
 * - `source.ts`      YAML / JSON text → document, problems with line and column
 * - `engine.ts`      compiled, indexed decisions; issue-time checks; taints; explain
 * - `lint.ts`        warnings for `ztaas policy check`
 *
 * Invariants (see engine.ts): default deny; a matching forbid wins; a rule
 * that errors denies; decisions depend only on their recorded inputs and
 * name their deciding rules and the policy's content hash.
 */
import { harden } from './harden.js';
import type { PolicyDocument } from './policy/types.js';

export type {
  ApprovalRequirement,
  ArgMatcher,
  Condition,
  Decision,
  DecisionContext,
  DecisionRequest,
  Explanation,
  GrantRequest,
  Policy,
  PolicyDocument,
  PolicyProblem,
  PolicyRule,
  RuleApproval,
  RuleEffect,
  RuleTrace,
  SetTest,
  TaintDeclaration,
  TimeTest,
  UrlTest,
} from './policy/types.js';
export { makePolicy, type MakePolicyOptions } from './policy/engine.js';
export { makePolicyValidator, sharedPolicyValidator, validatePolicyDocument, type PolicyValidator } from './policy/validate.js';
export { parsePolicyText, loadPolicyText, type ParsedPolicyText } from './policy/source.js';
export { lintPolicy } from './policy/lint.js';
export { regrantCheck } from './policy/regrant.js';
export { POLICY_JSON_SCHEMA } from './policy/schema.js';

/**
 * The policy in force when the operator supplies none: everything a live
 * capability grants is permitted, nothing else. The capability itself is the
 * explicit authorization; a policy can only narrow it.
 */
export const CAPABILITY_CEILING_POLICY: PolicyDocument = harden({
  version: 1,
  rules: [
    {
      id: 'default:capability-grants',
      effect: 'permit',
      description: 'no operator policy: a live capability is the whole authorization',
    },
  ],
});
