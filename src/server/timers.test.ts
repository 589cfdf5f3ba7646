import { describe, expect, it, vi } from 'vitest';
import { trackTimers } from './timers.ts';

describe('trackTimers', () => {
  it('clears a self-rescheduling setTimeout loop started by fn, and leaves other timers alone', async () => {
    let ticks = 0;
    // The shape of peer 1.0.2's CheckBrokenConnections/MessagesExpire loops.
    const loop = (): void => {
      setTimeout(() => {
        ticks++;
        loop();
      }, 1);
    };
    const tracked = trackTimers(loop);
    await vi.waitFor(() => expect(ticks).toBeGreaterThanOrEqual(3), { timeout: 2000, interval: 5 });
    // Only the pending timer is held, however many have fired: a long-running loop does not pile up.
    expect(tracked.size).toBe(1);

    tracked.clear();
    const frozen = ticks;
    expect(tracked.size).toBe(0);
    // An untracked timer started afterwards still fires; by then the loop would have ticked again.
    await new Promise<void>((resolve) => setTimeout(resolve, 30));
    expect(ticks).toBe(frozen);
    tracked.clear();
  });

  it('does not track timers started outside fn', async () => {
    const tracked = trackTimers(() => {});
    const fired = await new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 1));
    expect(fired).toBe(true);
    expect(tracked.size).toBe(0);
    tracked.clear();
  });

  it('rethrows what fn throws', () => {
    expect(() =>
      trackTimers(() => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
  });
});
