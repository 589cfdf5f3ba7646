import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../core/random.ts';
import { CONV_GRAD_KERNEL } from './backend.ts';
import { registerWasmConvGrad } from './conv-grad.ts';
import { getFlatWeights } from './flat.ts';
import { lossKindFor, type ModelSpec } from './models.ts';
import { computeGradients } from './step.ts';
import { modelBuilder } from '../test/helpers.ts';

beforeAll(async () => {
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  registerWasmConvGrad();
  await tf.setBackend('wasm');
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

const rand = (n: number, seed: number): Float32Array => {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => 2 * r() - 1);
};

/** The gradients of sum(c sin c), c = conv2d(x, w), by x and by w, on the current backend. */
async function convGrads(
  x: Float32Array,
  xs: number[],
  w: Float32Array,
  ws: number[],
  stride: number,
  pad: 'same' | 'valid',
): Promise<Float32Array[]> {
  const gs = tf.tidy(() => {
    const f = (a: tf.Tensor, b: tf.Tensor): tf.Scalar => {
      const c = tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad);
      return tf.sum(tf.mul(c, tf.sin(c)));
    };
    return tf.grads(f)([tf.tensor4d(x, xs as [number, number, number, number]), tf.tensor4d(w, ws as [number, number, number, number])]);
  });
  const out = (await Promise.all(gs.map((g) => g.data()))) as Float32Array[];
  tf.dispose(gs);
  return out;
}

describe("wasm's conv gradients", () => {
  it('is registered on wasm, where tfjs 4.22 has none', () => {
    expect(tf.getBackend()).toBe('wasm');
    expect(tf.getKernel(CONV_GRAD_KERNEL, 'wasm')).toBeDefined();
  });

  it.each([
    [1, 'same'],
    [1, 'valid'],
  ] as const)('equal the cpu backend, by the filter and by the input: stride %i, padding %s', async (stride, pad) => {
    const xs = [3, 9, 8, 2];
    const ws = [3, 3, 2, 5];
    const x = rand(
      xs.reduce((a, b) => a * b),
      1,
    );
    const w = rand(
      ws.reduce((a, b) => a * b),
      2,
    );
    const onWasm = await convGrads(x, xs, w, ws, stride, pad);
    await tf.setBackend('cpu');
    const onCpu = await convGrads(x, xs, w, ws, stride, pad);
    await tf.setBackend('wasm');
    expect(onWasm.map((g) => g.length)).toEqual([3 * 9 * 8 * 2, 3 * 3 * 2 * 5]);
    for (const [k, cpu] of onCpu.entries()) {
      expect(Math.max(...cpu.map(Math.abs))).toBeGreaterThan(0.1);
      for (let i = 0; i < cpu.length; i++) expect(Math.abs(onWasm[k]![i]! - cpu[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(cpu[i]!)));
    }
  });

  it("leaves the input gradient at stride 2 to wasm's own kernel, which still answers (as cpu does)", async () => {
    const xs = [2, 9, 9, 2];
    const ws = [3, 3, 2, 4];
    const x = rand(2 * 9 * 9 * 2, 4);
    const w = rand(3 * 3 * 2 * 4, 5);
    const byInput = async (): Promise<Float32Array> => {
      const g = tf.tidy(() => {
        const wt = tf.tensor4d(w, ws as [number, number, number, number]);
        return tf.grad((a: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, wt, 2, 'same'))))(
          tf.tensor4d(x, xs as [number, number, number, number]),
        );
      });
      const out = (await g.data()) as Float32Array;
      g.dispose();
      return out;
    };
    const onWasm = await byInput();
    await tf.setBackend('cpu');
    const onCpu = await byInput();
    await tf.setBackend('wasm');
    expect(Math.max(...onCpu.map(Math.abs))).toBeGreaterThan(0.1);
    for (let i = 0; i < onCpu.length; i++) expect(Math.abs(onWasm[i]! - onCpu[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(onCpu[i]!)));
  });

  it("gives a CNN's gradient on wasm (conv 8/16, dense 32), equal to the cpu backend's", async () => {
    const spec: ModelSpec = { kind: 'cnn', inputShape: [784], numClasses: 10, hidden: [8, 16], dense: [32], seed: 5 };
    const build = modelBuilder();
    const x = rand(8 * 784, 3).map((v) => (v + 1) / 2);
    const y = Int32Array.from({ length: 8 }, (_, i) => i % 10);
    const onWasm = await computeGradients(build(spec), x, y, 8, lossKindFor(spec));
    await tf.setBackend('cpu');
    const onCpu = await computeGradients(build(spec), x, y, 8, lossKindFor(spec));
    await tf.setBackend('wasm');
    expect(onWasm.grad.length).toBe((await getFlatWeights(build(spec))).length);
    expect(Math.abs(onWasm.loss - onCpu.loss)).toBeLessThan(1e-4 * onCpu.loss);
    let worst = 0;
    for (let i = 0; i < onCpu.grad.length; i++) worst = Math.max(worst, Math.abs(onWasm.grad[i]! - onCpu.grad[i]!));
    expect(worst).toBeLessThan(1e-4);
    expect(Math.max(...onCpu.grad.map(Math.abs))).toBeGreaterThan(1e-3);
  });

  it('refuse for the filter what they do not compute (strides, explicit padding), naming the way out', () => {
    const x = tf.ones([1, 6, 6, 1]) as tf.Tensor4D;
    const w = tf.ones([3, 3, 1, 1]) as tf.Tensor4D;
    const gradOf =
      (stride: number, pad: 'same' | [[number, number], [number, number], [number, number], [number, number]]) => (): unknown =>
        tf.tidy(() => tf.grad((v: tf.Tensor) => tf.sum(tf.conv2d(x, v as tf.Tensor4D, stride, pad)))(w));
    expect(gradOf(2, 'same')).toThrow(/only NHWC, stride 1, padding 'same' or 'valid'.*stride 2x2.*pick the cpu backend/);
    expect(
      gradOf(1, [
        [0, 0],
        [1, 1],
        [1, 1],
        [0, 0],
      ]),
    ).toThrow(/pick the cpu backend/);
    x.dispose();
    w.dispose();
  });
});
