/**
 * Rounds of local steps: DiLoCo (Douillard et al., arXiv 2311.08105) and federated averaging, its
 * special case. Every peer starts a round from the same weights θ, takes H steps of its own
 * (inner) optimizer on its own batches, and the ring averages the weight changes Δ = θ − θ_i,
 * each peer weighted by the samples it used. The outer optimizer then steps from θ along the mean
 * Δ as if it were a gradient: Nesterov momentum in DiLoCo; with outer lr 1 and no momentum the
 * step lands on the mean of the local models, which is FedAvg.
 *
 * The outer step runs in JS (float64 arithmetic, float32 storage) from sums that the ring hands
 * every peer bit for bit, so the weights and the outer momentum are identical everywhere. The
 * inner optimizer's state (Adam's moments) is each peer's own, as in DiLoCo.
 */
import type * as tf from '@tensorflow/tfjs';
import { Contribution } from '../exchange/contribution.ts';
import type { SumOf } from '../exchange/stage.ts';
import { getFlatWeights, setFlatWeights } from '../flat.ts';
import type { LossKind } from '../models.ts';
import type { FlatOptimizer } from '../optimizer.ts';
import { computeGradients, type GradientResult } from '../step.ts';
import type { Batch, StepResult, StepTimings } from './distributed.ts';

/** The outer optimizer's settings: FedAvg is `{ lr: 1, momentum: 0 }`. */
export interface OuterSpec {
  lr: number;
  momentum: number;
}

/** FedAvg's outer step: straight to the mean of the local models. */
export const FEDAVG_OUTER: OuterSpec = { lr: 1, momentum: 0 };

/**
 * Nesterov momentum on the outer gradient (the mean Δ), as PyTorch's SGD with nesterov=True, the
 * form DiLoCo uses: b ← μ b + Δ; θ ← θ − lr (Δ + μ b). Its state is the buffer b (none at μ = 0).
 */
export class OuterOptimizer {
  private readonly buf: Float32Array;

  constructor(
    readonly spec: OuterSpec,
    size: number,
  ) {
    this.buf = new Float32Array(spec.momentum > 0 ? size : 0);
  }

  /** The weights after the outer step from `start` along `delta` (the mean weight change). */
  step(start: Float32Array, delta: Float32Array): Float32Array {
    const { lr, momentum: mu } = this.spec;
    const out = new Float32Array(start.length);
    const b = this.buf;
    for (let i = 0; i < out.length; i++) {
      const g = delta[i]!;
      let u = g;
      if (b.length > 0) {
        const v = mu * b[i]! + g;
        b[i] = v;
        u = g + mu * v;
      }
      out[i] = start[i]! - lr * u;
    }
    return out;
  }

  /** Floats of state: the momentum buffer, in the flat layout (0 without momentum). */
  get stateSize(): number {
    return this.buf.length;
  }

  getState(): Float32Array {
    return this.buf.slice();
  }

  setState(s: Float32Array): void {
    if (s.length !== this.buf.length) throw new RangeError(`OuterOptimizer.setState: ${s.length} floats, expected ${this.buf.length}`);
    this.buf.set(s);
  }
}

/**
 * One round: a local step of `inner` on each of `batches` (empty ones skipped), then `sum` adds
 * every peer's `[Δ · samples | loss | samples]` and `outer` steps from the round's start along the
 * sample-weighted mean Δ. `loss`: the mean over the round's local batches of every peer.
 */
export async function localRound(
  model: tf.LayersModel,
  inner: FlatOptimizer,
  outer: OuterOptimizer,
  lossKind: LossKind,
  sum: SumOf,
  batches: Iterable<Batch>,
  /** Computes a batch's gradient sum instead of plain backprop (a fault drill's slowed device). */
  gradients: (b: Batch) => Promise<GradientResult> = (b) => computeGradients(model, b.x, b.y, b.count, lossKind),
): Promise<StepResult> {
  const timings: StepTimings = { computeMs: 0, readbackMs: 0, allreduceMs: 0, applyMs: 0 };
  const start = await getFlatWeights(model);
  let lossSum = 0;
  let used = 0;
  for (const b of batches) {
    if (b.count === 0) continue;
    const g = await gradients(b);
    for (let i = 0; i < g.grad.length; i++) g.grad[i]! /= g.count;
    const a = await inner.apply(model, g.grad);
    timings.computeMs += g.computeMs;
    timings.readbackMs += g.readbackMs;
    timings.applyMs += a.applyMs;
    lossSum += g.loss;
    used += g.count;
  }
  const w = await getFlatWeights(model);
  // Weighted by the samples used; reuses w's buffer (it is a copy of the master).
  for (let i = 0; i < w.length; i++) w[i] = (start[i]! - w[i]!) * used;
  const t0 = performance.now();
  const total = await sum(Contribution.gradient(w, used, lossSum));
  timings.allreduceMs = performance.now() - t0;
  const mean = total.toMean();
  const t1 = performance.now();
  setFlatWeights(model, outer.step(start, mean.grad));
  timings.applyMs += performance.now() - t1;
  return { loss: mean.loss, samples: mean.count, timings };
}
