/**
 * Loads an agent's module graph for its vat. The kernel reads and parses the
 * agent's files (so vats never need file-system access or a parser) and
 * hands the vat a map of virtual specifiers (`file:///agent/...`) to
 * precompiled module records.
 *
 * Invariant: every module in the map is a regular file inside the agent's
 * folder after symlink resolution. Importing a builtin (`node:fs`, `fs`) or a
 * package fails with ZT_MODULE_FORBIDDEN, a path that leaves the folder with
 * ZT_MODULE_OUTSIDE, a missing file with ZT_MODULE_NOT_FOUND, a parse error
 * with ZT_MODULE_SYNTAX, modules larger than `MODULE_LIMITS` (each sized
 * before it is read) with ZT_MODULE_TOO_LARGE — at load time, before any agent code runs.
 */
import { harden } from './harden.js';
import type { ModuleSource } from '@endo/module-source';
import { ZtError, codeOf, reasonOf } from './errors.js';
import { AGENT_ROOT_URL, resolveAgentSpecifier } from './agent-specifiers.js';
import { normalizePath } from './paths.js';

export interface ModulePowers {
  realpath(path: string): Promise<string>;
  isFile(path: string): Promise<boolean>;
  isDirectory(path: string): Promise<boolean>;
  /**
   * Reads a module of at most `maxBytes` bytes, checking its size before
   * reading anything; resolves `null` for a larger file.
   */
  readText(path: string, maxBytes: number): Promise<string | null>;
  /**
   * Parses one module (throws on a syntax error). The parser is large; the
   * Node adapter loads it at the first launch, not when the kernel starts.
   */
  parseModule(text: string, url: string): Promise<ModuleSource>;
}

export interface AgentBundle {
  readonly entry: string;
  readonly modules: Readonly<Record<string, unknown>>;
  /** Host folder the agent was loaded from (operator-facing, never sent to the vat). */
  readonly folder: string;
}

export const MODULE_LIMITS = harden({ maxModules: 256, maxTotalBytes: 8 * 1024 * 1024 });

const utf8Length = (s: string): number => new TextEncoder().encode(s).length;

/** A parsed module as the plain record a vat's Compartment loads. */
export const toModuleRecord = (source: ModuleSource): unknown =>
  harden(JSON.parse(JSON.stringify({ ...source })));
harden(toModuleRecord);
const toRecord = toModuleRecord;

/**
 * `modulePath` names the agent: a `.js`/`.mjs` file (its folder is the
 * agent's folder) or a folder containing `index.js`.
 */
/**
 * Parsed modules keyed by specifier and exact source text, so relaunching
 * an unchanged agent skips parsing. Bounded by the caller (see `makeModuleCache`).
 */
export type ModuleCache = Map<string, { readonly record: unknown; readonly imports: readonly string[] }>;

export const loadAgentBundle = async (powers: ModulePowers, modulePath: string, cache?: ModuleCache): Promise<AgentBundle> => {
  if (typeof modulePath !== 'string' || !modulePath.startsWith('/')) {
    throw new ZtError('ZT_BAD_ARGUMENT', 'module must be an absolute path to a file or folder');
  }
  let real: string;
  try {
    real = await powers.realpath(normalizePath(modulePath));
  } catch {
    throw new ZtError('ZT_MODULE_NOT_FOUND', `agent module ${modulePath} does not exist`);
  }
  let folder: string;
  let entryFile: string;
  if (await powers.isDirectory(real)) {
    folder = real;
    entryFile = `${real}/index.js`;
  } else {
    folder = real.slice(0, real.lastIndexOf('/')) || '/';
    entryFile = real;
  }
  const folderPrefix = folder === '/' ? '/' : `${folder}/`;
  const toVirtual = (file: string) => `${AGENT_ROOT_URL}${file.slice(folderPrefix.length).split('/').map(encodeURIComponent).join('/')}`;
  const toHost = (virtual: string): string => {
    const rel = decodeURIComponent(new URL(virtual).pathname.slice('/agent/'.length));
    const host = normalizePath(`${folderPrefix}${rel}`);
    if (!host.startsWith(folderPrefix)) throw new ZtError('ZT_MODULE_OUTSIDE', `${virtual} leaves the agent's folder`);
    return host;
  };

  const modules: Record<string, unknown> = {};
  let totalBytes = 0;
  const entry = toVirtual(entryFile);
  const queue = [entry];
  const seen = new Set<string>(queue);
  while (queue.length > 0) {
    const virtual = queue.shift() as string;
    const display = virtual.slice(AGENT_ROOT_URL.length - 1);
    const hostPath = toHost(virtual);
    let realFile: string;
    try {
      realFile = await powers.realpath(hostPath);
    } catch {
      throw new ZtError('ZT_MODULE_NOT_FOUND', `${display} does not exist in the agent's folder`);
    }
    if (!realFile.startsWith(folderPrefix)) throw new ZtError('ZT_MODULE_OUTSIDE', `${display} resolves outside the agent's folder`);
    if (!(await powers.isFile(realFile))) throw new ZtError('ZT_MODULE_NOT_FOUND', `${display} is not a file`);
    // Sized before it is read: what is left of the agent's budget, or ZT_MODULE_TOO_LARGE.
    const text = await powers.readText(realFile, MODULE_LIMITS.maxTotalBytes - totalBytes);
    if (text === null) throw new ZtError('ZT_MODULE_TOO_LARGE', `the agent's modules exceed ${MODULE_LIMITS.maxTotalBytes} bytes (at ${display})`);
    totalBytes += utf8Length(text);
    const cacheKey = `${virtual}\n${text}`;
    let parsed = cache?.get(cacheKey);
    if (!parsed) {
      let source: ModuleSource;
      try {
        source = await powers.parseModule(text, virtual);
      } catch (err) {
        throw new ZtError('ZT_MODULE_SYNTAX', `${display}: ${String((err as Error)?.message ?? err).split('\n')[0]}`);
      }
      parsed = harden({ record: toRecord(source), imports: [...source.imports] });
      cache?.set(cacheKey, parsed);
    }
    modules[virtual] = parsed.record;
    for (const specifier of parsed.imports) {
      let resolved: string;
      try {
        resolved = resolveAgentSpecifier(specifier, virtual);
      } catch (err) {
        const code = codeOf(err) ?? 'ZT_MODULE_FORBIDDEN';
        throw new ZtError(code, `${display}: ${reasonOf(err) ?? 'cannot be imported'}`);
      }
      if (!seen.has(resolved)) {
        if (seen.size >= MODULE_LIMITS.maxModules) throw new ZtError('ZT_MODULE_FORBIDDEN', `the agent has more than ${MODULE_LIMITS.maxModules} modules`);
        seen.add(resolved);
        queue.push(resolved);
      }
    }
  }
  return harden({ entry, modules: harden(modules), folder });
};
harden(loadAgentBundle);

/**
 * A trivial agent (`main` returns its input): pooled vats run it before
 * they are needed so the module-loading and run paths of a fresh worker are
 * compiled and warm when a real agent arrives.
 */
export const makePrewarmBundle = async (powers: Pick<ModulePowers, 'parseModule'>): Promise<AgentBundle> => {
  const entry = `${AGENT_ROOT_URL}index.js`;
  const source = await powers.parseModule('export default async function main({ input }) { return input; }\n', entry);
  return harden({ entry, modules: harden({ [entry]: toRecord(source) }), folder: '(prewarm)' });
};
harden(makePrewarmBundle);
