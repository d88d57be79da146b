// `npm run bundle`: each vat's shell and everything it imports, as one file.
// A vat then loads one module instead of hundreds, which more than halves
// its start. Same sources, same first import (lockdown).
import { build } from 'esbuild';

const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning' };
// The kernel's CommonJS dependencies (ajv, yaml, the MCP SDK's) call
// `require` for Node's builtins, which an ES module does not have.
const requireBanner = "import { createRequire as __ztCreateRequire } from 'node:module'; const require = __ztCreateRequire(import.meta.url);";

await Promise.all([
  build({ ...common, entryPoints: ['dist/vats/worker-main.js'], outfile: 'dist/vats/worker-main.bundle.js' }),
  build({ ...common, entryPoints: ['dist/vats/process-main.js'], outfile: 'dist/vats/process-main.bundle.mjs' }),
  build({ ...common, entryPoints: ['dist/vats/audit-main.js'], outfile: 'dist/vats/audit-main.bundle.mjs' }),
  build({
    ...common,
    entryPoints: ['dist/vats/kernel-main.js'],
    outfile: 'dist/vats/kernel-main.bundle.js',
    banner: { js: requireBanner },
    // The agent-module parser (Babel, 3 MB) is loaded from node_modules at the
    // first launch; the parser and TypeScript stripper of code mode (amaro,
    // WebAssembly, 7 MB) at the first code run.
    external: ['@endo/module-source', '@babel/parser', 'amaro'],
  }),
]);
