import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../core/random.ts';
import { rffTransform } from './rff.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('random Fourier features', () => {
  it('approximate the RBF kernel, identically from the same seed, without leaking tensors', async () => {
    const d = 5;
    const n = 12;
    const r = mulberry32(4);
    const x = Float32Array.from({ length: n * d }, () => r() - 0.5);
    const o = { features: 4000, gamma: 0.7, seed: 11 };
    const before = tf.memory().numTensors;
    const z = await rffTransform(x, n, d, o, 5);
    expect(tf.memory().numTensors).toBe(before);
    // Another peer, other chunking: the same features.
    expect(await rffTransform(x, n, d, o, 7)).toEqual(z);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let dot = 0;
        let dist = 0;
        for (let k = 0; k < o.features; k++) dot += z[i * o.features + k]! * z[j * o.features + k]!;
        for (let k = 0; k < d; k++) dist += (x[i * d + k]! - x[j * d + k]!) ** 2;
        worst = Math.max(worst, Math.abs(dot - Math.exp(-o.gamma * dist)));
      }
    }
    expect(worst).toBeLessThan(0.06);
    await expect(rffTransform(x, n, d, { ...o, gamma: 0 })).rejects.toThrow(/gamma must be a positive number/);
  });
});
