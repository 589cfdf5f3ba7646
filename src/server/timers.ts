import { createHook } from 'node:async_hooks';

/** Timers started by some code, and by those timers' callbacks, that can be cleared together. */
export interface TrackedTimers {
  /** Timers currently pending. */
  readonly size: number;
  /** Clears every pending tracked timer and stops tracking. Idempotent. */
  clear(): void;
}

/**
 * Runs `fn` (synchronously) and tracks each timer it starts, and each timer started from a tracked
 * timer's callback, so that a self-rescheduling `setTimeout` loop can be stopped from outside.
 *
 * Why: `peer` 1.0.2 starts two such loops when its Express app is mounted (broken-connection check
 * every 300 ms, message expiry every `cleanup_out_msgs` ms) and exposes no way to stop them, so a
 * closed server would keep the Node process alive forever. Tracking uses an `async_hooks` init
 * hook that is enabled until {@link TrackedTimers.clear}.
 */
export function trackTimers(fn: () => void): TrackedTimers {
  const live = new Map<number, NodeJS.Timeout>();
  let capturing = true;
  const hook = createHook({
    init(asyncId, type, triggerAsyncId, resource) {
      if (type === 'Timeout' && (capturing || live.has(triggerAsyncId))) live.set(asyncId, resource as NodeJS.Timeout);
    },
    destroy(asyncId) {
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
