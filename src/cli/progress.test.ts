import { describe, expect, it } from 'vitest';
import { duration, Progress } from './progress.ts';

function harness(isTTY: boolean) {
  const written: string[] = [];
  let t = 0;
  const p = new Progress({ isTTY, columns: 121, write: (s) => written.push(s) }, { now: () => t });
  return { p, written, at: (ms: number) => (t = ms) };
}

describe('Progress (the CLI on long runs)', () => {
  it('writes a plain line at least every 30 s when the output is not a terminal, with the rate, score and ETA', () => {
    const { p, written, at } = harness(false);
    p.update(0, 1000, 'step');
    expect(written).toEqual(['0% step 0/1000\n']);
    for (let s = 1; s <= 100; s++) {
      at(s * 1000);
      p.update(s, 1000, 'step', 'loss 0.5');
      p.tick();
    }
    // 100 s of one step a second: a line at 30, 60 and 90 s, not one per step.
    expect(written.length).toBe(4);
    p.score('accuracy 0.8000');
    at(120_000);
    p.update(120, 1000, 'step', 'loss 0.4');
    // 120 steps in 120 s: 880 left at one a second.
    expect(written.at(-1)).toBe('12% step 120/1000, loss 0.4, accuracy 0.8000, ETA 14m40s\n');
  });

  it('keeps writing while no step completes, and says for how long', () => {
    const { p, written, at } = harness(false);
    p.update(10, 100, 'step');
    for (let s = 1; s <= 65; s++) {
      at(s * 1000);
      p.tick();
    }
    expect(written.slice(1)).toEqual(['10% step 10/100 (no step done for 30s)\n', '10% step 10/100 (no step done for 1m00s)\n']);
  });

  it('always writes the last step, and puts faults on their own lines', () => {
    const { p, written, at } = harness(false);
    p.update(0, 4, 'round');
    at(1000);
    p.note('ringtrain: fault after step 0');
    p.update(4, 4, 'round');
    expect(written).toEqual(['0% round 0/4\n', 'ringtrain: fault after step 0\n', '100% round 4/4\n']);
  });

  it('redraws one bar in a terminal at most every 100 ms, and keeps notes above it', () => {
    const { p, written, at } = harness(true);
    for (let s = 0; s <= 50; s++) {
      at(s * 10);
      p.update(s, 50, 'step');
    }
    // 0..500 ms: redrawn at 0, 100, ..., 500 (the last step is always drawn).
    expect(written.length).toBe(6);
    expect(written.every((w) => w.startsWith('\r') && w.length === 121)).toBe(true);
    expect(written.at(-1)).toContain('[##############################] 100% step 50/50');
    p.note('ringtrain: recovered');
    expect(written.slice(-3).map((w) => w.trim())).toEqual(['', 'ringtrain: recovered', written.at(-1)!.trim()]);
    p.finish();
    expect(written.at(-1)).toBe('\n');
  });

  it('formats durations', () => {
    expect([duration(0), duration(42_400), duration(185_000), duration(3_720_000)]).toEqual(['0s', '42s', '3m05s', '1h02m']);
  });
});
