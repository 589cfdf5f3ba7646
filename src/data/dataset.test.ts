import { describe, expect, it } from 'vitest';
import { checkDataset, type DataError, labelHistogram, subset, type Dataset } from './dataset.ts';
import { dirichlet, logGamma, rng } from './sampling.ts';

const DS: Dataset = {
  n: 3,
  shape: [2],
  x: Float32Array.from([1, 2, 3, 4, 5, 6]),
  y: Int32Array.from([1, 0, 1]),
  numClasses: 2,
  classNames: ['a', 'b'],
  featureNames: ['f', 'g'],
};

describe('Dataset helpers', () => {
  it('subset copies the chosen samples in order, repeats allowed', () => {
    const s = subset(DS, [2, 0, 2]);
    expect(s.n).toBe(3);
    expect(Array.from(s.x)).toEqual([5, 6, 1, 2, 5, 6]);
    expect(Array.from(s.y)).toEqual([1, 1, 1]);
    expect(s.classNames).toEqual(['a', 'b']);
    s.x[0] = 99;
    expect(DS.x[4]).toBe(5);
    expect(() => subset(DS, [3])).toThrow(/subset: indices\[0\] = 3 is outside \[0, 3\)/);
  });

  it('subset keeps regression targets', () => {
    const r: Dataset = {
      n: 2,
      shape: [1],
      x: Float32Array.from([1, 2]),
      y: new Int32Array(2),
      numClasses: 0,
      targets: Float32Array.from([0.5, -1]),
    };
    expect(Array.from(subset(r, [1]).targets!)).toEqual([-1]);
  });

  it('labelHistogram counts each class', () => {
    expect(Array.from(labelHistogram(DS))).toEqual([1, 2]);
  });

  it.each<[string, Partial<Dataset>, DataError['code']]>([
    ['x of the wrong length', { x: new Float32Array(5) }, 'size-mismatch'],
    ['y of the wrong length', { y: new Int32Array(2) }, 'size-mismatch'],
    ['a label out of range', { y: Int32Array.from([0, 2, 0]) }, 'bad-value'],
    ['a zero dim', { shape: [0] }, 'bad-dims'],
    ['regression without targets', { numClasses: 0, classNames: [] }, 'size-mismatch'],
    ['targets on classification', { targets: new Float32Array(3) }, 'bad-value'],
    ['too few class names', { classNames: ['a'] }, 'size-mismatch'],
    ['too many feature names', { featureNames: ['a', 'b', 'c'] }, 'size-mismatch'],
  ])('checkDataset catches %s', (_, patch, code) => {
    expect(checkDataset(DS)).toBeNull();
    expect(checkDataset({ ...DS, ...patch })?.code).toBe(code);
  });
});

describe('sampling', () => {
  it('gamma variates have the right mean (Marsaglia-Tsang, and the alpha < 1 boost)', () => {
    for (const alpha of [0.1, 0.5, 1, 3.5]) {
      const r = rng(42);
      let sum = 0;
      const k = 20000;
      for (let i = 0; i < k; i++) sum += Math.exp(logGamma(r, alpha));
      expect(sum / k).toBeGreaterThan(alpha * 0.95);
      expect(sum / k).toBeLessThan(alpha * 1.05);
    }
  });

  it('Dirichlet draws sum to 1 and stay finite for tiny alpha', () => {
    const r = rng(1);
    for (const alpha of [1e-3, 0.5, 100]) {
      const p = dirichlet(r, 7, alpha);
      expect(p.every((v) => v >= 0 && Number.isFinite(v))).toBe(true);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
  });
});
