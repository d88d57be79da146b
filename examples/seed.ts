/**
 * The seed example, in TypeScript. The grant names its holder: a capability
 * issued without one is refused with ZT_NO_HOLDER, never given to "anyone".
 *
 *   node dist/examples/seed.js
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActionRequest, ActionType, Capability, SandboxRuntime } from '../src/index.js';

export const runSeedExample = async (storeDir: string) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'ztaas-seed-'));
  const target = join(dataDir, 'data.txt');
  await writeFile(target, 'hello from the seed example\n');

  const sandbox = new SandboxRuntime({ storeDir });
  try {
    sandbox.registerAgent('my-agent');
    sandbox.issueCapability(
      new Capability({ id: 'read-file-cap', actionType: ActionType.READ, target, holder: 'my-agent' }),
    );
    const outcome = await sandbox.executeAction(
      new ActionRequest({ capabilityId: 'read-file-cap', agentId: 'my-agent', actionType: ActionType.READ, target }),
    );
    return outcome;
  } finally {
    await sandbox.shutdown();
  }
};

// Run directly: `node dist/examples/seed.js`
if (import.meta.url === `file://${process.argv[1]}`) {
  const outcome = await runSeedExample(join(process.cwd(), '.ztaas', 'seed'));
  console.log(outcome);
}
