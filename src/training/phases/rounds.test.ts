import { describe, expect, it } from 'vitest';
import { AUTO_MAX_LOCAL_STEPS, autoLocalSteps } from './rounds.ts';

describe("DiLoCo's H from measured timings", () => {
  it('takes the fewest inner steps that keep the sum within 10% of a round, within the caps', () => {
    // 9 x 40 ms of communication over 30 ms of compute per step: 12 steps.
    expect(autoLocalSteps(30, 40, 10_000)).toBe(12);
    expect(autoLocalSteps(100, 10, 10_000)).toBe(1);
    expect(autoLocalSteps(0, 1000, 1e7)).toBe(AUTO_MAX_LOCAL_STEPS);
    // A run of 94 steps keeps 10 rounds: H at most 9.
    expect(autoLocalSteps(2, 40, 94)).toBe(9);
    expect(autoLocalSteps(2, 40, 5)).toBe(1);
  });
});
