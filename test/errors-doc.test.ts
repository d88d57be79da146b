import { readFileSync } from 'node:fs';
import { test } from './_prepare.js';
import { renderErrorsDoc } from '../src/errors-doc.js';

test('docs/ERRORS.md lists exactly the codes in src/errors.ts', t => {
  const doc = readFileSync(new URL('../../docs/ERRORS.md', import.meta.url), 'utf8');
  t.is(doc, renderErrorsDoc(), 'regenerate with: npx ztaas errors > docs/ERRORS.md');
});
