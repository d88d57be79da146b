/**
 * The forensic CLI, run as the operator runs it: `node dist/src/cli.js
 * audit …` in a child process, on store folders written by the runtime and
 * by the audit log.
 */
import { test } from './_prepare.js';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { openCheckpoint, parseVerifierKey } from '../src/audit/checkpoint.js';
import { RECORDS_FILE } from '../src/audit/file-store.js';
import { makeMerkleHasher, toHex, verifyInclusion } from '../src/audit/merkle.js';
import { nodeEd25519Verify, nodeSha256 } from '../src/audit/node-powers.js';
import { verifyStore } from '../src/audit/verify-node.js';
import { ActionRequest, ActionType, Capability, SandboxRuntime } from '../src/index.js';
import { tempDir } from './_audit-fs.js';
import { makeSignedStore } from './_audit-store.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const execFileP = promisify(execFile);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  raw: Buffer;
}

const cli = async (...args: string[]): Promise<Run> => {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, 'audit', ...args], {
      env: {},
      encoding: 'buffer',
      timeout: 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8'), raw: stdout };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: Buffer; stderr?: Buffer };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: String(e.stdout ?? ''), stderr: String(e.stderr ?? ''), raw: e.stdout ?? Buffer.alloc(0) };
  }
};

const N = 300;

/** A store folder `<store>/audit` holding a signed log of N records, checkpoints every 100. */
const signedStore = async (t: ExecutionContext) => {
  const store = await tempDir(t);
  const signed = await makeSignedStore(join(store, 'audit'), N, { every: 100 });
  return { store, ...signed };
};

const jsonLines = (text: string) =>
  text
    .trim()
    .split('\n')
    .filter(line => line !== '')
    .map(line => JSON.parse(line) as Record<string, unknown>);

test('verify: an untouched store passes with exit 0 and reports its tree', async t => {
  const { store, dir, vkey } = await signedStore(t);
  const human = await cli('verify', '--store', store);
  t.is(human.code, 0, human.stderr);
  t.regex(human.stdout, new RegExp(`^OK: ${N} records, root [0-9a-f]{64}, 3 signed checkpoints verified`));
  const vkeyFile = join(await tempDir(t), 'trusted.vkey');
  await writeFile(vkeyFile, `${vkey}\n`);
  const json = await cli('verify', '--store', store, '--vkey', vkeyFile, '--json');
  t.is(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout) as Record<string, unknown>;
  t.like(report, { ok: true, size: N, checkpoints: 3, coveredBySignedCheckpoint: N });
  t.is(report.rootHash, (await verifyStore(dir)).rootHash);
});

// Attack: delete one record from the middle of the log. `verify` must exit
// non-zero and name the first bad record.
test('verify: a deleted record makes it exit 1 naming the first bad record', async t => {
  const { store, dir, records } = await signedStore(t);
  const lines = records.toString('utf8').split('\n');
  lines.splice(137, 1);
  await writeFile(join(dir, RECORDS_FILE), lines.join('\n'));
  const run = await cli('verify', '--store', store);
  t.is(run.code, 1);
  t.regex(run.stderr, /FAILED, first bad record: 137\b/);
  t.regex(run.stderr, /ZT_AUDIT_CORRUPT: record 137 is out of sequence/);
  const json = await cli('verify', '--store', store, '--json');
  t.is(json.code, 1);
  t.like(JSON.parse(json.stdout), { ok: false, code: 'ZT_AUDIT_CORRUPT', index: 137 });
});

// Attack: the folder's key and checkpoints were replaced by an intruder's.
// Verifying against the key obtained separately must fail.
test('verify --vkey: checkpoints signed by another key fail', async t => {
  const { store } = await signedStore(t);
  const other = await makeSignedStore(await tempDir(t), 3);
  const vkeyFile = join(await tempDir(t), 'other.vkey');
  await writeFile(vkeyFile, `${other.vkey}\n`);
  const run = await cli('verify', '--store', store, '--vkey', vkeyFile);
  t.is(run.code, 1);
  t.regex(run.stderr, /ZT_AUDIT_CORRUPT: checkpoint 0 has a bad signature or origin/);
});

test('key and checkpoint print the verifier key and the latest signed note', async t => {
  const { store, vkey } = await signedStore(t);
  const key = await cli('key', '--store', store);
  t.is(key.code, 0);
  t.is(key.stdout, `${vkey}\n`);
  const parsed = parseVerifierKey(nodeSha256, key.stdout)!;
  t.truthy(parsed);
  const latest = await cli('checkpoint', '--store', store);
  t.is(latest.code, 0);
  const body = openCheckpoint(nodeSha256, nodeEd25519Verify, parsed, latest.stdout);
  t.is(body?.size, N);
  t.is(body?.origin, parsed.name);
  const older = await cli('checkpoint', '--store', store, '--size', '200');
  t.is(openCheckpoint(nodeSha256, nodeEd25519Verify, parsed, older.stdout)?.size, 200);
  const missing = await cli('checkpoint', '--store', store, '--size', '150');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /ZT_NOT_FOUND: no signed checkpoint of size 150 \(sizes: 100, 200, 300\)/);
});

test('leaf prints the exact stored bytes of a record; --hash its RFC 6962 leaf hash', async t => {
  const { store, records } = await signedStore(t);
  const lines = records.toString('utf8').split('\n');
  const leaf = await cli('leaf', '--index', '42', '--store', store);
  t.is(leaf.code, 0);
  t.deepEqual(leaf.raw, Buffer.from(lines[42]!, 'utf8'), 'no newline, no re-encoding');
  const hash = await cli('leaf', '--index', '42', '--hash', '--store', store);
  t.is(hash.stdout, `${toHex(makeMerkleHasher(nodeSha256).hashLeaf(leaf.raw))}\n`);
  const beyond = await cli('leaf', '--index', String(N), '--store', store);
  t.is(beyond.code, 1);
  t.regex(beyond.stderr, /ZT_NOT_FOUND: no record 300/);
  const malformed = await cli('leaf', '--index', '-1', '--store', store);
  t.is(malformed.code, 1);
  t.regex(malformed.stderr, /ZT_BAD_ARGUMENT/);
});

/** Parses a C2SP tlog-proof: header, index, base64 hashes, blank line, checkpoint. */
const parseTlogProof = (text: string) => {
  const split = text.indexOf('\n\n');
  const head = text.slice(0, split).split('\n');
  const checkpoint = text.slice(split + 2);
  const [magic, indexLine, ...hashes] = head;
  return {
    magic,
    index: Number(/^index (0|[1-9][0-9]*)$/.exec(indexLine ?? '')?.[1]),
    hashes: hashes.map(h => new Uint8Array(Buffer.from(h, 'base64'))),
    checkpoint,
  };
};

test('prove prints a C2SP tlog-proof that verifies against the signed checkpoint', async t => {
  const { store, vkey } = await signedStore(t);
  const key = parseVerifierKey(nodeSha256, vkey)!;
  const hasher = makeMerkleHasher(nodeSha256);
  for (const [index, size] of [[0, undefined], [123, undefined], [N - 1, undefined], [57, 100], [99, 100]] as const) {
    const args = ['prove', '--index', String(index), '--store', store, ...(size === undefined ? [] : ['--size', String(size)])];
    const run = await cli(...args);
    t.is(run.code, 0, run.stderr);
    const proof = parseTlogProof(run.stdout);
    t.is(proof.magic, 'c2sp.org/tlog-proof@v1');
    t.is(proof.index, index);
    t.true(proof.hashes.every(h => h.length === 32));
    const body = openCheckpoint(nodeSha256, nodeEd25519Verify, key, proof.checkpoint)!;
    t.is(body.size, size ?? N);
    const leaf = (await cli('leaf', '--index', String(index), '--store', store)).raw;
    t.true(verifyInclusion(hasher, index, body.size, hasher.hashLeaf(leaf), proof.hashes, body.rootHash), `index ${index}`);
    // The same proof does not vouch for another record's bytes.
    const other = (await cli('leaf', '--index', String((index + 1) % body.size), '--store', store)).raw;
    t.false(verifyInclusion(hasher, index, body.size, hasher.hashLeaf(other), proof.hashes, body.rootHash));
  }
  const uncovered = await cli('prove', '--index', '150', '--size', '100', '--store', store);
  t.is(uncovered.code, 1);
  t.regex(uncovered.stderr, /ZT_BAD_ARGUMENT: record 150 is not covered by the signed checkpoint of 100 records/);
  const noIndex = await cli('prove', '--store', store);
  t.is(noIndex.code, 1);
  t.regex(noIndex.stderr, /ZT_BAD_ARGUMENT: --index N is required/);
});

/** A real session: two agents, grants, an allowed read, denials, a revocation. */
const session = async (t: ExecutionContext) => {
  const base = await tempDir(t);
  const store = join(base, 'store');
  const data = join(base, 'data');
  await mkdir(data);
  await writeFile(join(data, 'a.txt'), 'alpha');
  const sandbox = new SandboxRuntime({ storeDir: store });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('alice');
  sandbox.registerAgent('bob');
  sandbox.issueCapability(new Capability({ id: 'cap-a', actionType: ActionType.READ, target: join(data, 'a.txt'), holder: 'alice' }));
  sandbox.issueCapability(new Capability({ id: 'cap-b', actionType: ActionType.READ, target: join(data, '*.txt'), holder: 'bob' }));
  const read = (agentId: string, capabilityId: string, file: string) =>
    sandbox.executeAction(new ActionRequest({ capabilityId, agentId, actionType: ActionType.READ, target: join(data, file) }));
  const allowed = await read('alice', 'cap-a', 'a.txt');
  const wrongTarget = await read('alice', 'cap-a', 'b.txt');
  const bobs = await read('bob', 'cap-b', 'a.txt');
  const before = Date.now();
  sandbox.revokeCapability('cap-a', 'investigation');
  const afterRevoke = await read('alice', 'cap-a', 'a.txt');
  await sandbox.shutdown();
  t.is(allowed.status, 'succeeded');
  t.is(wrongTarget.error?.code, 'ZT_WRONG_TARGET');
  t.is(bobs.status, 'succeeded');
  t.is(afterRevoke.error?.code, 'ZT_REVOKED');
  return { store, allowed, wrongTarget, bobs, afterRevoke, before };
};

test('show|query filter by agent, capability, action, decision, type and time', async t => {
  const { store, allowed, wrongTarget, bobs, afterRevoke, before } = await session(t);
  const q = async (...args: string[]) => {
    const run = await cli('query', '--store', store, '--json', ...args);
    t.is(run.code, 0, run.stderr);
    return jsonLines(run.stdout);
  };
  const alice = await q('--agent', 'alice');
  // Outcomes carry only a requestId; they are attributed through their request.
  t.deepEqual(
    alice.filter(r => r.type === 'outcome').map(r => r.requestId),
    [allowed.requestId],
  );
  t.true(alice.some(r => r.type === 'capability.revoked' && r.capabilityId === 'cap-a'));
  t.false(alice.some(r => r.agentId === 'bob' || r.holder === 'bob'));
  const denials = await q('--decision', 'deny');
  t.deepEqual(denials.map(r => r.requestId), [wrongTarget.requestId, afterRevoke.requestId]);
  t.deepEqual(denials.map(r => r.code), ['ZT_WRONG_TARGET', 'ZT_REVOKED']);
  const capB = await q('--capability', 'cap-b', '--type', 'outcome');
  t.deepEqual(capB.map(r => r.requestId), [bobs.requestId]);
  t.is((await q('--action', 'WRITE')).length, 0);
  t.true((await q('--action', 'READ', '--type', 'request')).length === 4);
  const late = await q('--since', new Date(before).toISOString(), '--type', 'request');
  t.deepEqual(late.map(r => r.requestId), [afterRevoke.requestId]);
  t.deepEqual(await q('--until', '2000-01-01T00:00:00Z'), []);
  const human = await cli('show', '--store', store, '--agent', 'bob');
  t.regex(human.stdout, /capability\.issued\s+capabilityId=cap-b holder=bob/);
  const badTime = await cli('query', '--store', store, '--since', 'yesterday');
  t.is(badTime.code, 1);
  t.regex(badTime.stderr, /ZT_BAD_ARGUMENT: --since must be an ISO 8601 time/);
});

test('timeline marks an expiry', async t => {
  const base = await tempDir(t);
  const store = join(base, 'store');
  const sandbox = new SandboxRuntime({
    storeDir: store,
    policy: { version: 1, rules: [{ id: 'reads', effect: 'permit', actions: ['READ'], targets: ['/data/**'] }] },
  });
  t.teardown(() => sandbox.shutdown());
  sandbox.registerAgent('carol');
  sandbox.registerAgent('dave');
  sandbox.issueCapability(new Capability({ id: 'brief', actionType: ActionType.READ, target: '/data/**', holder: 'carol', constraints: { expiresAt: Date.now() + 30 } }));
  await new Promise(resolve => setTimeout(resolve, 100));
  const late = await sandbox.executeAction(new ActionRequest({ capabilityId: 'brief', agentId: 'carol', actionType: ActionType.READ, target: '/data/x.txt' }));
  t.is(late.error?.code, 'ZT_EXPIRED');
  await sandbox.shutdown();
  const run = await cli('timeline', '--agent', 'carol', '--store', store, '--json');
  t.is(run.code, 0, run.stderr);
  const rows = jsonLines(run.stdout) as Array<{ mark: string | null; summary: string; record: Record<string, unknown> }>;
  t.deepEqual(
    rows.map(r => [r.record.type, r.mark]),
    [
      ['agent.registered', null],
      ['capability.issued', null],
      ['capability.expired', 'expired'],
      ['request', 'denied'],
    ],
  );
  const human = await cli('timeline', '--agent', 'carol', '--store', store);
  t.regex(human.stdout, /\[EXPIRED\] capability brief expired/);
});

test('timeline shows what one agent did, in order, with denials and revocations marked', async t => {
  const { store, allowed, wrongTarget, afterRevoke } = await session(t);
  const run = await cli('timeline', '--agent', 'alice', '--store', store, '--json');
  t.is(run.code, 0, run.stderr);
  const rows = jsonLines(run.stdout) as Array<{ seq: number; mark: string | null; summary: string; record: Record<string, unknown> }>;
  const seqs = rows.map(r => r.seq);
  t.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'in log order');
  const steps = rows.map(r => [r.record.type, r.mark]);
  t.deepEqual(steps, [
    ['agent.registered', null],
    ['capability.issued', null],
    ['request', null],
    ['outcome', null],
    ['request', 'denied'],
    ['capability.revoked', 'revoked'],
    ['request', 'denied'],
  ]);
  t.is(rows[2]!.record.requestId, allowed.requestId);
  t.is(rows[4]!.record.requestId, wrongTarget.requestId);
  t.is(rows[6]!.record.requestId, afterRevoke.requestId);
  const human = await cli('timeline', '--agent', 'alice', '--store', store);
  const lines = human.stdout.trim().split('\n');
  t.is(lines.length, 7);
  t.regex(lines[4]!, /\[DENIED\]\s+READ \S+b\.txt with cap-a → deny ZT_WRONG_TARGET/);
  t.regex(lines[5]!, /\[REVOKED\] capability cap-a revoked: investigation/);
  const noAgent = await cli('timeline', '--store', store);
  t.is(noAgent.code, 1);
  t.regex(noAgent.stderr, /ZT_BAD_ARGUMENT: --agent ID is required/);
});

test('a missing store and an unknown subcommand are reported', async t => {
  const nowhere = join(await tempDir(t), 'nowhere');
  const verify = await cli('verify', '--store', nowhere);
  t.is(verify.code, 1);
  t.regex(verify.stderr, /ZT_NOT_FOUND: no audit log/);
  const unknown = await cli('frobnicate');
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /ztaas audit timeline/);
  t.is((await readFile(CLI, 'utf8')).startsWith('#!/usr/bin/env node'), true);
});

// Attack: text an agent or a caller put in a record (a console line, a
// target, a reason) carries terminal escapes that would rewrite the
// investigator's screen, or bidirectional overrides that hide text. The
// human-readable views print every such character escaped; --json keeps
// the record exact.
test('show and timeline print control characters and bidi overrides escaped, never raw', async t => {
  const store = await tempDir(t);
  const sandbox = new SandboxRuntime({ storeDir: store });
  sandbox.registerAgent('mallory');
  const target = join(store, 'note\u001bc\u202e.txt');
  await writeFile(target, 'x');
  sandbox.issueCapability(new Capability({ id: 'cap-m', actionType: ActionType.READ, target, holder: 'mallory' }));
  await sandbox.executeAction(new ActionRequest({ capabilityId: 'cap-m', agentId: 'mallory', actionType: ActionType.READ, target }));
  sandbox.revokeCapability('cap-m', 'done\u001b]0;owned\u0007');
  await sandbox.shutdown();
  for (const view of [['show', '--store', store], ['timeline', '--agent', 'mallory', '--store', store]]) {
    const run = await cli(...view);
    t.is(run.code, 0, run.stderr);
    t.false(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/.test(run.stdout), `${view[0]} printed a raw control character`);
    t.regex(run.stdout, /note\\u\{1b\}c\\u\{202e\}\.txt/);
    t.regex(run.stdout, /done\\u\{1b\}\]0;owned\\u\{7\}/);
  }
  const json = await cli('query', '--store', store, '--json', '--type', 'capability.revoked');
  t.is(jsonLines(json.stdout)[0]?.reason, 'done\u001b]0;owned\u0007');
});
