/**
 * The coordinate-wise trimmed mean of the voters' mean gradients: `trim` of the voters left out at
 * each end (robust to a minority of untrusted peers; `trim` 0 is the plain mean).
 */
import type { RobustRuleFn } from './rule.ts';

/** How many values a trimmed mean drops at each end for `peers` contributions: floor(trim·N), leaving at least one. */
export function trimCount(trim: number, peers: number): number {
  return Math.min(Math.floor(trim * peers), Math.floor((peers - 1) / 2));
}

/** Mean of `xs` without its `k` smallest and `k` largest (sorted in place). */
function trimmedMeanOf(xs: Float64Array, k: number): number {
  xs.sort();
  let s = 0;
  for (let i = k; i < xs.length - k; i++) s += xs[i]!;
  return s / (xs.length - 2 * k);
}

export const trimmedMean: RobustRuleFn<'trimmed-mean'> = (spec, voters) => {
  const k = trimCount(spec.trim, voters);
  return (xs) => trimmedMeanOf(xs, k);
};
