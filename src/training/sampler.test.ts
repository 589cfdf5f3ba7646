import { describe, expect, it } from 'vitest';
import { localBatchSize, proportionalSplit } from './sampler.ts';

describe('localBatchSize', () => {
  it('splits a global batch evenly, the first ranks taking the remainder', () => {
    expect([0, 1, 2].map((r) => localBatchSize(128, 3, r))).toEqual([43, 43, 42]);
  });
});

describe('proportionalSplit', () => {
  it('gives each peer its share of the global batch by speed, summing exactly', () => {
    expect(proportionalSplit(128, [100, 100, 200])).toEqual([32, 32, 64]);
    expect(proportionalSplit(100, [3, 1, 1, 1])).toEqual([49, 17, 17, 17]);
    for (const w of [
      [1, 2, 3, 4, 5],
      [0.1, 1000],
      [7, 7, 7],
    ])
      expect(proportionalSplit(257, w).reduce((a, b) => a + b)).toBe(257);
  });

  it('keeps at least one sample per peer, and falls back to the even split without measurements', () => {
    expect(proportionalSplit(10, [1e9, 1, 1])).toEqual([8, 1, 1]);
    expect(proportionalSplit(10, [0, NaN, -1])).toEqual([4, 3, 3]);
    // An unmeasured peer counts as the slowest measured one.
    expect(proportionalSplit(12, [0, 10, 20])).toEqual(proportionalSplit(12, [10, 10, 20]));
    expect(proportionalSplit(12, [10, 10, 20])).toEqual([3, 3, 6]);
  });
});
