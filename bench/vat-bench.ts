/**
 * Bench-only vat: lockdown, one CapTP connection, and a root that times
 * calls it makes to objects the kernel hands it. Timing happens here, in the
 * vat's start compartment (agents themselves have no clock).
 */
import '../src/init.js';
import { parentPort } from 'node:worker_threads';
import { makeCapTP } from '@endo/captp';
import { E, Far } from '@endo/far';

const port = parentPort;
if (!port) throw Error('vat-bench must run in a worker');

const root = Far('BenchVat', {
  ping: () => 0,
  /** Calls `target[method](...args)` `count` times in sequence; returns each latency in µs. */
  timeCalls: async (target: unknown, method: string, args: unknown[], count: number) => {
    const samples: number[] = [];
    for (let i = 0; i < count; i += 1) {
      const start = performance.now();
      await (E(target) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[method](...args);
      samples.push((performance.now() - start) * 1000);
    }
    return harden(samples);
  },
});
const { dispatch } = makeCapTP('bench-vat', message => port.postMessage(message), root);
port.on('message', message => {
  dispatch(message as Record<string, unknown>);
});
