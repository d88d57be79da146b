/**
 * `ztaas doctor` and the probe behind it: the levels this machine supports
 * are established by running real sandboxes, and what is missing is named.
 */
import { test } from './_prepare.js';
import { doctorCommand, renderDoctor } from '../src/cli/doctor.js';
import { probeIsolation, readProcessVatHost } from '../src/isolation/process-vat-node-powers.js';
import type { IsolationProbe } from '../src/isolation/process-vat.js';

test('the probe establishes process isolation on this machine by observation (CI installs bubblewrap)', async t => {
  const probe = await probeIsolation();
  t.true(probe.worker.available);
  t.deepEqual(probe.process.missing, []);
  t.true(probe.process.available);
  t.like(probe.process.details.trial as object, { uid: 65534, interfaces: ['lo'], write: 'ERR_ACCESS_DENIED', spawn: 'ERR_ACCESS_DENIED' });
  t.like(probe.process.details.trialWithoutNodePermissions as object, { write: 'EROFS', spawn: 'EPERM' });
  t.true(probe['process-weak'].available);
});

test('the probe names what is missing: no bwrap, no prlimit', async t => {
  const probe = await probeIsolation({ ...readProcessVatHost(), bwrap: undefined, prlimit: undefined });
  t.false(probe.process.available);
  t.deepEqual([...probe.process.missing], ['prlimit (util-linux)', 'bwrap (Debian package bubblewrap)']);
  t.false(probe['process-weak'].available);
});

test('the probe catches a sandbox that does not start (a bogus bwrap) instead of trusting it', async t => {
  const probe = await probeIsolation({ ...readProcessVatHost(), bwrap: '/bin/false' });
  t.false(probe.process.available);
  t.true(probe.process.missing.some(m => m.startsWith('a working sandbox') || m.startsWith('user namespaces')));
});

const fakeProbe = (processAvailable: boolean): IsolationProbe =>
  harden({
    platform: 'linux', arch: 'x64', node: 'v20.20.2',
    worker: { available: true, missing: [], details: {} },
    process: { available: processAvailable, missing: processAvailable ? [] : ['bwrap (Debian package bubblewrap)'], details: {} },
    'process-weak': { available: true, missing: [], details: {} },
  });

test('ztaas doctor prints each level and what is missing; exit 1 when a level is missing', async t => {
  let out = '';
  const status = await doctorCommand([], { out: s => (out += s), probe: async () => fakeProbe(false) });
  t.is(status, 1);
  t.regex(out, /MISSING\s+process\s/);
  t.regex(out, /missing: bwrap \(Debian package bubblewrap\)/);
  t.regex(out, /ok\s+worker/);
  t.regex(renderDoctor(fakeProbe(true)), /seccomp refuses: .*ptrace/);
});

test('ztaas doctor --json prints the probe; a bad flag is ZT_BAD_ARGUMENT', async t => {
  let out = '';
  t.is(await doctorCommand(['--json'], { out: s => (out += s), probe: async () => fakeProbe(true) }), 0);
  t.deepEqual(JSON.parse(out), fakeProbe(true));
  await t.throwsAsync(() => doctorCommand(['--bogus'], { out: () => undefined, probe: async () => fakeProbe(true) }), { message: /^ZT_BAD_ARGUMENT\b/ });
});
