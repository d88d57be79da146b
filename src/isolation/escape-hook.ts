/**
 * TEST-ONLY: the escape hook, which simulates a complete SES escape.
 *
 * `withEscapeHook(root)` returns a vat root that also answers
 * `escape(code)`: `code` is the body of an async function evaluated with
 * the START compartment's `Function` — outside the agent's Compartment,
 * with everything the vat's own process or thread holds (`process`,
 * `process.getBuiltinModule`, …). Its result comes back as plain data.
 *
 * The same hook makes the compromised vat shell of the security tests: a
 * run whose input is `{ ztTestEscape: code }` evaluates `code` the same way
 * instead of running the agent, so an attack goes through the kernel's own
 * launch path (vat host, membrane, audit) as a hostile vat would, and its
 * report (an `EscapeReport`) is the run's value.
 *
 * Invariant: a vat shell installs the hook only when the kernel started it
 * with the `--zt-test-escape-hook` argv flag (never an environment variable,
 * never anything an agent can influence). The agent's own Compartment never
 * sees this root; only the kernel holds it.
 */
import { harden } from '../harden.js';
import { Far } from '@endo/far';

export interface EscapeReport {
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: {
    readonly name: string;
    readonly code: string | null;
    readonly message: string;
    readonly syscall: string | null;
  };
}

const asPlainData = (value: unknown): unknown => {
  if (value === undefined) return null;
  return harden(JSON.parse(JSON.stringify(value)) as unknown);
};

const describeError = (err: unknown): EscapeReport['error'] => {
  const e = (err ?? {}) as { name?: unknown; code?: unknown; message?: unknown; syscall?: unknown };
  return harden({
    name: typeof e.name === 'string' ? e.name : typeof err,
    code: typeof e.code === 'string' ? e.code : null,
    message: String(typeof e.message === 'string' ? e.message : err).slice(0, 500),
    syscall: typeof e.syscall === 'string' ? e.syscall : null,
  });
};

/** Evaluates `code` in the start compartment of this vat (see the header). */
export const evaluateInStartCompartment = async (code: string): Promise<EscapeReport> => {
  if (typeof code !== 'string') return harden({ ok: false, error: describeError(TypeError('code must be a string')) });
  try {
    // The start compartment's own Function constructor: code runs in this
    // realm's global scope, not in any Compartment.
    const run = new Function(`return (async () => {\n${code}\n})();`) as () => Promise<unknown>;
    const value = await run();
    return harden({ ok: true, value: asPlainData(value) });
  } catch (err) {
    return harden({ ok: false, error: describeError(err) });
  }
};
harden(evaluateInStartCompartment);

interface AgentVatRootLike {
  run(spec: unknown): unknown;
  probe(): unknown;
}

const escapeCodeOf = (spec: unknown): string | undefined => {
  const input = (spec as { input?: unknown } | null)?.input as { ztTestEscape?: unknown } | null | undefined;
  return input !== null && typeof input === 'object' && typeof input.ztTestEscape === 'string' ? input.ztTestEscape : undefined;
};

/** The agent vat's root plus `escape(code)`. Only for vats started with the test flag. */
export const withEscapeHook = (root: AgentVatRootLike) =>
  Far('AgentVat', {
    run: (spec: unknown) => {
      const code = escapeCodeOf(spec);
      if (code === undefined) return root.run(spec);
      return evaluateInStartCompartment(code).then(report => harden({ status: 'returned', value: report }));
    },
    probe: () => root.probe(),
    escape: (code: string) => evaluateInStartCompartment(code),
  });
harden(withEscapeHook);
