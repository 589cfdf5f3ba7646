import { describe, expect, it } from 'vitest';
import { DelayFifo, type FifoClock } from './delay-fifo.ts';

/** A manual clock: `advance` fires due timers in time order. */
function fakeClock(): FifoClock & { advance(ms: number): void; pending(): number } {
  let t = 0;
  let next = 1;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => t,
    setTimeout: (fn, ms) => {
      const id = next++;
      timers.set(id, { at: t + ms, fn });
      return id;
    },
    clearTimeout: (h) => void timers.delete(h as number),
    advance(ms) {
      const end = t + ms;
      for (;;) {
        const due = [...timers].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
        if (!due) break;
        timers.delete(due[0]);
        t = due[1].at;
        due[1].fn();
      }
      t = end;
    },
    pending: () => timers.size,
  };
}

describe('DelayFifo', () => {
  it('delivers each item delayMs after it arrived, in arrival order', () => {
    const clock = fakeClock();
    const got: [string, number][] = [];
    const q = new DelayFifo<string>(20, (s) => got.push([s, clock.now()]), clock);
    q.push('a');
    clock.advance(5);
    q.push('b');
    q.push('c');
    clock.advance(14);
    expect(got).toEqual([]);
    expect(q.size).toBe(3);
    clock.advance(1);
    expect(got).toEqual([['a', 20]]);
    clock.advance(10);
    expect(got).toEqual([
      ['a', 20],
      ['b', 25],
      ['c', 25],
    ]);
    expect(q.size).toBe(0);
    expect(clock.pending()).toBe(0);
  });

  it('keeps one timer at a time and re-arms after idling', () => {
    const clock = fakeClock();
    const got: number[] = [];
    const q = new DelayFifo<number>(10, (n) => got.push(n), clock);
    for (let i = 0; i < 100; i++) q.push(i);
    expect(clock.pending()).toBe(1);
    clock.advance(10);
    expect(got).toHaveLength(100);
    clock.advance(100);
    q.push(100);
    clock.advance(9);
    expect(got).toHaveLength(100);
    clock.advance(1);
    expect(got.at(-1)).toBe(100);
  });

  it('keeps order when a delivery pushes more', () => {
    const clock = fakeClock();
    const got: number[] = [];
    const q: DelayFifo<number> = new DelayFifo<number>(
      5,
      (n) => {
        got.push(n);
        if (n < 3) q.push(n + 10);
      },
      clock,
    );
    q.push(1);
    q.push(2);
    clock.advance(5);
    expect(got).toEqual([1, 2]);
    clock.advance(5);
    expect(got).toEqual([1, 2, 11, 12]);
  });

  it('a zero delay still defers delivery to a timer', () => {
    const clock = fakeClock();
    const got: number[] = [];
    const q = new DelayFifo<number>(0, (n) => got.push(n), clock);
    q.push(7);
    expect(got).toEqual([]);
    clock.advance(0);
    expect(got).toEqual([7]);
  });

  it('clear drops what is held and cancels the timer', () => {
    const clock = fakeClock();
    const got: number[] = [];
    const q = new DelayFifo<number>(10, (n) => got.push(n), clock);
    q.push(1);
    q.clear();
    expect(clock.pending()).toBe(0);
    clock.advance(20);
    expect(got).toEqual([]);
    q.push(2);
    clock.advance(10);
    expect(got).toEqual([2]);
  });

  it('rejects a negative or non-finite delay', () => {
    expect(() => new DelayFifo(-1, () => {})).toThrow(RangeError);
    expect(() => new DelayFifo(Number.NaN, () => {})).toThrow(RangeError);
    expect(() => new DelayFifo(Infinity, () => {})).toThrow(RangeError);
  });
});
