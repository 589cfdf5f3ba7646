import { createHook } from 'node:async_hooks';

/** Timers started by some code, and by those timers' callbacks, that can be cleared together. */
export interface TrackedTimers {
  /** Timers currently pending. */
  readonly size: number;
  /** Clears every pending tracked timer and stops tracking. Idempotent. */
  clear(): void;
}

/**
 * Runs `fn` (synchronously) and tracks each `setTimeout` it starts, and each one started from a
 * tracked timer's callback, so that a self-rescheduling `setTimeout` loop can be stopped from
 * outside. A timer is dropped from tracking once its callback has run; so a `setInterval` is
 * tracked only until its first tick (not supported; nothing here needs it).
 *
 * Why: `peer` 1.0.2 starts two such loops when its Express app is mounted (broken-connection check
 * every 300 ms, message expiry every `cleanup_out_msgs` ms) and exposes no way to stop them, so a
 * closed server would keep the Node process alive forever.
 *
 * Cost: an `async_hooks` hook (init and after, no destroy: a destroy hook made every promise in
 * the process about 10x slower, these two cost about 0.1 us per promise) stays enabled until
 * {@link TrackedTimers.clear}.
 */
export function trackTimers(fn: () => void): TrackedTimers {
  const live = new Map<number, NodeJS.Timeout>();
  let capturing = true;
  const hook = createHook({
    init(asyncId, type, triggerAsyncId, resource) {
      if (type === 'Timeout' && (capturing || live.has(triggerAsyncId))) live.set(asyncId, resource as NodeJS.Timeout);
    },
    after(asyncId) {
      // Its callback has run: a one-shot timer is done (and its successors are already tracked).
      live.delete(asyncId);
    },
  });
  hook.enable();
  try {
    fn();
  } catch (e) {
    hook.disable();
    throw e;
  } finally {
    capturing = false;
  }
  return {
    get size() {
      return live.size;
    },
    clear() {
      hook.disable();
      for (const t of live.values()) clearTimeout(t);
      live.clear();
    },
  };
}
