/**
 * The host application's realm stays ordinary Node.js after a full demo run
 * in the same process: the kernel and the vats lock down their own realms,
 * never the host's.
 *
 * Threat: a sandbox that freezes the host's intrinsics, adds globals or tames
 * its errors breaks the application that embeds it (libraries that patch
 * prototypes, error reporting without stacks), and pushes operators to turn
 * the sandbox off. This file deliberately skips the locked-down harness
 * (`_prepare.js`) and imports the package only as a host program does.
 */
import test from 'ava';
// Node 22 and later define a global of their own (undici's dispatcher) the
// first time `node:http` is imported, as the demo does; loaded before the
// snapshot below so that only what the package itself adds would show.
import 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Taken before the package is loaded (the import below is dynamic on purpose).
const globalsBefore = new Set(Reflect.ownKeys(globalThis));
const OriginalPromise = Promise;
const originalThen = Promise.prototype.then;

const throwFromHost = () => {
  throw new Error('a host error');
};

test('after a full demo run the host realm is not locked down, and its errors keep their stacks', async t => {
  const root = mkdtempSync(join(tmpdir(), 'ztaas-host-plain-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const { runDemo } = await import('../examples/run-demo.js');
  const lines: string[] = [];
  const { failures } = await runDemo({ root, log: line => lines.push(line) });
  t.is(failures, 0, lines.join('\n'));
  t.is(lines.at(-1), '\nAll confinement checks held.');

  t.false(Object.isFrozen(Object.prototype), 'Object.prototype is not frozen');
  t.false(Object.isFrozen(Array.prototype), 'Array.prototype is not frozen');
  t.false(Object.isFrozen(Function.prototype), 'Function.prototype is not frozen');
  t.false(Object.isFrozen(Promise.prototype), 'Promise.prototype is not frozen');
  t.false(Object.isFrozen(Error), 'Error is not frozen');
  t.true(Object.isExtensible(Object.prototype), 'Object.prototype is extensible');

  t.is(globalThis.Promise, OriginalPromise, 'Promise is not replaced');
  t.is(Promise.prototype.then, originalThen, 'Promise.prototype.then is not replaced');
  const g = globalThis as Record<string, unknown>;
  for (const name of ['lockdown', 'harden', 'Compartment', 'HandledPromise', 'assert']) {
    t.false(name in globalThis, `no global ${name}`);
    t.is(g[name], undefined);
  }
  t.is((Object as unknown as Record<symbol, unknown>)[Symbol.for('harden')], undefined, 'no harden on Object');
  const added = Reflect.ownKeys(globalThis).filter(key => !globalsBefore.has(key));
  t.deepEqual(added.map(String), [], 'no global added');

  const err = t.throws(throwFromHost, { message: 'a host error' });
  t.is(typeof err.stack, 'string');
  t.regex(err.stack ?? '', /^Error: a host error\n/);
  t.regex(err.stack ?? '', /throwFromHost/);
  t.regex(err.stack ?? '', /host-plain\.test\.[jt]s/);
});
