// Tests are compiled by `tsc` (see `npm test`) and run from dist/, so what ava
// executes is exactly the JavaScript that ships.
export default {
  files: ['dist/test/**/*.test.js'],
  timeout: '2m',
  workerThreads: false,
  environmentVariables: {},
};
