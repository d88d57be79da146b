/**
 * Kernel fixtures: a kernel wired to an in-memory audit sink (so tests can
 * read exactly what was recorded, and make the sink fail on demand) and the
 * real file effectors.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalJson } from '../src/audit/canonical.js';
import { makeReadEffector, makeWriteEffector } from '../src/effectors/files.js';
import type { Effector } from '../src/effectors/types.js';
import { resolveFailureModes, type FailureModes } from '../src/failure-modes.js';
import { makeKernel, type KernelAuditSink, type KernelTimers } from '../src/kernel.js';
import { makeNodeFileEffectorPowers } from '../src/effectors/files-node-powers.js';
import { makeNodeKernelPowers } from '../src/node-powers.js';
import { CAPABILITY_CEILING_POLICY } from '../src/policy.js';
import type { ActionType } from '../src/types.js';

export const makeMemorySink = () => {
  const records: Array<Record<string, unknown>> = [];
  let failing = false;
  let delayMs = 0;
  const sink: KernelAuditSink & { records: typeof records; fail(on: boolean): void; delay(ms: number): void } = {
    records,
    fail: (on: boolean) => {
      failing = on;
    },
    /** Makes every append take `ms` (a slow disk). */
    delay: (ms: number) => {
      delayMs = ms;
    },
    append: async record => {
      if (delayMs > 0) await new Promise(resolve => setTimeout(resolve, delayMs));
      if (failing) throw Error('disk full');
      // As the audit log does: a record it cannot encode canonically is refused.
      canonicalJson(record);
      const seq = records.length;
      records.push({ seq, ...record });
      return { seq, leafHash: `leaf-${seq}` };
    },
  };
  return sink;
};

export const makeTempDir = (prefix = 'ztaas-test-') => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
};

export const makeTestKernel = (
  opts: {
    policy?: unknown;
    failureModes?: Partial<FailureModes>;
    effectors?: Partial<Record<ActionType, Effector>>;
    now?: () => number;
    /** Replaces the kernel's timers (a test clock drives them). */
    timers?: KernelTimers;
    durability?: 'durable' | 'relaxed';
  } = {},
) => {
  const sink = makeMemorySink();
  const files = makeNodeFileEffectorPowers();
  const base = makeNodeKernelPowers();
  const halted: string[] = [];
  const kernel = makeKernel({
    powers: { ...base, ...opts.timers, now: opts.now ?? base.now },
    audit: sink,
    policy: opts.policy ?? CAPABILITY_CEILING_POLICY,
    effectors: { READ: makeReadEffector(files), WRITE: makeWriteEffector(files), ...opts.effectors },
    failureModes: resolveFailureModes(opts.failureModes),
    maxBytes: 1024 * 1024,
    ...(opts.durability ? { durability: opts.durability } : {}),
    onHalt: agentId => {
      halted.push(agentId);
    },
  });
  return { kernel, sink, halted };
};
