import { test } from './_prepare.js';

test('the realm is locked down with production options', t => {
  t.true(Object.isFrozen(Object.prototype));
  t.true(Object.isFrozen(Array.prototype));
  t.throws(() => {
    // @ts-expect-error writing to a frozen intrinsic
    Object.prototype.polluted = 1;
  });
  // errorTaming: 'safe' hides stacks from the `stack` property of errors.
  t.is(typeof harden, 'function');
});
