/** fast-check arbitraries shared by the property tests. */
import { fc } from '@fast-check/ava';

/**
 * Like fc.dictionary, but objects are built with Object.fromEntries (own
 * data properties), since assigning a key such as `constructor` to a plain
 * object fails once Object.prototype is frozen by lockdown.
 */
export const dictionary = <T>(
  key: fc.Arbitrary<string>,
  value: fc.Arbitrary<T>,
  options: { maxKeys?: number } = {},
): fc.Arbitrary<Record<string, T>> =>
  fc.array(fc.tuple(key, value), { maxLength: options.maxKeys ?? 5 }).map(entries => Object.fromEntries(entries));
