/**
 * One global step on the current group: this rank's batch, its gradient (DP's clipped and noised
 * one with `dp`), the exchange the config built (exchange/builder.ts), the optimizer's update; or
 * one round of local steps (rounds.ts). Commits only when the exchange completed; reports the step
 * and DP's ε.
 */
import { synchronousStep, type Batch, type StepResult, type StepTimings } from '../../ml/algorithms/distributed.ts';
import { dpEpsilon, privateGradients } from '../../ml/dp.ts';
import { computeGradients, type GradientResult } from '../../ml/step.ts';
import { delay } from '../../core/delay.ts';
import type { SumOf } from '../../ml/exchange/stage.ts';
import { NO_DRILL } from '../drills.ts';
import type { Run } from '../run.ts';
import { partOf, sliceOf } from '../sampler.ts';
import { chooseLocalSteps, round } from './rounds.ts';

/** The sum of step `step` (a round's: its last inner step), through the exchange; the drill in force (if any) alters this peer's contribution first. */
function gradientExchange(run: Run, step: number): SumOf {
  const { g, deps } = run;
  const drill = deps.drill?.() ?? NO_DRILL;
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

/**
 * This peer's gradient sum of a batch: plain backprop (in chunks of `chunkSize` samples: full-batch
 * GD), or DP-SGD's clipped and noised sum; a slow-device drill in force makes it take longer. It
 * starts when the run's pacer lets it (see {@link Run.pace}).
 */
export function gradientsOf(run: Run, chunkSize?: number): (b: Batch) => Promise<GradientResult> {
  const { cfg, g, deps } = run;
  const dp = cfg.dp;
  const compute = (b: Batch): Promise<GradientResult> => {
    if (!dp)
      return computeGradients(run.model, b.x, b.y, b.count, run.lossKind, {
        ...(chunkSize ? { chunkSize } : {}),
        ...(cfg.labelSmoothing ? { labelSmoothing: cfg.labelSmoothing } : {}),
      });
    // Counted when made, not when committed: a step that fails after sending was seen.
    if (b.count > 0) run.neighbour?.add(run.samplingRate(), dp.noiseMultiplier / Math.sqrt(g.size));
    return privateGradients(run.model, b.x, b.y, b.count, run.lossKind, dp, g.size);
  };
  const slowdown = (deps.drill?.() ?? NO_DRILL).slowdown;
  return async (b) => {
    await run.pace();
    if (slowdown === 1) return compute(b);
    const t0 = performance.now();
    const r = await compute(b);
    const extra = (performance.now() - t0) * (slowdown - 1);
    await delay(extra, deps.signal);
    return { ...r, computeMs: r.computeMs + extra };
  };
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
  } else batch = run.batchOf(st.step + 1);
  const exchange = gradientExchange(run, st.step + 1);
  run.scheduleLr(st.step + 1);
  const r = await synchronousStep(run.model, st.opt, run.lossKind, exchange, batch, gradientsOf(run, full ? 256 : undefined));
  return { r, local: batch.count };
}

/** One global step; returns its timings. */
export async function step(run: Run): Promise<StepTimings> {
  const { cfg, st, deps, g } = run;
  const before = await st.snapshot();
  const t0 = performance.now();
  const rounds = cfg.algorithm === 'fedavg' || cfg.algorithm === 'diloco';
  const { r, local, steps } = rounds
    ? await round(run, before, (s) => gradientExchange(run, s), gradientsOf(run))
    : { ...(await synchronous(run)), steps: 1 };
  st.commit(before, steps);
  if (cfg.algorithm === 'diloco' && run.localSteps === null) await chooseLocalSteps(run, r);
  const rate = local / Math.max(r.timings.computeMs, 0.01);
  if (local > 0) run.speed = run.speed === 0 ? rate : 0.7 * run.speed + 0.3 * rate;
  run.stepMs = local > 0 ? r.timings.computeMs + r.timings.readbackMs : 0;
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
    span: steps,
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
