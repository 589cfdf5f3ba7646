/**
 * One global step on the current group: this rank's batch, its gradient (DP's clipped and noised
 * one with `dp`), the exchange the config built (exchange/builder.ts), the optimizer's update.
 * Commits (st.step + 1) only when the exchange completed; reports the step and DP's ε.
 */
import { federatedRound, synchronousStep, type StepResult, type StepTimings } from '../../ml/algorithms/distributed.ts';
import { dpEpsilon, privateGradients } from '../../ml/dp.ts';
import type { SumOf } from '../../ml/exchange/stage.ts';
import { NO_DRILL } from '../drills.ts';
import type { Run } from '../run.ts';
import type { Snapshot } from '../state.ts';
import { localBatchSize, partOf, sliceOf } from '../sampler.ts';

/** The step's gradient sum: the drill in force (if any) alters this peer's contribution first. */
function gradientExchange(run: Run): SumOf {
  const { g, deps } = run;
  const drill = deps.drill?.() ?? NO_DRILL;
  const step = run.st.step + 1;
  const sum = run.exchange.forStep(run.base, {
    step,
    rank: g.rank,
    size: g.size,
    broadcast: (root, data) => g.broadcast(root, data),
    ...(g.maskKeys ? { maskKeys: () => g.maskKeys!() } : {}),
    selfCheck: drill.selfCheck,
    reject: (ranks, self) => {
      if (ranks.length === 0) return;
      deps.emit({ type: 'rejected', step, ranks, self });
      if (!self)
        g.reportInvalid?.(
          step,
          ranks.filter((r) => r !== g.rank),
        );
    },
  });
  return (c) => sum(drill.alter(c));
}

/** FedAvg: local steps, then the weights averaged (they change before the sum: rolled back if it fails). */
async function federated(run: Run, before: Snapshot): Promise<{ r: StepResult; local: number }> {
  const { cfg, st } = run;
  const localSteps = cfg.localSteps ?? 5;
  try {
    const batches = Array.from({ length: localSteps }, () => run.sampler!.next(cfg.batch));
    const r = await federatedRound(run.model, st.opt, run.lossKind, run.base.sum, batches);
    return { r, local: cfg.batch * localSteps };
  } catch (e) {
    st.rollBack(before);
    throw e;
  }
}

/** sgd and gd: this rank's batch, its gradient, the exchange, the update. */
async function synchronous(run: Run): Promise<{ r: StepResult; local: number }> {
  const { cfg, st, g, shard } = run;
  const full = cfg.algorithm === 'gd';
  let batch;
  if (full) {
    // Full-batch GD: this rank's part of the whole split (served), or its whole shard (held).
    const part = run.served ? partOf(run.evenSplit(shard.train.n), g.rank) : { from: 0, count: shard.train.n };
    batch = sliceOf(shard.train, part.from, part.count);
  } else if (run.order) {
    // This rank's slice of the step's global batch.
    const part = partOf(run.shares ?? run.evenSplit(cfg.batch), g.rank);
    batch = run.order.slice(st.step + 1, cfg.batch, part.from, part.count);
  } else batch = run.sampler!.next(run.shares?.[g.rank] ?? localBatchSize(cfg.batch, g.size, g.rank));
  const dp = cfg.dp;
  const r = await synchronousStep(
    run.model,
    st.opt,
    run.lossKind,
    gradientExchange(run),
    batch,
    full ? 256 : undefined,
    dp
      ? (b) => {
          // Counted when made, not when committed: a step that fails after sending was seen.
          if (b.count > 0) run.neighbour?.add(run.samplingRate(), dp.noiseMultiplier / Math.sqrt(g.size));
          return privateGradients(run.model, b.x, b.y, b.count, run.lossKind, dp, g.size);
        }
      : undefined,
  );
  return { r, local: batch.count };
}

/** One global step; returns its timings. */
export async function step(run: Run): Promise<StepTimings> {
  const { cfg, st, deps, g } = run;
  const before = await st.snapshot();
  const t0 = performance.now();
  const { r, local } = cfg.algorithm === 'fedavg' ? await federated(run, before) : await synchronous(run);
  st.commit(before);
  const rate = local / Math.max(r.timings.computeMs, 0.01);
  if (local > 0) run.speed = run.speed === 0 ? rate : 0.7 * run.speed + 0.3 * rate;
  const secs = (performance.now() - t0) / 1000;
  if (cfg.dp) {
    const delta = cfg.dp.delta ?? 1e-5;
    run.epsilon = dpEpsilon(run.samplingRate(), cfg.dp.noiseMultiplier, st.step, delta);
    deps.emit({
      type: 'privacy',
      step: st.step,
      epsilon: run.epsilon,
      ...(run.neighbour ? { neighbourEpsilon: run.neighbour.epsilon(delta) } : {}),
      delta,
    });
  }
  deps.emit({
    type: 'step',
    step: st.step,
    steps: cfg.steps,
    loss: r.loss,
    samples: r.samples,
    localSamples: local,
    samplesPerSec: r.samples / secs,
    epoch: g.epoch,
    size: g.size,
    ...r.timings,
  });
  return r.timings;
}
