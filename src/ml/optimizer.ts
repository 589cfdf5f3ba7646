import type * as tf from '@tensorflow/tfjs';
import type { OptimizerConfig, OptimizerName } from '../protocol/catalogs.ts';
import { MlError } from './errors.ts';
import { firstNonFinite, getFlatWeights, setFlatWeights } from './flat.ts';

/**
 * Optimizers that apply a flat mean gradient to the model: SGD, momentum (heavy ball, as
 * tf.train.momentum: v = beta*v + g; w -= lr*v) and Adam (Kingma & Ba, with bias correction).
 *
 * Design choice: the update runs in JS on the flat master copy of the weights (flat.ts), not with tf
 * ops on the device. Every peer must end every step with bit-identical weights, but peers may run
 * different backends (each picks its own by probe), and GPU kernels may fuse or round differently
 * from the CPU (fma, approximate sqrt). JS arithmetic is IEEE double with float32 storage, the same
 * on every peer, so identical mean gradients give identical weights and checksums without a
 * readback (the master copy stays current). The cost is one upload of the weights per step, which a
 * device-side update would replace with one upload of the gradient: the same traffic. Measured on
 * the tfjs cpu backend in Node (2 cores) for 101,770 parameters (MLP 784-128-10): a whole Adam
 * apply takes ~2.4 ms (JS update ~0.7 ms, copies and upload ~1.5 ms), against ~21 ms for
 * tf.train.adam on the same variables. On a GPU backend a device-side update could be faster for
 * large models; at these sizes the upload dominates either way.
 *
 * State (for checkpoints and joiners) is one Float32Array: [kind code, step, ...buffers], with
 * buffers m (momentum, or Pegasos's averaged weights) or m then v (Adam), each in the flat weight layout. Hyper-parameters are not
 * part of the state; the config carries them.
 */

/**
 * Which optimizer and its hyper-parameters: the config's `optimizer` (protocol/catalogs.ts's
 * OPTIMIZERS). sgd {lr}; momentum {lr, beta = 0.9}; adam {lr, beta1 = 0.9, beta2 = 0.999,
 * eps = 1e-8}; pegasos {lambda, average = true}: Pegasos (Shalev-Shwartz et al.) for the hinge loss
 * with L2 strength `lambda`: step size 1/(lambda t), w <- (1 - 1/t) w - g/(lambda t). No learning
 * rate to tune. With `average` the model evaluated and returned is the t-weighted average of the
 * iterates, avg <- avg + 2/(t+1) (w - avg) (Lacoste-Julien et al. 2012): the last iterate of a
 * subgradient method jumps with each batch, the average does not.
 */
export type OptimizerSpec = OptimizerConfig;

/** 'sgd' | 'momentum' | 'adam' | 'pegasos'. */
export type OptimizerKind = OptimizerName;

/** The spec with every default filled in. */
export type ResolvedOptimizerSpec =
  | { kind: 'sgd'; lr: number; clipNorm: number }
  | { kind: 'momentum'; lr: number; beta: number; clipNorm: number }
  | { kind: 'adam'; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; clipNorm: number }
  | { kind: 'pegasos'; lambda: number; average: boolean; clipNorm: number };

const KIND_CODE: Record<OptimizerKind, number> = { sgd: 0, momentum: 1, adam: 2, pegasos: 3 };
const HEADER = 2;

type Bad = (msg: string) => never;
type Resolver<K extends OptimizerKind> = (
  spec: Extract<OptimizerSpec, { kind: K }>,
  bad: Bad,
) => Extract<ResolvedOptimizerSpec, { kind: K }>;

function checkBeta(bad: Bad, name: string, v: number): number {
  if (!(Number.isFinite(v) && v >= 0 && v < 1)) bad(`${name} must be in [0, 1); got ${v}`);
  return v;
}

function checkClip(bad: Bad, clip: number | undefined): number {
  if (clip === undefined) return Infinity;
  if (!(clip > 0)) bad(`clipNorm must be a positive number; got ${clip}`);
  return clip;
}

function checkLr(bad: Bad, lr: number): number {
  if (!(Number.isFinite(lr) && lr > 0)) bad(`lr must be a positive number; got ${lr}`);
  return lr;
}

/** Each optimizer of the catalog with its defaults filled in and checked: one without does not compile. */
const OPTIMIZER_FACTORIES: { [K in OptimizerKind]: Resolver<K> } = {
  sgd: (spec, bad) => ({ kind: 'sgd', lr: checkLr(bad, spec.lr), clipNorm: checkClip(bad, spec.clipNorm) }),
  momentum: (spec, bad) => ({
    kind: 'momentum',
    lr: checkLr(bad, spec.lr),
    beta: checkBeta(bad, 'beta', spec.beta ?? 0.9),
    clipNorm: checkClip(bad, spec.clipNorm),
  }),
  adam: (spec, bad) => {
    const lr = checkLr(bad, spec.lr);
    const eps = spec.eps ?? 1e-8;
    if (!(Number.isFinite(eps) && eps > 0)) bad(`eps must be a positive number; got ${eps}`);
    const weightDecay = spec.weightDecay ?? 0;
    if (!(Number.isFinite(weightDecay) && weightDecay >= 0)) bad(`weightDecay must be a number >= 0; got ${weightDecay}`);
    return {
      kind: 'adam',
      lr,
      beta1: checkBeta(bad, 'beta1', spec.beta1 ?? 0.9),
      beta2: checkBeta(bad, 'beta2', spec.beta2 ?? 0.999),
      eps,
      weightDecay,
      clipNorm: checkClip(bad, spec.clipNorm),
    };
  },
  pegasos: (spec, bad) => {
    if (!(Number.isFinite(spec.lambda) && spec.lambda > 0)) bad(`lambda must be a positive number; got ${spec.lambda}`);
    return { kind: 'pegasos', lambda: spec.lambda, average: spec.average ?? true, clipNorm: Infinity };
  },
};

function resolve(spec: OptimizerSpec): ResolvedOptimizerSpec {
  const bad: Bad = (msg) => {
    throw new MlError('invalid-argument', `createOptimizer: ${msg}`);
  };
  if (!Object.hasOwn(OPTIMIZER_FACTORIES, spec.kind))
    bad(`kind must be one of ${Object.keys(OPTIMIZER_FACTORIES).join(', ')}; got ${String(spec.kind)}`);
  return (OPTIMIZER_FACTORIES[spec.kind] as Resolver<OptimizerKind>)(spec as never, bad);
}

/** What one {@link FlatOptimizer.apply} cost. */
export interface ApplyResult {
  /** ms for the whole apply: read the master copy, update in JS, upload. */
  applyMs: number;
}

/**
 * An optimizer over a flat parameter vector of fixed size. Deterministic: the same sequence of
 * mean gradients from the same state gives bit-identical weights and state on every peer.
 */
export class FlatOptimizer {
  readonly spec: ResolvedOptimizerSpec;
  /** Number of parameters this optimizer's state covers. */
  readonly size: number;
  private t = 0;
  /** beta1^t and beta2^t, by repeated multiplication (so a restored state gives the same bits). */
  private b1t = 1;
  private b2t = 1;
  private readonly m: Float32Array;
  private readonly v: Float32Array;

  constructor(spec: OptimizerSpec, size: number) {
    if (!(Number.isInteger(size) && size >= 0))
      throw new MlError('invalid-argument', `createOptimizer: size must be an integer >= 0; got ${size}`);
    this.spec = resolve(spec);
    this.size = size;
    const s = this.spec;
    this.m = new Float32Array(s.kind === 'sgd' || (s.kind === 'pegasos' && !s.average) ? 0 : size);
    this.v = new Float32Array(this.spec.kind === 'adam' ? size : 0);
  }

  /** Number of updates applied so far. */
  get step(): number {
    return this.t;
  }

  /** Changes the learning rate for later steps (schedules: 0 at a cosine's end); the state is unaffected. */
  setLearningRate(lr: number): void {
    if (!(Number.isFinite(lr) && lr >= 0)) throw new MlError('invalid-argument', `setLearningRate: lr must be a number >= 0; got ${lr}`);
    (this.spec as { lr: number }).lr = lr;
  }

  /**
   * Updates `weights` in place by one step with `meanGrad` (both in the flat layout). Throws
   * MlError('shape-mismatch') for a wrong length and MlError('invalid-argument') for a non-finite
   * gradient, before changing anything.
   */
  update(weights: Float32Array, meanGrad: Float32Array): void {
    if (weights.length !== this.size || meanGrad.length !== this.size) {
      throw new MlError(
        'shape-mismatch',
        `FlatOptimizer.update: weights (${weights.length}) and meanGrad (${meanGrad.length}) must both have ${this.size} values`,
      );
    }
    const bad = firstNonFinite(meanGrad);
    if (bad >= 0)
      throw new MlError('invalid-argument', `FlatOptimizer.update: meanGrad[${bad}] is ${meanGrad[bad]}; lower the learning rate?`);
    const s = this.spec;
    const n = this.size;
    this.t += 1;
    if (s.clipNorm < Infinity) {
      // Global norm clipping: the same scale for every coordinate, on a copy (the caller's gradient stays).
      let sq = 0;
      for (let i = 0; i < n; i++) sq += meanGrad[i]! * meanGrad[i]!;
      const norm = Math.sqrt(sq);
      if (norm > s.clipNorm) meanGrad = meanGrad.map((g) => (g * s.clipNorm) / norm);
    }
    if (s.kind === 'sgd') {
      const lr = s.lr;
      for (let i = 0; i < n; i++) weights[i] = weights[i]! - lr * meanGrad[i]!;
    } else if (s.kind === 'pegasos') {
      const eta = 1 / (s.lambda * this.t);
      const keep = 1 - 1 / this.t;
      for (let i = 0; i < n; i++) weights[i] = keep * weights[i]! - eta * meanGrad[i]!;
      if (s.average) {
        const a = 2 / (this.t + 1);
        const m = this.m;
        for (let i = 0; i < n; i++) m[i] = m[i]! + a * (weights[i]! - m[i]!);
      }
    } else if (s.kind === 'momentum') {
      const { lr, beta } = s;
      const m = this.m;
      for (let i = 0; i < n; i++) {
        const vi = beta * m[i]! + meanGrad[i]!;
        m[i] = vi;
        weights[i] = weights[i]! - lr * vi;
      }
    } else {
      const { lr, beta1, beta2, eps, weightDecay } = s;
      this.b1t *= beta1;
      this.b2t *= beta2;
      const c1 = 1 - this.b1t;
      const c2 = 1 - this.b2t;
      const m = this.m;
      const v = this.v;
      for (let i = 0; i < n; i++) {
        const g = meanGrad[i]!;
        const mi = beta1 * m[i]! + (1 - beta1) * g;
        const vi = beta2 * v[i]! + (1 - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        // AdamW: the decay is decoupled from the gradient's moments (Loshchilov & Hutter).
        weights[i] = weights[i]! - (lr * (mi / c1)) / (Math.sqrt(vi / c2) + eps) - lr * weightDecay * weights[i]!;
      }
    }
  }

  /**
   * One step on the model: takes its flat weights (the master copy; a readback only if something
   * else wrote the variables), {@link update}s them with `meanGrad`, and uploads the result.
   */
  async apply(model: tf.LayersModel, meanGrad: Float32Array): Promise<ApplyResult> {
    const t0 = performance.now();
    const w = await getFlatWeights(model);
    if (w.length !== this.size) {
      throw new MlError('shape-mismatch', `FlatOptimizer.apply: model has ${w.length} parameters, this optimizer ${this.size}`);
    }
    this.update(w, meanGrad);
    setFlatWeights(model, w);
    return { applyMs: performance.now() - t0 };
  }

  /** The weights to evaluate and hand out instead of the iterate (Pegasos with averaging), or null. */
  averagedWeights(): Float32Array | null {
    return this.spec.kind === 'pegasos' && this.spec.average && this.t > 0 ? this.m.slice() : null;
  }

  /** The state as a new Float32Array: [kind code, step, m..., v...]. */
  getState(): Float32Array {
    const out = new Float32Array(HEADER + this.m.length + this.v.length);
    out[0] = KIND_CODE[this.spec.kind];
    out[1] = this.t;
    out.set(this.m, HEADER);
    out.set(this.v, HEADER + this.m.length);
    return out;
  }

  /**
   * Restores a state from {@link getState} (same kind and size). Continuing from it gives the same
   * weights as never having stopped. Throws MlError('shape-mismatch') for another kind or size, and
   * MlError('invalid-argument') for a malformed step count.
   */
  setState(state: Float32Array): void {
    const want = HEADER + this.m.length + this.v.length;
    if (state.length !== want || state[0] !== KIND_CODE[this.spec.kind]) {
      const kind = Object.entries(KIND_CODE).find(([, c]) => c === state[0])?.[0] ?? `code ${state[0]}`;
      throw new MlError(
        'shape-mismatch',
        `FlatOptimizer.setState: state is for ${kind} with ${state.length} values; this ${this.spec.kind} optimizer over ${this.size} parameters needs ${want}`,
      );
    }
    const t = state[1]!;
    if (!(Number.isInteger(t) && t >= 0))
      throw new MlError('invalid-argument', `FlatOptimizer.setState: step must be an integer >= 0; got ${t}`);
    this.t = t;
    this.m.set(state.subarray(HEADER, HEADER + this.m.length));
    this.v.set(state.subarray(HEADER + this.m.length));
    this.b1t = 1;
    this.b2t = 1;
    if (this.spec.kind === 'adam') {
      for (let i = 0; i < t; i++) {
        this.b1t *= this.spec.beta1;
        this.b2t *= this.spec.beta2;
      }
    }
  }

  /** Back to step 0 with zero buffers. */
  reset(): void {
    this.t = 0;
    this.b1t = 1;
    this.b2t = 1;
    this.m.fill(0);
    this.v.fill(0);
  }
}

/** A {@link FlatOptimizer} for `paramCount` parameters (flat.ts's paramCount(model)). */
export function createOptimizer(spec: OptimizerSpec, paramCount: number): FlatOptimizer {
  return new FlatOptimizer(spec, paramCount);
}
