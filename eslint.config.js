// Lint with type information where it matters most for a sandbox: a floating
// promise in the membrane or the kernel is a silent fail-open, and a
// non-exhaustive switch over action types or codes is an unhandled case.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'examples/agents/**', 'test/fixtures/**', '*.config.js', '.ztaas/**'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  {
    // The library runs in the host application's realm, which is never locked
    // down: the global `harden` and `lockdown` do not exist there. Library
    // code takes `harden` from src/harden.ts; only the vats' first import
    // (src/init.ts) locks a realm down.
    files: ['src/**/*.ts', 'vats/**/*.ts', 'examples/**/*.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        { name: 'harden', message: "import { harden } from src/harden.ts: the host realm is not locked down" },
        { name: 'lockdown', message: 'only src/init.ts, the first import of a vat, locks a realm down' },
      ],
    },
  },
  {
    // The kernel's clock and timers are powers it is given (KernelPowers).
    files: ['src/kernel/**/*.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        { name: 'harden', message: "import { harden } from src/harden.ts: the host realm is not locked down" },
        ...['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'Date', 'performance'].map(name => ({
          name,
          message: 'the kernel takes its clock and timers from its powers',
        })),
      ],
    },
  },
);
