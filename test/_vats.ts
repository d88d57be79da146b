/** Vat fixtures: a test kernel plus the real worker vat host. */
import { fileURLToPath } from 'node:url';
import { loadAgentBundle } from '../src/agent-modules.js';
import { resolveFailureModes, type FailureModes } from '../src/failure-modes.js';
import { makeNodeModulePowers, makeNodeVatHostPowers } from '../src/node-powers.js';
import { DEFAULT_VAT_LIMITS, makeVatHost, type VatHostPowers, type VatIsolation, type VatLimits } from '../src/vat-host.js';
import { makeTestKernel } from './_kernel.js';

/** Absolute path of a fixture agent folder (tests run from dist/test). */
export const fixtureAgent = (name: string) =>
  fileURLToPath(new URL(`../../test/fixtures/agents/${name}/`, import.meta.url)).replace(/\/$/, '');

export const makeVatWorld = (
  opts: {
    policy?: unknown;
    failureModes?: Partial<FailureModes>;
    effectors?: Parameters<typeof makeTestKernel>[0] extends infer O ? (O extends { effectors?: infer E } ? E : never) : never;
    vatPowers?: () => VatHostPowers;
  } = {},
) => {
  const world = makeTestKernel(opts);
  const vats = makeVatHost({
    kernel: world.kernel,
    powers: (opts.vatPowers ?? makeNodeVatHostPowers)(),
    failureModes: resolveFailureModes(opts.failureModes),
  });
  const launch = async (
    agentId: string,
    module: string,
    extra: { capabilities?: string[]; input?: unknown; limits?: Partial<VatLimits>; isolation?: VatIsolation } = {},
  ) => {
    const bundle = await loadAgentBundle(makeNodeModulePowers(), module);
    return vats.launch({
      agentId,
      bundle,
      capabilityIds: extra.capabilities ?? [],
      input: harden(extra.input ?? null),
      limits: { ...DEFAULT_VAT_LIMITS, deadlineMs: 10_000, memoryMb: 64, ...extra.limits } as VatLimits,
      ...(extra.isolation ? { isolation: extra.isolation } : {}),
    });
  };
  return { ...world, vats, launch };
};
