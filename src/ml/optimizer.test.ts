import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../core/random.ts';
import { MlError } from './errors.ts';
import { checksum, getFlatWeights, paramCount, setFlatWeights } from './flat.ts';
import { createModel, type ModelSpec } from './models.ts';
import { createOptimizer, type OptimizerSpec } from './optimizer.ts';
import { computeGradients } from './step.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const made: tf.LayersModel[] = [];
afterEach(() => {
  for (const m of made.splice(0)) m.dispose();
});

const OPTIMIZERS: [string, OptimizerSpec, () => tf.Optimizer][] = [
  ['sgd', { kind: 'sgd', lr: 0.1 }, () => tf.train.sgd(0.1)],
  ['momentum', { kind: 'momentum', lr: 0.05, beta: 0.8 }, () => tf.train.momentum(0.05, 0.8)],
  ['adam', { kind: 'adam', lr: 0.01, beta1: 0.85, beta2: 0.99, eps: 1e-7 }, () => tf.train.adam(0.01, 0.85, 0.99, 1e-7)],
];

function randomVec(n: number, r: () => number): Float32Array {
  return Float32Array.from({ length: n }, () => 2 * r() - 1);
}

describe('FlatOptimizer', () => {
  it.each(OPTIMIZERS)('%s agrees with tf.train on the same gradients (an independent implementation)', (_, spec, tfOpt) => {
    const n = 50;
    const r = mulberry32(21);
    const w0 = randomVec(n, r);
    const grads = Array.from({ length: 12 }, () => randomVec(n, r));
    const ours = w0.slice();
    const opt = createOptimizer(spec, n);
    for (const g of grads) opt.update(ours, g);
    expect(opt.step).toBe(12);

    const v = tf.variable(tf.tensor1d(w0));
    const ref = tfOpt();
    for (const g of grads) {
      const gt = tf.tensor1d(g);
      ref.applyGradients({ [v.name]: gt });
      gt.dispose();
    }
    const theirs = v.dataSync();
    for (let i = 0; i < n; i++) expect(ours[i]!).toBeCloseTo(theirs[i]!, 5);
    ref.dispose();
    v.dispose();
  });

  it.each(OPTIMIZERS)('%s: state get/set round trip; continuing after a restore equals never stopping', (_, spec) => {
    const n = 40;
    const r = mulberry32(7);
    const w0 = randomVec(n, r);
    const grads = Array.from({ length: 10 }, () => randomVec(n, r));

    const straight = w0.slice();
    const a = createOptimizer(spec, n);
    grads.forEach((g) => a.update(straight, g));

    const resumed = w0.slice();
    const b = createOptimizer(spec, n);
    grads.slice(0, 4).forEach((g) => b.update(resumed, g));
    const state = b.getState();
    // A fresh optimizer (a joiner, or a restart from a checkpoint) takes over from the state.
    const c = createOptimizer(spec, n);
    c.setState(state);
    expect(c.step).toBe(4);
    expect(checksum(c.getState())).toBe(checksum(state));
    grads.slice(4).forEach((g) => c.update(resumed, g));

    expect(checksum(resumed)).toBe(checksum(straight));
    expect(checksum(c.getState())).toBe(checksum(a.getState()));
    expect(state.length).toBe(2 + (spec.kind === 'sgd' ? 0 : spec.kind === 'momentum' ? n : 2 * n));
  });

  it('AdamW decays the weights apart from the moments; clipNorm scales a long mean gradient down to that norm, and leaves the caller’s', () => {
    // First Adam step: m̂ = g and v̂ = g², so the step is lr·g/(|g| + eps) ≈ lr·sign(g), plus lr·wd·w.
    const adamw = createOptimizer({ kind: 'adam', lr: 0.1, eps: 1e-8, weightDecay: 0.5 }, 2);
    const w = Float32Array.of(2, -4);
    adamw.update(w, Float32Array.of(3, 0));
    expect(w[0]).toBeCloseTo(2 - 0.1 * (3 / (3 + 1e-8)) - 0.1 * 0.5 * 2, 6);
    expect(w[1]).toBeCloseTo(-4 + 0.1 * 0.5 * 4, 6);
    // SGD with the gradient (3, 4) (norm 5) clipped to 1: a step of lr·(0.6, 0.8).
    const clipped = createOptimizer({ kind: 'sgd', lr: 1, clipNorm: 1 }, 2);
    const g = Float32Array.of(3, 4);
    const v = Float32Array.of(0, 0);
    clipped.update(v, g);
    expect(Array.from(v)).toEqual([Math.fround(-0.6), Math.fround(-0.8)]);
    expect(Array.from(g)).toEqual([3, 4]);
    // A short gradient is left as it is.
    clipped.update(v, Float32Array.of(0.3, 0));
    expect(v[0]).toBeCloseTo(-0.9, 6);
    expect(() => createOptimizer({ kind: 'sgd', lr: 1, clipNorm: 0 }, 2)).toThrow(/clipNorm must be a positive number/);
  });

  it('pegasos: step 1/(lambda t) with the L2 shrink, resumable from its state', () => {
    const opt = createOptimizer({ kind: 'pegasos', lambda: 0.5 }, 2);
    const w = Float32Array.from([3, -1]);
    // t = 1: w <- 0 * w - g / 0.5.
    opt.update(w, Float32Array.from([1, -2]));
    expect(Array.from(w)).toEqual([-2, 4]);
    // t = 2: w <- w / 2 - g / 1.
    opt.update(w, Float32Array.from([1, 1]));
    expect(Array.from(w)).toEqual([-2, 1]);
    // The t-weighted average: avg_1 = w_1, avg_2 = avg_1 + 2/3 (w_2 - avg_1).
    expect(Array.from(opt.averagedWeights()!)).toEqual([-2, 2]);
    const again = createOptimizer({ kind: 'pegasos', lambda: 0.5 }, 2);
    again.setState(opt.getState());
    expect(again.step).toBe(2);
    expect(again.averagedWeights()).toEqual(opt.averagedWeights());
    const plain = createOptimizer({ kind: 'pegasos', lambda: 0.5, average: false }, 2);
    plain.update(w, Float32Array.from([1, 1]));
    expect(plain.averagedWeights()).toBeNull();
    expect(() => createOptimizer({ kind: 'pegasos', lambda: 0 }, 2)).toThrow(/lambda must be a positive number/);
  });

  it('rejects a state of another kind or size, a bad gradient, and bad hyper-parameters', () => {
    const adam = createOptimizer({ kind: 'adam', lr: 0.01 }, 10);
    const mom = createOptimizer({ kind: 'momentum', lr: 0.01 }, 10);
    expect(() => adam.setState(mom.getState())).toThrow(/state is for momentum/);
    expect(() => adam.setState(createOptimizer({ kind: 'adam', lr: 0.01 }, 9).getState())).toThrow(MlError);
    const bad = adam.getState();
    bad[1] = 2.5;
    expect(() => adam.setState(bad)).toThrow(/step must be an integer/);
    const w = new Float32Array(10);
    expect(() => adam.update(w, new Float32Array(9))).toThrow(/must both have 10 values/);
    const g = new Float32Array(10);
    g[4] = Number.POSITIVE_INFINITY;
    expect(() => adam.update(w, g)).toThrow(/meanGrad\[4\] is Infinity/);
    expect(adam.step).toBe(0);
    expect(() => createOptimizer({ kind: 'sgd', lr: 0 }, 3)).toThrow(/lr must be a positive number/);
    expect(() => createOptimizer({ kind: 'momentum', lr: 0.1, beta: 1 }, 3)).toThrow(/beta must be in \[0, 1\)/);
    expect(() => createOptimizer({ kind: 'nadam' } as unknown as OptimizerSpec, 3)).toThrow(/kind must be/);
  });

  it('apply() on a model equals update() on its flat weights, and trains', async () => {
    const spec: ModelSpec = { kind: 'mlp', inputShape: [4], numClasses: 2, hidden: [6], seed: 3 };
    const m = createModel(spec);
    made.push(m);
    const n = paramCount(m);
    const r = mulberry32(1);
    const x = randomVec(32 * 4, r);
    const y = Int32Array.from({ length: 32 }, (_, i) => (x[4 * i]! + x[4 * i + 1]! > 0 ? 1 : 0));
    const opt = createOptimizer({ kind: 'adam', lr: 0.05 }, n);
    const shadow = createOptimizer({ kind: 'adam', lr: 0.05 }, n);
    const flat = await getFlatWeights(m);
    let first = 0;
    let last = 0;
    for (let s = 0; s < 30; s++) {
      const g = await computeGradients(m, x, y, 32, 'crossentropy');
      if (s === 0) first = g.loss;
      last = g.loss;
      const mean = g.grad.map((v) => v / 32);
      await opt.apply(m, mean);
      shadow.update(flat, mean);
    }
    expect(checksum(await getFlatWeights(m, { fromDevice: true }))).toBe(checksum(flat));
    expect(last).toBeLessThan(0.5 * first);
  });

  it('apply() reads the device when something else wrote the weights', async () => {
    const m = createModel({ kind: 'softmax', inputShape: [3], numClasses: 2, seed: 1 });
    made.push(m);
    const n = paramCount(m);
    const opt = createOptimizer({ kind: 'sgd', lr: 1 }, n);
    const fresh = m.getWeights().map((w) => tf.onesLike(w));
    m.setWeights(fresh);
    tf.dispose(fresh);
    await opt.apply(m, new Float32Array(n).fill(0.25));
    expect(Array.from(await getFlatWeights(m, { fromDevice: true }))).toEqual(new Array(n).fill(0.75));
    setFlatWeights(m, new Float32Array(n));
    await opt.apply(m, new Float32Array(n).fill(0.5));
    expect(Array.from(await getFlatWeights(m, { fromDevice: true }))).toEqual(new Array(n).fill(-0.5));
  });
});
