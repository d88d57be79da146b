/**
 * Translation of the file system's errors into the agent's. Invariant: an
 * error leaving a file effector is redacted — a stable code and the agent's
 * own target, never another host path (not the temp file's name, not a
 * /proc/self/fd path) and never the OS message, which may quote one.
 */
import { harden } from '../harden.js';
import { ZtError, type ErrorCode } from '../errors.js';

const OS_ERRORS: Readonly<Record<string, ErrorCode>> = harden({
  ENOENT: 'ZT_NOT_FOUND',
  ENOTDIR: 'ZT_NOT_FOUND',
  EACCES: 'ZT_ACCESS_DENIED',
  EPERM: 'ZT_ACCESS_DENIED',
  EROFS: 'ZT_ACCESS_DENIED',
  ELOOP: 'ZT_ACCESS_DENIED',
  EXDEV: 'ZT_ACCESS_DENIED',
  EISDIR: 'ZT_NOT_A_FILE',
  ENXIO: 'ZT_NOT_A_FILE',
  ENODEV: 'ZT_NOT_A_FILE',
  ETXTBSY: 'ZT_ACCESS_DENIED',
  EFBIG: 'ZT_TOO_LARGE',
  ENOSPC: 'ZT_TOO_LARGE',
  EDQUOT: 'ZT_TOO_LARGE',
});

const WHY: Readonly<Record<string, string>> = harden({
  ELOOP: 'symbolic links are not followed',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a path component is not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EISDIR: 'is a directory',
  ENOSPC: 'no space left on device',
});

/** Translates an OS error into a redacted ZtError that names only the target. */
export const translateFileError = (err: unknown, target: string, signal: AbortSignal): ZtError => {
  if (err instanceof ZtError) return err;
  if (signal.aborted) return new ZtError('ZT_REVOKED', 'the action was aborted');
  const osCode = (err as { code?: unknown })?.code;
  const code = (typeof osCode === 'string' && OS_ERRORS[osCode]) || 'ZT_EFFECT_FAILED';
  const why = typeof osCode === 'string' ? (WHY[osCode] ?? osCode) : 'failed';
  return new ZtError(code, `${target}: ${why}`);
};
harden(translateFileError);
