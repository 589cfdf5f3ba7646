import { describe, expect, it } from 'vitest';
import { DataError } from './dataset.ts';
import { labelSkew, partHistograms, partition, partitionKey, type PartitionOptions, type PartitionScheme } from './partition.ts';
import { permutation, rng } from './sampling.ts';

/** Fashion-MNIST-like labels: 60 000 samples, 6 000 of each of 10 classes, in a shuffled order. */
const FMNIST = (() => {
  const order = permutation(60000, rng(2024));
  const y = new Int32Array(60000);
  for (let i = 0; i < 60000; i++) y[order[i]!] = i % 10;
  return y;
})();

/** Imbalanced labels with a missing class and a tiny one. */
const ODD = (() => {
  const r = rng(7);
  const y = new Int32Array(997);
  for (let i = 0; i < y.length; i++) y[i] = r() < 0.01 ? 4 : Math.floor(r() * r() * 4);
  return y;
})();

/** Checks that the parts are sorted, disjoint and cover 0..n-1 exactly once. */
function expectExactCover(parts: Int32Array[], n: number): void {
  const seen = new Uint8Array(n);
  const problems: string[] = [];
  parts.forEach((p, k) => {
    for (let j = 0; j < p.length; j++) {
      const i = p[j]!;
      if (!(i >= 0 && i < n)) problems.push(`part ${k} holds ${i}`);
      else if (seen[i]!++) problems.push(`index ${i} is in two parts`);
      if (j > 0 && p[j - 1]! >= i) problems.push(`part ${k} is not sorted at ${j}`);
    }
  });
  const missing = seen.indexOf(0);
  if (missing >= 0) problems.push(`index ${missing} is in no part`);
  expect(problems.slice(0, 5)).toEqual([]);
}

/** True when both splits are element-for-element equal (faster than toEqual on 60 000 indices). */
function same(a: Int32Array[], b: Int32Array[]): boolean {
  return a.length === b.length && a.every((p, k) => p.length === b[k]!.length && p.every((v, j) => v === b[k]![j]));
}

const SCHEMES: PartitionScheme[] = ['iid', 'label-shards', 'dirichlet'];

describe('partition', () => {
  it.each(SCHEMES.flatMap((scheme) => [1, 2, 3, 7, 10].map((parts) => [scheme, parts] as const)))(
    '%s into %i parts: disjoint, covering, deterministic',
    (scheme, parts) => {
      for (const labels of [FMNIST, ODD]) {
        const o: PartitionOptions = { scheme, parts, seed: 11 };
        const a = partition(labels, o);
        expect(a).toHaveLength(parts);
        expectExactCover(a, labels.length);
        expect(same(partition(labels, o), a)).toBe(true);
        if (parts > 1) expect(same(partition(labels, { ...o, seed: 12 }), a)).toBe(false);
      }
    },
  );

  it('iid: sizes differ by at most one, label mix close to the whole set', () => {
    const parts = partition(FMNIST, { scheme: 'iid', parts: 7, seed: 1 });
    const sizes = parts.map((p) => p.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    expect(sizes.reduce((a, b) => a + b)).toBe(60000);
    expect(labelSkew(FMNIST, parts, 10)).toBeLessThan(0.03);
    expect(partition(FMNIST, { scheme: 'iid', parts: 3, seed: 1 }).map((p) => p.length)).toEqual([20000, 20000, 20000]);
  });

  it('iid handles more parts than samples and zero samples', () => {
    expect(
      partition(Int32Array.from([0, 1]), { scheme: 'iid', parts: 4, seed: 0 })
        .map((p) => p.length)
        .sort(),
    ).toEqual([0, 0, 1, 1]);
    expect(partition(new Int32Array(0), { scheme: 'dirichlet', parts: 3, seed: 0 })).toEqual([
      new Int32Array(0),
      new Int32Array(0),
      new Int32Array(0),
    ]);
  });

  it.each([
    [5, 2],
    [10, 2],
    [5, 4],
    [20, 1],
  ])('label-shards, %i parts x %i shards on balanced labels: at most shardsPerPart labels per part', (parts, k) => {
    const p = partition(FMNIST, { scheme: 'label-shards', parts, seed: 3, shardsPerPart: k });
    expect(p.every((q) => q.length === 60000 / parts)).toBe(true);
    for (const h of partHistograms(FMNIST, p, 10)) expect(h.filter((c) => c > 0).length).toBeLessThanOrEqual(k);
  });

  it('label-shards when shards straddle labels: still few labels per part, strongly skewed', () => {
    // 3 parts x 2 shards of 10 000 over classes of 6 000: a shard spans at most 3 labels.
    const p = partition(FMNIST, { scheme: 'label-shards', parts: 3, seed: 3 });
    for (const h of partHistograms(FMNIST, p, 10)) expect(h.filter((c) => c > 0).length).toBeLessThanOrEqual(6);
    expect(labelSkew(FMNIST, p, 10)).toBeGreaterThan(0.4);
    expect(labelSkew(FMNIST, p, 10)).toBeGreaterThan(5 * labelSkew(FMNIST, partition(FMNIST, { scheme: 'iid', parts: 3, seed: 3 }), 10));
  });

  it('dirichlet: a smaller alpha gives more skew (measured, averaged over seeds)', () => {
    const skew = (alpha: number): number => {
      let s = 0;
      for (let seed = 0; seed < 5; seed++) s += labelSkew(FMNIST, partition(FMNIST, { scheme: 'dirichlet', parts: 10, seed, alpha }), 10);
      return s / 5;
    };
    const measured = [0.05, 0.5, 5, 500].map(skew);
    for (let i = 1; i < measured.length; i++) expect(measured[i]!).toBeLessThan(measured[i - 1]!);
    expect(measured[0]!).toBeGreaterThan(0.6);
    expect(measured[3]!).toBeLessThan(0.05);
  });

  it('dirichlet: no part is left empty, even with a tiny alpha', () => {
    for (let seed = 0; seed < 10; seed++) {
      const p = partition(FMNIST, { scheme: 'dirichlet', parts: 16, seed, alpha: 0.001 });
      expectExactCover(p, 60000);
      expect(Math.min(...p.map((q) => q.length))).toBeGreaterThanOrEqual(1);
      const q = partition(FMNIST, { scheme: 'dirichlet', parts: 16, seed, alpha: 0.001, minPerPart: 100 });
      expect(Math.min(...q.map((x) => x.length))).toBeGreaterThanOrEqual(100);
    }
  });

  it.each<[string, Partial<PartitionOptions>, RegExp]>([
    ['parts 0', { parts: 0 }, /partition: parts must be an integer >= 1, got 0/],
    ['parts 1.5', { parts: 1.5 }, /parts must be an integer/],
    ['alpha 0', { scheme: 'dirichlet', alpha: 0 }, /alpha must be a finite number > 0/],
    ['shardsPerPart 0', { scheme: 'label-shards', shardsPerPart: 0 }, /shardsPerPart must be an integer >= 1/],
    ['a label beyond numClasses', { numClasses: 3 }, /a label is 3, outside \[0, numClasses = 3\)/],
    ['an unknown scheme', { scheme: 'random' as PartitionScheme }, /scheme must be one of iid, label-shards, dirichlet/],
  ])('rejects %s', (_, patch, message) => {
    const labels = Int32Array.from([0, 1, 2, 3]);
    expect(() => partition(labels, { scheme: 'iid', parts: 2, seed: 0, ...patch })).toThrow(DataError);
    expect(() => partition(labels, { scheme: 'iid', parts: 2, seed: 0, ...patch })).toThrow(message);
  });

  it('rejects negative labels', () => {
    expect(() => partition(Int32Array.from([0, -1]), { scheme: 'iid', parts: 1, seed: 0 })).toThrow(/labels\[1\] is -1/);
  });

  it('partitionKey names exactly what the result depends on', () => {
    expect(partitionKey({ scheme: 'iid', parts: 3, seed: 7, alpha: 9, n: 100 })).toBe('iid/parts=3/seed=7/n=100');
    expect(partitionKey({ scheme: 'label-shards', parts: 3, seed: -1, n: 10 })).toBe(
      'label-shards/parts=3/seed=4294967295/shardsPerPart=2/n=10',
    );
    expect(partitionKey({ scheme: 'dirichlet', parts: 2, seed: 0, n: 5 })).toBe('dirichlet/parts=2/seed=0/alpha=0.5/minPerPart=1/n=5');
    // Same key, same split: the seed is used modulo 2^32, like the key shows.
    const a = partition(ODD, { scheme: 'label-shards', parts: 3, seed: -1 });
    const b = partition(ODD, { scheme: 'label-shards', parts: 3, seed: 4294967295 });
    expect(same(a, b)).toBe(true);
  });

  it('is stable across view changes: the same view size reproduces the same shards', () => {
    const view3 = partition(FMNIST, { scheme: 'dirichlet', parts: 3, seed: 5 });
    partition(FMNIST, { scheme: 'dirichlet', parts: 4, seed: 5 }); // an intermediate view
    const again = partition(FMNIST, { scheme: 'dirichlet', parts: 3, seed: 5 });
    expect(same(again, view3)).toBe(true);
  });
});
