import { describe, expect, it } from 'vitest';
import { checkDataset, DataError, labelHistogram } from './dataset.ts';
import { gaussianBlobs, linearRegression, twoSpirals } from './synthetic.ts';

describe('synthetic datasets', () => {
  it('are identical for the same seed and differ for another', () => {
    const gens = [
      (seed: number) => gaussianBlobs({ n: 300, classes: 3, dims: 4, spread: 0.2, seed }),
      (seed: number) => twoSpirals({ n: 300, noise: 0.05, seed }),
      (seed: number) => linearRegression({ n: 300, dims: 5, noise: 0.1, seed }),
    ];
    for (const g of gens) {
      const a = g(1);
      const b = g(1);
      const c = g(2);
      expect(checkDataset(a)).toBeNull();
      expect(Array.from(a.x)).toEqual(Array.from(b.x));
      expect(Array.from(a.y)).toEqual(Array.from(b.y));
      expect(a.targets && Array.from(a.targets)).toEqual(b.targets && Array.from(b.targets));
      expect(Array.from(a.x)).not.toEqual(Array.from(c.x));
    }
  });

  it('gaussianBlobs: balanced classes, each sample nearest its own centre when the spread is small', () => {
    const ds = gaussianBlobs({ n: 1000, classes: 4, dims: 3, spread: 0.02, seed: 5 });
    expect(ds.shape).toEqual([3]);
    expect(Array.from(labelHistogram(ds))).toEqual([250, 250, 250, 250]);
    const mean = Array.from({ length: 4 }, () => [0, 0, 0]);
    for (let i = 0; i < ds.n; i++) for (let j = 0; j < 3; j++) mean[ds.y[i]!]![j]! += ds.x[i * 3 + j]! / 250;
    let correct = 0;
    for (let i = 0; i < ds.n; i++) {
      const d = mean.map((m) => m.reduce((s, v, j) => s + (v - ds.x[i * 3 + j]!) ** 2, 0));
      if (d.indexOf(Math.min(...d)) === ds.y[i]) correct++;
    }
    expect(correct).toBe(ds.n);
  });

  it('twoSpirals: two balanced classes in the unit disc (plus noise), point-symmetric', () => {
    const ds = twoSpirals({ n: 501, noise: 0, seed: 3 });
    expect(ds.shape).toEqual([2]);
    expect(ds.numClasses).toBe(2);
    const h = labelHistogram(ds);
    expect(Math.abs(h[0]! - h[1]!)).toBeLessThanOrEqual(1);
    for (let i = 0; i < ds.n; i++) expect(Math.hypot(ds.x[2 * i]!, ds.x[2 * i + 1]!)).toBeLessThanOrEqual(1 + 1e-6);
  });

  it('linearRegression: noiseless targets are exactly w.x + b', () => {
    const ds = linearRegression({ n: 50, dims: 3, noise: 0, seed: 9 });
    expect(ds.numClasses).toBe(0);
    for (let i = 0; i < ds.n; i++) {
      let t = ds.bias;
      for (let j = 0; j < 3; j++) t += ds.weights[j]! * ds.x[i * 3 + j]!;
      expect(ds.targets![i]).toBeCloseTo(t, 5);
    }
  });

  it('reject bad options with a DataError naming the option', () => {
    expect(() => gaussianBlobs({ n: 10, classes: 0, dims: 2, spread: 1, seed: 0 })).toThrow(DataError);
    expect(() => twoSpirals({ n: -1, noise: 0, seed: 0 })).toThrow(/twoSpirals: n must be an integer >= 0/);
    expect(() => linearRegression({ n: 1, dims: 1, noise: NaN, seed: 0 })).toThrow(/noise/);
  });
});
