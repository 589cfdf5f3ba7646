import { describe, expect, it } from 'vitest';
import { memoryRing, ringExchange } from '../../test/helpers.ts';
import { Contribution, GRADIENT_TAIL } from '../exchange/contribution.ts';
import { contributionOk, guardedSum } from './guard.ts';

/** `[gradient sum | loss | count]` as given. */
const gradient = (values: number[] | Float32Array): Contribution => Contribution.over(Float32Array.from(values), GRADIENT_TAIL);
/** [gradient sum | loss | count] of `count` samples whose mean gradient is `mean`. */
const packed = (mean: number[], count: number): Contribution => gradient([...mean.map((m) => m * count), 0.5 * count, count]);

describe('gradient guard', () => {
  it('accepts finite contributions within the norm bound and rejects NaN, Inf, huge norms and bad counts', () => {
    expect(contributionOk(packed([3, 4], 10), 5)).toBe(true);
    expect(contributionOk(packed([3, 4.1], 10), 5)).toBe(false);
    expect(contributionOk(packed([NaN, 0], 10), Infinity)).toBe(false);
    expect(contributionOk(gradient([1, 0, Infinity, 2]), Infinity)).toBe(false);
    expect(contributionOk(gradient([1, 0, 0, 2.5]), Infinity)).toBe(false);
    expect(contributionOk(gradient(new Float32Array(4)), 1)).toBe(true);
    expect(contributionOk(gradient([1, 0, 0, 0]), 1)).toBe(false);
  });

  it('4 peers, one sending NaN and one huge: every honest peer gets the sum of the valid ones and names the same offenders', async () => {
    const ring = memoryRing(4, { chunkBytes: 4096, timeoutMs: 10_000 });
    const contributions = [packed([1, 2], 3), packed([NaN, 1], 2), packed([-1, 0.5], 5), packed([1e6, 0], 4)];
    const rejected: number[][] = [];
    const sums = await Promise.all(
      ring.map((c, rank) =>
        guardedSum({
          sum: ringExchange(c).sum,
          broadcast: (root, data) => c.broadcast(root, data),
          rank,
          size: 4,
          maxNorm: 100,
          // The offenders do not check themselves, as a poisoned peer would not.
          selfCheck: rank === 0 || rank === 2,
          onReject: (ranks, self) => {
            if (!self) rejected[rank] = ranks;
          },
        })(contributions[rank]!),
      ),
    );
    const want = Array.from(contributions[0]!.data, (x, i) => x + contributions[2]!.data[i]!);
    for (const s of sums) expect(Array.from(s.data)).toEqual(want);
    for (const r of rejected) expect(r).toEqual([1, 3]);
  });

  it('a peer that checks itself contributes nothing and says so; a clean step costs one sum', async () => {
    const ring = memoryRing(3, { chunkBytes: 4096, timeoutMs: 10_000 });
    const contributions = [packed([1, 1], 2), packed([Infinity, 1], 2), packed([2, 0], 1)];
    const self: number[] = [];
    let broadcasts = 0;
    const sums = await Promise.all(
      ring.map((c, rank) =>
        guardedSum({
          sum: ringExchange(c).sum,
          broadcast: (root, data) => {
            broadcasts++;
            return c.broadcast(root, data);
          },
          rank,
          size: 3,
          maxNorm: Infinity,
          onReject: (ranks, isSelf) => isSelf && self.push(...ranks),
        })(contributions[rank]!),
      ),
    );
    expect(self).toEqual([1]);
    expect(broadcasts).toBe(0);
    for (const s of sums) expect(Array.from(s.data)).toEqual([4, 2, 1.5, 3]);
  });
});
