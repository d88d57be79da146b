/**
 * Pooled agent vats are prewarmed with a trivial agent before they are
 * needed: the prewarm runs once, in its own Compartment, and leaves the
 * vat's one real run (and its quiescence probe) untouched.
 */
import { test } from './_prepare.js';
import { Far } from '@endo/far';
import { makePrewarmBundle } from '../src/agent-modules.js';
import { makeNodeModulePowers } from '../src/node-powers.js';
import { buildRootObject, type KernelFacet } from '../vats/vat-agent.js';

const makeVat = () =>
  buildRootObject({
    getKernel: async () => Far('Kernel', { log: () => undefined }) as unknown as KernelFacet,
    afterTurn: fn => {
      setImmediate(fn);
    },
  }) as unknown as {
    run(spec: object): Promise<{ status: string; value?: unknown; code?: string }>;
    prewarm(spec: object): Promise<{ status: string; value?: unknown; code?: string }>;
    probe(): Promise<{ settled: boolean }>;
  };

test('a prewarm runs once and leaves the real run to come', async t => {
  const vat = makeVat();
  const { entry, modules } = await makePrewarmBundle(makeNodeModulePowers());
  t.deepEqual(await vat.prewarm(harden({ entry, modules, caps: {}, input: 7 })), { status: 'returned', value: 7 });
  t.like(await vat.prewarm(harden({ entry, modules, caps: {}, input: 8 })), { status: 'failed', code: 'ZT_AGENT_BUSY' });
  t.deepEqual(await vat.probe(), { settled: false }, 'the prewarm is not the run');
  t.deepEqual(await vat.run(harden({ entry, modules, caps: {}, input: 3 })), { status: 'returned', value: 3 });
  t.deepEqual(await vat.probe(), { settled: true });
  t.like(await vat.run(harden({ entry, modules, caps: {}, input: 4 })), { status: 'failed', code: 'ZT_AGENT_BUSY' });
});

test('a vat that ran its agent cannot be prewarmed', async t => {
  const vat = makeVat();
  const { entry, modules } = await makePrewarmBundle(makeNodeModulePowers());
  await vat.run(harden({ entry, modules, caps: {}, input: 1 }));
  t.like(await vat.prewarm(harden({ entry, modules, caps: {}, input: 2 })), { status: 'failed', code: 'ZT_AGENT_BUSY' });
});
