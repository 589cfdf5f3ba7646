import * as tf from '@tensorflow/tfjs';
import { MlError } from './errors.ts';
import { Contribution } from './exchange/contribution.ts';
import { trainableVariables } from './flat.ts';
import type { LossKind } from './models.ts';
import { oneHotTokens } from './transformer.ts';

/**
 * Per-step primitives: the summed gradient of a batch, distributed evaluation, prediction, and the
 * `[gradient | count]` vector the ring sums.
 *
 * Conventions. Gradients and losses are SUMS over the samples (not means), in the flat layout of
 * flat.ts, so peers weight by count simply by summing `[grad | count]` and dividing by the total
 * count. Classification models output logits; the loss is softmax cross-entropy. Regression models
 * output one value; the loss is the squared error (pred - y)^2 summed over samples (no 1/2).
 * Every function here disposes every tensor it creates (`tf.memory().numTensors` is unchanged).
 */

/** Class labels (integers in [0, numClasses)) or regression targets (one per sample). */
export type Targets = Int32Array | Uint8Array | Float32Array;

/** The summed gradient of one batch. */
export interface GradientResult {
  /** d(sum of per-sample losses)/d(weights), flat layout of flat.ts. A new array the caller owns. */
  grad: Float32Array;
  /** Sum of the per-sample losses. */
  loss: number;
  /** Number of samples the sums cover. */
  count: number;
  /** ms from the first upload until the gradient was complete on the device (forward, backward, sum). */
  computeMs: number;
  /** ms to read the gradient back to JS. */
  readbackMs: number;
}

/** Options of {@link computeGradients}. */
export interface ComputeGradientsOptions {
  /**
   * Samples per forward/backward pass (default: all at once). Larger batches are cut into chunks
   * whose gradients are summed on the device and read back once (full-batch GD over a shard).
   */
  chunkSize?: number;
  /** Cross-entropy only: the targets become (1 − ε)·one-hot + ε/K (label smoothing; default 0). */
  labelSmoothing?: number;
}

/** Shape of one sample, without the batch dimension. */
export function sampleShape(model: tf.LayersModel): number[] {
  const shape = model.inputs[0]?.shape;
  if (!shape || shape.slice(1).some((d) => d == null)) {
    throw new MlError('invalid-argument', `sampleShape: model '${model.name}' has no fixed input shape`);
  }
  return shape.slice(1) as number[];
}

/** Outputs per sample (numClasses logits, or 1 for regression); per position for a language model's [batch, positions, vocab]. */
export function modelOutputSize(model: tf.LayersModel): number {
  const shape = model.outputs[0]?.shape;
  const d = shape?.at(-1);
  if ((shape?.length !== 2 && shape?.length !== 3) || d == null) {
    throw new MlError(
      'invalid-argument',
      `modelOutputSize: model '${model.name}' must output [batch, k] or [batch, positions, k]; got ${JSON.stringify(shape)}`,
    );
  }
  return d;
}

function prod(a: number[]): number {
  return a.reduce((x, y) => x * y, 1);
}

interface Checked {
  shape: number[];
  per: number;
  out: number;
  count: number;
}

function check(fn: string, model: tf.LayersModel, x: Float32Array, y: Targets, count: number | null, lossKind: LossKind): Checked {
  const shape = sampleShape(model);
  const per = prod(shape);
  const out = modelOutputSize(model);
  if (!(x instanceof Float32Array)) throw new MlError('invalid-argument', `${fn}: x must be a Float32Array`);
  const n = count ?? x.length / per;
  if (!(Number.isInteger(n) && n >= 0)) {
    throw new MlError(
      'invalid-argument',
      `${fn}: count must be an integer >= 0; got ${count ?? `x.length ${x.length} / sample size ${per}`}`,
    );
  }
  if (x.length !== n * per) {
    throw new MlError('invalid-argument', `${fn}: x has ${x.length} values; ${n} samples of shape [${shape}] need ${n * per}`);
  }
  if (y.length !== n) throw new MlError('invalid-argument', `${fn}: y has ${y.length} values; expected one per sample (${n})`);
  if (lossKind === 'lm' && model.outputs[0]!.shape.length !== 3)
    throw new MlError('invalid-argument', `${fn}: lossKind 'lm' needs a language model's [batch, positions, vocab] output`);
  if (lossKind === 'crossentropy' || lossKind === 'hinge' || lossKind === 'lm') {
    if (out < 2)
      throw new MlError('invalid-argument', `${fn}: lossKind '${lossKind}' needs a classifier; model '${model.name}' has ${out} output`);
    for (let i = 0; i < n; i++) {
      const c = y[i]!;
      if (!(Number.isInteger(c) && c >= 0 && c < out)) {
        throw new MlError('invalid-argument', `${fn}: y[${i}] = ${c} is not a class index in [0, ${out})`);
      }
    }
  } else if (lossKind === 'mse') {
    if (out !== 1) throw new MlError('invalid-argument', `${fn}: lossKind 'mse' needs one output; model '${model.name}' has ${out}`);
    if (!(y instanceof Float32Array)) throw new MlError('invalid-argument', `${fn}: regression targets y must be a Float32Array`);
  } else {
    throw new MlError('invalid-argument', `${fn}: lossKind must be 'crossentropy', 'hinge', 'lm' or 'mse'; got ${String(lossKind)}`);
  }
  return { shape, per, out, count: n };
}

/**
 * The targets of a batch slice as a tensor: one-hot float32 [m, out] for classification, [m, 1] for
 * regression, and for a language model the one-hot of each next token, [m, positions, out], from
 * the inputs `xs` themselves. The one-hot is built in JS and uploaded (or, from `xs`, with
 * `equal`): tfjs 4.22's wasm OneHot kernel ignores the float32 dtype and writes int32 bits (1
 * reads as 1.4e-45), which silently zeroes the loss.
 */
function targetsTensor(
  y: Targets,
  start: number,
  m: number,
  out: number,
  lossKind: LossKind,
  xs: tf.Tensor,
  model: tf.LayersModel,
): tf.Tensor {
  if (lossKind === 'lm') return oneHotTokens(nextTokens(xs, model), out);
  if (lossKind !== 'mse') {
    const hot = new Float32Array(m * out);
    for (let i = 0; i < m; i++) hot[i * out + y[start + i]!] = 1;
    return tf.tensor2d(hot, [m, out], 'float32');
  }
  return tf.tensor2d(y.subarray(start, start + m) as Float32Array, [m, 1], 'float32');
}

/** The token each position of a language model predicts: the window shifted by one, [m, positions]. */
function nextTokens(xs: tf.Tensor, model: tf.LayersModel): tf.Tensor {
  return tf.slice(xs, [0, 1], [xs.shape[0]!, model.outputs[0]!.shape[1]!]);
}

/** Summed loss of a batch (scalar), from the model's outputs; a language model's per sample is its mean over the positions. */
function summedLoss(pred: tf.Tensor, targets: tf.Tensor, lossKind: LossKind, labelSmoothing = 0): tf.Scalar {
  if (lossKind === 'lm') {
    const [m, t, v] = pred.shape as [number, number, number];
    const sum = tf.losses.softmaxCrossEntropy(
      tf.reshape(targets, [m * t, v]),
      tf.reshape(pred, [m * t, v]),
      undefined,
      labelSmoothing,
      tf.Reduction.SUM,
    );
    return tf.div(sum, t) as tf.Scalar;
  }
  if (lossKind === 'crossentropy')
    return tf.losses.softmaxCrossEntropy(targets, pred, undefined, labelSmoothing, tf.Reduction.SUM) as tf.Scalar;
  // Multi-class hinge: max_c (s_c + [c ≠ y]) − s_y = max(0, 1 + max_{c≠y} s_c − s_y).
  if (lossKind === 'hinge') return tf.sum(tf.sub(tf.max(tf.sub(tf.add(pred, 1), targets), 1), tf.sum(tf.mul(pred, targets), 1)));
  return tf.sum(tf.squaredDifference(pred, targets));
}

/**
 * The summed gradient and loss of the model on `count` samples: `x` holds them row-major
 * (count × sample size, float32), `y` one label or target each. Uploads the batch, runs forward and
 * backward (in chunks of `chunkSize`, summed on the device) and reads the gradient and loss back in
 * one transfer. count 0 gives a zero gradient without touching the backend (a peer with no samples
 * still joins the allreduce). Throws MlError('invalid-argument') for mismatched lengths, labels
 * out of range, or a loss kind that does not fit the model.
 */
export async function computeGradients(
  model: tf.LayersModel,
  x: Float32Array,
  y: Targets,
  count: number,
  lossKind: LossKind,
  options: ComputeGradientsOptions = {},
): Promise<GradientResult> {
  const c = check('computeGradients', model, x, y, count, lossKind);
  const vars = trainableVariables(model);
  const n = vars.reduce((s, v) => s + v.size, 0);
  if (c.count === 0) return { grad: new Float32Array(n), loss: 0, count: 0, computeMs: 0, readbackMs: 0 };
  const chunk = options.chunkSize ?? c.count;
  if (!(Number.isInteger(chunk) && chunk > 0)) {
    throw new MlError('invalid-argument', `computeGradients: options.chunkSize must be a positive integer; got ${chunk}`);
  }

  const t0 = performance.now();
  let acc: tf.Tensor | null = null;
  try {
    for (let start = 0; start < c.count; start += chunk) {
      const m = Math.min(chunk, c.count - start);
      const prev: tf.Tensor | null = acc;
      const next: tf.Tensor = tf.tidy(() => {
        const xs = tf.tensor(x.subarray(start * c.per, (start + m) * c.per), [m, ...c.shape], 'float32');
        const ts = targetsTensor(y, start, m, c.out, lossKind, xs, model);
        const { value, grads } = tf.variableGrads(
          () => summedLoss(model.apply(xs, { training: true }) as tf.Tensor, ts, lossKind, options.labelSmoothing),
          vars,
        );
        // Layout [grad | loss]: one readback brings both.
        const parts = vars.map((v) => tf.reshape(grads[v.name] ?? tf.zerosLike(v), [-1]));
        parts.push(tf.reshape(value, [1]));
        const flat = tf.concat(parts);
        return prev ? tf.add(prev, flat) : flat;
      });
      acc = next;
      prev?.dispose();
    }
    const result: tf.Tensor = acc!;
    // Reading the last element (the loss) waits for all of the device work, so computeMs covers it.
    const tail = tf.slice(result, [n], [1]);
    let loss: number;
    try {
      loss = (await tail.data())[0]!;
    } finally {
      tail.dispose();
    }
    const t1 = performance.now();
    const all = await result.data();
    const t2 = performance.now();
    const grad = new Float32Array(n);
    grad.set(all.subarray(0, n) as Float32Array);
    return { grad, loss, count: c.count, computeMs: t1 - t0, readbackMs: t2 - t1 };
  } finally {
    acc?.dispose();
  }
}

/** Sums for distributed evaluation; add them up across peers, then accuracy = correct / count. */
export interface EvalResult {
  /** Samples whose argmax output equals the label (always 0 for regression; a language model's: each sample's share of next tokens right). */
  correct: number;
  count: number;
  /** Summed loss (cross-entropy, or squared error for regression; a language model's: nats per token, summed over samples). */
  lossSum: number;
}

/** Options of {@link evaluate} and {@link predict}. */
export interface BatchOptions {
  /** Samples per forward pass (default 256). */
  batchSize?: number;
}

/** Options of {@link evaluate}. */
export interface EvaluateOptions extends BatchOptions {
  /** The loss to sum (default: 'mse' for one output, else 'crossentropy'). */
  lossKind?: LossKind;
}

function batchSizeOf(fn: string, o: BatchOptions): number {
  const b = o.batchSize ?? 256;
  if (!(Number.isInteger(b) && b > 0))
    throw new MlError('invalid-argument', `${fn}: options.batchSize must be a positive integer; got ${b}`);
  return b;
}

/**
 * Evaluates the model on `x` (count = x.length / sample size) against `y` in batches, summing on the
 * device and reading back once. The loss kind defaults to the model's: one output means regression.
 */
export async function evaluate(model: tf.LayersModel, x: Float32Array, y: Targets, options: EvaluateOptions = {}): Promise<EvalResult> {
  const lossKind: LossKind = options.lossKind ?? (modelOutputSize(model) === 1 ? 'mse' : 'crossentropy');
  const c = check('evaluate', model, x, y, null, lossKind);
  const bs = batchSizeOf('evaluate', options);
  if (c.count === 0) return { correct: 0, count: 0, lossSum: 0 };
  let acc: tf.Tensor | null = null;
  try {
    for (let start = 0; start < c.count; start += bs) {
      const m = Math.min(bs, c.count - start);
      const prev: tf.Tensor | null = acc;
      const next: tf.Tensor = tf.tidy(() => {
        const xs = tf.tensor(x.subarray(start * c.per, (start + m) * c.per), [m, ...c.shape], 'float32');
        const ts = targetsTensor(y, start, m, c.out, lossKind, xs, model);
        const pred = model.apply(xs, { training: false }) as tf.Tensor;
        const loss = summedLoss(pred, ts, lossKind);
        const correct =
          lossKind === 'lm'
            ? tf.div(tf.sum(tf.cast(tf.equal(tf.cast(tf.argMax(pred, 2), 'float32'), nextTokens(xs, model)), 'float32')), pred.shape[1]!)
            : lossKind !== 'mse'
              ? tf.sum(
                  tf.cast(tf.equal(tf.argMax(pred, 1), tf.tensor1d(Int32Array.from(y.subarray(start, start + m)), 'int32')), 'float32'),
                )
              : tf.scalar(0);
        const v = tf.stack([correct, loss]);
        return prev ? tf.add(prev, v) : v;
      });
      acc = next;
      prev?.dispose();
    }
    const [correct, lossSum] = await acc!.data();
    return { correct: correct!, count: c.count, lossSum: lossSum! };
  } finally {
    acc?.dispose();
  }
}

/** Model outputs for a batch of samples. */
export interface Prediction {
  /** count × outputSize values: class probabilities (softmax of the logits), or regression outputs. */
  outputs: Float32Array;
  outputSize: number;
  /** argmax class per sample, or null for regression. */
  classes: Int32Array | null;
}

/** Runs the model forward on `x` (count = x.length / sample size) in batches. */
export async function predict(model: tf.LayersModel, x: Float32Array, options: BatchOptions = {}): Promise<Prediction> {
  if (model.outputs[0]?.shape.length === 3)
    throw new MlError('invalid-argument', `predict: model '${model.name}' is a language model: use generate (ml/transformer.ts)`);
  const shape = sampleShape(model);
  const per = prod(shape);
  const out = modelOutputSize(model);
  const bs = batchSizeOf('predict', options);
  const count = x.length / per;
  if (!Number.isInteger(count)) {
    throw new MlError('invalid-argument', `predict: x has ${x.length} values, not a multiple of the sample size ${per}`);
  }
  const outputs = new Float32Array(count * out);
  for (let start = 0; start < count; start += bs) {
    const m = Math.min(bs, count - start);
    const y = tf.tidy(() => {
      const xs = tf.tensor(x.subarray(start * per, (start + m) * per), [m, ...shape], 'float32');
      const pred = model.apply(xs, { training: false }) as tf.Tensor;
      return out === 1 ? pred : tf.softmax(pred);
    });
    try {
      outputs.set((await y.data()) as Float32Array, start * out);
    } finally {
      y.dispose();
    }
  }
  let classes: Int32Array | null = null;
  if (out > 1) {
    classes = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      let best = 0;
      for (let k = 1; k < out; k++) if (outputs[i * out + k]! > outputs[i * out + best]!) best = k;
      classes[i] = best;
    }
  }
  return { outputs, outputSize: out, classes };
}

/**
 * `[grad | count]`, or `[grad | loss | count]` when a summed loss is given: the vector the ring sums
 * (count as float32 is exact up to 2^24 samples). The layout is {@link Contribution}'s; the
 * exchange works on contributions, this is the plain vector for code that sums arrays.
 */
export function packGradient(grad: Float32Array, count: number, loss?: number): Float32Array {
  return Contribution.gradient(grad, count, loss).data;
}

/**
 * The mean gradient from a summed `[grad | count]`: each sum divided by the total count (in JS, so
 * every peer gets the same bits from the same sums); a loss slot before the count comes back as
 * the mean loss. Throws MlError('invalid-argument') when the total count is not a positive integer
 * (no peer had samples, or the vector is not packed).
 */
export function meanGradient(packedSum: Float32Array): { mean: Float32Array; count: number } {
  if (packedSum.length === 0) throw new MlError('invalid-argument', 'meanGradient: an empty vector has no count slot');
  const { grad, count } = Contribution.over(packedSum.slice(), ['count']).toMean();
  return { mean: grad, count };
}
