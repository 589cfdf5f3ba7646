import { describe, expect, it } from 'vitest';
import { MISSES_TO_STANDBY, PROBE_EVERY, Stragglers, type Report } from './stragglers.ts';

const peers = (speeds: number[], stepMs: number[]): Report[] => speeds.map((speed, r) => ({ speed, stepMs: stepMs[r]! }));

describe('stragglers', () => {
  it('shrinks a slow peer’s share at once, puts it on standby after 3 missed deadlines, and keeps the batch whole', () => {
    const s = new Stragglers(4);
    // Rank 3 is 10x slower per sample: its share shrinks to the floor (a quarter of the median
    // speed's), no further, so its step still takes about 3x the others'.
    const first = s.decide(128, peers([1, 1, 1, 0.1], [32, 32, 32, 320]));
    expect(first.shares).toEqual([39, 39, 39, 11]);
    // One 2x slower gets the share its speed says, and meets its deadline.
    expect(new Stragglers(4).decide(128, peers([1, 1, 1, 0.5], [32, 32, 32, 64])).shares).toEqual([37, 36, 36, 19]);
    expect(first.changes).toEqual([]);
    for (let i = 2; i < MISSES_TO_STANDBY; i++) expect(s.decide(128, peers([1, 1, 1, 0.1], [41, 41, 41, 130])).changes).toEqual([]);
    const off = s.decide(128, peers([1, 1, 1, 0.1], [41, 41, 41, 130]));
    expect(off.changes).toEqual([{ rank: 3, state: 'standby', stepMs: 130, deadlineMs: 82 }]);
    expect(off.shares).toEqual([43, 43, 42, 0]);
    expect(off.shares.reduce((a, b) => a + b)).toBe(128);
    expect(s.standby).toEqual([false, false, false, true]);
  });

  it('a miss that is not repeated resets; a peer that is merely slower is never put on standby', () => {
    const s = new Stragglers(3);
    for (let i = 0; i < 10; i++) {
      const spike = i % 2 === 0 ? 500 : 40;
      expect(s.decide(90, peers([1, 1, 0.6], [40, 40, spike])).changes).toEqual([]);
    }
    expect(s.standby).toEqual([false, false, false]);
  });

  it('a standby peer probes every few rebalances and steps back in once fast enough; the last active peer stays', () => {
    const s = new Stragglers(2);
    for (let i = 0; i < MISSES_TO_STANDBY; i++) s.decide(64, peers([1, 0.05], [32, 400]));
    expect(s.standby).toEqual([false, true]);
    let probes = 0;
    for (let i = 0; i < 2 * PROBE_EVERY; i++) {
      if (s.probes(1)) probes++;
      expect(s.decide(64, peers([1, s.probes(1) ? 0.1 : 0], [64, 0])).shares).toEqual([64, 0]);
    }
    expect(probes).toBe(2);
    // Its probe now shows 0.8 of the median speed: back, with its share.
    const back = s.decide(64, peers([1, 0.8], [64, 20]));
    expect(back.changes).toMatchObject([{ rank: 1, state: 'active' }]);
    expect(back.shares).toEqual([35, 29]);
    // Both slow together: neither goes, since one must stay active.
    const t = new Stragglers(2);
    for (let i = 0; i < 5; i++) t.decide(64, peers([1, 0.1], [10, 1000]));
    expect(t.standby.filter(Boolean)).toHaveLength(1);
  });
});
