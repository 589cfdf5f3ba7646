/**
 * Distributed training steps over a ring allreduce: synchronous SGD (and full-batch GD, its
 * special case with the whole shard as the batch); rounds of local steps are in rounds.ts. Every peer applies the
 * same bits (the ring hands every peer identical sums), so weights stay identical everywhere.
 */
import type * as tf from '@tensorflow/tfjs';
import type { WireSpec } from '../../protocol/wire.ts';
import type { LossKind } from '../models.ts';
import type { FlatOptimizer } from '../optimizer.ts';
import { Contribution } from '../exchange/contribution.ts';
import type { SumOf } from '../exchange/stage.ts';
import { computeGradients, type GradientResult, type Targets } from '../step.ts';

/**
 * The collective the algorithms need: an elementwise sum over all peers of the view; `wire`: the
 * values' type on the wire (protocol/wire.ts), float32 when absent.
 */
export type SumAllPeers = (v: Float32Array, wire?: WireSpec) => Promise<Float32Array>;

/** A batch of this peer's samples. `count` may be 0 (the peer still joins the sum). */
export interface Batch {
  x: Float32Array;
  y: Targets;
  count: number;
}

/** Where a step's time went, ms. */
export interface StepTimings {
  computeMs: number;
  readbackMs: number;
  allreduceMs: number;
  applyMs: number;
}

export interface StepResult {
  /** Mean loss over the global batch (all peers). */
  loss: number;
  /** Samples in the global batch. */
  samples: number;
  timings: StepTimings;
}

/**
 * One synchronous step: the summed gradient of the local batch, `exchange` sums
 * `[gradient | loss | count]` over the peers (exchange/builder.ts: guard, codec, masks, robust rule),
 * and every peer applies the count-weighted mean.
 */
export async function synchronousStep(
  model: tf.LayersModel,
  opt: FlatOptimizer,
  lossKind: LossKind,
  exchange: SumOf,
  batch: Batch,
  /** Computes this peer's gradient sum instead of plain backprop (DP-SGD's clipped, noised sum; a drill's slowed device; full-batch GD's chunks). */
  gradients: (b: Batch) => Promise<GradientResult> = (b) => computeGradients(model, b.x, b.y, b.count, lossKind),
): Promise<StepResult> {
  const g = await gradients(batch);
  const t0 = performance.now();
  const total = await exchange(Contribution.gradient(g.grad, g.count, g.loss));
  const allreduceMs = performance.now() - t0;
  const mean = total.toMean();
  const { applyMs } = await opt.apply(model, mean.grad);
  return { loss: mean.loss, samples: mean.count, timings: { computeMs: g.computeMs, readbackMs: g.readbackMs, allreduceMs, applyMs } };
}
