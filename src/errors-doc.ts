/** Renders docs/ERRORS.md from the one table of codes in `errors.ts`. */
import { harden } from './harden.js';
import { ErrorCodes } from './errors.js';

export const renderErrorsDoc = (): string => {
  const lines = [
    '# Error codes',
    '',
    'Every refusal or failure in ZT-AAS carries one of these stable codes. Operators get a',
    '`ZtError` (`err.code`, and the message starts with the code); agents get a redacted',
    'record `{ name: \'ZtError\', code, message }` with no host path, stack or secret.',
    'This file is generated from `src/errors.ts` (`npx ztaas errors > docs/ERRORS.md`);',
    'a test keeps the two in step.',
    '',
    '| code | meaning |',
    '| --- | --- |',
    ...Object.entries(ErrorCodes).map(([code, text]) => `| \`${code}\` | ${text} |`),
    '',
  ];
  return lines.join('\n');
};
harden(renderErrorsDoc);
