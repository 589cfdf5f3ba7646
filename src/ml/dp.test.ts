import { describe, expect, it } from 'vitest';
import { gaussianBlobs } from '../data/synthetic.ts';
import { dpEpsilon, privateGradients, RdpAccountant } from './dp.ts';
import { createModel } from './models.ts';
import { computeGradients } from './step.ts';

describe('DP-SGD accountant', () => {
  it('matches published TensorFlow Privacy values for MNIST-sized runs (n = 60000, δ = 1e-5)', () => {
    // Batch 250, noise 1.3, 15 epochs: the TF Privacy classification tutorial reports ε = 1.18.
    expect(dpEpsilon(250 / 60_000, 1.3, (15 * 60_000) / 250, 1e-5)).toBeCloseTo(1.18, 2);
    // Batch 256, noise 1.1, 60 epochs (Abadi et al.'s MNIST setting): ε = 3.01.
    expect(dpEpsilon(256 / 60_000, 1.1, Math.ceil((60 * 60_000) / 256), 1e-5)).toBeCloseTo(3.01, 2);
  });

  it('grows with steps and sampling rate, shrinks with noise, and refuses nonsense', () => {
    const e = (q: number, s: number, t: number): number => dpEpsilon(q, s, t, 1e-5);
    expect(e(0.01, 1, 0)).toBe(0);
    expect(e(0.01, 1, 200)).toBeGreaterThan(e(0.01, 1, 100));
    expect(e(0.02, 1, 100)).toBeGreaterThan(e(0.01, 1, 100));
    expect(e(0.01, 2, 100)).toBeLessThan(e(0.01, 1, 100));
    expect(() => dpEpsilon(0.01, 0, 10, 1e-5)).toThrow(/sigma > 0/);
  });

  it('composes steps of different noise: a neighbour at N = 4 sees the mechanism of σ/2, and mixing room sizes lands between', () => {
    const q = 64 / 60_000;
    const four = new RdpAccountant();
    for (let t = 0; t < 300; t++) four.add(q, 1.2 / Math.sqrt(4));
    expect(four.epsilon(1e-5)).toBeCloseTo(dpEpsilon(q, 0.6, 300, 1e-5), 9);
    expect(four.epsilon(1e-5)).toBeGreaterThan(2 * dpEpsilon(q, 1.2, 300, 1e-5));
    const mixed = new RdpAccountant();
    mixed.add(q, 1.2 / Math.sqrt(2), 150);
    mixed.add(q, 1.2 / Math.sqrt(4), 150);
    expect(mixed.epsilon(1e-5)).toBeGreaterThan(dpEpsilon(q, 1.2 / Math.sqrt(2), 300, 1e-5));
    expect(mixed.epsilon(1e-5)).toBeLessThan(four.epsilon(1e-5));
    expect(new RdpAccountant().epsilon(1e-5)).toBe(0);
  });
});

describe('private gradients', () => {
  it('clip every example to the bound, and add noise of the configured size', async () => {
    const ds = gaussianBlobs({ n: 16, classes: 3, dims: 4, spread: 0.3, seed: 2 });
    // Large inputs give large per-example gradients, so clipping bites.
    const x = ds.x.map((v) => v * 50);
    const model = createModel({ kind: 'softmax', inputShape: [4], numClasses: 3, seed: 1 });
    try {
      const plain = await computeGradients(model, x, ds.y, 16, 'crossentropy');
      const clipped = await privateGradients(model, x, ds.y, 16, 'crossentropy', { clip: 0.5, noiseMultiplier: 0 }, 1);
      const norm = (g: Float32Array): number => Math.sqrt(g.reduce((a, v) => a + v * v, 0));
      expect(norm(plain.grad)).toBeGreaterThan(16 * 0.5);
      expect(norm(clipped.grad)).toBeLessThanOrEqual(16 * 0.5 + 1e-4);
      expect(clipped.count).toBe(16);
      expect(clipped.loss).toBeCloseTo(plain.loss, 3);
    } finally {
      model.dispose();
    }
    // Noise only: zero examples, σ C / sqrt(4 peers) = 2 per coordinate, over 17 k parameters.
    const mlp = createModel({ kind: 'mlp', inputShape: [4], numClasses: 3, seed: 1, hidden: [4096] });
    try {
      const noise = await privateGradients(
        mlp,
        new Float32Array(0),
        new Int32Array(0),
        0,
        'crossentropy',
        { clip: 1, noiseMultiplier: 4 },
        4,
      );
      expect(noise.grad.length).toBeGreaterThan(16_000);
      const mean = noise.grad.reduce((a, v) => a + v, 0) / noise.grad.length;
      const sd = Math.sqrt(noise.grad.reduce((a, v) => a + v * v, 0) / noise.grad.length);
      expect(Math.abs(mean)).toBeLessThan(0.1);
      expect(sd).toBeGreaterThan(1.9);
      expect(sd).toBeLessThan(2.1);
    } finally {
      mlp.dispose();
    }
  });
});
