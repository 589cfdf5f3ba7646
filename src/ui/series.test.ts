import { describe, expect, it } from 'vitest';
import { BoundedSeries } from './series.ts';

describe('BoundedSeries (plots of long runs)', () => {
  it('keeps every point until full', () => {
    const s = new BoundedSeries(1, 8);
    for (let i = 0; i < 8; i++) s.push(i, 10 * i);
    expect(s.data).toEqual([
      [0, 1, 2, 3, 4, 5, 6, 7],
      [0, 10, 20, 30, 40, 50, 60, 70],
    ]);
  });

  it('stays between max/2 and max points however many arrive, evenly spaced over the whole run', () => {
    const s = new BoundedSeries(2, 8);
    let most = 0;
    for (let i = 0; i < 1_000_000; i++) {
      s.push(i, i, -i);
      most = Math.max(most, s.length);
    }
    expect(most).toBe(8);
    expect(s.length).toBeGreaterThanOrEqual(4);
    const xs = s.data[0]!;
    // Evenly spaced from the first step: x = k * stride.
    const stride = xs[1]! - xs[0]!;
    expect(xs[0]).toBe(0);
    expect(xs.every((x, k) => x === k * stride)).toBe(true);
    expect(1_000_000 - xs.at(-1)!).toBeLessThanOrEqual(stride);
    expect(s.data[1]).toEqual(xs);
    expect(s.data[2]).toEqual(xs.map((x) => -x));
  });

  it('starts afresh after clear()', () => {
    const s = new BoundedSeries(1, 4);
    for (let i = 0; i < 100; i++) s.push(i, i);
    s.clear();
    s.push(5, 1);
    s.push(6, 2);
    expect(s.data).toEqual([
      [5, 6],
      [1, 2],
    ]);
  });

  it('refuses an odd or tiny bound', () => {
    expect(() => new BoundedSeries(1, 7)).toThrow(/even/);
  });
});
