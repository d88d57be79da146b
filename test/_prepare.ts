/**
 * Test harness: production lockdown first, then ava wrapped by ses-ava.
 * All tests run under the options the product ships with, never under the
 * debug settings of `@endo/init/debug.js`.
 */
import '../src/init.js';
import rawTest from 'ava';
import { wrapTest } from '@endo/ses-ava';

export const test = wrapTest(rawTest);
