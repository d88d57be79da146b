/**
 * Attacks on the kernel through a process vat's wire, by the compromised
 * vat shell (the test-only escape hook: attacker code in the vat's start
 * realm, with everything the vat's process holds, its wire fd included),
 * through the real runtime: `makeSandbox` with its kernel, vat host, audit
 * vat and file effectors, and real `process` vats. Only the vats are given
 * the hook; the kernel, membrane and audit code are the shipped ones.
 *
 * The review that motivated the wire crashed the kernel (and every agent
 * with it) with one `{cmd: 'NODE_HANDLE_ACK'}` sent through Node's IPC
 * channel, or one non-JSON line written to fd 3. Each attack here must end
 * the attacking vat alone, with ZT_VAT_PROTOCOL recorded by the kernel,
 * while another agent, the operator and the audit log carry on.
 */
import { test } from './_prepare.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { harden } from '../src/harden.js';
import { makeSandbox, type SandboxPowers } from '../src/sandbox.js';
import { makeNodeSandboxPowers } from '../src/sandbox-node-powers.js';
import { makeProcessVatStarter, readProcessVatHost } from '../src/isolation/process-vat-node-powers.js';
import { verifyStore } from '../src/audit/verify-node.js';
import type { VatIsolation } from '../src/vat-host.js';
import { ActionRequest, ActionType, Capability } from '../src/types.js';
import { makeTempDir } from './_kernel.js';
import { fixtureAgent } from './_vats.js';

const canRun = readProcessVatHost().bwrap !== undefined;
const bwrapTest = canRun ? test.serial : test.skip;

/** The runtime's own powers, but every process vat starts with the escape hook (the compromised shell). */
const compromisedVatPowers = (): SandboxPowers => {
  const base = makeNodeSandboxPowers();
  const starter = makeProcessVatStarter();
  return harden({
    ...base,
    vatHost: harden({
      ...base.vatHost,
      startAgentWorker: ({ memoryMb, isolation = 'worker' }: { memoryMb: number; isolation?: VatIsolation }) =>
        isolation === 'worker' ? base.vatHost.startAgentWorker({ memoryMb }) : starter.start({ memoryMb, level: isolation, testHooks: { escape: true } }),
    }),
  });
};

/** Writes `bytes` (a JS expression) to the vat's wire, fd 3, behind the vat's back. */
const writeToWire = (bytes: string, after = '') => `
  const fs = process.getBuiltinModule('node:fs');
  const bytes = ${bytes};
  fs.writeSync(3, typeof bytes === 'string' ? bytes : new Uint8Array(bytes));
  ${after}
  return 'written';`;
const framed = (text: string) => `(() => { const b = new TextEncoder().encode(${JSON.stringify(text)}); return [0, 0, b.length >> 8, b.length & 255, ...b]; })()`;

const ATTACKS: ReadonlyArray<readonly [string, string]> = [
  ['a NODE_HANDLE_ACK line, as Node IPC writes it', writeToWire(JSON.stringify('{"cmd":"NODE_HANDLE_ACK"}\n'))],
  ['a NODE_HANDLE_NACK line', writeToWire(JSON.stringify('{"cmd":"NODE_HANDLE_NACK"}\n'))],
  ['a NODE_HANDLE_ACK message in a well-formed frame', writeToWire(framed('{"cmd":"NODE_HANDLE_ACK"}'))],
  ['a non-JSON line', writeToWire(JSON.stringify('hello kernel, this is not JSON\n'))],
  ['a well-formed frame of text that is not JSON', writeToWire(framed('hello kernel'))],
  ['a frame of bytes that are not UTF-8', writeToWire('[0, 0, 0, 3, 0x22, 0xff, 0x22]')],
  ['a frame announcing 4 GiB', writeToWire('[255, 255, 255, 255, 1, 2, 3]')],
  ['half a frame, then the vat exits', writeToWire('[0, 0, 0, 100, 123]', 'process.exit(0);')],
];

bwrapTest('attack: a compromised process vat writes Node IPC messages, non-JSON lines and malformed frames to its wire: only that vat ends, with ZT_VAT_PROTOCOL, while another agent, the operator and the audit log carry on', async t => {
  const tmp = makeTempDir('ztaas-wire-');
  t.teardown(tmp.cleanup);
  const data = join(tmp.dir, 'data.txt');
  writeFileSync(data, 'hello');
  const storeDir = join(tmp.dir, 'store');
  const sandbox = makeSandbox(compromisedVatPowers(), { storeDir, limits: { deadlineMs: 20_000 } });
  let shut = false;
  t.teardown(async () => {
    if (!shut) await sandbox.shutdown();
  });
  sandbox.registerAgent('alice');
  sandbox.issueCapability(new Capability({ id: 'alice-read', actionType: ActionType.READ, target: data, holder: 'alice' }));
  sandbox.registerAgent('operator-agent');
  sandbox.issueCapability(new Capability({ id: 'operator-read', actionType: ActionType.READ, target: data, holder: 'operator-agent' }));
  const alice = () =>
    sandbox.launchAgent({ agentId: 'alice', module: fixtureAgent('reader'), capabilities: { file: 'alice-read' }, input: { reads: [['file', null]] }, isolation: 'process' });

  // The compromised shell first looks for Node's IPC channel: there is none.
  sandbox.registerAgent('mallory-looks');
  const looked = await (
    await sandbox.launchAgent({
      agentId: 'mallory-looks',
      module: fixtureAgent('echo'),
      input: { ztTestEscape: 'return { send: typeof process.send, channel: typeof process.channel, disconnect: typeof process.disconnect, nodeEnv: Object.keys(process.env).filter(k => k.startsWith("NODE_")) }' },
      isolation: 'process',
    })
  ).result;
  t.deepEqual(looked.value, { ok: true, value: { send: 'undefined', channel: 'undefined', disconnect: 'undefined', nodeEnv: [] } });

  // Every attack, each by its own vat, while alice's vat runs beside them.
  const attacks = await Promise.all(
    ATTACKS.map(async ([name, code], i) => {
      const agentId = `mallory-${i}`;
      sandbox.registerAgent(agentId);
      sandbox.issueCapability(new Capability({ id: `${agentId}-read`, actionType: ActionType.READ, target: data, holder: agentId }));
      const handle = await sandbox.launchAgent({ agentId, module: fixtureAgent('echo'), capabilities: [`${agentId}-read`], input: { ztTestEscape: code }, isolation: 'process' });
      return { name, agentId, outcome: await handle.result };
    }),
  );
  const during = await (await alice()).result;
  for (const { name, agentId, outcome } of attacks) {
    t.is(outcome.status, 'failed', name);
    t.is(outcome.error?.code, 'ZT_VAT_PROTOCOL', name);
    // The vat's capabilities died with it (failure mode vatFailure: revoke).
    t.is(sandbox.getCapability(`${agentId}-read`)?.state, 'revoked', name);
  }
  t.deepEqual(during.value, { 'file:': 'hello' }, 'another agent is served while the attacks run');

  // The kernel is intact: a new agent, and the operator, are served.
  t.deepEqual((await (await alice()).result).value, { 'file:': 'hello' });
  const operator = await sandbox.execute(new ActionRequest({ capabilityId: 'operator-read', agentId: 'operator-agent', actionType: ActionType.READ, target: data }));
  t.is(operator.result, 'hello');

  await sandbox.flush();
  shut = true;
  await sandbox.shutdown();
  // The log holds each attacker's end, written by the kernel, and verifies.
  const records = readFileSync(join(storeDir, 'audit', 'records.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map(line => JSON.parse(line) as { record?: Record<string, unknown> } & Record<string, unknown>);
  const finished = records.map(r => r.record ?? r).filter(r => r.type === 'agent.finished' && String(r.agentId).startsWith('mallory-') && r.agentId !== 'mallory-looks');
  t.is(finished.length, ATTACKS.length);
  t.true(finished.every(r => r.code === 'ZT_VAT_PROTOCOL'));
  const report = await verifyStore(join(storeDir, 'audit'));
  t.true(report.size >= records.length);
});
