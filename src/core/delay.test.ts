import { describe, expect, it } from 'vitest';
import { delay } from './delay.ts';

describe('delay', () => {
  it('resolves after the time, and leaves no listener on the signal', async () => {
    const c = new AbortController();
    let added = 0;
    let removed = 0;
    const signal = c.signal;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((...a: Parameters<typeof add>) => {
      added++;
      add(...a);
    }) as typeof add;
    signal.removeEventListener = ((...a: Parameters<typeof remove>) => {
      removed++;
      remove(...a);
    }) as typeof remove;
    const t0 = performance.now();
    await delay(20, signal);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(15);
    expect([added, removed]).toEqual([1, 1]);
  });

  it('rejects with the reason when the signal fires first, or at once when it already has', async () => {
    const c = new AbortController();
    const waiting = delay(60_000, c.signal);
    c.abort(new Error('stopped'));
    await expect(waiting).rejects.toThrow('stopped');
    await expect(delay(10, c.signal)).rejects.toThrow('stopped');
  });
});
