/**
 * The phases where the room decides together: holding while some peer asks to pause, and (sgd
 * and DiLoCo with `balance`) splitting the global batch by measured speed, stragglers on standby.
 */
import { delay } from '../../core/delay.ts';
import type { Run } from '../run.ts';
import { sliceOf } from '../sampler.ts';
import { PROBE_SAMPLES } from '../stragglers.ts';
import { gradientsOf } from './step.ts';
import { BALANCE_EVERY, PAUSE_POLL_MS } from '../types.ts';

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

/** Whether `balance` measures speeds now: every BALANCE_EVERY steps of sgd, after every DiLoCo round. */
export function balanceDue(run: Run): boolean {
  const { cfg, st } = run;
  return !!cfg.balance && (cfg.algorithm === 'diloco' || (cfg.algorithm === 'sgd' && st.step % BALANCE_EVERY === 0));
}

/** A standby peer's measure of itself: a small batch through the same compute path, its gradient dropped. */
async function probe(run: Run): Promise<void> {
  const b = sliceOf(run.shard.train, 0, Math.min(PROBE_SAMPLES, run.shard.train.n));
  const g = await gradientsOf(run)(b);
  run.speed = g.count / Math.max(g.computeMs, 0.01);
}

/**
 * `balance`: every peer reports its speed and its last step's compute time, and all take the same
 * decision (training/stragglers.ts): the batch split by speed, slow peers shrunk, then on standby.
 */
export async function rebalance(run: Run): Promise<void> {
  const { g, deps, st } = run;
  const stragglers = run.stragglers!;
  if (stragglers.probes(g.rank)) await probe(run);
  const v = new Float32Array(2 * g.size);
  v[g.rank] = run.speed;
  v[g.size + g.rank] = run.stepMs;
  const all = await run.sum(v);
  const reports = Array.from({ length: g.size }, (_, r) => ({ speed: all[r]!, stepMs: all[g.size + r]! }));
  const { shares, changes } = stragglers.decide(run.cfg.batch, reports);
  run.shares = shares;
  for (const c of changes) deps.emit({ type: 'straggler', step: st.step, ...c, self: c.rank === g.rank });
}
