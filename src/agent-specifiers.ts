/**
 * How an agent's module specifiers resolve. Shared by the kernel (which walks
 * and parses the module graph) and the agent vat (which resolves inside the
 * Compartment), so both refuse exactly the same imports.
 *
 * Agents see their folder as the virtual root `file:///agent/`, and each
 * package the operator listed for them as `file:///packages/<name>/`; no
 * host path is ever revealed to them.
 *
 * Invariant: a relative import stays inside the scope (the agent's folder,
 * or one package's folder) of the module that makes it; a bare import
 * resolves only through the bundle's import table (`BareImports`), which
 * the kernel fills for each scope with the packages that scope may import
 * (src/agent-packages.ts). Anything else — a builtin, an unlisted package —
 * is ZT_MODULE_FORBIDDEN.
 */
import { harden } from './harden.js';
import { ZtError } from './errors.js';

export const AGENT_ROOT_URL = 'file:///agent/';
export const PACKAGES_ROOT_URL = 'file:///packages/';

/** Scope URL (`file:///agent/`, `file:///packages/<name>/`) → bare specifier → the module URL it resolves to. */
export type BareImports = Readonly<Record<string, Readonly<Record<string, string>>>>;

const isRelativeOrAbsolute = (specifier: string) =>
  specifier.startsWith('./') || specifier.startsWith('../') || specifier.startsWith('/');

/** The scope a module URL belongs to: the agent's root, or its package's root; undefined for anything else. */
export const scopeOf = (url: string): string | undefined => {
  if (url.startsWith(AGENT_ROOT_URL)) return AGENT_ROOT_URL;
  if (!url.startsWith(PACKAGES_ROOT_URL)) return undefined;
  const parts = url.slice(PACKAGES_ROOT_URL.length).split('/');
  const length = parts[0]?.startsWith('@') ? 2 : 1;
  if (parts.length <= length || parts.slice(0, length).some(p => p === '')) return undefined;
  return `${PACKAGES_ROOT_URL}${parts.slice(0, length).join('/')}/`;
};
harden(scopeOf);

/** Who is importing, for reasons: "the agent" or "package <name>". */
export const describeScope = (scope: string | undefined): string =>
  scope === undefined || scope === AGENT_ROOT_URL ? 'the agent' : `package ${scope.slice(PACKAGES_ROOT_URL.length, -1)}`;
harden(describeScope);

/** `node:*`, and bare names Node resolves to builtins. Always refused; listed here so the reason can say so. */
export const isBuiltinSpecifier = (specifier: string): boolean =>
  specifier.startsWith('node:') || NODE_BUILTINS.has(specifier.split('/')[0] as string);
harden(isBuiltinSpecifier);

const NODE_BUILTINS: ReadonlySet<string> = new Set(
  ('assert async_hooks buffer child_process cluster console constants crypto dgram diagnostics_channel dns domain events fs http http2 https ' +
    'inspector module net os path perf_hooks process punycode querystring readline repl stream string_decoder sys timers tls trace_events tty url util ' +
    'v8 vm wasi worker_threads zlib').split(' '),
);

/**
 * Resolves `specifier` from `referrer` (a module URL of the agent or of a
 * package), or throws a ZT_MODULE_* ZtError whose reason names only the
 * specifier and the importer.
 */
export const resolveModuleSpecifier = (specifier: string, referrer: string, imports: BareImports = {}): string => {
  const scope = scopeOf(referrer);
  if (typeof specifier !== 'string' || !isRelativeOrAbsolute(specifier)) {
    const text = JSON.stringify(String(specifier));
    if (typeof specifier === 'string' && !isBuiltinSpecifier(specifier) && scope !== undefined) {
      const table = Object.hasOwn(imports, scope) ? imports[scope] : undefined;
      if (table && Object.hasOwn(table, specifier)) return table[specifier] as string;
    }
    if (scope === undefined || scope === AGENT_ROOT_URL) {
      if (scope !== undefined && Object.hasOwn(imports, scope) && !isBuiltinSpecifier(String(specifier))) {
        throw new ZtError('ZT_MODULE_FORBIDDEN', `the agent cannot import ${text}: it is not one of the packages (or their entries) loaded for it`);
      }
      throw new ZtError('ZT_MODULE_FORBIDDEN', `cannot import ${text}: builtins and packages are not available to agents`);
    }
    throw new ZtError('ZT_MODULE_FORBIDDEN', `${describeScope(scope)} cannot import ${text}: builtins and packages not on its list of imports are not available`);
  }
  let url: URL;
  try {
    url = new URL(specifier, referrer);
  } catch {
    throw new ZtError('ZT_MODULE_OUTSIDE', `cannot resolve ${JSON.stringify(specifier)}`);
  }
  if (scope === undefined || url.protocol !== 'file:' || url.search !== '' || url.hash !== '' || !url.href.startsWith(scope)) {
    const where = scope === undefined || scope === AGENT_ROOT_URL ? "the agent's folder" : `the folder of ${describeScope(scope)}`;
    throw new ZtError('ZT_MODULE_OUTSIDE', `cannot import ${JSON.stringify(specifier)}: it is outside ${where}`);
  }
  return url.href;
};
harden(resolveModuleSpecifier);

/** Resolves `specifier` from a module of the agent (no packages). */
export const resolveAgentSpecifier = (specifier: string, referrer: string): string => resolveModuleSpecifier(specifier, referrer);
harden(resolveAgentSpecifier);
