/**
 * Comparing weight vectors across peers and runs (equivalence checks).
 */

/** `||a - b|| / ||b||` over all elements (Euclidean norms), for vectors of the same length. */
export function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`relativeDifference: lengths differ (${a.length} vs ${b.length})`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}
