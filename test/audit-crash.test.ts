/**
 * Crash durability of the audit log under SIGKILL.
 *
 * A child process runs a SandboxRuntime that executes actions in a loop and,
 * after each outcome comes back, appends its requestId to a side file with
 * fsync. The test kills it with SIGKILL at random moments (some during
 * start-up, most while it acts), restarts the audit vat on the same store
 * each time, and checks that the log verifies and that every request the
 * child saw acknowledged has its durable outcome record.
 */
import { test } from './_prepare.js';
import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startAuditVat } from '../src/audit/audit-client.js';
import { RECORDS_FILE } from '../src/audit/file-store.js';
import { verifyStore } from '../src/audit/verify-node.js';
import { tempDir } from './_audit-fs.js';

const CHILD = fileURLToPath(new URL('../../test/fixtures/audit-crash/child.mjs', import.meta.url));
const KILLS = 20;

/** A small seeded PRNG, so a failing run can be replayed from its seed. */
const prng = (seed: number) => {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
};

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

const completeLines = (text: string) => {
  const lines = text.split('\n');
  lines.pop(); // a torn last line was never fsynced as acknowledged
  return lines;
};

// Failure: the host process dies (SIGKILL, OOM killer, power cut) at any
// moment while agents act. Nothing whose action was executed and reported
// may be missing from the log afterwards, and the log must still verify.
test('crash: SIGKILL at random points, restart, the log verifies and every acknowledged action has its outcome', async t => {
  // 20 child start-ups and recoveries: about 40 s on an idle 2-core
  // machine, more when the rest of the suite runs beside it.
  t.timeout(240_000);
  const base = await tempDir(t);
  const storeDir = join(base, 'store');
  const auditDir = join(storeDir, 'audit');
  const side = join(base, 'acknowledged.txt');
  const data = join(base, 'data');
  await mkdir(data);
  const seed = Date.now() % 2 ** 31;
  t.log(`seed ${seed}`);
  const random = prng(seed);
  let kills = 0;
  let killedWhileActing = 0;

  for (let i = 0; i < KILLS; i += 1) {
    const child = spawn(process.execPath, [CHILD, storeDir, side, data], { stdio: ['ignore', 'pipe', 'pipe'], env: {} });
    let stderr = '';
    child.stderr.on('data', chunk => {
      stderr += String(chunk);
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>(resolve =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    const acting = new Promise<boolean>(resolve => {
      child.stdout.on('data', chunk => {
        if (String(chunk).includes('acting')) resolve(true);
      });
      void exited.then(() => resolve(false));
    });
    if (i % 4 === 3) {
      // Kill somewhere in start-up: opening the store, the key, the first appends.
      await sleep(Math.floor(random() * 400));
    } else {
      const ready = await Promise.race([acting, sleep(30_000).then(() => false)]);
      if (!ready) {
        child.kill('SIGKILL');
        await exited;
        t.fail(`child ${i} never started acting: ${stderr}`);
        return;
      }
      killedWhileActing += 1;
      await sleep(Math.floor(random() * 150));
    }
    child.kill('SIGKILL');
    const { signal } = await exited;
    t.is(signal, 'SIGKILL', `child ${i} was still running when killed: ${stderr}`);
    kills += 1;

    // Restart: the audit vat recovers the store (cuts a torn tail, checks the
    // last checkpoint against the records) and signs a checkpoint on close.
    const sink = startAuditVat({ dir: auditDir, timeoutMs: 30_000, checkpointIntervalMs: 0 });
    await sink.ready();
    await sink.close();
    const report = await verifyStore(auditDir);

    const records = completeLines(await readFile(join(auditDir, RECORDS_FILE), 'utf8')).map(
      line => JSON.parse(line) as Record<string, unknown>,
    );
    t.is(records.length, report.size);
    const allowed = new Set(records.filter(r => r.type === 'request' && r.decision === 'allow').map(r => r.requestId));
    const succeeded = new Set(records.filter(r => r.type === 'outcome' && r.status === 'succeeded').map(r => r.requestId));
    const acknowledged = completeLines(await readFile(side, 'utf8').catch(() => ''));
    const missing = acknowledged.filter(id => !succeeded.has(id) || !allowed.has(id));
    t.deepEqual(missing, [], `after kill ${i}: acknowledged actions without a durable decision and outcome`);
  }
  t.is(kills, KILLS);
  t.true(killedWhileActing >= KILLS / 2);
  const acknowledged = completeLines(await readFile(side, 'utf8'));
  t.true(acknowledged.length > 0, 'the child acknowledged actions before being killed');
  t.log(`${kills} kills, ${acknowledged.length} acknowledged actions, all recorded`);
});
