/**
 * The launcher: how an agent run is admitted and started, for
 * `launchAgent` (a module graph from disk) and `runCode` (submitted code,
 * code-run.ts) alike.
 *
 * Invariants:
 * - Nothing starts before every check has passed: the agent is registered
 *   and live, it holds every capability it is to be given and each is
 *   live, its input is plain data, its limits are valid, its isolation
 *   level is established (or refused, naming what is missing, and the
 *   refusal recorded). A launch names only the capabilities its vat gets.
 * - A launch's own deadline and memory limit win over the runtime's
 *   defaults; the per-vat budgets it names are checked (vat-budget.ts).
 */
import { harden } from './harden.js';
import { addPackagesToBundle, loadAgentBundle, type AgentBundle, type ModuleCache, type ModulePowers } from './agent-modules.js';
import { makePackageGraph, normalizePackages, type PackageGraph, type PackagesOption } from './agent-packages.js';
import { ZtError, codeOf, reasonOf } from './errors.js';
import { assertIsolationAvailable, ISOLATION_LEVELS, isIsolationLevel, type IsolationProbe } from './isolation/process-vat.js';
import type { Kernel } from './kernel.js';
import { copyPlainData } from './plain-data.js';
import { resolveVatBudgets } from './vat-budget.js';
import type { AgentHandle, VatHost, VatIsolation, VatLimits } from './vat-host.js';

/** What the launcher may touch: the module reader, the kernel's clock and digest, the isolation probe. */
export interface LauncherPowers {
  readonly modules: ModulePowers;
  readonly now: () => number;
  readonly sha256Hex: (text: string) => string;
  readonly probeIsolation: () => Promise<IsolationProbe>;
}

export interface LaunchOptions {
  readonly agentId: string;
  /** Absolute path of the agent's entry module, or of its folder (entry `index.js`). */
  readonly module: string;
  /**
   * The capabilities to hand to the agent, all held by it; nothing else is
   * reachable. An array of ids (`caps[id]` in the agent), or a record of
   * names to ids (`caps[name]`).
   */
  readonly capabilities?: readonly string[] | Readonly<Record<string, string>>;
  /** Plain data given to the agent as `input`. */
  readonly input?: unknown;
  readonly limits?: Partial<VatLimits>;
  /**
   * `process` (default, unless the runtime's `isolation` option names
   * another): a child process under OS containment (bubblewrap namespaces,
   * seccomp, rlimits, Node's permission model); fails with
   * ZT_ISOLATION_UNAVAILABLE, naming what to install, where it cannot be
   * established. `worker`: a worker thread of the kernel's process, only
   * when named (a SES bug is then a host compromise; memory limits cover the
   * JS heap only). `process-weak`: `process` without bubblewrap, only when
   * named; every record of the agent then says so. See docs/ISOLATION.md.
   */
  readonly isolation?: VatIsolation;
  /**
   * Packages the agent may import, resolved from the runtime's
   * `packagesDir` (ES modules only): `['yaml']`, or a record of names to
   * `{ imports?: [names] }`, the listed packages that package may itself
   * import (default none). See src/agent-packages.ts.
   */
  readonly packages?: PackagesOption;
}

/** What the kernel vat receives for a launch. */
export type LaunchSpec = LaunchOptions;

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/;

export const positiveInt = (name: string, value: unknown, fallback: number): number => {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new ZtError('ZT_BAD_ARGUMENT', `${name} must be a positive integer`);
  }
  return value;
};
harden(positiveInt);

export const isRecord = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);
harden(isRecord);

/** A launch checked and admitted: what its vat is to be given, and where. */
export interface LaunchPlan {
  readonly agentId: string;
  readonly capabilityIds: readonly string[];
  readonly names?: Readonly<Record<string, string>>;
  readonly input: unknown;
  readonly limits: VatLimits;
  readonly isolation: VatIsolation;
  /** The packages it may import, each with the packages it may import in turn; absent when none. */
  readonly packages?: ReadonlyMap<string, readonly string[]>;
}

/** What a launch may add to its run: fields of its `agent.launched` record, an observer. */
export type LaunchExtras = Pick<Parameters<VatHost['launch']>[0], 'launchRecord' | 'observer'>;

/**
 * The launcher: `admit` checks what an agent is to be given (it must hold
 * every capability, live), its input, limits and isolation level
 * (established or refused, naming what is missing, the refusal recorded
 * with `label` for its module); `start` starts its vat with a bundle;
 * `launchAgent` does both around loading a module graph from disk
 * (confined to its folder). The code runner (code-run.ts) admits, then
 * starts its own bundle.
 */
export const makeLauncher = (ctx: { powers: LauncherPowers; kernel: Kernel; vats: VatHost; defaults: VatLimits; isolation: VatIsolation; packagesDir?: string }) => {
  const { powers, kernel, vats, defaults } = ctx;
  const moduleCache: ModuleCache = new Map();
  let isolationProbe: Promise<IsolationProbe> | undefined;
  const admit = async (spec: Omit<LaunchSpec, 'module'>, label: string): Promise<LaunchPlan> => {
    if (!isRecord(spec)) throw new ZtError('ZT_BAD_ARGUMENT', 'launchAgent needs an options object');
    const { agentId, capabilities = [], input = null } = spec;
    if (!kernel.hasAgent(agentId)) {
      throw new ZtError(kernel.agentActivity(agentId) ? 'ZT_AGENT_REVOKED' : 'ZT_UNKNOWN_AGENT', `agent ${String(agentId)} cannot be launched`);
    }
    if (capabilities === null || typeof capabilities !== 'object') throw new ZtError('ZT_BAD_ARGUMENT', 'capabilities must be an array of ids or a record of names to ids');
    const names = Array.isArray(capabilities) ? undefined : harden({ ...(capabilities as Record<string, string>) });
    const ids: string[] = Array.isArray(capabilities) ? [...(capabilities as string[])] : Object.values(names as Record<string, string>);
    if (names) {
      for (const name of Object.keys(names)) {
        if (!IDENTIFIER.test(name) || name === '__proto__') throw new ZtError('ZT_BAD_ARGUMENT', `capability name ${JSON.stringify(name)} must be an identifier`);
      }
    }
    for (const id of ids) {
      const record = typeof id === 'string' ? kernel.getCapability(id) : undefined;
      if (!record) throw new ZtError('ZT_UNKNOWN_CAPABILITY', `no capability ${String(id)}`);
      if (record.holder !== agentId) throw new ZtError('ZT_WRONG_HOLDER', `capability ${id} is held by another agent`);
      if (record.state !== 'live') throw new ZtError('ZT_REVOKED', `capability ${id} has been revoked`);
    }
    const packages = normalizePackages(spec.packages);
    let inputCopy: unknown;
    try {
      inputCopy = copyPlainData(input);
    } catch (err) {
      throw new ZtError('ZT_BAD_ARGUMENT', `input must be plain data: ${reasonOf(err) ?? 'not plain data'}`);
    }
    if (spec.limits !== undefined && !isRecord(spec.limits)) throw new ZtError('ZT_BAD_ARGUMENT', 'limits must be an object');
    const runLimits: VatLimits = harden({
      // Per-vat budgets (README, "Limits"): an unknown name or a bad value is
      // refused. First, so that the defaults they carry never hide the
      // launch's own deadline and memory limit.
      ...resolveVatBudgets(spec.limits, defaults, ['deadlineMs', 'memoryMb']),
      deadlineMs: positiveInt('limits.deadlineMs', spec.limits?.deadlineMs, defaults.deadlineMs),
      memoryMb: positiveInt('limits.memoryMb', spec.limits?.memoryMb, defaults.memoryMb),
    });
    const isolation: unknown = spec.isolation === undefined ? ctx.isolation : spec.isolation;
    if (!isIsolationLevel(isolation)) throw new ZtError('ZT_BAD_ARGUMENT', `isolation must be one of ${ISOLATION_LEVELS.join(', ')}`);
    if (isolation !== 'worker') {
      // Fail closed: the level is established or the launch is refused, naming what is missing.
      isolationProbe ??= powers.probeIsolation();
      try {
        assertIsolationAvailable(await isolationProbe, isolation);
      } catch (err) {
        await kernel
          .record({ type: 'agent.launch-failed', time: powers.now(), agentId, module: label, isolation, code: codeOf(err) ?? 'ZT_ISOLATION_UNAVAILABLE', message: (err as Error).message })
          .catch(() => undefined);
        throw err;
      }
      if (isolation === 'process-weak') kernel.markWeakIsolation(agentId, isolation);
    }
    return harden({ agentId, capabilityIds: ids, ...(names ? { names } : {}), input: inputCopy, limits: runLimits, isolation, ...(packages.size > 0 ? { packages } : {}) });
  };
  /** The kernel's view of a plan's packages (a fresh one per launch), or undefined when it lists none. */
  const packageGraph = (plan: LaunchPlan): PackageGraph | undefined =>
    plan.packages ? makePackageGraph(powers.modules, { packagesDir: ctx.packagesDir, policies: plan.packages, sha256Hex: powers.sha256Hex }) : undefined;
  /** A bundle of submitted code with the plan's packages added (their graph loaded and checked), or as it is when the plan lists none. */
  const withPackages = async (plan: LaunchPlan, bundle: AgentBundle): Promise<AgentBundle> => {
    const graph = packageGraph(plan);
    if (!graph) return bundle;
    const added = await addPackagesToBundle(powers.modules, bundle, graph, moduleCache);
    if (moduleCache.size > 512) moduleCache.clear();
    return added;
  };
  const start = (plan: LaunchPlan, bundle: AgentBundle, extras: LaunchExtras = {}): AgentHandle => vats.launch({ ...plan, bundle, ...extras });
  const launchAgent = async (spec: LaunchSpec): Promise<AgentHandle> => {
    if (!isRecord(spec)) throw new ZtError('ZT_BAD_ARGUMENT', 'launchAgent needs an options object');
    const { module } = spec;
    const plan = await admit(spec, String(module));
    let bundle;
    try {
      bundle = await loadAgentBundle(powers.modules, module, moduleCache, packageGraph(plan));
      // A simple bound: forget everything when the cache grows past 512 modules.
      if (moduleCache.size > 512) moduleCache.clear();
    } catch (err) {
      const code = codeOf(err) ?? 'ZT_MODULE_SYNTAX';
      await kernel
        .record({ type: 'agent.launch-failed', time: powers.now(), agentId: plan.agentId, module: String(module), code })
        .catch(() => undefined);
      throw err instanceof ZtError ? err : new ZtError(code, 'the agent module could not be loaded');
    }
    return start(plan, bundle);
  };
  return harden({ admit, start, launchAgent, withPackages });
};
harden(makeLauncher);

export type Launcher = ReturnType<typeof makeLauncher>;
