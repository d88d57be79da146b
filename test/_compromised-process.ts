/**
 * The compromised vat shell in a real `process` vat: every agent vat of the
 * world is a process vat started with the test-only escape hook, so a run
 * whose input is `{ ztTestEscape: code }` runs `code` in the vat's start
 * realm with everything its process holds, its wire (fd 3) included. The
 * kernel, vat host, gate, membrane and audit code are the shipped ones.
 *
 * `WIRE` is a prelude for attack code: `frame(message)` encodes one message
 * as the wire does (src/isolation/wire.ts: a 4-byte big-endian length, then
 * UTF-8 JSON), and `writeFrames(messages)` writes frames straight to fd 3,
 * behind the vat's CapTP, synchronously (it waits for the kernel to drain
 * the pipe without yielding, so the vat's own socket never writes between
 * the attacker's bytes, and the vat answers nothing until all are written).
 */
import { makeProcessVatHostPowers, readProcessVatHost } from '../src/isolation/process-vat-node-powers.js';
import { makeVatWorld } from './_vats.js';

/** Whether this machine can start `process` vats (bubblewrap present). */
export const canRunProcessVats = readProcessVatHost().bwrap !== undefined;

/** A vat world whose agent vats are all `process` vats with the escape hook (launches are recorded as `process`). */
export const makeCompromisedProcessWorld = (opts: Omit<Parameters<typeof makeVatWorld>[0], 'vatPowers'> = {}) => {
  const world = makeVatWorld({ ...opts, vatPowers: () => makeProcessVatHostPowers({ testHooks: { escape: true } }) });
  const launch = (agentId: string, module: string, extra: Parameters<typeof world.launch>[2] = {}) => world.launch(agentId, module, { isolation: 'process', ...extra });
  return { ...world, launch };
};

export const WIRE = `
  const fs = process.getBuiltinModule('node:fs');
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
  const frame = message => {
    const body = new TextEncoder().encode(JSON.stringify(message));
    const out = new Uint8Array(4 + body.length);
    new DataView(out.buffer).setUint32(0, body.length, false);
    out.set(body, 4);
    return out;
  };
  const writeFrames = messages => {
    for (const message of messages) {
      const bytes = frame(message);
      let at = 0;
      while (at < bytes.length) {
        try {
          at += fs.writeSync(3, bytes, at, bytes.length - at);
        } catch (e) {
          if (e.code !== 'EAGAIN') throw e;
        }
      }
    }
  };
  const rewriteSent = fn => {
    const net = process.getBuiltinModule('node:net');
    const write = net.Socket.prototype.write;
    net.Socket.prototype.write = function (chunk, ...rest) {
      let replaced;
      try {
        replaced = fn(JSON.parse(new TextDecoder().decode(chunk.subarray(4))));
      } catch {}
      return write.call(this, replaced === undefined ? chunk : frame(replaced), ...rest);
    };
  };
  const lieToProbe = () =>
    rewriteSent(m =>
      m.type === 'CTP_RETURN' && m.result && String(m.result.body).includes('"settled":false')
        ? { ...m, result: { ...m.result, body: m.result.body.replace('"settled":false', '"settled":true') } }
        : undefined,
    );
  const call = (target, questionID, method, args) => ({
    type: 'CTP_CALL', epoch: 0, questionID, target,
    method: { body: JSON.stringify([method, args]), slots: [] },
  });
`;
