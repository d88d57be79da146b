/**
 * Production lockdown options, all spelled out (see `init.ts` for why).
 * Shared by the kernel, every vat and the test harness so that confinement
 * is tested under exactly the settings it ships with.
 */
export const PRODUCTION_LOCKDOWN_OPTIONS = Object.freeze({
  errorTaming: 'safe',
  errorTrapping: 'platform',
  reporting: 'platform',
  unhandledRejectionTrapping: 'report',
  regExpTaming: 'safe',
  localeTaming: 'safe',
  consoleTaming: 'safe',
  overrideTaming: 'moderate',
  stackFiltering: 'concise',
  domainTaming: 'safe',
  evalTaming: 'safe-eval',
  legacyRegeneratorRuntimeTaming: 'safe',
  __hardenTaming__: 'safe',
} as const);
