/**
 * Byzantine-robust aggregation for rooms of untrusted volunteers. Instead of summing on the ring,
 * every peer all-gathers every contribution (N vectors instead of one sum: each peer sends
 * (N−1)·n floats against the ring's 2(N−1)/N·n) and takes, coordinate by coordinate, the median or
 * the trimmed mean of the peers' mean gradients (Yin et al. 2018). A minority of peers sending
 * anything finite then moves the step only within the honest peers' spread. Peers with NaN/Inf or
 * a malformed count are left out and reported, as the guard does; every peer computes the same
 * result from the same gathered bits.
 *
 * Works on packed contributions `[gradient sum (n) | loss | count]` (ml/step.ts packGradient) and
 * returns a packed vector: the robust mean gradient times the total count, the loss sum, the total
 * count, so that the step's division by the count yields the robust mean.
 */
import type { SumAllPeers } from './distributed.ts';

export type RobustRule = { rule: 'median' } | { rule: 'trimmed-mean'; trim: number };

/** Coordinate-wise median of `xs` (sorted in place). */
function median(xs: Float64Array): number {
  xs.sort();
  const m = xs.length >> 1;
  return xs.length % 2 ? xs[m]! : (xs[m - 1]! + xs[m]!) / 2;
}

/** Mean of `xs` without its `k` smallest and `k` largest (sorted in place). */
function trimmedMean(xs: Float64Array, k: number): number {
  xs.sort();
  let s = 0;
  for (let i = k; i < xs.length - k; i++) s += xs[i]!;
  return s / (xs.length - 2 * k);
}

/** How many values a trimmed mean drops at each end for `peers` contributions: floor(trim·N), leaving at least one. */
export function trimCount(trim: number, peers: number): number {
  return Math.min(Math.floor(trim * peers), Math.floor((peers - 1) / 2));
}

/** Aggregates gathered packed contributions by `rule`; `bad` gets the ranks left out. */
export function robustAggregate(parts: Float32Array[], rule: RobustRule, bad: number[] = []): Float32Array {
  const len = parts[0]?.length ?? 0;
  const n = len - 2;
  const ok = parts.filter((p, r) => {
    const count = p[n + 1];
    const valid = p.length === len && count !== undefined && Number.isInteger(count) && count >= 0 && p.every(Number.isFinite);
    if (!valid) bad.push(r);
    return valid;
  });
  const out = new Float32Array(len);
  // Peers with samples this step vote with their mean gradient.
  const voters = ok.filter((p) => p[n + 1]! > 0);
  let loss = 0;
  let count = 0;
  for (const p of ok) {
    loss += p[n]!;
    count += p[n + 1]!;
  }
  out[n] = loss;
  out[n + 1] = count;
  if (voters.length === 0) return out;
  const k = rule.rule === 'trimmed-mean' ? trimCount(rule.trim, voters.length) : 0;
  const column = new Float64Array(voters.length);
  for (let i = 0; i < n; i++) {
    voters.forEach((p, j) => (column[j] = p[i]! / p[n + 1]!));
    out[i] = (rule.rule === 'median' ? median(column) : trimmedMean(column, k)) * count;
  }
  return out;
}

/** A {@link SumAllPeers} for packed gradients that aggregates robustly over an all-gather (see the module comment). */
export function robustSum(
  allGather: (v: Float32Array) => Promise<Float32Array[]>,
  rule: RobustRule,
  onReject: (ranks: number[]) => void,
): SumAllPeers {
  return async (v) => {
    const bad: number[] = [];
    const out = robustAggregate(await allGather(v), rule, bad);
    if (bad.length) onReject(bad);
    return out;
  };
}
