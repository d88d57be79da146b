/**
 * The isolation probe: which levels this machine can establish, judged by
 * running real sandboxes of each level (`ztaas doctor`, and the sandbox's
 * check before it launches a process vat), not assumed from what is
 * installed.
 *
 * Invariants: a level is reported available only when a trial sandbox of
 * exactly the plan a vat would get started and observed its own containment
 * (Node's permission model in force, no writes, no process creation; for
 * `process` also uid `VAT_UID`, no network interface but `lo`, and — with
 * Node's permission model off — the seccomp filter and the read-only mounts
 * on their own). Every shortfall becomes a gap naming what is missing and
 * how to provide it. Writes are tried only inside bubblewrap, where a write
 * that got through lands in the sandbox's own throwaway root.
 *
 * Pure: the host's facts and the power to run a trial come from
 * `process-vat-node-powers.ts`.
 */
import { harden } from '../harden.js';
import { explainTrialFailure, SUPPORTED_NODE_LINES, type Gap, type TrialResult } from './explain.js';
import type { IsolationProbe, LevelReport, ProcessIsolationLevel } from './levels.js';
import { permissionFlags, planProcessVat, staticGaps, VAT_UID, type ProcessVatHost, type ProcessVatPlan } from './process-vat-plan.js';
import { isSeccompArch } from './seccomp.js';

/**
 * The code a probe runs inside a real sandbox of the level: it reports what
 * it can and cannot do, so the probe judges by observation, not assumption.
 * Written in plain JavaScript for `node -e`; prints one JSON line.
 */
export const probeScript = (tryWrite: boolean) => `
const out = { uid: process.getuid(), pid: process.pid };
const fs = process.getBuiltinModule('node:fs');
const os = process.getBuiltinModule('node:os');
const cp = process.getBuiltinModule('node:child_process');
try { out.interfaces = Object.keys(os.networkInterfaces()); } catch (e) { out.interfaces = String(e.code || e.message); }
${tryWrite ? "try { fs.writeFileSync('/zt-probe', 'x'); out.write = 'written'; } catch (e) { out.write = e.code || 'error'; }" : ''}
try { const r = cp.spawnSync(process.execPath, ['-e', '0']); out.spawn = r.error ? (r.error.code || 'error') : 'spawned'; } catch (e) { out.spawn = e.code || 'error'; }
out.permission = typeof process.permission === 'object' && process.permission !== null
  ? { fsWrite: process.permission.has('fs.write'), child: process.permission.has('child') }
  : null;
process.stdout.write(JSON.stringify(out) + '\\n');
`;
harden(probeScript);

/** The time a trial sandbox gets to start and report. */
export const TRIAL_TIMEOUT_MS = 15_000;

export interface ProbePowers {
  readonly host: ProcessVatHost;
  /** Runs `plan` (a `node -e` probe script), stopping it after `TRIAL_TIMEOUT_MS`, and reports how it ended. */
  runTrial(plan: ProcessVatPlan): Promise<TrialResult>;
  /** `bwrap --version`, or undefined. */
  bwrapVersion(): Promise<string | undefined>;
  /** Whether `path` is a readable file. */
  isFile(path: string): boolean;
}

const parseTrial = (trial: TrialResult): Record<string, unknown> | undefined => {
  const line = trial.stdout.split('\n').find(l => l.startsWith('{'));
  if (!line) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
};

/** The trial's command line as an operator can paste it (the probe script shortened). */
const displayCommand = (plan: ProcessVatPlan): string[] => [plan.command, ...plan.args.map((a, i) => (plan.args[i - 1] === '-e' ? "'<probe script: see probeScript in src/isolation/probe.ts>'" : a))];

const trialDetails = (plan: ProcessVatPlan, trial: TrialResult, seen: Record<string, unknown> | undefined) =>
  seen ?? {
    exitCode: trial.exitCode,
    signal: trial.signal ?? null,
    ...(trial.timedOut === true ? { timedOut: true } : {}),
    ...(trial.spawnError === undefined ? {} : { spawnError: trial.spawnError }),
    stderr: trial.stderr.slice(0, 2000),
    command: displayCommand(plan),
  };

/**
 * Checks, by running real sandboxes, which isolation levels this machine can
 * establish, and names what is missing for the others and how to fix it.
 */
export const probeIsolation = async (powers: ProbePowers): Promise<IsolationProbe> => {
  const { host } = powers;
  const judge = async (level: ProcessIsolationLevel): Promise<LevelReport> => {
    const gaps: Gap[] = [...staticGaps(host, level)];
    const details: Record<string, unknown> = { prlimit: host.prlimit ?? null };
    const report = () =>
      harden({ available: gaps.length === 0, missing: harden(gaps.map(g => g.missing)), fixes: harden(gaps.map(g => g.fix)), details: harden(details) });
    if (level === 'process') {
      details.bwrap = host.bwrap ?? null;
      details.bwrapVersion = host.bwrap ? ((await powers.bwrapVersion()) ?? null) : null;
      details.seccompArch = isSeccompArch(host.arch) ? host.arch : null;
    }
    for (const path of host.codePaths) {
      if (!powers.isFile(path)) gaps.push({ missing: `the vat code ${path} (not found)`, fix: 'build it: `npm run build` (or reinstall ztaas)' });
    }
    if (gaps.length > 0) return report();
    // Writes are tried only inside bubblewrap, where a write that got
    // through would land in the sandbox's own throwaway root.
    let plans: { full: ProcessVatPlan; osOnly: ProcessVatPlan | undefined };
    try {
      const plan = (nodePermissions: boolean) =>
        planProcessVat(host, { memoryMb: 64, cpuSeconds: 10, level, ...(nodePermissions ? {} : { testHooks: { nodePermissions: false } }) }, probeScript(level === 'process'));
      plans = { full: plan(true), osOnly: level === 'process' ? plan(false) : undefined };
    } catch (err) {
      const path = (err as { details?: { path?: unknown } }).details?.path;
      gaps.push({
        missing: `a plain absolute path for every file the vat needs (${path === undefined ? String((err as Error)?.message ?? err) : JSON.stringify(path)})`,
        fix: "install Node and ztaas at paths without commas, newlines or '..'",
      });
      return report();
    }
    const run = (plan: ProcessVatPlan): Promise<TrialResult> =>
      powers.runTrial(plan).catch((err: unknown) => harden({ exitCode: null, spawnError: String((err as Error)?.message ?? err), stdout: '', stderr: '' }));
    const [full, osOnly] = await Promise.all([run(plans.full), plans.osOnly ? run(plans.osOnly) : undefined]);
    const context = (plan: ProcessVatPlan, nodePermissions: boolean) => ({
      level,
      nodeVersion: host.nodeVersion,
      command: plan.command,
      bwrap: host.bwrap,
      addressSpaceMb: plan.limits.addressSpaceMb,
      timeoutMs: TRIAL_TIMEOUT_MS,
      nodePermissions,
    });
    const seen = parseTrial(full);
    details.trial = trialDetails(plans.full, full, seen);
    if (!seen) {
      gaps.push(explainTrialFailure(full, context(plans.full, true)));
      return report();
    }
    const flag = permissionFlags(host.nodeVersion, [])[0];
    const layerBroken = `run the kernel with Node ${SUPPORTED_NODE_LINES.join(', ')}, and report this with the output of \`ztaas doctor --json\``;
    const permission = seen.permission as { fsWrite?: boolean; child?: boolean } | null;
    if (!permission || permission.fsWrite !== false || permission.child !== false) {
      gaps.push({ missing: `node permission model (${flag} had no effect: ${JSON.stringify(permission)})`, fix: layerBroken });
    }
    if (seen.write === 'written') gaps.push({ missing: 'read-only file system (a probe wrote a file)', fix: layerBroken });
    if (seen.spawn === 'spawned') gaps.push({ missing: 'process creation blocked (a probe spawned a process)', fix: layerBroken });
    if (level === 'process') {
      const bwrapBroken = `use an unprivileged (not setuid) bubblewrap 0.4 or later (\`bwrap --version\` says ${String(details.bwrapVersion)})`;
      if (seen.uid !== VAT_UID) gaps.push({ missing: `unprivileged uid inside the sandbox (got ${String(seen.uid)})`, fix: bwrapBroken });
      const interfaces = seen.interfaces;
      if (!Array.isArray(interfaces) || interfaces.some(i => i !== 'lo')) {
        gaps.push({ missing: `empty network namespace (interfaces: ${JSON.stringify(interfaces)})`, fix: bwrapBroken });
      }
      const os = osOnly ? parseTrial(osOnly) : undefined;
      details.trialWithoutNodePermissions = osOnly && plans.osOnly ? trialDetails(plans.osOnly, osOnly, os) : null;
      if (!os) {
        if (osOnly && plans.osOnly) gaps.push(explainTrialFailure(osOnly, context(plans.osOnly, false)));
      } else {
        if (os.spawn !== 'EPERM') {
          gaps.push({
            missing: `seccomp filter (process creation gave ${String(os.spawn)}, expected EPERM)`,
            fix: 'run on a Linux kernel built with CONFIG_SECCOMP_FILTER, with a bubblewrap that supports --seccomp; or name level process-weak',
          });
        }
        if (os.write === 'written') gaps.push({ missing: 'read-only mount namespace', fix: bwrapBroken });
      }
    } else {
      details.network = "open: Node's permission model does not cover the network";
    }
    return report();
  };
  const [processReport, weakReport] = await Promise.all([judge('process'), judge('process-weak')]);
  return harden({
    platform: host.platform,
    arch: host.arch,
    node: host.nodeVersion,
    worker: harden({
      available: true,
      missing: harden([]),
      fixes: harden([]),
      details: harden({ containment: 'SES Compartment in a worker thread; no OS containment of the worker' }),
    }),
    process: processReport,
    'process-weak': weakReport,
  });
};
harden(probeIsolation);
