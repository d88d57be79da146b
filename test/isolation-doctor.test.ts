/**
 * `ztaas doctor` and the probe behind it: the levels this machine supports
 * are established by running real sandboxes, and for every way a sandbox
 * can fail to start, what is missing and how to fix it are named.
 */
import { test } from './_prepare.js';
import { doctorCommand, renderDoctor } from '../src/cli/doctor.js';
import { makeNodeProbePowers, probeIsolation, readProcessVatHost } from '../src/isolation/process-vat-node-powers.js';
import { probeIsolation as probeWith, type IsolationProbe, type ProbePowers, type ProcessVatPlan, type TrialResult } from '../src/isolation/process-vat.js';
import { explainTrialFailure, tellingLine, type TrialContext } from '../src/isolation/explain.js';
import { harden } from '../src/harden.js';

test('the probe establishes process isolation on this machine by observation (CI installs bubblewrap)', async t => {
  const probe = await probeIsolation();
  t.true(probe.worker.available);
  t.deepEqual(probe.process.missing, []);
  t.true(probe.process.available);
  t.like(probe.process.details.trial as object, { uid: 65534, interfaces: ['lo'], write: 'ERR_ACCESS_DENIED', spawn: 'ERR_ACCESS_DENIED' });
  t.like(probe.process.details.trialWithoutNodePermissions as object, { write: 'EROFS', spawn: 'EPERM' });
  t.true(probe['process-weak'].available);
});

test('the probe names what is missing and how to fix it: no bwrap, no prlimit', async t => {
  const probe = await probeIsolation({ ...readProcessVatHost(), bwrap: undefined, prlimit: undefined });
  t.false(probe.process.available);
  t.deepEqual([...probe.process.missing], ['prlimit (util-linux)', 'bwrap (Debian package bubblewrap)']);
  t.is(probe.process.fixes.length, 2);
  t.regex(probe.process.fixes[1] ?? '', /apt-get install bubblewrap/);
  t.false(probe['process-weak'].available);
});

test('the probe catches a sandbox that does not start (a bogus bwrap) instead of trusting it, and says what to check', async t => {
  const probe = await probeIsolation({ ...readProcessVatHost(), bwrap: '/bin/false' });
  t.false(probe.process.available);
  t.deepEqual([...probe.process.missing], ['a working sandbox (exit 1 with no output)']);
  t.regex(probe.process.fixes[0] ?? '', /check that \/bin\/false is what it claims to be \(`bwrap --version`\)/);
  t.true(probe['process-weak'].available, 'the weaker level does not use bwrap');
});

/** The real probe and real sandboxes, with `change` applied to each trial's plan first. */
const probeWithPlans = (change: (plan: ProcessVatPlan) => ProcessVatPlan, host = readProcessVatHost()) => {
  const powers = makeNodeProbePowers(host);
  return probeWith({ ...powers, runTrial: plan => powers.runTrial(change(plan)) });
};

test('a Node that needs more address space than RLIMIT_AS allows is named, with the limit and the fix, on both levels', async t => {
  // What Node 24 did under the allowance measured for Node 20 and 22: V8
  // cannot reserve its code range and dies printing `#` frames.
  const probe = await probeWithPlans(plan => ({ ...plan, args: plan.args.map(a => (a.startsWith('--as=') ? `--as=${256 * 1024 * 1024}` : a)) }));
  for (const level of ['process', 'process-weak'] as const) {
    const report = probe[level];
    t.false(report.available, level);
    t.regex(report.missing[0] ?? '', /^address space for Node v\d+\.\d+\.\d+: it did not start under RLIMIT_AS of \d+ MiB \(Fatal process (?:out of memory|OOM)\b.*\)$/, level);
    t.regex(report.fixes[0] ?? '', /run the kernel with Node 20, 22, 24/, level);
    t.notRegex(report.missing.join('\n'), /\(#\)/);
  }
});

test('a sandbox without the libraries ldd names for Node is explained (the library, and to install ldd)', async t => {
  const host = readProcessVatHost();
  t.true(host.libraries.length > 0, 'this Node is dynamically linked');
  // Keep only the program loader: Node then cannot find its other libraries.
  const probe = await probeWithPlans(plan => plan, { ...host, libraries: host.libraries.filter(l => /\/ld-linux/.test(l)) });
  t.false(probe.process.available);
  t.regex(probe.process.missing[0] ?? '', /^Node's shared library \S+ inside the sandbox \(.*error while loading shared libraries/);
  t.regex(probe.process.fixes[0] ?? '', /install `ldd` \(Debian package libc-bin\)/);
});

test('a vat bundle that was never built is named with the command that builds it', async t => {
  const host = readProcessVatHost();
  const missingBundle = host.codePaths.map(p => `${p}.absent`);
  const probe = await probeIsolation({ ...host, codePaths: missingBundle, vatMain: missingBundle[0] as string });
  for (const level of ['process', 'process-weak'] as const) {
    t.deepEqual([...probe[level].missing], [`the vat code ${missingBundle[0]} (not found)`]);
    t.regex(probe[level].fixes[0] ?? '', /npm run build/);
  }
});

const context: TrialContext = harden({
  level: 'process',
  nodeVersion: 'v24.22.3',
  command: '/usr/bin/prlimit',
  bwrap: '/usr/bin/bwrap',
  addressSpaceMb: 1088,
  timeoutMs: 15_000,
  nodePermissions: true,
});
const failed = (stderr: string, rest: Partial<TrialResult> = {}): TrialResult => harden({ exitCode: 1, stdout: '', stderr, ...rest });

test('every way a trial can fail has its own explanation and fix; none is a bare `#`', t => {
  const cases: Array<[TrialResult, RegExp, RegExp]> = [
    [failed('\n\n#\n# Fatal process out of memory: Failed to reserve virtual memory for CodeRange\n#\n----- Native stack trace -----\n\n 1: 0x9f17a1  [node]\n', { exitCode: null, signal: 'SIGTRAP' }), /^address space for Node v24\.22\.3: it did not start under RLIMIT_AS of 1088 MiB \(Fatal process out of memory: Failed to reserve virtual memory for CodeRange\)$/, /Node 20, 22, 24/],
    [failed('\n<--- Last few GCs --->\n\n[2:0x3ff61000]      239 ms: Scavenge 11.8 (15.5) -> 11.7 (16.7) MB\n\nFATAL ERROR: Zone Allocation failed - process out of memory\n'), /^address space for Node .*Zone Allocation failed/, /Node 20, 22, 24/],
    [failed('/usr/bin/node: bad option: --experimental-permission\n', { exitCode: 9 }), /^a Node that accepts --experimental-permission \(Node v24\.22\.3 refused it\)$/, /Node 20, 22, 24/],
    [failed('/usr/bin/node: error while loading shared libraries: libatomic.so.1: cannot open shared object file: No such file or directory\n', { exitCode: 127 }), /^Node's shared library libatomic\.so\.1 inside the sandbox/, /libc-bin/],
    [failed('bwrap: execvp /usr/bin/node: No such file or directory\n'), /^Node's program loader inside the sandbox/, /libc-bin/],
    [failed('bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces.\n'), /^unprivileged user namespaces \(bwrap: No permissions/, /unprivileged_userns_clone.*process-weak/],
    [failed('bwrap: setting up uid map: Permission denied\n'), /^unprivileged user namespaces/, /apparmor_restrict_unprivileged_userns/],
    [failed('bwrap: prctl(PR_SET_SECCOMP): Invalid argument\n'), /^seccomp filtering \(bwrap: prctl/, /CONFIG_SECCOMP_FILTER/],
    [failed("bwrap: Can't find source path /opt/zt/dist/vats/process-main.bundle.mjs: No such file or directory\n"), /^a file the sandbox binds: \/opt\/zt\/dist\/vats\/process-main\.bundle\.mjs/, /npm run build/],
    [failed('bwrap: Unknown option --disable-userns\n'), /^a working bubblewrap \(bwrap: Unknown option/, /bwrap --version/],
    [failed('prlimit: failed to set the AS resource limit: Operation not permitted\n'), /^resource limits \(prlimit: failed to set the AS resource limit/, /ulimit -H/],
    [failed('', { exitCode: null, spawnError: 'spawn /usr/bin/prlimit ENOENT' }), /^a runnable \/usr\/bin\/prlimit \(spawn \/usr\/bin\/prlimit ENOENT\)$/, /exists/],
    [failed('', { exitCode: null, signal: 'SIGKILL', timedOut: true }), /^a sandbox that starts within 15 s/, /less loaded/],
    [failed('', { exitCode: null, signal: 'SIGSYS' }), /^a seccomp filter Node v24\.22\.3 runs under \(it was killed by SIGSYS/, /process-weak/],
    [failed('', { exitCode: 1 }), /^a working sandbox \(exit 1 with no output\)$/, /bwrap --version/],
    [failed('', { exitCode: 0, stdout: 'hello\n' }), /^a sandbox whose Node prints the trial's report \(it printed: hello\)$/, /ztaas doctor --json/],
    [failed('#\n#  /usr/bin/node[2]: void node::Start() at ../src/node.cc:1\n#  Assertion failed: (r) == (0)\n#\n', { exitCode: null, signal: 'SIGABRT' }), /^a working sandbox \(killed by SIGABRT: Assertion failed: \(r\) == \(0\)\)$/, /ztaas doctor --json/],
  ];
  for (const [trial, missing, fix] of cases) {
    const gap = explainTrialFailure(trial, context);
    t.regex(gap.missing, missing, trial.stderr || JSON.stringify(trial));
    t.regex(gap.fix, fix, gap.missing);
    t.notRegex(gap.missing, /\(#\)|\(\)/);
  }
  t.regex(explainTrialFailure(failed('bwrap: setting up uid map: Permission denied'), { ...context, nodePermissions: false }).missing, /\(in the trial without Node's permission model\)$/);
  t.is(tellingLine('\n\n#\n# Fatal error in , line 0\n# Check failed: x.\n#\n'), 'Fatal error in , line 0');
});

const fakeProbe = (processAvailable: boolean): IsolationProbe =>
  harden({
    platform: 'linux', arch: 'x64', node: 'v20.20.2',
    worker: { available: true, missing: [], fixes: [], details: {} },
    process: {
      available: processAvailable,
      missing: processAvailable ? [] : ['bwrap (Debian package bubblewrap)'],
      fixes: processAvailable ? [] : ['install bubblewrap (`apt-get install bubblewrap`)'],
      details: {},
    },
    'process-weak': { available: true, missing: [], fixes: [], details: {} },
  });

test('ztaas doctor prints each level, what is missing and how to fix it; exit 1 when a level is missing', async t => {
  let out = '';
  const status = await doctorCommand([], { out: s => (out += s), probe: async () => fakeProbe(false) });
  t.is(status, 1);
  t.regex(out, /MISSING\s+process\s/);
  t.regex(out, /missing: bwrap \(Debian package bubblewrap\)\n\s+fix: install bubblewrap \(`apt-get install bubblewrap`\)\n/);
  t.regex(out, /ok\s+worker/);
  t.regex(out, /default\s+process is MISSING: launches that name no level fail with ZT_ISOLATION_UNAVAILABLE/);
  t.regex(renderDoctor(fakeProbe(true)), /seccomp refuses: .*ptrace/);
  t.regex(renderDoctor(fakeProbe(true)), /default\s+process: agents whose launch names no level run here/);
});

test('ztaas doctor on a Node whose sandbox cannot start says why and what to do (the real probe with a failing trial)', async t => {
  const powers = makeNodeProbePowers();
  const stillborn: ProbePowers = {
    ...powers,
    runTrial: async () => harden({ exitCode: null, signal: 'SIGTRAP', stdout: '', stderr: '\n\n#\n# Fatal process out of memory: Failed to reserve virtual memory for CodeRange\n#\n' }),
  };
  let out = '';
  t.is(await doctorCommand([], { out: s => (out += s), probe: () => probeWith(stillborn) }), 1);
  t.regex(out, /MISSING\s+process\s[^\n]*\n\s+- missing: address space for Node v[\d.]+: it did not start under RLIMIT_AS of \d+ MiB \(Fatal process out of memory: Failed to reserve virtual memory for CodeRange\)\n\s+fix: run the kernel with Node 20, 22, 24/);
  t.notRegex(out, /\(#\)/);
});

test('ztaas doctor --json prints the probe; a bad flag is ZT_BAD_ARGUMENT', async t => {
  let out = '';
  t.is(await doctorCommand(['--json'], { out: s => (out += s), probe: async () => fakeProbe(true) }), 0);
  t.deepEqual(JSON.parse(out), { ...fakeProbe(true), defaultIsolation: 'process' });
  await t.throwsAsync(() => doctorCommand(['--bogus'], { out: () => undefined, probe: async () => fakeProbe(true) }), { message: /^ZT_BAD_ARGUMENT\b/ });
});
