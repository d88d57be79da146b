/**
 * Code mode: `runCode` runs source text an LLM wrote — JavaScript, or
 * TypeScript with erasable syntax only — as a one-module agent in a fresh
 * vat, and answers with what a model can read: the value, the console
 * (bounded), errors as data with their position in the submitted source,
 * and references into the audit log.
 *
 * The source is one module, read by one rule:
 * - it has an `export default` (a function `main({ caps, input })`): it is
 *   an agent module, run as it is;
 * - it has no export: it is a script body, run as the body of
 *   `async function main({ caps, input })` — top-level `await` and
 *   `return` work, `return` gives the value. The wrapper's header is a
 *   line of its own before the source, so the source keeps its columns and
 *   every line is offset by exactly one, which positions undo;
 * - named exports without a default: ZT_MODULE_NO_MAIN.
 *
 * Invariants:
 * - Same guarantees as `launchAgent`: the launch is admitted by the same
 *   checks (agent, capabilities held and live, input, limits, isolation),
 *   then runs in a fresh vat of its own with only the named capabilities;
 *   every call is mediated and audited, the run ends with `agent.finished`.
 * - Nothing is evaluated before the whole source has parsed: syntax errors,
 *   non-erasable TypeScript (enums, namespaces, parameter properties) and
 *   imports (static or dynamic) are refused with their position, recorded
 *   (`agent.launch-failed`), and no vat starts — unless the run lists
 *   `packages`: then the code may import those (and only those; anything
 *   else is refused when its graph is loaded, before any code runs).
 * - Every answer is built here from fixed text, the parsers' messages and
 *   what the agent itself said: it names the submitted code, never a host
 *   path or an internal module name.
 * - The submitted source is matched in the log by its SHA-256 and size on
 *   the launch (or refusal) record, and recorded whole when it is at most
 *   `MAX_RECORDED_SOURCE` UTF-16 units.
 */
import { harden } from './harden.js';
import { MODULE_LIMITS, toModuleRecord, type AgentBundle, type ModulePowers } from './agent-modules.js';
import { AGENT_ROOT_URL } from './agent-specifiers.js';
import { ZtError, codeOf, reasonOf, type ErrorCode } from './errors.js';
import type { Kernel } from './kernel.js';
import type { AuditRef } from './types.js';
import type { LaunchExtras, LaunchPlan } from './launcher.js';
import type { PackagesOption } from './agent-packages.js';
import type { AgentHandle, VatIsolation, VatLimits } from './vat-host.js';

export type CodeLanguage = 'javascript' | 'typescript';

/** A problem found in the source, with its 1-based position in the text that was analysed. */
export interface CodeProblem {
  readonly message: string;
  readonly line?: number;
  readonly column?: number;
}

/** What the parser found at the top of the source. */
export interface CodeShape {
  readonly defaultExport: boolean;
  readonly namedExports: boolean;
  /** The first import, static or dynamic (`import(...)`), 1-based. */
  readonly firstImport?: { readonly line: number; readonly column: number };
}

/**
 * The parsers, as powers (the Node adapter loads them at the first code run,
 * not when the kernel starts: code-run-node-powers.ts).
 */
export interface CodePowers {
  /** Parses the source as a module in which a top-level `return` is allowed (TypeScript syntax when `typescript`). */
  analyze(text: string, typescript: boolean): Promise<{ ok: true; shape: CodeShape } | { ok: false; problem: CodeProblem }>;
  /** Erases TypeScript types keeping every line and column; refuses syntax that is not erasable. */
  stripTypes(text: string): Promise<{ ok: true; code: string } | { ok: false; problem: CodeProblem }>;
}

export interface CodeRunSpec {
  readonly agentId: string;
  readonly source: string;
  /** Default `javascript`. */
  readonly language?: CodeLanguage;
  readonly capabilities?: readonly string[] | Readonly<Record<string, string>>;
  readonly input?: unknown;
  readonly limits?: Partial<VatLimits>;
  readonly isolation?: VatIsolation;
  /**
   * Packages the code may import (as `launchAgent`'s `packages`): a module
   * (`export default`) with static imports, or a script with
   * `await import('name')`. Without it, every import is refused.
   */
  readonly packages?: PackagesOption;
}

export interface ConsoleLine {
  readonly level: string;
  readonly text: string;
}

export interface CodeRunError {
  readonly code: ErrorCode;
  readonly message: string;
  /** 1-based, in the submitted source; absent when it cannot be told reliably. */
  readonly line?: number;
  readonly column?: number;
}

export interface CodeRunResult {
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: CodeRunError;
  /** How the source was read: `module` (it has `export default`) or `script` (a function body). Absent when it did not parse. */
  readonly mode?: 'module' | 'script';
  readonly console: readonly ConsoleLine[];
  /** Lines were left out (over `CONSOLE_LIMITS`, or dropped by the run's audit budget) or the last one cut. */
  readonly consoleTruncated: boolean;
  /** The run's id, when a vat was started; every record of the run carries it. */
  readonly runId?: string;
  /**
   * References into the audit log: the run's `agent.launched` and
   * `agent.finished` records, or the `agent.launch-failed` record of code
   * refused before it ran.
   */
  readonly audit: {
    readonly runId?: string;
    readonly launched?: AuditRef;
    readonly finished?: AuditRef;
    readonly refused?: AuditRef;
  };
}

/** What a code run returns of its console. */
export const CONSOLE_LIMITS = harden({ maxLines: 200, maxChars: 64 * 1024 });

/** The longest source recorded whole in the audit log (UTF-16 units); a longer one by digest and size only. */
export const MAX_RECORDED_SOURCE = 16 * 1024;

/** The entry module's name in the vat; never shown. */
const CODE_ENTRY = `${AGENT_ROOT_URL}code.js`;
const SCRIPT_HEADER = 'export default async function main({ caps, input }) { {\n';
const SCRIPT_FOOTER = '\n} }\n';

const LANGUAGES: ReadonlySet<string> = new Set(['javascript', 'typescript']);
const utf8Length = (s: string): number => new TextEncoder().encode(s).length;

/** Internal names in a message, replaced by what the model knows. */
const redact = (message: string): string => message.split(CODE_ENTRY).join('the code').split(AGENT_ROOT_URL).join('');

/**
 * Positions in the evaluated text → positions in the submitted source. A
 * position before the source is dropped; one past it (an unclosed brace
 * found at the wrapper's end) is the end of the source.
 */
const makePositionMap = (source: string, lineOffset: number) => {
  const lines = source.split('\n');
  return (line: number | undefined, column: number | undefined): { line?: number; column?: number } => {
    if (line === undefined) return {};
    const l = line - lineOffset;
    if (l < 1) return {};
    if (l > lines.length) return { line: lines.length, column: (lines.at(-1) ?? '').length + 1 };
    return column === undefined ? { line: l } : { line: l, column };
  };
};

/** `(line:column)` at the end of a parser message (Babel's, column 0-based), taken off. */
const splitBabelPosition = (message: string): CodeProblem => {
  const match = /\s*\((\d+):(\d+)\)\s*$/.exec(message);
  if (!match) return { message };
  return { message: message.slice(0, match.index), line: Number(match[1]), column: Number(match[2]) + 1 };
};

type Prepared =
  | { readonly ok: true; readonly bundle: AgentBundle; readonly mode: 'module' | 'script'; readonly lineOffset: number }
  | { readonly ok: false; readonly mode?: 'module' | 'script'; readonly error: CodeRunError };

/** Parses, classifies, strips and compiles the source into a one-module bundle, or says why not. */
export const prepareCode = async (powers: { code: CodePowers; modules: Pick<ModulePowers, 'parseModule'> }, source: string, language: CodeLanguage, allowImports = false): Promise<Prepared> => {
  const typescript = language === 'typescript';
  const refuse = (code: ErrorCode, problem: CodeProblem, map: ReturnType<typeof makePositionMap>, mode?: 'module' | 'script'): Prepared =>
    harden({ ok: false, ...(mode ? { mode } : {}), error: { code, message: redact(problem.message).slice(0, 1024), ...map(problem.line, problem.column) } });
  const asIs = makePositionMap(source, 0);
  const analysis = await powers.code.analyze(source, typescript);
  if (!analysis.ok) return refuse('ZT_CODE_SYNTAX', analysis.problem, asIs);
  const { shape } = analysis;
  if (shape.firstImport && !allowImports) {
    const { line, column } = shape.firstImport;
    return refuse('ZT_MODULE_FORBIDDEN', { message: 'imports are not available to submitted code: use the capabilities in `caps`', line, column }, asIs);
  }
  if (!shape.defaultExport && shape.namedExports) {
    return refuse('ZT_MODULE_NO_MAIN', { message: 'a module must export default a function main({ caps, input }); a script has no exports' }, asIs, 'module');
  }
  const mode = shape.defaultExport ? 'module' : 'script';
  const lineOffset = mode === 'script' ? 1 : 0;
  const map = makePositionMap(source, lineOffset);
  let text = mode === 'script' ? `${SCRIPT_HEADER}${source}${SCRIPT_FOOTER}` : source;
  if (typescript) {
    const stripped = await powers.code.stripTypes(text);
    if (!stripped.ok) return refuse('ZT_CODE_SYNTAX', stripped.problem, map, mode);
    text = stripped.code;
  }
  let record: unknown;
  try {
    record = toModuleRecord(await powers.modules.parseModule(text, CODE_ENTRY));
  } catch (err) {
    const raw = String((err as Error)?.message ?? err).split('\n')[0] ?? '';
    const problem = splitBabelPosition(raw.replace(/^Error transforming source in "[^"]*":\s*/, ''));
    return refuse('ZT_CODE_SYNTAX', problem, map, mode);
  }
  const bundle: AgentBundle = harden({ entry: CODE_ENTRY, modules: harden({ [CODE_ENTRY]: record }), folder: '(code)' });
  return harden({ ok: true, bundle, mode, lineOffset });
};
harden(prepareCode);

/** Collects a run's console within `CONSOLE_LIMITS`. */
const makeConsoleCollector = () => {
  const lines: ConsoleLine[] = [];
  let chars = 0;
  let truncated = false;
  const add = (level: string, text: string, admitted: boolean) => {
    if (!admitted || lines.length >= CONSOLE_LIMITS.maxLines || chars >= CONSOLE_LIMITS.maxChars) {
      truncated = true;
      return;
    }
    let kept = text;
    const room = CONSOLE_LIMITS.maxChars - chars;
    if (kept.length > room) {
      // Cut in UTF-16 units, never inside a surrogate pair.
      const high = kept.charCodeAt(room - 1);
      kept = kept.slice(0, high >= 0xd800 && high <= 0xdbff ? room - 1 : room);
      truncated = true;
    }
    chars += kept.length;
    lines.push(harden({ level, text: kept }));
  };
  return { add, lines: () => harden([...lines]), truncated: () => truncated };
};

/**
 * The vat's failure to load a module that parsed here (SES refuses some
 * source text, e.g. an HTML comment): a syntax error of the code, without
 * a position.
 */
const VAT_LOAD_FAILURE: ErrorCode = 'ZT_MODULE_SYNTAX';

export interface CodeRunnerContext {
  readonly powers: {
    readonly code: CodePowers;
    readonly modules: Pick<ModulePowers, 'parseModule'>;
    readonly now: () => number;
    readonly sha256Hex: (text: string) => string;
  };
  readonly kernel: Pick<Kernel, 'record'>;
  /** The launcher's checks (sandbox.ts): the same admission as `launchAgent`, refusals recorded under `label`. */
  readonly admit: (spec: Omit<CodeRunSpec, 'source' | 'language'>, label: string) => Promise<LaunchPlan>;
  /** Adds the plan's packages to the prepared bundle (loading and checking their graph); refuses with a ZtError. */
  readonly addPackages: (plan: LaunchPlan, bundle: AgentBundle) => Promise<AgentBundle>;
  /** Starts the admitted run's vat with the prepared bundle. */
  readonly start: (plan: LaunchPlan, bundle: AgentBundle, extras: LaunchExtras) => AgentHandle;
}

/** `runCode`: validates, admits, prepares, runs, and answers once the run has ended. */
export const makeCodeRunner = (ctx: CodeRunnerContext) => {
  const { powers, kernel } = ctx;
  return async (spec: CodeRunSpec): Promise<CodeRunResult> => {
    if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw new ZtError('ZT_BAD_ARGUMENT', 'runCode needs an options object');
    const { source, language = 'javascript', ...launch } = spec;
    if (typeof source !== 'string') throw new ZtError('ZT_BAD_ARGUMENT', 'source must be a string of JavaScript or TypeScript');
    if (typeof language !== 'string' || !LANGUAGES.has(language)) throw new ZtError('ZT_BAD_ARGUMENT', 'language must be "javascript" or "typescript"');
    const bytes = utf8Length(source);
    if (bytes > MODULE_LIMITS.maxTotalBytes) throw new ZtError('ZT_MODULE_TOO_LARGE', `the source is larger than ${MODULE_LIMITS.maxTotalBytes} bytes`);
    const plan = await ctx.admit(launch, '(code)');
    const submitted = {
      language,
      sha256: powers.sha256Hex(source),
      bytes,
      ...(source.length <= MAX_RECORDED_SOURCE ? { source } : { sourceRecorded: false }),
    };
    let prepared = await prepareCode(powers, source, language as CodeLanguage, plan.packages !== undefined);
    if (prepared.ok && plan.packages) {
      try {
        prepared = harden({ ...prepared, bundle: await ctx.addPackages(plan, prepared.bundle) });
      } catch (err) {
        const code = codeOf(err) ?? 'ZT_MODULE_FORBIDDEN';
        prepared = harden({ ok: false, mode: prepared.mode, error: { code, message: redact(reasonOf(err) ?? 'the packages could not be loaded').slice(0, 1024) } });
      }
    }
    if (!prepared.ok) {
      const refused = await kernel
        .record({ type: 'agent.launch-failed', time: powers.now(), agentId: plan.agentId, module: '(code)', code: prepared.error.code, message: prepared.error.message, ...positionFields(prepared.error), submitted })
        .catch(() => undefined);
      return harden({
        ok: false,
        error: prepared.error,
        ...(prepared.mode ? { mode: prepared.mode } : {}),
        console: [],
        consoleTruncated: false,
        audit: refused ? { refused } : {},
      });
    }
    const consoleLines = makeConsoleCollector();
    let launched: Promise<AuditRef | undefined> = Promise.resolve(undefined);
    const handle = ctx.start(plan, prepared.bundle, {
      launchRecord: { submitted: { ...submitted, mode: prepared.mode } },
      observer: {
        console: consoleLines.add,
        launched: ref => {
          launched = ref;
        },
      },
    });
    const [outcome, launchedRef] = await Promise.all([handle.result, launched]);
    const map = makePositionMap(source, prepared.lineOffset);
    const error: CodeRunError | undefined = outcome.error
      ? {
          code: outcome.error.code === VAT_LOAD_FAILURE ? 'ZT_CODE_SYNTAX' : outcome.error.code,
          message: redact(outcome.error.message),
          ...map(outcome.error.line, outcome.error.column),
        }
      : undefined;
    return harden({
      ok: outcome.ok,
      ...(outcome.ok ? (outcome.value === undefined ? {} : { value: outcome.value }) : { error }),
      mode: prepared.mode,
      console: consoleLines.lines(),
      consoleTruncated: consoleLines.truncated(),
      runId: outcome.runId,
      audit: { runId: outcome.runId, ...(launchedRef ? { launched: launchedRef } : {}), ...(outcome.audit ? { finished: outcome.audit } : {}) },
    });
  };
};
harden(makeCodeRunner);

const positionFields = (error: CodeRunError) =>
  error.line === undefined ? {} : { line: error.line, ...(error.column === undefined ? {} : { column: error.column }) };
