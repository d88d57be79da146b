/**
 * Settings and arguments of the file effectors, checked in one place both
 * when a capability is issued (`validateReadGrant`, `validateWriteGrant`)
 * and on every invocation, so a grant the kernel accepted reads the same way
 * at use. Invariants: a target is an absolute path (the kernel matches only
 * normalized ones, src/paths.ts; nothing here joins agent text onto a path);
 * `ops` only narrows READ to a subset of `read`, `stat`, `list`; a file mode
 * never carries setuid, setgid or sticky bits.
 */
import { harden } from '../harden.js';
import { ZtError, assertZt } from '../errors.js';
import type { CapabilityConstraints } from '../types.js';
import { optionalBoolean, readSettings, type Settings } from './settings.js';
import type { EffectContext, GrantValidator } from './types.js';

export type Encoding = 'utf8' | 'base64';

/** The `encoding` argument: utf8 unless the agent asks for base64. */
export const encodingOf = (args: EffectContext['args']): Encoding => {
  const { encoding = 'utf8' } = args as { encoding?: unknown };
  if (encoding !== 'utf8' && encoding !== 'base64') {
    throw new ZtError('ZT_BAD_ARGUMENT', 'encoding must be "utf8" or "base64"');
  }
  return encoding;
};
harden(encodingOf);

export const READ_SETTINGS = harden(['ops', 'allowHardLinks']);
export const WRITE_SETTINGS = harden(['append', 'allowHardLinks', 'mode']);
export const READ_OPS = harden(['read', 'stat', 'list']);
export type ReadOp = 'read' | 'stat' | 'list';

/** The READ operations a capability allows (all of them unless `ops` narrows them). */
export const readOpsOf = (settings: Settings): ReadonlySet<string> => {
  const { ops } = settings;
  if (ops === undefined) return new Set(READ_OPS);
  assertZt(Array.isArray(ops) && ops.length > 0 && ops.every(op => typeof op === 'string' && READ_OPS.includes(op)), 'ZT_BAD_ARGUMENT', `ops must be a non-empty array of ${READ_OPS.join(', ')}`);
  return new Set(ops as string[]);
};
harden(readOpsOf);

/** The permission mode of files a WRITE creates (0o644 unless set). */
export const modeOf = (settings: Settings): number => {
  const { mode } = settings;
  if (mode === undefined) return 0o644;
  assertZt(typeof mode === 'number' && Number.isInteger(mode) && mode >= 0 && mode <= 0o777, 'ZT_BAD_ARGUMENT', 'mode must be a permission mode between 0 and 0o777 (no setuid, setgid or sticky bits)');
  return mode;
};
harden(modeOf);

const assertPathTarget = (target: string) => {
  assertZt(typeof target === 'string' && target.startsWith('/'), 'ZT_BAD_ARGUMENT', 'file targets are absolute paths');
};

/** Issue-time check of READ settings. */
export const validateReadGrant: GrantValidator = (target: string, constraints: CapabilityConstraints) => {
  assertPathTarget(target);
  const settings = readSettings(constraints, READ_SETTINGS, 'READ');
  readOpsOf(settings);
  optionalBoolean(settings, 'allowHardLinks');
};
harden(validateReadGrant);

/** Issue-time check of WRITE settings. */
export const validateWriteGrant: GrantValidator = (target: string, constraints: CapabilityConstraints) => {
  assertPathTarget(target);
  const settings = readSettings(constraints, WRITE_SETTINGS, 'WRITE');
  optionalBoolean(settings, 'append');
  optionalBoolean(settings, 'allowHardLinks');
  modeOf(settings);
};
harden(validateWriteGrant);
