/**
 * Agreement with a new group (consensus.ts): every peer states what it holds, and the corroborated
 * state with the most steps is sent by one of its holders, checked on arrival. When no peer has
 * any, rank 0 offers the newest stored checkpoint of this run (or nothing: the seeded start,
 * identical everywhere). Then everything that belongs to a group starts afresh.
 */
import { adoptChosen, gatherClaims, senderOf } from '../consensus.ts';
import type { Run } from '../run.ts';
import { Sampler } from '../sampler.ts';
import { Stragglers } from '../stragglers.ts';
import { DEFAULT_LOCAL_STEPS } from '../types.ts';
import { AUTO_PROBE_STEPS } from '../../ml/algorithms/auto.ts';

export async function agree(run: Run): Promise<void> {
  const { st, g, deps, shard, cfg } = run;
  // Alongside: whether each peer had stopped and, for DP, its training examples (control flow
  // after this depends only on what every peer gathered).
  const states = await st.held();
  const { chosen: m, extras, mine } = await gatherClaims(run.allGather, states, [run.stopped ? 1 : 0, shard.train.n]);
  run.stopped = extras.some((x) => x[0]! > 0);
  // Served data: every peer loaded the whole split.
  run.trainTotal = run.served ? shard.train.n : extras.reduce((a, x) => a + x[1]!, 0);
  let source: number | 'checkpoint' | 'seed';
  if (!m) {
    const stored = g.rank === 0 ? ((await deps.loadCheckpoint?.().catch(() => null)) ?? new Uint8Array(0)) : null;
    const bytes = await g.broadcast(0, stored);
    const err = bytes.length > 0 ? st.restore(bytes) : null;
    if (err) deps.emit({ type: 'checkpoint', step: 0, bytes: bytes.length, error: `not restored: ${err.message}; starting from the seed` });
    source = bytes.length > 0 && !err ? 'checkpoint' : 'seed';
  } else {
    source = senderOf(m, g.epoch);
    const bytes = await adoptChosen(g, m, states[mine]?.bytes ?? null, st.step);
    // Unless it is this peer's committed state: its previous one, or another peer's.
    const err = mine !== 0 && st.restore(bytes);
    if (err) throw err;
  }
  st.agreed = true;
  // Residuals are this peer's own; factors restart from the seed: the same on every peer of the
  // group. `auto` measures the new group afresh (every member starts its probe at the same step).
  run.exchange.reset(st.step);
  if (run.exchange.auto) run.probe = { from: st.step + 1, until: st.step + 1 + AUTO_PROBE_STEPS, commMs: 0, computeMs: 0 };
  // A fresh order of this peer's (possibly new) shard, the same on every run of this schedule.
  if (!run.order) run.sampler = new Sampler(shard.train, cfg.seed * 7919 + g.rank + 1 + 104_729 * st.step);
  // A new group starts from the even split until its speeds are measured, and DiLoCo's `auto`
  // measures its round afresh.
  run.shares = null;
  run.stragglers = cfg.balance ? new Stragglers(g.size) : null;
  run.localSteps = cfg.localSteps === 'auto' ? null : (cfg.localSteps ?? DEFAULT_LOCAL_STEPS);
  deps.emit({ type: 'sync', step: st.step, epoch: g.epoch, size: g.size, source });
}
