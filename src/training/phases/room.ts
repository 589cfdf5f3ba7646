/**
 * The phases where the room decides together: holding while some peer asks to pause, and (sgd
 * with `balance`) splitting the global batch by measured speed.
 */
import { proportionalSplit } from '../sampler.ts';
import type { Run } from '../run.ts';
import { BALANCE_EVERY, PAUSE_POLL_MS } from '../types.ts';

/** Resolves after `ms`, or rejects with the signal's reason when it fires first. */
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

/** Holds the room after the current step while any peer asks to pause (and none to stop). */
export async function holdWhilePaused(run: Run): Promise<void> {
  const { room, deps, st } = run;
  if (room.pause === 0 || room.stop > 0) return;
  deps.emit({ type: 'control', step: st.step, state: 'paused' });
  while (room.pause > 0 && room.stop === 0) {
    await delay(PAUSE_POLL_MS, deps.signal);
    await run.sum(new Float32Array(0));
  }
  if (room.stop === 0) deps.emit({ type: 'control', step: st.step, state: 'resumed' });
}

/** Whether this step is one where `balance` measures speeds. */
export function balanceDue(run: Run): boolean {
  return !!run.cfg.balance && run.cfg.algorithm === 'sgd' && run.st.step % BALANCE_EVERY === 0;
}

/** sgd with `balance`: every peer reports its speed and all take the same proportional split. */
export async function rebalance(run: Run): Promise<void> {
  const v = new Float32Array(run.g.size);
  v[run.g.rank] = run.speed;
  run.shares = proportionalSplit(run.cfg.batch, await run.sum(v));
}
