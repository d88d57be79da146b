import { test } from './_prepare.js';
import { readFile, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { openFileStore, RECORDS_FILE } from '../src/audit/file-store.js';
import { makeNodeFileStorePowers } from '../src/audit/node-powers.js';
import { instrumentedPowers, settle, tempDir, track, until } from './_audit-fs.js';

const UNAVAILABLE = { message: /^ZT_AUDIT_UNAVAILABLE\b/ };
const CORRUPT = { message: /^ZT_AUDIT_CORRUPT\b/ };
const BAD_ARGUMENT = { message: /^ZT_BAD_ARGUMENT\b/ };
const line = (n: number) => JSON.stringify({ n });

test('appends survive a reopen and read back by index', async t => {
  const dir = join(await tempDir(t), 'nested', 'store');
  const powers = makeNodeFileStorePowers();
  const store = await openFileStore(powers, { dir });
  t.is(await store.appendBatch([line(0), line(1)]), 0);
  t.is(await store.appendBatch([line(2)]), 2);
  t.is(store.size(), 3);
  t.deepEqual(await store.readRange(1, 5), [line(1), line(2)]);
  t.deepEqual(await store.readRange(3, 1), []);
  await store.close();
  t.is(await readFile(join(dir, RECORDS_FILE), 'utf8'), `${line(0)}\n${line(1)}\n${line(2)}\n`);
  t.is((await stat(join(dir, RECORDS_FILE))).mode & 0o777, 0o600);

  const again = await openFileStore(powers, { dir });
  t.is(again.size(), 3);
  t.deepEqual(await again.readRange(0, 3), [line(0), line(1), line(2)]);
  t.is(await again.appendBatch(['"é ✓ 😀"']), 3, 'multi-byte UTF-8 lines keep offsets right');
  t.deepEqual(await again.readRange(2, 2), [line(2), '"é ✓ 😀"']);
  await again.close();
});

test('group commit: appends arriving during a write+sync share the next single write+sync', async t => {
  const dir = await tempDir(t);
  const io = instrumentedPowers();
  const store = await openFileStore(io.powers, { dir });
  const before = { ...io.counts };
  io.hold();
  const firstP = store.appendBatch([line(0)]);
  const first = track(firstP);
  t.true(await until(() => io.counts.datasyncs - before.datasyncs === 1), 'the first batch is syncing');
  // 50 callers arrive while the first sync is held.
  const restP = Array.from({ length: 50 }, (_, i) => store.appendBatch([line(i + 1)]));
  const rest = restP.map(track);
  await settle();
  t.false(first.settled, 'not acknowledged before fdatasync completes');
  t.false(rest.some(r => r.settled));
  t.is(io.counts.writes - before.writes, 1, 'the waiting batches are not written yet');
  io.release();
  t.is(await firstP, 0);
  t.deepEqual(
    await Promise.all(restP),
    restP.map((_, i) => i + 1),
  );
  t.is(io.counts.writes - before.writes, 2, 'two writes for 51 batches');
  t.is(io.counts.datasyncs - before.datasyncs, 2, 'two fdatasyncs for 51 batches');
  t.deepEqual(await store.readRange(0, 51), Array.from({ length: 51 }, (_, i) => line(i)));
  await store.close();
});

test('relaxed durability resolves after the write and syncs on the timer', async t => {
  const dir = await tempDir(t);
  const io = instrumentedPowers({ manualTimers: true });
  const store = await openFileStore(io.powers, { dir, durability: 'relaxed' });
  t.is(store.durability, 'relaxed');
  const syncsAtOpen = io.counts.datasyncs;
  await store.appendBatch([line(0)]);
  await store.appendBatch([line(1)]);
  t.is(io.counts.datasyncs, syncsAtOpen, 'acknowledged before any fdatasync');
  t.is(io.pendingTimers(), 1, 'one sync scheduled for both');
  io.runTimers();
  t.true(await until(() => io.counts.datasyncs === syncsAtOpen + 1), 'the timer syncs');
  await store.appendBatch([line(2)]);
  await store.close();
  t.is(io.counts.datasyncs, syncsAtOpen + 2, 'close syncs what the timer had not');
  t.is(io.pendingTimers(), 0, 'close cancels the timer');
});

// Attack/failure: a crash mid-write leaves a partial record at the end of the
// file. Reopening must drop exactly that partial record and nothing else.
test('a torn final line is truncated away on open', async t => {
  const dir = await tempDir(t);
  const path = join(dir, RECORDS_FILE);
  const powers = makeNodeFileStorePowers();
  for (const tail of ['{"n":2', '{"n":2,"x":"\u00e9', '\0\0\0\0', '\0\0\0\0\n', '{"n":2,\n']) {
    await writeFile(path, `${line(0)}\n${line(1)}\n${tail}`);
    const store = await openFileStore(powers, { dir });
    t.is(store.size(), 2, JSON.stringify(tail));
    t.is(await readFile(path, 'utf8'), `${line(0)}\n${line(1)}\n`, JSON.stringify(tail));
    t.is(await store.appendBatch([line(2)]), 2);
    t.deepEqual(await store.readRange(0, 3), [line(0), line(1), line(2)]);
    await store.close();
  }
});

test('a torn line in an otherwise empty file leaves an empty store', async t => {
  const dir = await tempDir(t);
  await writeFile(join(dir, RECORDS_FILE), '{"n":');
  const store = await openFileStore(makeNodeFileStorePowers(), { dir });
  t.is(store.size(), 0);
  await store.close();
  t.is(await readFile(join(dir, RECORDS_FILE), 'utf8'), '');
});

// Attack: a record in the middle of the log is overwritten or damaged. That
// is not what a crash leaves, so the store must refuse to open rather than
// repair (and silently lose) history.
test('damage before the final line is ZT_AUDIT_CORRUPT and the file is left alone', async t => {
  const dir = await tempDir(t);
  const path = join(dir, RECORDS_FILE);
  const powers = makeNodeFileStorePowers();
  const cases = [
    `${line(0)}\n{"n":1\n${line(2)}\n`,
    `${line(0)}\n\n${line(2)}\n`,
    `\0\0\0\n${line(1)}\n${line(2)}\n`,
  ];
  for (const content of cases) {
    await writeFile(path, content);
    await t.throwsAsync(openFileStore(powers, { dir }), CORRUPT, JSON.stringify(content));
    t.is(await readFile(path, 'utf8'), content);
  }
  // Invalid UTF-8 inside an earlier record.
  const bytes = Buffer.concat([Buffer.from('"a'), Buffer.from([0xff]), Buffer.from(`"\n${line(1)}\n`)]);
  await writeFile(path, bytes);
  await t.throwsAsync(openFileStore(powers, { dir }), CORRUPT);
});

// Failure: the disk fills up mid-batch. The store must refuse the batch,
// cut the half-written bytes back off, and refuse everything after it
// (fail closed) rather than carry on with a hole in the log.
test('ENOSPC rejects with ZT_AUDIT_UNAVAILABLE and the store stays refusing', async t => {
  const dir = await tempDir(t);
  const io = instrumentedPowers();
  const store = await openFileStore(io.powers, { dir });
  await store.appendBatch([line(0)]);
  io.failNextWrite('ENOSPC', 5); // five bytes land, then the disk is full
  io.hold();
  const doomed = store.appendBatch([line(1), line(2)]);
  await settle();
  const queued = store.appendBatch([line(3)]); // waiting for the next group
  io.release();
  const err = await t.throwsAsync(doomed, UNAVAILABLE);
  t.is((err as { details?: { cause?: string } } | undefined)?.details?.cause, 'ENOSPC');
  await t.throwsAsync(queued, UNAVAILABLE);
  await t.throwsAsync(store.appendBatch([line(4)]), UNAVAILABLE);
  await t.throwsAsync(store.sync(), UNAVAILABLE);
  t.is(await readFile(join(dir, RECORDS_FILE), 'utf8'), `${line(0)}\n`, 'half a batch cut back off');
  await t.throwsAsync(store.close(), UNAVAILABLE);

  const reopened = await openFileStore(makeNodeFileStorePowers(), { dir });
  t.deepEqual(await reopened.readRange(0, 10), [line(0)]);
  await reopened.close();
});

test('a failed fdatasync fails the store closed', async t => {
  const dir = await tempDir(t);
  const io = instrumentedPowers();
  const store = await openFileStore(io.powers, { dir });
  io.failNextDatasync('EIO');
  await t.throwsAsync(store.appendBatch([line(0)]), UNAVAILABLE);
  await t.throwsAsync(store.appendBatch([line(1)]), UNAVAILABLE);
});

test('a failed relaxed-mode sync fails the store closed', async t => {
  const dir = await tempDir(t);
  const io = instrumentedPowers({ manualTimers: true });
  const store = await openFileStore(io.powers, { dir, durability: 'relaxed' });
  await store.appendBatch([line(0)]);
  io.failNextDatasync('EIO');
  io.runTimers();
  await settle();
  await t.throwsAsync(store.appendBatch([line(1)]), UNAVAILABLE);
});

test('close flushes queued batches; appends after close are refused', async t => {
  const dir = await tempDir(t);
  const powers = makeNodeFileStorePowers();
  const store = await openFileStore(powers, { dir });
  const pending = [store.appendBatch([line(0)]), store.appendBatch([line(1)])];
  await store.close();
  t.deepEqual(await Promise.all(pending), [0, 1]);
  await t.throwsAsync(store.appendBatch([line(2)]), UNAVAILABLE);
  const again = await openFileStore(powers, { dir });
  t.is(again.size(), 2);
  await again.close();
});

test('bad arguments are ZT_BAD_ARGUMENT', async t => {
  const dir = await tempDir(t);
  const powers = makeNodeFileStorePowers();
  await t.throwsAsync(openFileStore(powers, { dir: '' }), BAD_ARGUMENT);
  await t.throwsAsync(
    openFileStore(powers, { dir, durability: 'sometimes' as 'durable' }),
    BAD_ARGUMENT,
  );
  const store = await openFileStore(powers, { dir });
  await t.throwsAsync(store.appendBatch([]), BAD_ARGUMENT);
  await t.throwsAsync(store.appendBatch(['a\nb']), BAD_ARGUMENT);
  await t.throwsAsync(store.appendBatch(['']), BAD_ARGUMENT);
  await t.throwsAsync(store.readRange(-1, 1), BAD_ARGUMENT);
  t.is(store.size(), 0, 'refused lines take no index');
  await store.close();
});

test('an unopenable folder is ZT_AUDIT_UNAVAILABLE', async t => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'file'), 'x');
  await t.throwsAsync(
    openFileStore(makeNodeFileStorePowers(), { dir: join(dir, 'file', 'sub') }),
    UNAVAILABLE,
  );
});

test('recovery scans large files in chunks, lines straddling chunk boundaries included', async t => {
  const dir = await tempDir(t);
  const path = join(dir, RECORDS_FILE);
  // ~2.4 MiB: several 1 MiB scan chunks, with multi-byte characters.
  const lines = Array.from({ length: 30_000 }, (_, i) => JSON.stringify({ i, pad: 'é'.repeat(i % 50) }));
  await writeFile(path, `${lines.join('\n')}\n{"torn":`);
  const store = await openFileStore(makeNodeFileStorePowers(), { dir });
  t.is(store.size(), 30_000);
  t.deepEqual(await store.readRange(0, 2), lines.slice(0, 2));
  t.deepEqual(await store.readRange(17_001, 3), lines.slice(17_001, 17_004));
  t.deepEqual(await store.readRange(29_999, 5), [lines[29_999]]);
  await store.close();
});
