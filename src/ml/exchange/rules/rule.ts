/**
 * Byzantine-robust aggregation for rooms of untrusted volunteers. Instead of summing on the ring,
 * every peer all-gathers every contribution (N vectors instead of one sum: each peer sends
 * (N−1)·n floats against the ring's 2(N−1)/N·n) and takes, coordinate by coordinate, a robust rule
 * (the median or the trimmed mean) of the peers' mean gradients (Yin et al. 2018). A minority of
 * peers sending anything finite then moves the step only within the honest peers' spread. Peers
 * with NaN/Inf or a malformed count are left out and reported, as the guard does; every peer
 * computes the same result from the same gathered bits.
 *
 * Each rule is one file next to this one ({@link RobustRuleFn}) and one entry in the registry
 * (../registry.ts), under its name in the catalog (protocol/catalogs.ts `AGGREGATION_RULES`).
 *
 * Works on packed gradients `[gradient sum (n) | loss | count]` (../contribution.ts) and returns a
 * packed gradient: the robust mean gradient times the total count, the loss sum, the total count,
 * so that the step's division by the count yields the robust mean.
 */
import type { AggregationRuleConfig, AggregationRuleName } from '../../../protocol/catalogs.ts';
import { Contribution, GRADIENT_TAIL } from '../contribution.ts';
import type { SumOf } from '../stage.ts';

/** The config of rule `K` (its name under `rule`, with its options). */
export type RuleSpec<K extends AggregationRuleName = AggregationRuleName> = Extract<AggregationRuleConfig, { rule: K }>;

/** One coordinate's robust value from the voters' mean gradients at it (`column`, which it may sort in place). */
export type ColumnRule = (column: Float64Array) => number;

/** A robust rule: its coordinate-wise value for a step with `voters` voting peers. */
export type RobustRuleFn<K extends AggregationRuleName> = (spec: RuleSpec<K>, voters: number) => ColumnRule;

/** A rule with its options bound: the value of a step's coordinates, given its voters. */
export type BoundRule = (voters: number) => ColumnRule;

/** Whether a gathered contribution can vote: the gradient layout, a whole count, every value finite. */
function valid(p: Contribution, len: number): boolean {
  if (p.length !== len || !p.has('loss') || !p.has('count')) return false;
  const count = p.count;
  return Number.isInteger(count) && count >= 0 && p.data.every(Number.isFinite);
}

/** Aggregates gathered packed gradients by `rule`; `bad` gets the ranks left out. */
export function robustAggregate(parts: Contribution[], rule: BoundRule, bad: number[] = []): Contribution {
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
  const value = rule(voters.length);
  const column = new Float64Array(voters.length);
  const bodies = voters.map((p) => p.body);
  const counts = voters.map((p) => p.count);
  const body = out.body;
  for (let i = 0; i < n; i++) {
    bodies.forEach((b, j) => (column[j] = b[i]! / counts[j]!));
    body[i] = value(column) * count;
  }
  return out;
}

/** A sum of packed gradients that aggregates robustly over an all-gather (see the module comment). */
export function robustSum(
  allGather: (c: Contribution) => Promise<Contribution[]>,
  rule: BoundRule,
  onReject: (ranks: number[]) => void,
): SumOf {
  return async (c) => {
    const bad: number[] = [];
    const out = robustAggregate(await allGather(c), rule, bad);
    if (bad.length) onReject(bad);
    return out;
  };
}
