import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../core/random.ts';
import { MlError } from './errors.ts';
import { getFlatWeights, paramCount, setFlatWeights } from './flat.ts';
import { lossKindFor, type ModelSpec } from './models.ts';
import { createOptimizer } from './optimizer.ts';
import { computeGradients, evaluate, meanGradient, packGradient, predict } from './step.ts';
import { modelBuilder } from '../test/helpers.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const build = modelBuilder();

/** Seeded batch: inputs in [-1, 1), labels in [0, k) (or regression targets when k = 0). */
function batch(spec: ModelSpec, count: number, seed: number): { x: Float32Array; y: Int32Array | Float32Array } {
  const r = mulberry32(seed);
  const per = spec.inputShape.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: count * per }, () => 2 * r() - 1);
  const y =
    spec.numClasses === 0
      ? Float32Array.from({ length: count }, () => 3 * r() - 1)
      : Int32Array.from({ length: count }, () => Math.floor(r() * spec.numClasses));
  return { x, y };
}

describe('computeGradients', () => {
  it.each<[string, ModelSpec]>([
    ['softmax regression (cross-entropy)', { kind: 'softmax', inputShape: [3], numClasses: 3, seed: 2 }],
    ['linear regression (squared error)', { kind: 'softmax', inputShape: [3], numClasses: 0, seed: 2 }],
  ])('%s matches central finite differences of the summed loss', async (_, spec) => {
    const m = build(spec);
    const { x, y } = batch(spec, 8, 99);
    const kind = lossKindFor(spec);
    const w0 = await getFlatWeights(m);
    const g = await computeGradients(m, x, y, 8, kind);
    expect(g.count).toBe(8);
    expect(g.grad.length).toBe(paramCount(m));
    const h = 1e-2;
    for (let i = 0; i < w0.length; i++) {
      const plus = w0.slice();
      plus[i] = plus[i]! + h;
      const minus = w0.slice();
      minus[i] = minus[i]! - h;
      setFlatWeights(m, plus);
      const lp = (await computeGradients(m, x, y, 8, kind)).loss;
      setFlatWeights(m, minus);
      const lm = (await computeGradients(m, x, y, 8, kind)).loss;
      const fd = (lp - lm) / (Math.fround(w0[i]! + h) - Math.fround(w0[i]! - h));
      expect(Math.abs(fd - g.grad[i]!)).toBeLessThan(2e-3 * Math.max(1, Math.abs(g.grad[i]!)));
    }
    setFlatWeights(m, w0);
    // The loss is a sum over samples: for cross-entropy it is about count * ln(classes) at the start.
    if (kind === 'crossentropy') expect(g.loss).toBeGreaterThan(8 * 0.5);
  });

  it('sums over the batch: the gradient of a batch equals the sum over its halves (also chunked)', async () => {
    const spec: ModelSpec = { kind: 'mlp', inputShape: [6], numClasses: 4, hidden: [7], seed: 3 };
    const m = build(spec);
    const { x, y } = batch(spec, 10, 5);
    const whole = await computeGradients(m, x, y, 10, 'crossentropy');
    const a = await computeGradients(m, x.subarray(0, 4 * 6), y.subarray(0, 4), 4, 'crossentropy');
    const b = await computeGradients(m, x.subarray(4 * 6), y.subarray(4), 6, 'crossentropy');
    const chunked = await computeGradients(m, x, y, 10, 'crossentropy', { chunkSize: 3 });
    expect(whole.loss).toBeCloseTo(a.loss + b.loss, 4);
    expect(chunked.loss).toBeCloseTo(whole.loss, 4);
    for (let i = 0; i < whole.grad.length; i++) {
      expect(a.grad[i]! + b.grad[i]!).toBeCloseTo(whole.grad[i]!, 4);
      expect(chunked.grad[i]!).toBeCloseTo(whole.grad[i]!, 4);
    }
    expect(whole.computeMs).toBeGreaterThanOrEqual(0);
    expect(whole.readbackMs).toBeGreaterThanOrEqual(0);
  });

  it('works for the CNN, and count 0 gives a zero gradient without touching the backend', async () => {
    const spec: ModelSpec = { kind: 'cnn', inputShape: [12, 12, 1], numClasses: 3, hidden: [2, 3], seed: 4 };
    const m = build(spec);
    const { x, y } = batch(spec, 5, 6);
    const g = await computeGradients(m, x, y, 5, 'crossentropy');
    expect(g.grad.some((v) => v !== 0)).toBe(true);
    expect(g.grad.every(Number.isFinite)).toBe(true);
    const z = await computeGradients(m, new Float32Array(0), new Int32Array(0), 0, 'crossentropy');
    expect(z).toMatchObject({ loss: 0, count: 0 });
    expect(z.grad.length).toBe(paramCount(m));
    expect(z.grad.every((v) => v === 0)).toBe(true);
  });

  it('rejects mismatched arguments with MlError naming them', async () => {
    const spec: ModelSpec = { kind: 'softmax', inputShape: [3], numClasses: 3, seed: 2 };
    const m = build(spec);
    const { x, y } = batch(spec, 4, 1);
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => computeGradients(m, x, y, 5, 'crossentropy'), /computeGradients: x has 12 values; 5 samples/],
      [() => computeGradients(m, x, y.subarray(0, 3), 4, 'crossentropy'), /y has 3 values/],
      [() => computeGradients(m, x, Int32Array.of(0, 1, 2, 3), 4, 'crossentropy'), /y\[3\] = 3 is not a class index/],
      [() => computeGradients(m, x, y, 4, 'mse'), /'mse' needs one output/],
      [() => computeGradients(m, x, y, 1.5, 'crossentropy'), /count must be an integer/],
      [() => computeGradients(m, x, y, 4, 'crossentropy', { chunkSize: 0 }), /chunkSize/],
    ];
    for (const [f, re] of cases) {
      const e = await f().catch((err: unknown) => err);
      expect(e).toBeInstanceOf(MlError);
      expect((e as MlError).code).toBe('invalid-argument');
      expect((e as Error).message).toMatch(re);
    }
  });
});

describe('label smoothing', () => {
  it('sums the cross-entropy against (1 − ε)·one-hot + ε/K targets, and changes the gradient', async () => {
    const spec: ModelSpec = { kind: 'softmax', inputShape: [3], numClasses: 4, seed: 7 };
    const m = build(spec);
    const { x, y } = batch(spec, 6, 5);
    const eps = 0.2;
    const smooth = await computeGradients(m, x, y, 6, 'crossentropy', { labelSmoothing: eps });
    const plain = await computeGradients(m, x, y, 6, 'crossentropy');
    const p = (await predict(m, x)).outputs;
    let expected = 0;
    for (let i = 0; i < 6; i++) for (let k = 0; k < 4; k++) expected -= ((k === y[i] ? 1 - eps : 0) + eps / 4) * Math.log(p[i * 4 + k]!);
    expect(smooth.loss).toBeCloseTo(expected, 4);
    expect(smooth.loss).not.toBeCloseTo(plain.loss, 2);
    expect(Math.max(...smooth.grad.map((g, i) => Math.abs(g - plain.grad[i]!)))).toBeGreaterThan(1e-3);
  });
});

describe('the linear SVM', () => {
  it('sums the multi-class hinge max(0, 1 + max_{c≠y} s_c − s_y), with its subgradient', async () => {
    const spec: ModelSpec = { kind: 'svm', inputShape: [4], numClasses: 3, seed: 4 };
    const m = build(spec);
    const { x, y } = batch(spec, 12, 21);
    // Larger weights, so that some samples clear the margin and add nothing.
    const w = (await getFlatWeights(m)).map((v, i) => 4 * v + 0.3 * Math.sin(i));
    setFlatWeights(m, w);
    const [d, k] = [4, 3];
    let loss = 0;
    let clear = 0;
    const grad = new Float32Array(w.length);
    for (let i = 0; i < 12; i++) {
      // Scores from the flat layout: kernel [d, k] row-major, then the bias [k].
      const s = Array.from(
        { length: k },
        (_, c) => w[d * k + c]! + Array.from({ length: d }, (_, j) => x[i * d + j]! * w[j * k + c]!).reduce((a, b) => a + b),
      );
      const yi = y[i]!;
      const rival = s.reduce((best, v, c) => (c !== yi && (best < 0 || v > s[best]!) ? c : best), -1);
      const l = 1 + s[rival]! - s[yi]!;
      if (l <= 0) {
        clear++;
        continue;
      }
      loss += l;
      for (const [c, sign] of [
        [rival, 1],
        [yi, -1],
      ] as const) {
        for (let j = 0; j < d; j++) grad[j * k + c]! += sign * x[i * d + j]!;
        grad[d * k + c]! += sign;
      }
    }
    expect(clear).toBeGreaterThan(0);
    expect(clear).toBeLessThan(12);
    const g = await computeGradients(m, x, y, 12, 'hinge');
    expect(g.loss).toBeCloseTo(loss, 4);
    for (let i = 0; i < w.length; i++) expect(g.grad[i]!).toBeCloseTo(grad[i]!, 4);
  });
});

describe('evaluate and predict', () => {
  it('count correct argmax predictions and sum the loss, in batches, agreeing with predict', async () => {
    const spec: ModelSpec = { kind: 'mlp', inputShape: [5], numClasses: 3, hidden: [6], seed: 8 };
    const m = build(spec);
    const { x, y } = batch(spec, 23, 12);
    const p = await predict(m, x, { batchSize: 7 });
    expect(p.outputSize).toBe(3);
    expect(p.outputs.length).toBe(69);
    for (let i = 0; i < 23; i++) expect(p.outputs[3 * i]! + p.outputs[3 * i + 1]! + p.outputs[3 * i + 2]!).toBeCloseTo(1, 5);
    const expected = p.classes!.reduce((s, c, i) => s + (c === y[i] ? 1 : 0), 0);
    const e = await evaluate(m, x, y, { batchSize: 5 });
    expect(e.count).toBe(23);
    expect(e.correct).toBe(expected);
    const g = await computeGradients(m, x, y, 23, 'crossentropy');
    expect(e.lossSum).toBeCloseTo(g.loss, 3);
    // Shards add up: evaluating two halves and summing equals evaluating the whole.
    const a = await evaluate(m, x.subarray(0, 10 * 5), y.subarray(0, 10));
    const b = await evaluate(m, x.subarray(10 * 5), y.subarray(10));
    expect(a.correct + b.correct).toBe(e.correct);
    expect(a.count + b.count).toBe(23);
  });

  it('regression: correct is 0 and the loss is the summed squared error', async () => {
    const spec: ModelSpec = { kind: 'mlp', inputShape: [4], numClasses: 0, hidden: [3], seed: 9 };
    const m = build(spec);
    const { x, y } = batch(spec, 9, 2);
    const p = await predict(m, x);
    expect(p.classes).toBeNull();
    const sse = Array.from(p.outputs).reduce((s, o, i) => s + (o - y[i]!) ** 2, 0);
    const e = await evaluate(m, x, y, { batchSize: 4 });
    expect(e).toMatchObject({ correct: 0, count: 9 });
    expect(e.lossSum).toBeCloseTo(sse, 4);
  });
});

describe('[grad | count]', () => {
  it('packs, and the mean divides the summed gradient by the total count', () => {
    const a = packGradient(Float32Array.of(1, 2, 3), 2);
    const b = packGradient(Float32Array.of(3, 4, 5), 6);
    const sum = a.map((v, i) => v + b[i]!);
    const { mean, count } = meanGradient(sum);
    expect(count).toBe(8);
    expect(Array.from(mean)).toEqual([0.5, 0.75, 1]);
    expect(() => meanGradient(Float32Array.of(1, 0))).toThrow(MlError);
    expect(() => packGradient(Float32Array.of(1), -1)).toThrow(/count/);
  });
});

describe('tensor hygiene', () => {
  it.each<[string, ModelSpec]>([
    ['mlp', { kind: 'mlp', inputShape: [6], numClasses: 3, hidden: [5], seed: 1 }],
    ['cnn', { kind: 'cnn', inputShape: [12, 12, 1], numClasses: 3, hidden: [2], seed: 1 }],
    ['regression', { kind: 'mlp', inputShape: [6], numClasses: 0, hidden: [5], seed: 1 }],
  ])('%s: tf.memory().numTensors is unchanged across computeGradients, apply, evaluate, predict', async (_, spec) => {
    const m = build(spec);
    const opt = createOptimizer({ kind: 'adam', lr: 0.01 }, paramCount(m));
    const { x, y } = batch(spec, 9, 3);
    const kind = lossKindFor(spec);
    // One warm-up step: kernels may allocate lasting helpers on first use.
    const warm = await computeGradients(m, x, y, 9, kind);
    await opt.apply(
      m,
      warm.grad.map((v) => v / 9),
    );
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const g = await computeGradients(m, x, y, 9, kind, { chunkSize: 4 });
      await opt.apply(
        m,
        g.grad.map((v) => v / 9),
      );
      await evaluate(m, x, y, { batchSize: 4 });
      await predict(m, x, { batchSize: 4 });
      await getFlatWeights(m, { fromDevice: true });
    }
    expect(tf.memory().numTensors).toBe(before);
    // And failures leave nothing behind either.
    await computeGradients(m, x, y, 8, kind).catch(() => undefined);
    expect(tf.memory().numTensors).toBe(before);
  });
});
