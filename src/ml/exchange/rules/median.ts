/** The coordinate-wise median of the voters' mean gradients (robust to a minority of untrusted peers). */
import type { RobustRuleFn } from './rule.ts';

/** Median of `xs` (sorted in place). */
function medianOf(xs: Float64Array): number {
  xs.sort();
  const m = xs.length >> 1;
  return xs.length % 2 ? xs[m]! : (xs[m - 1]! + xs[m]!) / 2;
}

export const median: RobustRuleFn<'median'> = () => medianOf;
