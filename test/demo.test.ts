/** `npm start` works: the demo runs to the end and every one of its checks holds. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from './_prepare.js';

const run = promisify(execFile);

test('the demo runs every check and they all hold', async t => {
  const cwd = mkdtempSync(join(tmpdir(), 'ztaas-demo-'));
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }));
  const demo = fileURLToPath(new URL('../examples/demo.js', import.meta.url));
  const { stdout } = await run(process.execPath, [demo], { cwd, env: {}, timeout: 110_000 });
  t.regex(stdout, /All confinement checks held\.\n$/);
  t.false(stdout.includes('✘'), 'no check failed');
  t.regex(stdout, /stopped with ZT_DEADLINE/);
  t.regex(stdout, /the toolbox agent used all five kinds of capability/);
  // Code mode: the scripted model's code ran, was denied the secret, and its console and audit records came back.
  t.regex(stdout, /✔ the code read the notes, called the MCP tool and returned a summary/);
  t.regex(stdout, /✔ reading the secret was denied by the policy — ZT_POLICY_DENIED/);
  t.regex(stdout, /✔ its console came back/);
  t.regex(stdout, /✔ its audit records carry the run id: .* — run toolbox#\d+: tb-notes allow, tb-sum allow, tb-data deny/);
});
