/**
 * The agent vat: runs one untrusted agent module in a SES Compartment.
 *
 * Invariants:
 * - The agent's Compartment is endowed with `E`, its hardened `caps` record
 *   (remote presences of caretakers), its frozen `input` and a console that
 *   forwards to the kernel's audit trail: nothing else. Its `globalThis` is
 *   hardened. Compartments have no `Date.now`, `Math.random`, timers,
 *   `SharedArrayBuffer`, `Atomics`, `WeakRef` or `FinalizationRegistry`.
 * - Modules come only from the map the kernel prepared (the agent's own
 *   folder and the packages its launch lists, already parsed); a builtin,
 *   or a bare specifier not in the kernel's import table for the importing
 *   scope, is refused with ZT_MODULE_FORBIDDEN, a path outside the
 *   importer's folder with ZT_MODULE_OUTSIDE.
 * - What the agent passes to a capability, and what it returns as its
 *   result, is checked and copied by the kernel's own definition of plain
 *   data (src/plain-data.ts), so the agent learns of a bad argument the
 *   same way whichever side catches it; a refusal here is still sent to
 *   the kernel (as a marker in place of the arguments), so it is recorded
 *   like one the membrane makes.
 * - Every refusal the vat itself makes reaches the agent through
 *   `toAgentRefusal` (src/errors.ts), as the membrane's do: a frozen record
 *   of a code and an agent-safe reason, never an Error with a stack.
 *
 * This file holds only the vat's logic (`buildRootObject`); the worker shell
 * (`worker-main.ts`) establishes lockdown and the single CapTP connection.
 */
import { harden } from '../src/harden.js';
import { E, Far } from '@endo/far';
import { passStyleOf } from '@endo/pass-style';
import { ZtError, codeOf, reasonOf, toAgentRefusal, type ErrorCode } from '../src/errors.js';
import { copyArgumentList, copyPlainData } from '../src/plain-data.js';
import { AGENT_ROOT_URL, resolveModuleSpecifier, type BareImports } from '../src/agent-specifiers.js';

export interface AgentVatPowers {
  /** The kernel's facet for this vat. */
  readonly getKernel: () => Promise<KernelFacet>;
  /** Runs `fn` after the current macrotask (used for quiescence probes). */
  readonly afterTurn: (fn: () => void) => void;
  /**
   * The stack of an error as the start compartment sees it (SES's
   * privileged `getStackString`: `error.stack` is empty under
   * `errorTaming: 'safe'`). Used only to find where in the entry module an
   * agent's error was made; without it, failures carry no position.
   */
  readonly stackOf?: (error: object) => string;
}

export interface KernelFacet {
  log(level: string, text: string): void;
}

export interface RunSpec {
  readonly entry: string;
  readonly modules: Readonly<Record<string, unknown>>;
  /** How bare specifiers resolve, per scope: the packages the launch lists (none by default). */
  readonly imports?: BareImports;
  readonly caps: Readonly<Record<string, unknown>>;
  readonly input: unknown;
}

export type RunReport =
  | { readonly status: 'returned'; readonly value: unknown }
  | { readonly status: 'failed'; readonly code: ErrorCode; readonly message: string; readonly line?: number; readonly column?: number };

/** Where in a module an error was made: 1-based line and column. */
export interface SourcePosition {
  readonly line: number;
  readonly column: number;
}

const MAX_LOG_TEXT = 4096;
const MAX_MESSAGE = 1024;

/** Turns anything the agent threw into a short, safe string (the agent's own words). */
const describeThrown = (err: unknown): string => {
  try {
    if (err !== null && typeof err === 'object' && typeof (err as Error).message === 'string') {
      return String((err as Error).message).slice(0, MAX_MESSAGE);
    }
    return String(err).slice(0, MAX_MESSAGE);
  } catch {
    return 'unprintable value';
  }
};

/** At most `max` UTF-16 units of `s`, ending on a code point (a pair is kept whole or left out). */
const cutCodePoints = (s: string, max: number): string => {
  const unit = s.charCodeAt(max - 1);
  return s.slice(0, unit >= 0xd800 && unit <= 0xdbff ? max - 1 : max);
};

/**
 * Sent in place of the argument list when the arguments are not plain
 * data: the membrane refuses it (not a list) and records the refusal.
 */
const NOT_PLAIN_DATA = harden({ notPlainData: true });
/**
 * Sent in place of the argument list when an argument holds text the log
 * cannot record (a lone surrogate): the membrane refuses it with
 * ZT_NOT_RECORDABLE, as it would the agent's own arguments.
 */
const NOT_RECORDABLE = harden(['\uD800']);

declare const HandledPromise: {
  new (
    executor: (resolve: unknown, reject: unknown, resolveWithPresence: (handler: object) => object) => void,
  ): Promise<unknown>;
};

/**
 * The agent-facing side of caretakers. A caretaker answers one method,
 * `invoke(method, args)`; the agent holds a local presence whose handler
 * forwards every method call `E(cap).anything(...)` as
 * `invoke('anything', [...])`, so the kernel sees (and audits) each call,
 * including calls to methods the capability does not have. Presences are
 * memoized, so identity is preserved both ways, and are unwrapped again when
 * the agent passes them to a capability.
 */
const makePresenceWrapper = () => {
  const refuse = (code: ErrorCode, reason: string) => Promise.reject(toAgentRefusal(new ZtError(code, reason)));
  const wrappers = new WeakMap<object, object>();
  const unwrapped = new WeakMap<object, object>();

  const wrap = (remote: object): object => {
    const known = wrappers.get(remote);
    if (known) return known;
    let wrapper: object | undefined;
    const handler = harden({
      applyMethod: (_target: unknown, method: unknown, args: unknown[]) => {
        if (typeof method !== 'string') return refuse('ZT_NOT_IN_INTERFACE', 'capability methods have string names');
        const invoke = (params: unknown) =>
          (E(remote) as unknown as { invoke(m: string, a: unknown): Promise<unknown> }).invoke(method, params);
        let params: readonly unknown[];
        try {
          // The kernel's definition of plain data, with the presences the
          // agent was given replaced by the caretakers they stand for.
          // Accessors, functions, symbols and exotic prototypes are refused
          // (a getter is never called); what a proxy reports is copied as
          // plain data, so nothing of it runs in the kernel.
          params = harden(copyArgumentList(args, { substitute: value => unwrapped.get(value) }));
        } catch (err) {
          const refusal = err instanceof ZtError ? err : new ZtError('ZT_BAD_ARGUMENT', 'arguments must be plain data');
          // Recorded by the kernel; the agent sees this refusal unless the
          // kernel refused the call for an earlier reason (its method, its state).
          return invoke(refusal.code === 'ZT_NOT_RECORDABLE' ? NOT_RECORDABLE : NOT_PLAIN_DATA).then(
            () => Promise.reject(toAgentRefusal(refusal)),
            (answer: unknown) => Promise.reject(codeOf(answer) === refusal.code ? toAgentRefusal(refusal) : answer),
          );
        }
        return invoke(params).then(wrapDeep);
      },
      get: () => refuse('ZT_NOT_IN_INTERFACE', 'capabilities have no properties; call a method'),
      applyFunction: () => refuse('ZT_NOT_IN_INTERFACE', 'a capability is not a function; call a method'),
    });
    void new HandledPromise((_resolve, _reject, resolveWithPresence) => {
      wrapper = harden(resolveWithPresence(handler));
    });
    const made = wrapper as object;
    wrappers.set(remote, made);
    unwrapped.set(made, remote);
    return made;
  };

  const wrapDeep = (value: unknown, depth = 0): unknown => {
    if (depth > 64) return value;
    const style = passStyleOf(value);
    if (style === 'remotable') return wrap(value as object);
    if (style === 'copyArray') return harden((value as unknown[]).map(v => wrapDeep(v, depth + 1)));
    if (style === 'copyRecord') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value as object)) out[k] = wrapDeep(v, depth + 1);
      return harden(out);
    }
    return value;
  };

  return harden({ wrap, wrapDeep });
};

export const buildRootObject = (powers: AgentVatPowers) => {
  let settled = false;
  let started = false;
  const presences = makePresenceWrapper();
  const pendingLogs = new Set<Promise<unknown>>();

  const makeConsole = () => {
    const send = (level: string) => (...args: unknown[]) => {
      let text: string;
      try {
        text = args.map(a => (typeof a === 'string' ? a : describeThrown(a))).join(' ');
      } catch {
        text = 'unprintable value';
      }
      // Cut on a code point: a surrogate pair is never split.
      if (text.length > MAX_LOG_TEXT) text = `${cutCodePoints(text, MAX_LOG_TEXT)}…[truncated ${text.length - MAX_LOG_TEXT} chars]`;
      // Text that is not Unicode (a lone surrogate) is the kernel's to
      // record escaped, as it is.
      // Tracked, so the run's report leaves the vat only after every line
      // it printed has reached the kernel: nothing the agent said is lost.
      const sent = E(powers.getKernel()).log(level, text).catch(() => undefined);
      pendingLogs.add(sent);
      void sent.finally(() => pendingLogs.delete(sent));
    };
    return harden({ log: send('log'), info: send('info'), warn: send('warn'), error: send('error'), debug: send('debug') });
  };

  const fail = (code: ErrorCode, message: string, at?: SourcePosition): RunReport => harden({ status: 'failed', code, message, ...(at ? { line: at.line, column: at.column } : {}) });

  /**
   * Where the agent's error was made in the entry module: the topmost frame
   * of its stack in that module, if it has one (a thrown non-Error, or an
   * error made elsewhere, has none). Only a real Error is asked.
   */
  const locate = (err: unknown, entry: string): SourcePosition | undefined => {
    if (!powers.stackOf || !(err instanceof Error)) return undefined;
    let stack: unknown;
    try {
      stack = powers.stackOf(err);
    } catch {
      return undefined;
    }
    if (typeof stack !== 'string') return undefined;
    const marker = `${entry}:`;
    for (const frame of stack.split('\n')) {
      const at = frame.indexOf(marker);
      if (at < 0) continue;
      const match = /^(\d{1,9}):(\d{1,9})/.exec(frame.slice(at + marker.length));
      if (match) return harden({ line: Number(match[1]), column: Number(match[2]) });
    }
    return undefined;
  };

  const run = async (spec: RunSpec): Promise<RunReport> => {
    if (started) return fail('ZT_AGENT_BUSY', 'this vat already ran an agent');
    started = true;
    const report = await runAgent(spec, true);
    await Promise.all([...pendingLogs]);
    return report;
  };

  let prewarmed = false;
  /**
   * Runs a kernel-supplied trivial agent in a throwaway Compartment before
   * any real agent, so a pooled vat's module-loading and run paths are
   * compiled when its agent arrives. Once, and never after a real run.
   */
  const prewarm = async (spec: RunSpec): Promise<RunReport> => {
    if (started || prewarmed) return fail('ZT_AGENT_BUSY', 'this vat cannot be prewarmed now');
    prewarmed = true;
    return runAgent(spec, false);
  };

  /** `track`: whether this is the vat's real run (quiescence probes watch it). */
  const runAgent = async ({ entry, modules, imports = {}, caps, input }: RunSpec, track: boolean): Promise<RunReport> => {
    // A module hook's refusal reaches the agent (on a dynamic import) as a
    // redacted record, thrown as is (`noAggregateLoadErrors`); the ZtError
    // behind it is kept for the run's report.
    const refusals = new WeakMap<object, ZtError>();
    const refuseModule = (err: unknown, fallback: ErrorCode): never => {
      const refusal = toAgentRefusal(err, fallback);
      if (err instanceof ZtError) refusals.set(refusal, err);
      throw refusal;
    };
    try {
      const compartment = new Compartment({
        __options__: true,
        name: 'agent',
        noAggregateLoadErrors: true,
        globals: harden({ E, console: makeConsole() }),
        resolveHook: (specifier: string, referrer: string) => {
          try {
            return resolveModuleSpecifier(specifier, referrer, imports);
          } catch (err) {
            return refuseModule(err, 'ZT_MODULE_FORBIDDEN');
          }
        },
        importHook: async (specifier: string) => {
          const source = Object.hasOwn(modules, specifier) ? modules[specifier] : undefined;
          if (source === undefined) return refuseModule(new ZtError('ZT_MODULE_NOT_FOUND', `${specifier.startsWith(AGENT_ROOT_URL) ? specifier.slice(AGENT_ROOT_URL.length - 1) : specifier} is not part of the agent`), 'ZT_MODULE_NOT_FOUND');
          return source as never;
        },
      } as never);
      harden(compartment.globalThis);
      let namespace: Record<string, unknown>;
      try {
        ({ namespace } = (await compartment.import(entry)) as { namespace: Record<string, unknown> });
      } catch (err) {
        const refused = err !== null && typeof err === 'object' ? refusals.get(err) : undefined;
        return fail(refused?.code ?? 'ZT_MODULE_SYNTAX', reasonOf(refused) ?? `module failed to load: ${describeThrown(err)}`);
      }
      const main = namespace.default;
      if (typeof main !== 'function') return fail('ZT_MODULE_NO_MAIN', 'the agent module must export a default function');
      let returned: unknown;
      try {
        returned = main(harden({ caps: presences.wrapDeep(caps), input }));
      } catch (err) {
        return fail('ZT_AGENT_THREW', describeThrown(err), locate(err, entry));
      }
      let value: unknown;
      try {
        value = await returned;
      } catch (err) {
        return fail('ZT_AGENT_REJECTED', describeThrown(err), locate(err, entry));
      }
      let result: unknown;
      try {
        harden(value);
        result = value === undefined ? undefined : copyPlainData(value);
      } catch {
        return fail('ZT_AGENT_RESULT_NOT_PASSABLE', 'the agent must return JSON data (records, arrays, strings, finite numbers, booleans, null)');
      }
      return harden({ status: 'returned', value: result });
    } finally {
      if (track) settled = true;
    }
  };

  return Far('AgentVat', {
    run,
    prewarm,
    /**
     * Answers after the current macrotask, when every microtask the agent
     * queued has run: `settled: false` then means the agent is waiting.
     */
    probe: () =>
      new Promise<{ settled: boolean }>(resolve => {
        powers.afterTurn(() => resolve(harden({ settled })));
      }),
  });
};
harden(buildRootObject);
