/** Resolves after `ms`, or rejects with the signal's reason when it fires first (the timer and the listener are both gone after either). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

let channel: MessageChannel | undefined;
const waiting: (() => void)[] = [];

/**
 * Resolves on a new task of the event loop, after the timers, network messages and input already
 * queued (and, in a tab, a chance to paint). A training loop whose awaits all settle as microtasks
 * (the wasm and cpu backends read synchronously, and a lone peer's sums need no network) would
 * otherwise hold the loop for the whole run: no progress drawn, no Stop, no signaling heartbeat, no
 * notice that its parent process died. `setImmediate` in Node; in a browser a MessageChannel
 * message, which is neither clamped to 4 ms like a nested timer nor throttled in a background tab.
 */
export function nextTask(): Promise<void> {
  if (typeof setImmediate === 'function') return new Promise((r) => setImmediate(r));
  return new Promise((r) => {
    if (!channel) {
      channel = new MessageChannel();
      channel.port1.onmessage = () => waiting.shift()?.();
    }
    waiting.push(r);
    channel.port2.postMessage(0);
  });
}

/**
 * A long loop's pacer: `await pace()` gives way with {@link nextTask} once `everyMs` have passed since
 * it last did, so the loop costs the event loop at most that long at a time and pays for a task
 * switch only that often.
 */
export function pacer(everyMs: number): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < everyMs) return;
    await nextTask();
    last = performance.now();
  };
}
