/** Renders docs/ERRORS.md from the one table of codes in `errors.ts`. */
import { harden } from './harden.js';
import { ErrorCodes } from './errors.js';

export const renderErrorsDoc = (): string => {
  const lines = [
    '# Error codes',
    '',
    'Every refusal or failure in ZT-AAS carries one of these stable codes. Operators get a',
    '`ZtError` with three fields: `code`; `reason`, one sentence that names only what the',
    'failing call itself named (its target, argument or limit); and `details`, operator-only',
    'data such as host paths and causes. Its `message` is `CODE: reason`. Agents get a',
    'redacted record `{ name: \'ZtError\', code, message }`: the code and reason of a',
    '`ZtError`, or for anything else the code and the text below; never details, a stack, a',
    'host path or the message of a foreign error.',
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
