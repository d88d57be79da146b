/**
 * A vat world whose agent vats run the compromised shell
 * (`_compromised-worker-main.ts`): an agent runs normally, unless its input
 * is `{ attack }`, whose code then runs in the vat's start realm with raw
 * access to the wire. Helpers to wait for a record and to measure the log.
 */
import { Worker } from 'node:worker_threads';
import { canonicalJson } from '../src/audit/canonical.js';
import { agentWorkerOptions, makeNodeVatHostPowers } from '../src/node-powers.js';
import type { VatHostPowers, WorkerLike } from '../src/vat-host.js';
import { makeVatWorld } from './_vats.js';

export const compromisedVatPowers = (): VatHostPowers => ({
  ...makeNodeVatHostPowers(),
  startAgentWorker: ({ memoryMb }) =>
    new Worker(new URL('./_compromised-worker-main.js', import.meta.url), agentWorkerOptions(memoryMb)) as unknown as WorkerLike,
});

export const makeCompromisedWorld = (opts: Parameters<typeof makeVatWorld>[0] = {}) => makeVatWorld({ ...opts, vatPowers: compromisedVatPowers });

/** Polls (bounded) until `records` holds one matching `pred`. */
export const waitForRecord = async (
  records: ReadonlyArray<Record<string, unknown>>,
  pred: (r: Record<string, unknown>) => boolean,
  ms = 20_000,
): Promise<Record<string, unknown> | undefined> => {
  const until = Date.now() + ms;
  for (;;) {
    const found = records.find(pred);
    if (found || Date.now() > until) return found;
    await new Promise(resolve => setTimeout(resolve, 20));
  }
};

/** Bytes the records take in the log (canonical JSON, one line each). */
export const logBytes = (records: ReadonlyArray<Record<string, unknown>>) =>
  records.reduce((n, r) => n + Buffer.byteLength(canonicalJson(r)) + 1, 0);

/** A flood: one real call captured, then replayed raw, `burst` at once and `batch` every 10 ms until the vat dies. */
export const replayFlood = (first: string, burst: number, batch: number) => `
  const { E, caps } = h;
  await ${first};
  const call = h.lastCall();
  let q = 1000000000;
  for (let i = 0; i < ${burst}; i += 1) h.post({ ...call, questionID: 'q-' + (q += 1) });
  for (;;) {
    await h.sleep(10);
    for (let i = 0; i < ${batch}; i += 1) h.post({ ...call, questionID: 'q-' + (q += 1) });
  }
`;
