/**
 * How an agent's module specifiers resolve. Shared by the kernel (which walks
 * and parses the module graph) and the agent vat (which resolves inside the
 * Compartment), so both refuse exactly the same imports.
 *
 * Agents see their folder as the virtual root `file:///agent/`; no host path
 * is ever revealed to them.
 */
import { harden } from './harden.js';
import { ZtError } from './errors.js';

export const AGENT_ROOT_URL = 'file:///agent/';

const isRelativeOrAbsolute = (specifier: string) =>
  specifier.startsWith('./') || specifier.startsWith('../') || specifier.startsWith('/');

/** Resolves `specifier` from `referrer`, or throws a ZT_MODULE_* ZtError whose reason names only the specifier. */
export const resolveAgentSpecifier = (specifier: string, referrer: string): string => {
  if (typeof specifier !== 'string' || !isRelativeOrAbsolute(specifier)) {
    throw new ZtError('ZT_MODULE_FORBIDDEN', `cannot import ${JSON.stringify(String(specifier))}: builtins and packages are not available to agents`);
  }
  let url: URL;
  try {
    url = new URL(specifier, referrer);
  } catch {
    throw new ZtError('ZT_MODULE_OUTSIDE', `cannot resolve ${JSON.stringify(specifier)}`);
  }
  if (url.protocol !== 'file:' || url.search !== '' || url.hash !== '' || !url.href.startsWith(AGENT_ROOT_URL)) {
    throw new ZtError('ZT_MODULE_OUTSIDE', `cannot import ${JSON.stringify(specifier)}: it is outside the agent's folder`);
  }
  return url.href;
};
harden(resolveAgentSpecifier);
