/**
 * The perimeter of every ZT-AAS entry point: import this module first.
 *
 * It installs SES and the HandledPromise shim (for `E()`), then locks the
 * realm down with explicit production options. Every option is named here on
 * purpose: an option left unset falls back to a `LOCKDOWN_*` environment
 * variable, and a variable such as `LOCKDOWN_ERROR_TAMING=unsafe` must never
 * be able to weaken a kernel or a vat.
 */
import 'ses';
import '@endo/eventual-send/shim.js';
import { PRODUCTION_LOCKDOWN_OPTIONS } from './lockdown-options.js';

// eslint-disable-next-line no-restricted-globals -- this module is the perimeter
lockdown(PRODUCTION_LOCKDOWN_OPTIONS);
