/**
 * The Node powers of `makeSandbox`: the kernel's clock, ids and digests, the
 * agent vats (worker threads, or sandboxed processes on demand), the agent
 * module reader, the audit vat, the effectors and the isolation probe. Only
 * the kernel vat builds these; the host application never does.
 */
import { harden } from './harden.js';
import { startAuditVat } from './audit/audit-client.js';
import { makeNodeCodePowers } from './code-run-node-powers.js';
import { makeNodeEffectors } from './effectors/node-effectors.js';
import { makeProcessVatStarter, probeIsolation } from './isolation/process-vat-node-powers.js';
import { makeNodeKernelPowers, makeNodeModulePowers, makeNodeVatHostPowers, readTextBounded } from './node-powers.js';
import type { SandboxPowers } from './sandbox.js';
import type { VatIsolation } from './vat-host.js';

export const makeNodeSandboxPowers = (): SandboxPowers => {
  const workerPowers = makeNodeVatHostPowers();
  let processStarter: ReturnType<typeof makeProcessVatStarter> | undefined;
  return harden({
    kernel: makeNodeKernelPowers(),
    vatHost: harden({
      ...workerPowers,
      startAgentWorker: ({ memoryMb, isolation = 'worker' }: { memoryMb: number; isolation?: VatIsolation }) => {
        if (isolation === 'worker') return workerPowers.startAgentWorker({ memoryMb });
        processStarter ??= makeProcessVatStarter();
        return processStarter.start({ memoryMb, level: isolation });
      },
    }),
    modules: makeNodeModulePowers(),
    startAuditVat,
    makeEffectors: makeNodeEffectors,
    probeIsolation: () => probeIsolation(),
    readText: (path: string, maxBytes: number) => readTextBounded(path, maxBytes),
    code: makeNodeCodePowers(),
  });
};
harden(makeNodeSandboxPowers);
