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
 *   folder, already parsed); a builtin or bare specifier is refused with
 *   ZT_MODULE_FORBIDDEN, a path outside the folder with ZT_MODULE_OUTSIDE.
 * - What leaves the vat as the agent's result is checked to be plain data.
 *
 * This file holds only the vat's logic (`buildRootObject`); the worker shell
 * (`worker-main.ts`) establishes lockdown and the single CapTP connection.
 */
import { E, Far } from '@endo/far';
import { passStyleOf } from '@endo/pass-style';
import { agentError, codeOf, type ErrorCode } from '../src/errors.js';
import { AGENT_ROOT_URL, resolveAgentSpecifier } from '../src/agent-specifiers.js';

export interface AgentVatPowers {
  /** The kernel's facet for this vat. */
  readonly getKernel: () => Promise<KernelFacet>;
  /** Runs `fn` after the current macrotask (used for quiescence probes). */
  readonly afterTurn: (fn: () => void) => void;
}

export interface KernelFacet {
  log(level: string, text: string): void;
}

export interface RunSpec {
  readonly entry: string;
  readonly modules: Readonly<Record<string, unknown>>;
  readonly caps: Readonly<Record<string, unknown>>;
  readonly input: unknown;
}

export type RunReport =
  | { readonly status: 'returned'; readonly value: unknown }
  | { readonly status: 'failed'; readonly code: ErrorCode; readonly message: string };

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

const isPlainData = (value: unknown, depth = 0): boolean => {
  if (depth > 64) return false;
  const style = passStyleOf(value);
  switch (style) {
    case 'undefined':
    case 'null':
    case 'boolean':
    case 'number':
    case 'bigint':
    case 'string':
      return true;
    case 'copyArray':
      return (value as unknown[]).every(v => isPlainData(v, depth + 1));
    case 'copyRecord':
      return Object.values(value as object).every(v => isPlainData(v, depth + 1));
    default:
      return false;
  }
};

export const buildRootObject = (powers: AgentVatPowers) => {
  let settled = false;
  let started = false;
  const pendingLogs = new Set<Promise<unknown>>();

  const makeConsole = () => {
    const send = (level: string) => (...args: unknown[]) => {
      let text: string;
      try {
        text = args.map(a => (typeof a === 'string' ? a : describeThrown(a))).join(' ');
      } catch {
        text = 'unprintable value';
      }
      if (text.length > MAX_LOG_TEXT) text = `${text.slice(0, MAX_LOG_TEXT)}…[truncated ${text.length - MAX_LOG_TEXT} chars]`;
      // Tracked, so the run's report leaves the vat only after every line
      // it printed has reached the kernel: nothing the agent said is lost.
      const sent = E(powers.getKernel()).log(level, text).catch(() => undefined);
      pendingLogs.add(sent);
      void sent.finally(() => pendingLogs.delete(sent));
    };
    return harden({ log: send('log'), info: send('info'), warn: send('warn'), error: send('error'), debug: send('debug') });
  };

  const fail = (code: ErrorCode, message: string): RunReport => harden({ status: 'failed', code, message });

  const run = async (spec: RunSpec): Promise<RunReport> => {
    if (started) return fail('ZT_AGENT_BUSY', 'this vat already ran an agent');
    started = true;
    const report = await runAgent(spec);
    await Promise.all([...pendingLogs]);
    return report;
  };

  const runAgent = async ({ entry, modules, caps, input }: RunSpec): Promise<RunReport> => {
    try {
      const compartment = new Compartment({
        __options__: true,
        name: 'agent',
        globals: harden({ E, console: makeConsole() }),
        resolveHook: (specifier: string, referrer: string) => resolveAgentSpecifier(specifier, referrer),
        importHook: async (specifier: string) => {
          const source = Object.hasOwn(modules, specifier) ? modules[specifier] : undefined;
          if (source === undefined) throw agentError('ZT_MODULE_NOT_FOUND', `${specifier.slice(AGENT_ROOT_URL.length - 1)} is not part of the agent`);
          return source as never;
        },
      } as never);
      harden(compartment.globalThis);
      let namespace: Record<string, unknown>;
      try {
        ({ namespace } = (await compartment.import(entry)) as { namespace: Record<string, unknown> });
      } catch (err) {
        const code = codeOf(err);
        return fail(code ?? 'ZT_MODULE_SYNTAX', code ? describeThrown(err).replace(/^ZT_[A-Z_]+: /, '') : `module failed to load: ${describeThrown(err)}`);
      }
      const main = namespace.default;
      if (typeof main !== 'function') return fail('ZT_MODULE_NO_MAIN', 'the agent module must export a default function');
      let returned: unknown;
      try {
        returned = main(harden({ caps, input }));
      } catch (err) {
        return fail('ZT_AGENT_THREW', describeThrown(err));
      }
      let value: unknown;
      try {
        value = await returned;
      } catch (err) {
        return fail('ZT_AGENT_REJECTED', describeThrown(err));
      }
      try {
        harden(value);
        if (!isPlainData(value)) throw Error('not plain data');
      } catch {
        return fail('ZT_AGENT_RESULT_NOT_PASSABLE', 'the agent must return plain data (records, arrays, strings, numbers, booleans, null)');
      }
      return harden({ status: 'returned', value });
    } finally {
      settled = true;
    }
  };

  return Far('AgentVat', {
    run,
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
