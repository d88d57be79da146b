/**
 * An environment record for `child_process.spawn` that the child receives
 * exactly as listed.
 *
 * Threat: since Node 22.18 and 24.4, a process running under Node's
 * permission model (`--permission`) has `spawn` append its own permission
 * flags (`--permission --allow-fs-read=… --allow-child-process …`) to the
 * child's `NODE_OPTIONS`, even when the caller passes an explicit `env`,
 * unless the child's arguments already contain `--permission`. A kernel
 * started that way would hand its own grants to a `process-weak` vat (whose
 * Node reads `NODE_OPTIONS`), and its flags to every MCP server and program
 * written in Node. Node adds them by assigning to the `env` object it was
 * given, so the record returned here ignores assignments and deletions:
 * what the caller listed is all the child gets.
 *
 * Not hardened: the record is handed to Node, which only reads it (and
 * tries to write to it); it never reaches a vat.
 */
import { harden } from './harden.js';

export const exactEnv = (env: Readonly<Record<string, string>>): Record<string, string> =>
  new Proxy(
    { ...env },
    {
      set: () => true,
      deleteProperty: () => true,
    },
  );
harden(exactEnv);
