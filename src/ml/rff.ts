/**
 * Random Fourier features (Rahimi & Recht, 2007) for the RBF kernel k(x, y) = exp(-gamma ||x - y||^2):
 * z(x) = sqrt(2 / D) cos(W x + b) with W ~ N(0, 2 gamma I) and b ~ U[0, 2 pi), so that
 * z(x) . z(y) approximates k(x, y). W and b are drawn in JS from a seed every peer shares, so every
 * peer maps its shard with the same features; the map itself runs on the tfjs backend (a matmul).
 * A linear model (the SVM) on z(x) is then an approximate RBF-kernel machine.
 */
import * as tf from '@tensorflow/tfjs';
import { mulberry32 } from '../core/random.ts';
import { MlError } from './errors.ts';

export interface RffOptions {
  /** Number of random features D. */
  features: number;
  /** RBF width: k(x, y) = exp(-gamma ||x - y||^2), gamma > 0. */
  gamma: number;
  seed: number;
}

/** W (d x D, row-major) and b (D) of the map, from the seed. */
export function rffParameters(d: number, o: RffOptions): { w: Float32Array; b: Float32Array } {
  if (!(Number.isInteger(o.features) && o.features > 0))
    throw new MlError('invalid-argument', `rff: features must be a positive integer; got ${o.features}`);
  if (!(Number.isFinite(o.gamma) && o.gamma > 0))
    throw new MlError('invalid-argument', `rff: gamma must be a positive number; got ${o.gamma}`);
  const rand = mulberry32(o.seed);
  const sd = Math.sqrt(2 * o.gamma);
  const w = new Float32Array(d * o.features);
  for (let i = 0; i < w.length; i++) {
    // Box-Muller, one variate per pair of draws.
    const u = 1 - rand();
    w[i] = sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  }
  const b = Float32Array.from({ length: o.features }, () => 2 * Math.PI * rand());
  return { w, b };
}

/** Maps `n` rows of `d` features (row-major) to `n x D` random features, in chunks of `chunk` rows. */
export async function rffTransform(x: Float32Array, n: number, d: number, o: RffOptions, chunk = 2048): Promise<Float32Array> {
  const { w, b } = rffParameters(d, o);
  const out = new Float32Array(n * o.features);
  const W = tf.tensor2d(w, [d, o.features]);
  const B = tf.tensor1d(b);
  const scale = Math.sqrt(2 / o.features);
  try {
    for (let start = 0; start < n; start += chunk) {
      const m = Math.min(chunk, n - start);
      const z = tf.tidy(() => tf.mul(tf.cos(tf.add(tf.matMul(tf.tensor2d(x.subarray(start * d, (start + m) * d), [m, d]), W), B)), scale));
      try {
        out.set((await z.data()) as Float32Array, start * o.features);
      } finally {
        z.dispose();
      }
    }
  } finally {
    W.dispose();
    B.dispose();
  }
  return out;
}
