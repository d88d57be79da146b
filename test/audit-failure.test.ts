/**
 * The audit log failing, at the runtime level: a full disk, a store that
 * cannot be opened, an audit path slower than its bound, and a store already
 * in use by another runtime. In every case the configured failure mode
 * decides, deterministically: `deny` refuses the request (and every later
 * one) with ZT_AUDIT_UNAVAILABLE, `halt` also halts the agent. No action
 * runs without its durable decision record.
 */
import { test } from './_prepare.js';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { makeAuditLog } from '../src/audit/audit-log.js';
import { startAuditVat, type AuditSink } from '../src/audit/audit-client.js';
import { openFileStore, RECORDS_FILE } from '../src/audit/file-store.js';
import { makeNodeFileStorePowers, nodeSha256 } from '../src/audit/node-powers.js';
import { verifyStore } from '../src/audit/verify-node.js';
import { ActionRequest, ActionType, Capability, SandboxRuntime } from '../src/index.js';
import type { FailureModes } from '../src/index.js';
import { tempDir } from './_audit-fs.js';

const run = promisify(execFile);
const UNAVAILABLE = { message: /^ZT_AUDIT_UNAVAILABLE\b/ };

// ---------------------------------------------------------------------------
// One writer per store

// Failure/attack: a second runtime started on the same store folder would
// interleave its records with the first one's numbering and break the log.
test('lock: a second store on the same file is refused until the first closes', async t => {
  const dir = await tempDir(t);
  const powers = makeNodeFileStorePowers();
  const first = await openFileStore(powers, { dir });
  const err = await t.throwsAsync(openFileStore(powers, { dir }), UNAVAILABLE);
  t.regex(err!.message, /is in use by another runtime/);
  await first.appendBatch(['{"a":1}']);
  await first.close();
  const second = await openFileStore(powers, { dir });
  t.is(second.size(), 1);
  await second.close();
});

test('lock: a second audit vat on the same folder fails ready() saying the store is in use', async t => {
  const dir = await tempDir(t);
  const first = startAuditVat({ dir, timeoutMs: 20_000 });
  await first.ready();
  const second = startAuditVat({ dir, timeoutMs: 20_000 });
  const err = await t.throwsAsync(second.ready(), UNAVAILABLE);
  t.regex(err!.message, /in use by another runtime/);
  await t.throwsAsync(second.append({ late: true }), UNAVAILABLE);
  t.is((await first.append({ ok: true })).seq, 0, 'the first runtime is unaffected');
  await first.close();
  await second.close();
  const third = startAuditVat({ dir, timeoutMs: 20_000 });
  await third.ready();
  t.is(await third.size(), 1);
  await third.close();
});

const setup = async (t: ExecutionContext, storeDir: string, failureModes: Partial<FailureModes>, extra: { auditSink?: AuditSink } = {}) => {
  const data = await tempDir(t);
  await writeFile(join(data, 'in.txt'), 'data');
  const sandbox = new SandboxRuntime({ storeDir, failureModes, ...extra });
  // Tests that break the log check shutdown's refusal themselves.
  t.teardown(() => sandbox.shutdown().catch(() => undefined));
  sandbox.registerAgent('agent');
  sandbox.issueCapability(new Capability({ id: 'read', actionType: ActionType.READ, target: join(data, 'in.txt'), holder: 'agent' }));
  sandbox.issueCapability(new Capability({ id: 'write', actionType: ActionType.WRITE, target: join(data, 'out-*.txt'), holder: 'agent' }));
  const read = () =>
    sandbox.executeAction(new ActionRequest({ capabilityId: 'read', agentId: 'agent', actionType: ActionType.READ, target: join(data, 'in.txt') }));
  const write = (n: number) =>
    sandbox.executeAction(
      new ActionRequest({ capabilityId: 'write', agentId: 'agent', actionType: ActionType.WRITE, target: join(data, `out-${n}.txt`), args: { content: 'x' } }),
    );
  return { sandbox, data, read, write };
};

test('lock: a second runtime on the same store denies every request with ZT_AUDIT_UNAVAILABLE', async t => {
  const storeDir = join(await tempDir(t), 'store');
  const first = await setup(t, storeDir, {});
  t.is((await first.read()).status, 'succeeded');
  const second = await setup(t, storeDir, { auditTimeoutMs: 20_000 });
  const outcome = await second.write(1);
  t.is(outcome.status, 'denied');
  t.is(outcome.error?.code, 'ZT_AUDIT_UNAVAILABLE');
  t.false(existsSync(join(second.data, 'out-1.txt')), 'the action did not run');
  t.is((await first.read()).status, 'succeeded', 'the first runtime keeps its log');
  await first.sandbox.shutdown();
  await second.sandbox.shutdown();
  const report = await verifyStore(join(storeDir, 'audit'));
  const records = (await readFile(join(storeDir, 'audit', RECORDS_FILE), 'utf8')).trim().split('\n').map(l => JSON.parse(l) as { type: string });
  t.is(report.size, records.length);
  t.is(records.filter(r => r.type === 'request').length, 2, 'only the first runtime wrote');
});

// ---------------------------------------------------------------------------
// A full disk (a real one: a small tmpfs mounted for the test)

const mountTinyDisk = async (t: ExecutionContext): Promise<string> => {
  const dir = await tempDir(t);
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', dir]);
  } catch (err) {
    // Not skipped: this test needs root (or CAP_SYS_ADMIN) to mount a tmpfs.
    throw Error(`cannot mount a tmpfs for the full-disk test (run as root): ${String((err as Error).message)}`);
  }
  t.teardown(async () => {
    await run('umount', ['-l', dir]).catch(() => undefined);
  });
  return dir;
};

/** Fills the file system holding `dir` until ENOSPC. */
const fillDisk = async (dir: string): Promise<string> => {
  const filler = join(dir, 'filler');
  const { open } = await import('node:fs/promises');
  const fh = await open(filler, 'w');
  try {
    const chunk = new Uint8Array(4096);
    for (;;) await fh.write(chunk);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
  return filler;
};

for (const mode of ['deny', 'halt'] as const) {
  // Failure: the disk holding the audit log fills up while agents act. A
  // decision that cannot be made durable must not be acted on.
  test.serial(`full disk (${mode}): the request whose record cannot be written is refused and its action never runs`, async t => {
    const disk = await mountTinyDisk(t);
    const storeDir = join(disk, 'store');
    const { sandbox, data, read, write } = await setup(t, storeDir, { auditUnavailable: mode });
    t.is((await read()).status, 'succeeded', 'the log works before the disk fills');
    await sandbox.audit.flush();
    const filler = await fillDisk(disk);

    // Appends may still fit in the last partly used page; the first one that
    // needs a new page fails, and from then on everything is refused.
    let refused: Awaited<ReturnType<typeof write>> | undefined;
    let n = 0;
    for (; n < 500 && !refused; n += 1) {
      const outcome = await write(n);
      if (outcome.status === 'succeeded') t.true(existsSync(join(data, `out-${n}.txt`)));
      else refused = outcome;
    }
    t.truthy(refused, 'the disk filled up within 500 requests');
    const code = refused!.error?.code;
    t.is(code, 'ZT_AUDIT_UNAVAILABLE');
    t.false(existsSync(join(data, `out-${n - 1}.txt`)), 'the refused action did not run');

    // Space comes back, but this runtime's history has a hole: it never resumes.
    await rm(filler);
    const later = await write(1000);
    t.is(later.status, 'denied');
    t.false(existsSync(join(data, 'out-1000.txt')));
    if (mode === 'deny') {
      t.is(later.error?.code, 'ZT_AUDIT_UNAVAILABLE');
      t.is(sandbox.getCapability('write')?.state, 'live');
    } else {
      t.is(later.error?.code, 'ZT_AGENT_REVOKED', 'the agent was halted');
      t.is(sandbox.getCapability('write')?.state, 'revoked');
      t.is(sandbox.getCapability('read')?.state, 'revoked');
    }
    // Shutting down reports that the log failed, rather than pretending.
    await t.throwsAsync(sandbox.shutdown(), UNAVAILABLE);

    // What reached the disk verifies, and holds no record of the refused request.
    const auditDir = join(storeDir, 'audit');
    const report = await verifyStore(auditDir);
    const records = (await readFile(join(auditDir, RECORDS_FILE), 'utf8')).trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>);
    t.is(records.length, report.size);
    t.false(records.some(r => r.requestId === refused!.requestId));
    t.is(records.filter(r => r.type === 'outcome').length, n, 'every executed action has its outcome');

    // The log is back: a new runtime on the same store appends after it.
    const again = await setup(t, storeDir, { auditUnavailable: mode });
    t.is((await again.read()).status, 'succeeded');
    await again.sandbox.shutdown();
    t.true((await verifyStore(auditDir)).size > report.size);
  });
}

// ---------------------------------------------------------------------------
// A store that cannot be opened, and an audit path slower than its bound

for (const mode of ['deny', 'halt'] as const) {
  // Failure: the audit store is unavailable from the start (here its folder
  // is a file). Nothing may run unrecorded.
  test(`unavailable store (${mode}): every request is refused with ZT_AUDIT_UNAVAILABLE`, async t => {
    const storeDir = join(await tempDir(t), 'store');
    await mkdir(storeDir);
    await writeFile(join(storeDir, 'audit'), 'not a folder');
    const { sandbox, data, write } = await setup(t, storeDir, { auditUnavailable: mode, auditTimeoutMs: 20_000 });
    const first = await write(1);
    t.is(first.status, 'denied');
    t.is(first.error?.code, 'ZT_AUDIT_UNAVAILABLE');
    const second = await write(2);
    t.is(second.error?.code, mode === 'deny' ? 'ZT_AUDIT_UNAVAILABLE' : 'ZT_AGENT_REVOKED');
    t.false(existsSync(join(data, 'out-1.txt')));
    t.false(existsSync(join(data, 'out-2.txt')));
    await sandbox.shutdown();
  });

  // Failure: the audit vat stops answering (a stuck disk). After
  // `auditTimeoutMs` the request is refused rather than waited on.
  test(`audit slower than its bound (${mode}): refused after auditTimeoutMs`, async t => {
    const hanging: AuditSink = {
      append: () => new Promise(() => undefined),
      read: async () => [],
      size: async () => 0,
      rootHash: async () => '',
      close: async () => undefined,
    };
    const { sandbox, data, write } = await setup(t, join(await tempDir(t), 'store'), { auditUnavailable: mode, auditTimeoutMs: 100 }, { auditSink: hanging });
    const started = Date.now();
    const outcome = await write(1);
    t.is(outcome.error?.code, 'ZT_AUDIT_UNAVAILABLE');
    t.true(Date.now() - started < 10_000, 'bounded, not waiting forever');
    t.false(existsSync(join(data, 'out-1.txt')));
    t.is(sandbox.getCapability('write')?.state, mode === 'deny' ? 'live' : 'revoked');
    await sandbox.shutdown();
  });
}

test('an in-process log on a failed store refuses every later append', async t => {
  const dir = await tempDir(t);
  const log = await makeAuditLog({ store: await openFileStore(makeNodeFileStorePowers(), { dir }), sha256: nodeSha256 });
  await log.appendTexts(['{"a":1}']);
  await log.close();
  await t.throwsAsync(log.appendTexts(['{"a":2}']), UNAVAILABLE);
});

test.serial('full disk, then space comes back: recoverAudit writes what happened meanwhile (marked late) and resumes', async t => {
  // Nothing lost: the refused request and the failure itself reach the log
  // once it is back, and only then does the runtime act again.
  const disk = await mountTinyDisk(t);
  const storeDir = join(disk, 'store');
  const { sandbox, data, read, write } = await setup(t, storeDir, { auditUnavailable: 'deny' });
  t.is((await read()).status, 'succeeded');
  await sandbox.audit.flush();
  const filler = await fillDisk(disk);
  let refused: Awaited<ReturnType<typeof write>> | undefined;
  for (let n = 0; n < 500 && !refused; n += 1) {
    const outcome = await write(n);
    if (outcome.status !== 'succeeded') refused = outcome;
  }
  t.is(refused?.error?.code, 'ZT_AUDIT_UNAVAILABLE');
  await rm(filler);
  const recovered = await sandbox.recoverAudit();
  t.true(recovered.resumed);
  t.true(recovered.written >= 2, 'the failure event and the refused request');
  t.is((await write(2000)).status, 'succeeded', 'the runtime acts again');
  t.true(existsSync(join(data, 'out-2000.txt')));
  await sandbox.shutdown();
  const report = await verifyStore(join(storeDir, 'audit'));
  t.true(report.size > 0);
  const lines = (await readFile(join(storeDir, 'audit', RECORDS_FILE), 'utf8')).trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>);
  const failure = lines.find(r => r.type === 'failure-mode');
  t.like(failure, { recordedLate: true, code: 'ZT_AUDIT_UNAVAILABLE', mode: 'deny' });
  t.truthy(lines.find(r => r.type === 'request' && r.requestId === refused?.requestId && r.recordedLate === true), 'the refused request is on record');
  t.truthy(lines.find(r => r.type === 'failure-mode.recovered'));
});
