/**
 * The isolation levels an operator can name for an agent, what a probe of
 * them reports, and the one refusal when a level cannot be had.
 *
 * Invariant — fail closed: a level that cannot be established on this
 * machine is refused with ZT_ISOLATION_UNAVAILABLE naming each missing piece
 * and how to provide it (`details.missing`, `details.fixes`); nothing is
 * started half-contained. A weaker level runs only when named explicitly:
 * nothing here, or in its callers, falls back from one level to another.
 */
import { harden } from '../harden.js';
import { ZtError } from '../errors.js';
import type { Gap } from './explain.js';

/** The isolation levels an operator can name for an agent. */
export const ISOLATION_LEVELS = harden(['worker', 'process', 'process-weak'] as const);
export type IsolationLevel = (typeof ISOLATION_LEVELS)[number];
export type ProcessIsolationLevel = Exclude<IsolationLevel, 'worker'>;

/**
 * The level of an agent whose launch names none, unless the runtime's
 * `isolation` option names another: the OS boundary. A SES bug inside a
 * `worker` vat is a compromise of the host process, and a worker's memory
 * limit covers its JS heap only; `worker` runs only where an operator names
 * it. Where `process` cannot be established, such a launch fails closed with
 * ZT_ISOLATION_UNAVAILABLE naming what to install.
 */
export const DEFAULT_ISOLATION: IsolationLevel = 'process';

export const isIsolationLevel = (value: unknown): value is IsolationLevel =>
  typeof value === 'string' && (ISOLATION_LEVELS as readonly string[]).includes(value);
harden(isIsolationLevel);

/** ZT_ISOLATION_UNAVAILABLE for `level`, naming every gap and its fix. */
export const isolationUnavailable = (level: ProcessIsolationLevel | IsolationLevel, gaps: readonly Gap[], where = '') =>
  new ZtError(
    'ZT_ISOLATION_UNAVAILABLE',
    `isolation level ${level} cannot be established${where}: missing ${gaps.map(g => g.missing).join(', ')}; to fix: ${gaps.map(g => g.fix).join('; ')}`,
    { level, missing: gaps.map(g => g.missing), fixes: gaps.map(g => g.fix) },
  );
harden(isolationUnavailable);

/** What a probe of one level found. */
export interface LevelReport {
  readonly available: boolean;
  /** What the level lacks on this machine, one entry per missing piece. */
  readonly missing: readonly string[];
  /** How to provide each: `fixes[i]` for `missing[i]`. */
  readonly fixes: readonly string[];
  readonly details: Readonly<Record<string, unknown>>;
}

export interface IsolationProbe {
  readonly platform: string;
  readonly arch: string;
  readonly node: string;
  readonly worker: LevelReport;
  readonly process: LevelReport;
  readonly 'process-weak': LevelReport;
}

/**
 * Throws ZT_ISOLATION_UNAVAILABLE, naming what is missing and how to fix
 * it, unless `level` can be established according to `probe`.
 */
export const assertIsolationAvailable = (probe: IsolationProbe, level: IsolationLevel): void => {
  if (!isIsolationLevel(level)) throw new ZtError('ZT_BAD_ARGUMENT', `unknown isolation level ${String(level)}; expected one of ${ISOLATION_LEVELS.join(', ')}`);
  const report = probe[level];
  if (!report.available) {
    const fixes = report.fixes ?? [];
    throw isolationUnavailable(level, report.missing.map((missing, i) => ({ missing, fix: fixes[i] ?? 'see `ztaas doctor`' })), ' on this machine');
  }
};
harden(assertIsolationAvailable);
