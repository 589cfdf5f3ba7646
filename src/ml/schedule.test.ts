import { describe, expect, it } from 'vitest';
import { lrFactor } from './schedule.ts';

describe('learning-rate schedules', () => {
  it('warm up linearly, then hold, decay by a cosine to minFactor at the last step, or by gamma every few steps', () => {
    expect(lrFactor(undefined, 7, 100)).toBe(1);
    const constant = { kind: 'constant', warmupSteps: 4 } as const;
    expect([1, 2, 4, 5, 100].map((s) => lrFactor(constant, s, 100))).toEqual([0.25, 0.5, 1, 1, 1]);
    const cosine = { kind: 'cosine', warmupSteps: 10, minFactor: 0.1 } as const;
    expect(lrFactor(cosine, 5, 110)).toBe(0.5);
    expect(lrFactor(cosine, 10, 110)).toBe(1);
    // Half way through the decay: 0.1 + 0.9 · 0.5 · (1 + cos(π/2)).
    expect(lrFactor(cosine, 60, 110)).toBeCloseTo(0.55, 12);
    expect(lrFactor(cosine, 110, 110)).toBeCloseTo(0.1, 12);
    expect(lrFactor(cosine, 200, 110)).toBeCloseTo(0.1, 12);
    expect(lrFactor({ kind: 'cosine' }, 1, 3)).toBeCloseTo(0.75, 12);
    const step = { kind: 'step', every: 30, gamma: 0.1 } as const;
    expect([1, 29, 30, 59, 60].map((s) => lrFactor(step, s, 100))).toEqual([1, 1, 0.1, 0.1, 0.1 ** 2]);
  });
});
