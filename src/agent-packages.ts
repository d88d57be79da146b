/**
 * Packages for agents: the operator lists npm packages an agent may import
 * (`launchAgent({ packages })`, `runCode({ packages })`), resolved from the
 * runtime's packages folder (`packagesDir`, default the host's
 * `./node_modules`) by the kernel, with the kernel's file powers, and loaded
 * into the agent's Compartment as part of its confined module graph.
 *
 * The shape: `packages: ['yaml']` or `packages: { yaml: {}, foo: { imports:
 * ['bar'] } }`. The agent may import every listed package; a package may
 * import only the packages named in its own `imports` (each of which must be
 * listed too) and itself — the LavaMoat idea, one allowlist per package.
 *
 * Invariants (each checked here, before any agent code runs):
 * - A package's modules are regular files inside its own folder after
 *   symlink resolution (ZT_MODULE_OUTSIDE otherwise), reached through its
 *   `package.json` (`exports` under the `import`, `module` and `default`
 *   conditions — never `node` or `require` — then `module`, then `main`).
 * - Only ES modules load: `.mjs`, or `.js` under a `package.json` with
 *   `"type": "module"` (or a package whose entry is its `module` field).
 *   CommonJS is refused with ZT_MODULE_FORBIDDEN, saying so: it would need
 *   `require`, which no Compartment here has.
 * - A bare import that is a builtin (`node:fs`, `fs`) or a package not on
 *   the importer's list is ZT_MODULE_FORBIDDEN naming the importer. The
 *   vat refuses the same (src/agent-specifiers.ts): only the import table
 *   built here resolves bare specifiers there.
 * - Packages run in the agent's Compartment: its frozen globals, its
 *   endowments, nothing more. A package grants no power; it is code the
 *   operator chose to trust as much as the agent's own.
 * - The whole graph (agent and packages) stays within `MODULE_LIMITS`; at
 *   most `PACKAGE_LIMITS.maxPackages` packages.
 * - What was loaded is recorded: each package's name, version, number of
 *   files and a SHA-256 over its files' paths and digests.
 */
import { harden } from './harden.js';
import { ZtError } from './errors.js';
import { AGENT_ROOT_URL, PACKAGES_ROOT_URL, describeScope, isBuiltinSpecifier, scopeOf, type BareImports } from './agent-specifiers.js';
import type { ModulePowers } from './agent-modules.js';
import { normalizePath } from './paths.js';

/** What one listed package may import: other listed packages, by name. */
export interface PackagePolicy {
  readonly imports?: readonly string[];
}

/** `launchAgent`/`runCode` option: package names, or names to their policies. */
export type PackagesOption = readonly string[] | Readonly<Record<string, PackagePolicy>>;

/** What a launch record says of a loaded package. */
export interface PackageRecord {
  readonly name: string;
  readonly version: string;
  readonly files: number;
  /** SHA-256 (hex) of the sorted lines `<path in package> <sha256 of file>\n`. */
  readonly sha256: string;
}

export const PACKAGE_LIMITS = harden({ maxPackages: 64, maxManifestBytes: 256 * 1024 });

/** npm's rule for package names (lower case, URL-safe, optionally scoped). */
const PACKAGE_NAME = /^(?:@[a-z0-9~-][a-z0-9._~-]*\/)?[a-z0-9~-][a-z0-9._~-]*$/;

/** Conditions honoured in `exports`, in no particular order (the object's own order decides). */
const CONDITIONS: ReadonlySet<string> = new Set(['import', 'module', 'default']);

/** Checks the option and returns each listed package's allowlist; ZT_BAD_ARGUMENT says what is wrong. */
export const normalizePackages = (option: unknown): ReadonlyMap<string, readonly string[]> => {
  const bad = (reason: string) => new ZtError('ZT_BAD_ARGUMENT', `packages: ${reason}`);
  if (option === undefined) return new Map();
  let entries: [string, unknown][];
  if (Array.isArray(option)) entries = option.map(name => [name as string, {}]);
  else if (option !== null && typeof option === 'object') entries = Object.entries(option);
  else throw bad('an array of package names, or a record of names to { imports?: [names] }');
  if (entries.length > PACKAGE_LIMITS.maxPackages) throw bad(`at most ${PACKAGE_LIMITS.maxPackages} packages`);
  const out = new Map<string, readonly string[]>();
  for (const [name, policy] of entries) {
    if (typeof name !== 'string' || !PACKAGE_NAME.test(name) || name.length > 214) throw bad(`${JSON.stringify(String(name))} is not a package name`);
    if (isBuiltinSpecifier(name)) throw bad(`${name} is a Node builtin; builtins are never available to agents`);
    if (out.has(name)) throw bad(`${name} is listed twice`);
    if (policy === null || typeof policy !== 'object' || Array.isArray(policy)) throw bad(`${name}: a policy is { imports?: [names] }`);
    const extra = Object.keys(policy).filter(k => k !== 'imports');
    if (extra.length > 0) throw bad(`${name}: unknown field ${extra[0]} (a policy is { imports?: [names] })`);
    const imports: unknown = (policy as PackagePolicy).imports ?? [];
    if (!Array.isArray(imports) || imports.some(i => typeof i !== 'string')) throw bad(`${name}: imports must be an array of package names`);
    out.set(name, harden([...(imports as string[])]));
  }
  for (const [name, imports] of out) {
    for (const dep of imports) {
      if (!out.has(dep)) throw bad(`${name} may import ${JSON.stringify(dep)}, which is not listed itself`);
    }
  }
  return out;
};
harden(normalizePackages);

interface Manifest {
  readonly type?: unknown;
  readonly version?: unknown;
  readonly exports?: unknown;
  readonly module?: unknown;
  readonly main?: unknown;
}

interface LoadedPackage {
  readonly name: string;
  readonly version: string;
  /** Real host folder, ending in `/`. */
  readonly folderPrefix: string;
  readonly manifest: Manifest;
}

/** The part of a bare specifier naming the package, and the subpath (`.` or `./x`). */
const splitSpecifier = (specifier: string): { name: string; subpath: string } => {
  const parts = specifier.split('/');
  const length = specifier.startsWith('@') ? 2 : 1;
  const rest = parts.slice(length).join('/');
  return { name: parts.slice(0, length).join('/'), subpath: rest === '' ? '.' : `./${rest}` };
};

/** An `exports` target under our conditions: a `./` path, or undefined if none applies. */
const pickTarget = (target: unknown, depth = 0): string | undefined => {
  if (depth > 16) return undefined;
  if (typeof target === 'string') return target.startsWith('./') ? target : undefined;
  if (Array.isArray(target)) {
    for (const t of target) {
      const picked = pickTarget(t, depth + 1);
      if (picked !== undefined) return picked;
    }
    return undefined;
  }
  if (target !== null && typeof target === 'object') {
    for (const [condition, value] of Object.entries(target)) {
      if (!CONDITIONS.has(condition)) continue;
      const picked = pickTarget(value, depth + 1);
      if (picked !== undefined) return picked;
    }
  }
  return undefined;
};

/** The file `subpath` names in a package, per its manifest; `fromModuleField` when the `module` field chose it. */
const entryOf = (manifest: Manifest, subpath: string): { target: string; fromModuleField: boolean } | undefined => {
  const { exports } = manifest;
  if (exports === undefined || exports === null) {
    if (subpath !== '.') return { target: subpath, fromModuleField: false };
    if (typeof manifest.module === 'string') return { target: `./${manifest.module.replace(/^\.\//, '')}`, fromModuleField: true };
    const main = typeof manifest.main === 'string' ? manifest.main.replace(/^\.\//, '') : 'index.js';
    return { target: `./${main}`, fromModuleField: false };
  }
  const isSubpathMap = typeof exports === 'object' && !Array.isArray(exports) && Object.keys(exports).some(k => k.startsWith('.'));
  if (!isSubpathMap) {
    const target = subpath === '.' ? pickTarget(exports) : undefined;
    return target === undefined ? undefined : { target, fromModuleField: false };
  }
  const map = exports as Record<string, unknown>;
  if (Object.hasOwn(map, subpath)) {
    const target = pickTarget(map[subpath]);
    return target === undefined ? undefined : { target, fromModuleField: false };
  }
  for (const [key, value] of Object.entries(map)) {
    const star = key.indexOf('*');
    if (star < 0 || key.indexOf('*', star + 1) >= 0) continue;
    const prefix = key.slice(0, star);
    const suffix = key.slice(star + 1);
    if (subpath.length >= key.length - 1 && subpath.startsWith(prefix) && subpath.endsWith(suffix)) {
      const middle = subpath.slice(prefix.length, subpath.length - suffix.length);
      const target = pickTarget(value);
      if (target !== undefined) return { target: target.split('*').join(middle), fromModuleField: false };
    }
  }
  return undefined;
};

/**
 * The kernel's view of a launch's packages: resolves bare imports (checking
 * each importer's list), maps package URLs to host files, admits only ES
 * modules, and keeps the import table and the digests for the record.
 */
export const makePackageGraph = (
  powers: ModulePowers,
  options: { packagesDir: string | undefined; policies: ReadonlyMap<string, readonly string[]>; sha256Hex: (text: string) => string },
) => {
  const { policies, sha256Hex } = options;
  const loaded = new Map<string, Promise<LoadedPackage>>();
  const moduleEntry = new Set<string>();
  const table: Record<string, Record<string, string>> = {};
  const files = new Map<string, Map<string, string>>();
  const typeOfFolder = new Map<string, Promise<string | undefined>>();

  const readManifest = async (file: string, display: string): Promise<Manifest> => {
    const text = await powers.readText(file, PACKAGE_LIMITS.maxManifestBytes);
    if (text === null) throw new ZtError('ZT_MODULE_TOO_LARGE', `${display} is larger than ${PACKAGE_LIMITS.maxManifestBytes} bytes`);
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      return parsed as Manifest;
    } catch {
      throw new ZtError('ZT_MODULE_SYNTAX', `${display} is not a JSON object`);
    }
  };

  const loadPackage = (name: string): Promise<LoadedPackage> => {
    let known = loaded.get(name);
    if (!known) {
      known = (async () => {
        const { packagesDir } = options;
        if (packagesDir === undefined) throw new ZtError('ZT_BAD_ARGUMENT', 'packages were listed, but the runtime has no packagesDir');
        let real: string;
        try {
          real = await powers.realpath(normalizePath(`${packagesDir}/${name}`));
          if (!(await powers.isDirectory(real))) throw new Error('not a folder');
        } catch {
          throw new ZtError('ZT_MODULE_NOT_FOUND', `package ${name} is not installed in the packages folder`);
        }
        const manifest = await readManifest(`${real}/package.json`, `package ${name}'s package.json`);
        const version = typeof manifest.version === 'string' ? manifest.version.slice(0, 64) : '(none)';
        return harden({ name, version, folderPrefix: real === '/' ? '/' : `${real}/`, manifest });
      })();
      loaded.set(name, known);
    }
    return known;
  };

  /** The URL a listed package's `subpath` resolves to. */
  const resolveEntry = async (name: string, subpath: string): Promise<string> => {
    const pkg = await loadPackage(name);
    const entry = entryOf(pkg.manifest, subpath);
    if (!entry) throw new ZtError('ZT_MODULE_NOT_FOUND', `package ${name} exports no ${subpath === '.' ? 'main entry' : subpath} for ES module imports`);
    const rel = normalizePath(`/${entry.target.slice(2)}`).slice(1);
    if (rel === '' || rel.split('/').includes('node_modules')) throw new ZtError('ZT_MODULE_OUTSIDE', `package ${name} points ${subpath} outside its folder`);
    const url = `${PACKAGES_ROOT_URL}${name}/${rel.split('/').map(encodeURIComponent).join('/')}`;
    if (entry.fromModuleField) moduleEntry.add(name);
    return url;
  };

  /** Resolves a bare `specifier` imported by `referrer`, or refuses it naming the importer. */
  const resolveBare = async (specifier: string, referrer: string): Promise<string> => {
    const scope = scopeOf(referrer);
    const importer = describeScope(scope);
    const text = JSON.stringify(specifier);
    if (isBuiltinSpecifier(specifier)) throw new ZtError('ZT_MODULE_FORBIDDEN', `${importer} cannot import ${text}: builtins are not available to agents or their packages`);
    const { name, subpath } = splitSpecifier(specifier);
    const self = scope === undefined || scope === AGENT_ROOT_URL ? undefined : scope.slice(PACKAGES_ROOT_URL.length, -1);
    const allowed = self === undefined ? policies.has(name) : name === self || (policies.get(self) ?? []).includes(name);
    if (!allowed || !PACKAGE_NAME.test(name)) {
      throw new ZtError('ZT_MODULE_FORBIDDEN', self === undefined
        ? `the agent cannot import ${text}: it is not one of the packages listed for it`
        : `${importer} cannot import ${text}: it is not on that package's list of imports`);
    }
    const url = await resolveEntry(name, subpath);
    const key = scope as string;
    (table[key] ??= {})[specifier] = url;
    return url;
  };

  /** The URLs of every listed package's main entry, each importable by the agent (loaded whether or not it is imported). */
  const roots = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const name of policies.keys()) {
      // A package that exports only subpaths has no main entry to load ahead.
      if (entryOf((await loadPackage(name)).manifest, '.') === undefined) continue;
      out.push(await resolveBare(name, `${AGENT_ROOT_URL}(packages)`));
    }
    return out;
  };

  /** Where a package URL lives on the host; its scope's real folder. */
  const locate = async (virtual: string): Promise<{ hostPath: string; folderPrefix: string; display: string }> => {
    const scope = scopeOf(virtual);
    if (scope === undefined || scope === AGENT_ROOT_URL) throw new ZtError('ZT_MODULE_OUTSIDE', `${virtual} is not a package module`);
    const name = scope.slice(PACKAGES_ROOT_URL.length, -1);
    const pkg = await loadPackage(name);
    const rel = decodeURIComponent(new URL(virtual).pathname.slice(`/packages/${name}/`.length));
    const hostPath = normalizePath(`${pkg.folderPrefix}${rel}`);
    const display = `${name}/${rel}`;
    if (!hostPath.startsWith(pkg.folderPrefix)) throw new ZtError('ZT_MODULE_OUTSIDE', `${display} leaves the folder of package ${name}`);
    return { hostPath, folderPrefix: pkg.folderPrefix, display };
  };

  /** The `type` of the nearest package.json between a file's folder and its package's root. */
  const folderType = (folder: string, root: string): Promise<string | undefined> => {
    let known = typeOfFolder.get(folder);
    if (!known) {
      known = (async () => {
        const file = `${folder}/package.json`;
        if (await powers.isFile(file).catch(() => false)) {
          const manifest = await readManifest(file, 'a package.json');
          return typeof manifest.type === 'string' ? manifest.type : '(unset)';
        }
        if (`${folder}/` === root || !folder.startsWith(root)) return undefined;
        return folderType(folder.slice(0, folder.lastIndexOf('/')), root);
      })();
      typeOfFolder.set(folder, known);
    }
    return known;
  };

  /** Refuses a package file that is not an ES module (CommonJS, JSON, anything else). */
  const admit = async (realFile: string, virtual: string, folderPrefix: string, display: string): Promise<void> => {
    const name = (scopeOf(virtual) as string).slice(PACKAGES_ROOT_URL.length, -1);
    if (realFile.endsWith('.mjs')) return;
    if (realFile.endsWith('.js')) {
      const type = await folderType(realFile.slice(0, realFile.lastIndexOf('/')), folderPrefix);
      // `"type": "module"`; or, for a package reached through its `module`
      // field, any `.js` not explicitly CommonJS (the bundlers' convention).
      if (type === 'module' || (moduleEntry.has(name) && type !== 'commonjs')) return;
    }
    throw new ZtError('ZT_MODULE_FORBIDDEN', `${display} is not an ES module (CommonJS or another format): only ES module packages can be loaded`);
  };

  /** Notes a package file's text, for the digest. */
  const noteFile = (virtual: string, text: string) => {
    const scope = scopeOf(virtual) as string;
    const name = scope.slice(PACKAGES_ROOT_URL.length, -1);
    let map = files.get(name);
    if (!map) files.set(name, (map = new Map()));
    map.set(virtual.slice(scope.length), sha256Hex(text));
  };

  /** The import table for the vat. */
  const imports = (): BareImports => harden(Object.fromEntries(Object.entries(table).map(([scope, entries]) => [scope, { ...entries }])));

  /** What the launch record says of the packages loaded. */
  const records = async (): Promise<PackageRecord[]> => {
    const out: PackageRecord[] = [];
    for (const [name, map] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const pkg = await loadPackage(name);
      const lines = [...map].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, digest]) => `${path} ${digest}\n`);
      out.push(harden({ name, version: pkg.version, files: map.size, sha256: sha256Hex(lines.join('')) }));
    }
    return harden(out);
  };

  return harden({ resolveBare, roots, locate, admit, noteFile, imports, records });
};
harden(makePackageGraph);

export type PackageGraph = ReturnType<typeof makePackageGraph>;
