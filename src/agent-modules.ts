/**
 * Loads an agent's module graph for its vat. The kernel reads and parses the
 * agent's files (so vats never need file-system access or a parser) and
 * hands the vat a map of virtual specifiers (`file:///agent/...`) to
 * precompiled module records.
 *
 * Invariant: every module in the map is a regular file inside the agent's
 * folder, or inside the folder of a package the launch lists (see
 * src/agent-packages.ts), after symlink resolution. Importing a builtin
 * (`node:fs`, `fs`) or a package not on the importer's list fails with
 * ZT_MODULE_FORBIDDEN, a path that leaves the folder with
 * ZT_MODULE_OUTSIDE, a missing file with ZT_MODULE_NOT_FOUND, a parse error
 * with ZT_MODULE_SYNTAX, modules larger than `MODULE_LIMITS` (each sized
 * before it is read; agent and packages together) with ZT_MODULE_TOO_LARGE —
 * at load time, before any agent code runs.
 */
import { harden } from './harden.js';
import type { ModuleSource } from '@endo/module-source';
import { ZtError, codeOf, reasonOf } from './errors.js';
import { AGENT_ROOT_URL, describeScope, resolveModuleSpecifier, scopeOf, type BareImports } from './agent-specifiers.js';
import type { PackageGraph, PackageRecord } from './agent-packages.js';
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
  /** How bare specifiers resolve, per scope (packages only; src/agent-specifiers.ts). */
  readonly imports?: BareImports;
  /** The packages loaded, for the launch record (operator-facing, never sent to the vat). */
  readonly packages?: readonly PackageRecord[];
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

/** Where the graph's modules come from. */
interface GraphSources {
  /** The agent's real folder, ending in `/`; absent for submitted code (no folder). */
  readonly agentFolderPrefix?: string;
  /** Modules already parsed (submitted code), by URL. */
  readonly preloaded?: ModuleCache;
  /** The launch's packages, if it lists any. */
  readonly packages?: PackageGraph;
}

/**
 * Walks a module graph from `roots`: each module is located (agent folder
 * or package folder), checked to be a regular file inside that folder after
 * symlink resolution, sized, read, parsed, and its imports resolved.
 */
const walkModuleGraph = async (powers: ModulePowers, roots: readonly string[], sources: GraphSources, cache?: ModuleCache) => {
  const { agentFolderPrefix, preloaded, packages } = sources;
  const modules: Record<string, unknown> = {};
  let totalBytes = 0;
  const queue = [...roots];
  const seen = new Set<string>(queue);
  const locateAgent = (virtual: string) => {
    const display = virtual.slice(AGENT_ROOT_URL.length - 1);
    if (agentFolderPrefix === undefined) throw new ZtError('ZT_MODULE_FORBIDDEN', `${display}: submitted code has no folder to import from`);
    const rel = decodeURIComponent(new URL(virtual).pathname.slice('/agent/'.length));
    const hostPath = normalizePath(`${agentFolderPrefix}${rel}`);
    if (!hostPath.startsWith(agentFolderPrefix)) throw new ZtError('ZT_MODULE_OUTSIDE', `${virtual} leaves the agent's folder`);
    return { hostPath, folderPrefix: agentFolderPrefix, display };
  };
  while (queue.length > 0) {
    const virtual = queue.shift() as string;
    let parsed = preloaded?.get(virtual);
    let display = virtual.slice(AGENT_ROOT_URL.length - 1);
    if (!parsed) {
      const inAgent = scopeOf(virtual) === AGENT_ROOT_URL;
      if (!inAgent && !packages) throw new ZtError('ZT_MODULE_FORBIDDEN', `${virtual} is not part of the agent`);
      const located = inAgent ? locateAgent(virtual) : await (packages as PackageGraph).locate(virtual);
      const { hostPath, folderPrefix } = located;
      display = located.display;
      const where = inAgent ? "the agent's folder" : `the folder of ${describeScope(scopeOf(virtual))}`;
      let realFile: string;
      try {
        realFile = await powers.realpath(hostPath);
      } catch {
        throw new ZtError('ZT_MODULE_NOT_FOUND', `${display} does not exist in ${where}`);
      }
      if (!realFile.startsWith(folderPrefix)) throw new ZtError('ZT_MODULE_OUTSIDE', `${display} resolves outside ${where}`);
      if (!(await powers.isFile(realFile))) throw new ZtError('ZT_MODULE_NOT_FOUND', `${display} is not a file`);
      if (!inAgent) await (packages as PackageGraph).admit(realFile, virtual, folderPrefix, display);
      // Sized before it is read: what is left of the agent's budget, or ZT_MODULE_TOO_LARGE.
      const text = await powers.readText(realFile, MODULE_LIMITS.maxTotalBytes - totalBytes);
      if (text === null) throw new ZtError('ZT_MODULE_TOO_LARGE', `the agent's modules exceed ${MODULE_LIMITS.maxTotalBytes} bytes (at ${display})`);
      totalBytes += utf8Length(text);
      if (!inAgent) (packages as PackageGraph).noteFile(virtual, text);
      const cacheKey = `${virtual}\n${text}`;
      parsed = cache?.get(cacheKey);
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
    }
    modules[virtual] = parsed.record;
    for (const specifier of parsed.imports) {
      let resolved: string;
      try {
        resolved = packages && !isRelativeOrAbsolute(specifier) ? await packages.resolveBare(specifier, virtual) : resolveModuleSpecifier(specifier, virtual);
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
  return harden({
    modules: harden(modules),
    ...(packages ? { imports: packages.imports(), packages: await packages.records() } : {}),
  });
};

const isRelativeOrAbsolute = (specifier: string) => specifier.startsWith('./') || specifier.startsWith('../') || specifier.startsWith('/');

export const loadAgentBundle = async (powers: ModulePowers, modulePath: string, cache?: ModuleCache, packages?: PackageGraph): Promise<AgentBundle> => {
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
  const entry = `${AGENT_ROOT_URL}${entryFile.slice(folderPrefix.length).split('/').map(encodeURIComponent).join('/')}`;
  const roots = [entry, ...(packages ? await packages.roots() : [])];
  const graph = await walkModuleGraph(powers, roots, { agentFolderPrefix: folderPrefix, ...(packages ? { packages } : {}) }, cache);
  return harden({ entry, folder, ...graph });
};
harden(loadAgentBundle);

/**
 * Adds a launch's packages to a bundle of submitted code (one parsed
 * module, no folder): the code may import the listed packages, nothing else.
 */
export const addPackagesToBundle = async (powers: ModulePowers, bundle: AgentBundle, packages: PackageGraph, cache?: ModuleCache): Promise<AgentBundle> => {
  const preloaded: ModuleCache = new Map();
  for (const [url, record] of Object.entries(bundle.modules)) {
    preloaded.set(url, harden({ record, imports: [...((record as { imports?: string[] }).imports ?? [])] }));
  }
  const roots = [bundle.entry, ...(await packages.roots())];
  const graph = await walkModuleGraph(powers, roots, { preloaded, packages }, cache);
  return harden({ entry: bundle.entry, folder: bundle.folder, ...graph });
};
harden(addPackagesToBundle);


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
