/**
 * TEST-ONLY compromised vat shell: `vats/worker-main.ts` as an attacker
 * who broke SES would have it. The agent vat is built as usual, but a run
 * whose input is `{ attack: '<code>' }` runs `<code>` (the body of an async
 * function) in this worker's START compartment instead of an agent, with
 * raw access to the wire:
 *
 * - `h.E`, `h.caps`: CapTP's `E` and the kernel's caretakers, unwrapped;
 * - `h.kernel()`: the kernel's facet (`log`);
 * - `h.post(message)`: sends anything on the vat's port, bypassing CapTP;
 * - `h.lastCall()`: the last CTP_CALL CapTP sent (to replay it raw);
 * - `h.sleep(ms)`: a real timer (the vat's start realm has them).
 *
 * What the attack returns is sent as the run's report, as is: a
 * compromised vat writes its own report. While it attacks, the vat tells
 * the kernel's quiescence probe it has settled (a lie), so only the
 * kernel's own deadline ends it. Started only by tests (never
 * shipped: nothing under `src/` or `vats/` names this file).
 */
import '../src/init.js';
import { parentPort } from 'node:worker_threads';
import { makeCapTP } from '@endo/captp';
import { E, Far } from '@endo/far';
import { buildRootObject, type KernelFacet, type RunSpec } from '../vats/vat-agent.js';

const port = parentPort;
if (!port) throw Error('_compromised-worker-main must run in a worker thread');

let lastCall: Record<string, unknown> | undefined;
let attacking = false;
const root = buildRootObject({
  getKernel: () => getBootstrap() as Promise<KernelFacet>,
  afterTurn: fn => {
    setImmediate(fn);
  },
});

const helpers = (spec: RunSpec) =>
  Object.freeze({
    E,
    caps: spec.caps,
    kernel: () => getBootstrap(),
    post: (message: unknown) => port.postMessage(message),
    lastCall: () => lastCall,
    sleep: (ms: number) => new Promise(resolve => setTimeout(resolve, ms)),
  });

const compromised = Far('AgentVat', {
  run: async (spec: RunSpec) => {
    const attack = (spec.input as { attack?: unknown } | null)?.attack;
    if (typeof attack !== 'string') return root.run(spec);
    attacking = true;
    // The start compartment's own Function: outside any Compartment.
    const run = new Function('h', `return (async () => {\n${attack}\n})();`) as (h: unknown) => Promise<unknown>;
    return run(helpers(spec));
  },
  prewarm: (spec: RunSpec) => root.prewarm(spec),
  // An attacker lies to the kernel's quiescence probe: only the deadline can end it.
  probe: () => (attacking ? Object.freeze({ settled: true }) : root.probe()),
});

const { dispatch, getBootstrap } = makeCapTP(
  'vat-agent',
  message => {
    if (message.type === 'CTP_CALL') lastCall = message;
    port.postMessage(message);
  },
  compromised,
  { onReject: () => undefined },
);
port.on('message', message => {
  dispatch(message as Record<string, unknown>);
});
