/**
 * Byzantine-robust aggregation for rooms of untrusted volunteers. Instead of summing on the ring,
 * every peer all-gathers every contribution (N vectors instead of one sum: each peer sends
 * (N−1)·n floats against the ring's 2(N−1)/N·n) and takes, coordinate by coordinate, the median or
 * the trimmed mean of the peers' mean gradients (Yin et al. 2018). A minority of peers sending
 * anything finite then moves the step only within the honest peers' spread. Peers with NaN/Inf or
 * a malformed count are left out and reported, as the guard does; every peer computes the same
 * result from the same gathered bits.
 *
 * Works on packed gradients `[gradient sum (n) | loss | count]` (exchange/contribution.ts) and
 * returns a packed gradient: the robust mean gradient times the total count, the loss sum, the total
 * count, so that the step's division by the count yields the robust mean.
 */
import { Contribution, GRADIENT_TAIL } from '../exchange/contribution.ts';
import type { SumOf } from '../exchange/stage.ts';

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

/** Whether a gathered contribution can vote: the gradient layout, a whole count, every value finite. */
function valid(p: Contribution, len: number): boolean {
  if (p.length !== len || !p.has('loss') || !p.has('count')) return false;
  const count = p.count;
  return Number.isInteger(count) && count >= 0 && p.data.every(Number.isFinite);
}

/** Aggregates gathered packed gradients by `rule`; `bad` gets the ranks left out. */
export function robustAggregate(parts: Contribution[], rule: RobustRule, bad: number[] = []): Contribution {
  const len = parts[0]?.length ?? GRADIENT_TAIL.length;
  const ok = parts.filter((p, r) => {
    const v = valid(p, len);
    if (!v) bad.push(r);
    return v;
  });
  const n = len - GRADIENT_TAIL.length;
  const out = Contribution.zeros(n, GRADIENT_TAIL);
  // Peers with samples this step vote with their mean gradient.
  const voters = ok.filter((p) => p.count > 0);
  let loss = 0;
  let count = 0;
  for (const p of ok) {
    loss += p.loss;
    count += p.count;
  }
  out.set('loss', loss);
  out.set('count', count);
  if (voters.length === 0) return out;
  const k = rule.rule === 'trimmed-mean' ? trimCount(rule.trim, voters.length) : 0;
  const column = new Float64Array(voters.length);
  const bodies = voters.map((p) => p.body);
  const counts = voters.map((p) => p.count);
  const body = out.body;
  for (let i = 0; i < n; i++) {
    bodies.forEach((b, j) => (column[j] = b[i]! / counts[j]!));
    body[i] = (rule.rule === 'median' ? median(column) : trimmedMean(column, k)) * count;
  }
  return out;
}

/** A sum of packed gradients that aggregates robustly over an all-gather (see the module comment). */
export function robustSum(
  allGather: (c: Contribution) => Promise<Contribution[]>,
  rule: RobustRule,
  onReject: (ranks: number[]) => void,
): SumOf {
  return async (c) => {
    const bad: number[] = [];
    const out = robustAggregate(await allGather(c), rule, bad);
    if (bad.length) onReject(bad);
    return out;
  };
}
