import { spawn, spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from './_prepare.js';
import { codeOfRejection, makeCtx } from './_effectors.js';
import { makeTempDir, makeTestKernel } from './_kernel.js';
import { makeReadEffector, makeWriteEffector, validateReadGrant, validateWriteGrant, type FilePowers } from '../src/effectors/files.js';
import { makeNodeFileEffectorPowers } from '../src/effectors/files-node-powers.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';

/** The same Node powers without O_PATH support, as an older adapter would offer: the fallback path of files.ts. */
const legacyPowers = (): FilePowers => {
  const { fdReopenPath: _reopen, readdir: _readdir, specialDevices: _devices, flags, ...rest } = makeNodeFileEffectorPowers();
  const { O_PATH: _path, O_DIRECTORY: _dir, ...plainFlags } = flags;
  return harden({ ...rest, flags: harden(plainFlags) });
};

const powers = makeNodeFileEffectorPowers();
const read = makeReadEffector(powers);
const write = makeWriteEffector(powers);

const setup = () => {
  const { dir, cleanup } = makeTempDir('ztaas-files-');
  const inside = join(dir, 'reports');
  const outside = join(dir, 'outside');
  mkdirSync(inside);
  mkdirSync(outside);
  writeFileSync(join(inside, 'a.txt'), 'public report');
  writeFileSync(join(outside, 'secret.txt'), 'TOP SECRET');
  return { dir, inside, outside, cleanup };
};

const readAt = (target: string, opts: { pattern?: string; args?: Record<string, unknown>; effect?: Record<string, unknown>; maxBytes?: number } = {}) =>
  read(makeCtx({ actionType: ActionType.READ, target, ...opts }).ctx);
const writeAt = (target: string, args: Record<string, unknown>, opts: { effect?: Record<string, unknown>; maxBytes?: number } = {}) =>
  write(makeCtx({ actionType: ActionType.WRITE, target, args, ...opts }).ctx);

test('reads and writes text and binary data', async t => {
  const { inside, cleanup } = setup();
  t.teardown(cleanup);
  t.is(await readAt(join(inside, 'a.txt')), 'public report');
  const binary = Buffer.from([0, 1, 2, 253, 254, 255]);
  t.deepEqual(await writeAt(join(inside, 'b.bin'), { content: binary.toString('base64'), encoding: 'base64' }), { bytes: 6 });
  t.deepEqual(readFileSync(join(inside, 'b.bin')), binary);
  t.is(await readAt(join(inside, 'b.bin'), { args: { encoding: 'base64' } }), binary.toString('base64'));
  t.deepEqual(await writeAt(join(inside, 'a.txt'), { content: 'héllo' }), { bytes: 6 });
  t.is(readFileSync(join(inside, 'a.txt'), 'utf8'), 'héllo');
  t.deepEqual(readdirSync(inside).sort(), ['a.txt', 'b.bin'], 'no temp file is left behind');
  t.is(await codeOfRejection(readAt(join(inside, 'a.txt'), { args: { encoding: 'latin1' } })), 'ZT_BAD_ARGUMENT');
  t.is(await codeOfRejection(writeAt(join(inside, 'c.txt'), { content: 42 })), 'ZT_BAD_ARGUMENT');
});

test('path traversal: .. and absolute paths in the target never leave the granted tree', async t => {
  // Attack: the agent spells a path that starts inside the grant and walks
  // out of it with `..`, or names an absolute path elsewhere.
  const { inside, outside, cleanup } = setup();
  t.teardown(cleanup);
  const { kernel } = makeTestKernel({ effectors: { READ: read, WRITE: write } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'r', actionType: ActionType.READ, target: `${inside}/**`, holder: 'a' }));
  kernel.issueCapability(new Capability({ id: 'w', actionType: ActionType.WRITE, target: `${inside}/*.txt`, holder: 'a' }));
  const run = (capabilityId: string, actionType: ActionType, target: string, args?: Record<string, unknown>) =>
    kernel.execute(new ActionRequest({ capabilityId, agentId: 'a', actionType, target, ...(args ? { args } : {}) }), 'api');
  for (const target of [`${inside}/../outside/secret.txt`, `${inside}/./../outside/secret.txt`, `${outside}/secret.txt`, '/etc/passwd', 'reports/a.txt', `${inside}/a.txt\0`]) {
    const outcome = await run('r', ActionType.READ, target);
    t.is(outcome.error?.code, 'ZT_WRONG_TARGET', target);
  }
  const wrote = await run('w', ActionType.WRITE, `${inside}/../outside/evil.txt`, { content: 'x' });
  t.is(wrote.error?.code, 'ZT_WRONG_TARGET');
  t.false(existsSync(join(outside, 'evil.txt')));
  const ok = await run('r', ActionType.READ, `${inside}/sub/../a.txt`);
  t.is(ok.result, 'public report', 'a lexically equal path inside the grant is fine');
});

test('symlinks: a link as the file or as a directory on the way is refused', async t => {
  // Attack: plant a symlink inside the granted tree pointing outside it,
  // either as the file itself or as a directory component of the path.
  const { inside, outside, cleanup } = setup();
  t.teardown(cleanup);
  symlinkSync(join(outside, 'secret.txt'), join(inside, 'link.txt'));
  symlinkSync(outside, join(inside, 'dirlink'));
  const pattern = `${inside}/**`;
  t.is(await codeOfRejection(readAt(join(inside, 'link.txt'), { pattern })), 'ZT_ACCESS_DENIED');
  t.is(await codeOfRejection(readAt(join(inside, 'dirlink', 'secret.txt'), { pattern })), 'ZT_ACCESS_DENIED');
  t.is(await codeOfRejection(readAt(join(inside, 'dirlink'), { pattern, args: { op: 'list' } })), 'ZT_ACCESS_DENIED');
  t.is(await codeOfRejection(writeAt(join(inside, 'dirlink', 'planted.txt'), { content: 'x' })), 'ZT_ACCESS_DENIED');
  t.is(await codeOfRejection(writeAt(join(inside, 'link.txt'), { content: 'x' })), 'ZT_ACCESS_DENIED');
  t.false(existsSync(join(outside, 'planted.txt')));
  t.is(readFileSync(join(outside, 'secret.txt'), 'utf8'), 'TOP SECRET');
  // The same protection without O_PATH (the older adapter's powers).
  const legacy = makeReadEffector(legacyPowers());
  t.is(await codeOfRejection(legacy(makeCtx({ actionType: ActionType.READ, target: join(inside, 'dirlink', 'secret.txt'), pattern }).ctx)), 'ZT_ACCESS_DENIED');
});

test('symlink swap race: swapping a file or a directory for a link between check and use never leaks or plants anything (many iterations)', async t => {
  // Attack: a concurrent process keeps swapping `reports/a.txt` between a
  // regular file and a symlink to the secret, and `reports/box` between a
  // directory and a symlink to the outside directory, hoping a read or write
  // lands on the other side of a check.
  const { inside, outside, cleanup } = setup();
  t.teardown(cleanup);
  mkdirSync(join(inside, 'box'));
  writeFileSync(join(inside, 'box', 'secret.txt'), 'public box');
  writeFileSync(join(outside, 'out.txt'), 'TOP SECRET');
  const script = `
    const fs = require('node:fs');
    const [inside, outside] = process.argv.slice(1);
    const until = Date.now() + 20000;
    let i = 0;
    while (Date.now() < until) {
      i += 1;
      try {
        fs.symlinkSync(outside + '/secret.txt', inside + '/.l' + i); fs.renameSync(inside + '/.l' + i, inside + '/a.txt');
        fs.writeFileSync(inside + '/.f' + i, 'public report'); fs.renameSync(inside + '/.f' + i, inside + '/a.txt');
        fs.renameSync(inside + '/box', inside + '/.box'); fs.symlinkSync(outside, inside + '/box');
        fs.unlinkSync(inside + '/box'); fs.renameSync(inside + '/.box', inside + '/box');
      } catch {}
    }`;
  const swapper = spawn(process.execPath, ['-e', script, inside, outside], { stdio: 'ignore' });
  t.teardown(() => {
    swapper.kill('SIGKILL');
  });
  const pattern = `${inside}/**`;
  const seen = new Map<string, number>();
  const note = (k: string) => seen.set(k, (seen.get(k) ?? 0) + 1);
  const ITERATIONS = 400;
  for (let i = 0; i < ITERATIONS; i += 1) {
    for (const target of [join(inside, 'a.txt'), join(inside, 'box', 'secret.txt')]) {
      try {
        const text = await readAt(target, { pattern });
        t.true(text === 'public report' || text === 'public box', `read ${String(text)}`);
        note('read');
      } catch (err) {
        note(await codeOfRejection(Promise.reject(err)));
      }
    }
    try {
      await writeAt(join(inside, 'box', `w${i}.txt`), { content: 'planted' });
      note('wrote');
    } catch (err) {
      note(await codeOfRejection(Promise.reject(err)));
    }
  }
  swapper.kill('SIGKILL');
  t.false(readdirSync(outside).some(name => name.startsWith('w') || name.includes('ztaas')), 'nothing was ever written outside');
  t.is(readFileSync(join(outside, 'secret.txt'), 'utf8'), 'TOP SECRET');
  for (const key of seen.keys()) t.true(['read', 'wrote', 'ZT_ACCESS_DENIED', 'ZT_NOT_FOUND'].includes(key), `unexpected outcome ${key}`);
  t.true((seen.get('ZT_ACCESS_DENIED') ?? 0) > 0, 'the race was actually exercised');
  t.log(Object.fromEntries(seen));
});

test('FIFO blocking: a named pipe as the target is refused at once, never opened for I/O', async t => {
  // Attack: replace a granted file with a FIFO so that opening it for
  // reading (or writing) blocks the effector forever.
  const { inside, cleanup } = setup();
  t.teardown(cleanup);
  const fifo = join(inside, 'pipe.txt');
  t.is(spawnSync('mkfifo', [fifo]).status, 0);
  t.is(await codeOfRejection(readAt(fifo)), 'ZT_NOT_A_FILE');
  t.is(await codeOfRejection(writeAt(fifo, { content: 'x' })), 'ZT_NOT_A_FILE');
  t.is(await codeOfRejection(writeAt(fifo, { content: 'x', append: true }, { effect: { append: true } })), 'ZT_NOT_A_FILE');
  const stat = (await readAt(fifo, { args: { op: 'stat' } })) as { type: string; size: number };
  t.is(stat.type, 'other', 'stat describes the FIFO without opening it');
  t.is(stat.size, 0);
  const legacy = makeReadEffector(legacyPowers());
  t.is(await codeOfRejection(legacy(makeCtx({ actionType: ActionType.READ, target: fifo }).ctx)), 'ZT_NOT_A_FILE');
});

test('devices and /proc: special files and pseudo file systems are never read or written', async t => {
  // Attack: a grant (perhaps a broad pattern) that reaches /proc/self/environ
  // (the kernel's secrets), /dev/zero (an endless stream) or a directory.
  const { inside, cleanup } = setup();
  t.teardown(cleanup);
  t.is(await codeOfRejection(readAt('/proc/self/environ')), 'ZT_ACCESS_DENIED');
  t.is(await codeOfRejection(readAt('/proc/self/status')), 'ZT_ACCESS_DENIED');
  t.is(await codeOfRejection(readAt('/dev/zero')), 'ZT_ACCESS_DENIED');
  t.is(await codeOfRejection(readAt('/sys/kernel/mm/transparent_hugepage/enabled')), 'ZT_ACCESS_DENIED');
  t.is(await codeOfRejection(writeAt('/dev/null', { content: 'x' })), 'ZT_ACCESS_DENIED');
  t.is(await codeOfRejection(readAt(inside)), 'ZT_NOT_A_FILE');
  t.is(await codeOfRejection(writeAt(inside, { content: 'x' })), 'ZT_NOT_A_FILE');
  // procfs reached through another name (a symlink to it) is refused as a symlink, and by device number.
  symlinkSync('/proc/self', join(inside, 'proc'));
  t.is(await codeOfRejection(readAt(join(inside, 'proc', 'environ'))), 'ZT_ACCESS_DENIED');
  t.true(powers.specialDevices !== undefined && powers.specialDevices.length > 0);
});

test('hard links: a second name for a file outside the target is refused for reads and appends', async t => {
  // Attack: a hard link inside the granted tree to a file outside it (same
  // inode) read through the grant, or modified in place by appending.
  const { inside, outside, cleanup } = setup();
  t.teardown(cleanup);
  const link = join(inside, 'hard.txt');
  linkSync(join(outside, 'secret.txt'), link);
  t.is(await codeOfRejection(readAt(link)), 'ZT_ACCESS_DENIED');
  t.is(await codeOfRejection(writeAt(link, { content: 'x', append: true }, { effect: { append: true } })), 'ZT_ACCESS_DENIED');
  t.is(readFileSync(join(outside, 'secret.txt'), 'utf8'), 'TOP SECRET');
  t.is(await readAt(link, { effect: { allowHardLinks: true } }), 'TOP SECRET', 'the operator may allow hard links');
  // An atomic write replaces the name and never touches the shared inode.
  await writeAt(link, { content: 'replaced' });
  t.is(readFileSync(link, 'utf8'), 'replaced');
  t.is(readFileSync(join(outside, 'secret.txt'), 'utf8'), 'TOP SECRET');
});

test('byte limits: oversized reads and writes fail with ZT_TOO_LARGE and leave nothing behind', async t => {
  const { inside, cleanup } = setup();
  t.teardown(cleanup);
  writeFileSync(join(inside, 'big.txt'), 'x'.repeat(2000));
  t.is(await codeOfRejection(readAt(join(inside, 'big.txt'), { maxBytes: 1999 })), 'ZT_TOO_LARGE');
  t.is((await readAt(join(inside, 'big.txt'), { maxBytes: 2000 }) as string).length, 2000);
  t.is(await codeOfRejection(writeAt(join(inside, 'new.txt'), { content: 'y'.repeat(101) }, { maxBytes: 100 })), 'ZT_TOO_LARGE');
  t.false(existsSync(join(inside, 'new.txt')));
  t.deepEqual(readdirSync(inside).sort(), ['a.txt', 'big.txt']);
});

test('append only when granted; atomic replace otherwise', async t => {
  const { inside, cleanup } = setup();
  t.teardown(cleanup);
  const log = join(inside, 'log.txt');
  t.is(await codeOfRejection(writeAt(log, { content: 'one\n', append: true })), 'ZT_ARGUMENT_DENIED');
  t.false(existsSync(log));
  await writeAt(log, { content: 'one\n', append: true }, { effect: { append: true } });
  await writeAt(log, { content: 'two\n', append: true }, { effect: { append: true } });
  t.is(readFileSync(log, 'utf8'), 'one\ntwo\n');
  await writeAt(log, { content: 'fresh\n' }, { effect: { append: true } });
  t.is(readFileSync(log, 'utf8'), 'fresh\n');
  t.is(await codeOfRejection(writeAt(log, { content: 'x', append: 'yes' }, { effect: { append: true } })), 'ZT_BAD_ARGUMENT');
});

test('stat and list are folded into READ and can be narrowed by effect.ops', async t => {
  const { inside, cleanup } = setup();
  t.teardown(cleanup);
  mkdirSync(join(inside, 'sub'));
  symlinkSync('/etc', join(inside, 'etc'));
  const pattern = `${inside}/**`;
  t.deepEqual(await readAt(inside, { pattern, args: { op: 'list' } }), [
    { name: 'a.txt', type: 'file' },
    { name: 'etc', type: 'symlink' },
    { name: 'sub', type: 'directory' },
  ]);
  const stat = (await readAt(join(inside, 'a.txt'), { pattern, args: { op: 'stat' } })) as { type: string; size: number };
  t.is(stat.type, 'file');
  t.is(stat.size, 13);
  t.is(((await readAt(join(inside, 'etc'), { pattern, args: { op: 'stat' } })) as { type: string }).type, 'symlink', 'stat never follows a link');
  t.is(await codeOfRejection(readAt(inside, { pattern, args: { op: 'list' }, effect: { ops: ['read'] } })), 'ZT_ARGUMENT_DENIED');
  t.is(await codeOfRejection(readAt(inside, { pattern, args: { op: 'delete' } })), 'ZT_BAD_ARGUMENT');
  t.is(await codeOfRejection(readAt(join(inside, 'a.txt'), { pattern, args: { op: 'list' } })), 'ZT_NOT_A_DIRECTORY');
});

test('missing targets and directories: stable codes, redacted messages, no temp files', async t => {
  const { inside, cleanup } = setup();
  t.teardown(cleanup);
  const missing = join(inside, 'nope.txt');
  const err = await read(makeCtx({ actionType: ActionType.READ, target: missing }).ctx).catch((e: Error) => e);
  t.regex(String((err as Error).message), /^ZT_NOT_FOUND: /);
  t.false(String((err as Error).message).includes('/proc'), 'no /proc path in the message');
  const werr = await write(makeCtx({ actionType: ActionType.WRITE, target: join(inside, 'no-dir', 'x.txt'), args: { content: 'x' } }).ctx).catch((e: Error) => e);
  t.regex(String((werr as Error).message), /^ZT_NOT_FOUND: /);
  t.false(/ztaas-[0-9a-f]+\.tmp|\/proc\//.test(String((werr as Error).message)), 'neither the temp file nor /proc is named');
  t.deepEqual(readdirSync(inside), ['a.txt']);
});

test('an aborted signal stops the effect before it starts', async t => {
  const { inside, cleanup } = setup();
  t.teardown(cleanup);
  const controller = new AbortController();
  controller.abort(Error('ZT_REVOKED: revoked'));
  t.is(await codeOfRejection(read(makeCtx({ actionType: ActionType.READ, target: join(inside, 'a.txt'), controller }).ctx)), 'ZT_REVOKED');
  t.is(await codeOfRejection(write(makeCtx({ actionType: ActionType.WRITE, target: join(inside, 'z.txt'), args: { content: 'z' }, controller }).ctx)), 'ZT_REVOKED');
  t.false(existsSync(join(inside, 'z.txt')));
});

test('grant validators refuse unknown or malformed file settings at issue time', t => {
  t.notThrows(() => validateReadGrant('/data/**', { effect: { ops: ['read', 'list'], allowHardLinks: false } }));
  t.notThrows(() => validateWriteGrant('/data/*.log', { effect: { append: true, mode: 0o600 } }));
  t.throws(() => validateReadGrant('/data/**', { effect: { opps: ['read'] } }), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => validateReadGrant('/data/**', { effect: { ops: ['delete'] } }), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => validateWriteGrant('/data/x', { effect: { append: 'yes' } }), { message: /^ZT_BAD_ARGUMENT\b/ });
  t.throws(() => validateWriteGrant('/data/x', { effect: { mode: 0o4755 } }), { message: /^ZT_BAD_ARGUMENT\b/ });
});

test('through the kernel: effector codes reach outcomes and the audit log', async t => {
  const { inside, outside, cleanup } = setup();
  t.teardown(cleanup);
  symlinkSync(join(outside, 'secret.txt'), join(inside, 'link.txt'));
  const { kernel, sink } = makeTestKernel({ effectors: { READ: read, WRITE: write } });
  kernel.registerAgent('a');
  kernel.issueCapability(new Capability({ id: 'r', actionType: ActionType.READ, target: `${inside}/*`, holder: 'a', constraints: { maxBytes: 5 } }));
  const run = (target: string) => kernel.execute(new ActionRequest({ capabilityId: 'r', agentId: 'a', actionType: ActionType.READ, target }), 'api');
  const link = await run(join(inside, 'link.txt'));
  t.is(link.error?.code, 'ZT_ACCESS_DENIED');
  t.false(link.error?.message.includes(outside), 'the message names no path beyond the target');
  t.is((await run(join(inside, 'a.txt'))).error?.code, 'ZT_TOO_LARGE');
  t.is((await run(join(inside, 'missing'))).error?.code, 'ZT_NOT_FOUND');
  await kernel.flush();
  t.deepEqual(sink.records.filter(r => r.type === 'outcome').map(r => r.code), ['ZT_ACCESS_DENIED', 'ZT_TOO_LARGE', 'ZT_NOT_FOUND']);
});
