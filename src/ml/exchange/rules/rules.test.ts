import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../core/random.ts';
import { Contribution, GRADIENT_TAIL } from '../contribution.ts';
import { ruleOf } from '../registry.ts';
import { robustAggregate, robustSum } from './rule.ts';
import { trimCount } from './trimmed-mean.ts';

/** A packed contribution `[gradient sum | loss | count]` whose mean gradient is `mean`. */
const packed = (mean: number[], count: number, loss = 1): Contribution =>
  Contribution.over(Float32Array.from([...mean.map((x) => x * count), loss, count]), GRADIENT_TAIL);

describe('robust aggregation', () => {
  it('median: one peer sending a huge finite gradient moves nothing beyond the honest peers', () => {
    const parts = [packed([1, -1], 2), packed([2, -2], 2), packed([3, -3], 4), packed([1e9, 1e9], 2)];
    const out = robustAggregate(parts, ruleOf({ rule: 'median' }));
    // Mean gradients per coordinate: [1, 2, 3, 1e9] -> 2.5; [-1, -2, -3, 1e9] -> -1.5; times 10 samples.
    expect(Array.from(out.data)).toEqual([25, -15, 4, 10]);
  });

  it('trimmed mean drops the k largest and smallest per coordinate', () => {
    const parts = [packed([0], 1), packed([10], 1), packed([20], 1), packed([30], 1), packed([-1e6], 1)];
    expect(trimCount(0.2, 5)).toBe(1);
    const out = robustAggregate(parts, ruleOf({ rule: 'trimmed-mean', trim: 0.2 }));
    expect(out.data[0]).toBeCloseTo(10 * 5, 4);
  });

  it('trims at most (N-1)/2 per end, leaving at least one value', () => {
    expect(trimCount(0.5, 4)).toBe(1);
    expect(trimCount(0.49, 3)).toBe(1);
    expect(trimCount(0.1, 3)).toBe(0);
  });

  it('with honest peers only, trimmed mean 0 equals the plain mean and the median is near it', () => {
    const rnd = mulberry32(4);
    const parts = Array.from({ length: 5 }, () =>
      packed(
        Array.from({ length: 50 }, () => rnd() + 1),
        3,
      ),
    );
    const plain = new Float32Array(52);
    for (const p of parts) p.data.forEach((x, i) => (plain[i]! += x));
    const mean = robustAggregate(parts, ruleOf({ rule: 'trimmed-mean', trim: 0 }));
    for (let i = 0; i < 52; i++) expect(mean.data[i]).toBeCloseTo(plain[i]!, 3);
    const med = robustAggregate(parts, ruleOf({ rule: 'median' }));
    for (let i = 0; i < 50; i++) expect(Math.abs(med.data[i]! - plain[i]!) / 15).toBeLessThan(1);
  });

  it('leaves out and reports NaN, Inf and a broken count; peers with no samples add their loss but do not vote', async () => {
    const nan = packed([NaN, 1], 2);
    const inf = packed([Infinity, 1], 2);
    const badCount = Contribution.over(Float32Array.of(1, 1, 1, 2.5), GRADIENT_TAIL);
    const idle = packed([0, 0], 0, 0);
    const rejected: number[][] = [];
    const sum = robustSum(
      async () => [packed([1, 1], 2), nan, inf, badCount, idle, packed([3, 3], 2)],
      ruleOf({ rule: 'median' }),
      (r) => rejected.push(r),
    );
    const out = await sum(Contribution.zeros(2, GRADIENT_TAIL));
    expect(rejected).toEqual([[1, 2, 3]]);
    expect(Array.from(out.data)).toEqual([8, 8, 2, 4]);
  });

  it('every peer gets the same bits from the same gathered parts', () => {
    const rnd = mulberry32(8);
    const parts = Array.from({ length: 4 }, () =>
      packed(
        Array.from({ length: 30 }, () => rnd() - 0.5),
        7,
      ),
    );
    const a = robustAggregate(parts, ruleOf({ rule: 'trimmed-mean', trim: 0.25 }));
    const b = robustAggregate(
      parts.map((p) => p.copy()),
      ruleOf({ rule: 'trimmed-mean', trim: 0.25 }),
    );
    expect(Buffer.from(a.bytes()).equals(Buffer.from(b.bytes()))).toBe(true);
  });
});
