/**
 * The ZT-AAS demo: confined agents on the embedded default store.
 *
 *   npm install && npm run setup && npm start
 *
 * It runs the seed example, then agents in their own vats: a benign one
 * that does its job with the two capabilities it holds, a toolbox one, code
 * a scripted model submits (code mode), a hostile one whose every escape
 * attempt is stopped, and a runaway one that is stopped at its deadline. Everything lands in the audit log under `.ztaas/demo`.
 * Exits non-zero if anything does not behave as shown.
 */
import { join } from 'node:path';
import { runDemo } from './run-demo.js';

const { failures } = await runDemo({ root: join(process.cwd(), '.ztaas', 'demo') });
process.exitCode = failures === 0 ? 0 : 1;
