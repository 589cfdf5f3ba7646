import { describe, expect, it } from 'vitest';
import { DataError, labelHistogram } from './dataset.ts';
import { holdOut, localShard } from './local.ts';
import { gaussianBlobs, linearRegression } from './synthetic.ts';

const blobs = gaussianBlobs({ n: 101, classes: 4, dims: 3, spread: 0.1, seed: 9 });

/** Each sample's features as a string key, to compare sets of samples across datasets. */
const keys = (x: Float32Array, d: number): string[] =>
  Array.from({ length: x.length / d }, (_, i) => x.subarray(i * d, (i + 1) * d).join(','));

describe('holdOut', () => {
  it('splits every sample into exactly one of train and test, the same way for the same seed', () => {
    const a = holdOut(blobs, 'blobs', 5);
    expect(a.test.n).toBe(20);
    expect(a.train.n).toBe(81);
    expect([...keys(a.train.x, 3), ...keys(a.test.x, 3)].sort()).toEqual(keys(blobs.x, 3).sort());
    expect(holdOut(blobs, 'blobs', 5).test.x).toEqual(a.test.x);
    expect(holdOut(blobs, 'blobs', 6).test.x).not.toEqual(a.test.x);
  });

  it('keeps at least one sample on each side and refuses what cannot be split', () => {
    const two = gaussianBlobs({ n: 2, classes: 2, dims: 1, spread: 0, seed: 1 });
    expect(holdOut(two, 'two', 1, 0.01).test.n).toBe(1);
    expect(holdOut(two, 'two', 1, 0.99).train.n).toBe(1);
    const one = gaussianBlobs({ n: 1, classes: 1, dims: 1, spread: 0, seed: 1 });
    expect(() => holdOut(one, 'one.csv', 1)).toThrow(/one\.csv: 1 sample\(s\)/);
    expect(() => holdOut(blobs, 'b', 1, 1)).toThrow(DataError);
  });
});

describe('localShard', () => {
  const data = holdOut(blobs, 'blobs', 5);

  it('gives 3 peers disjoint train and test shards that cover the split', () => {
    for (const split of ['train', 'test'] as const) {
      const shards = [0, 1, 2].map((rank) => localShard(data, split, { rank, size: 3, scheme: 'iid', seed: 4 }));
      expect(shards.map((s) => s.n).reduce((a, b) => a + b)).toBe(data[split].n);
      expect(shards.flatMap((s) => keys(s.x, 3)).sort()).toEqual(keys(data[split].x, 3).sort());
    }
  });

  it('cuts label shards by class on the train split and stays IID on the test split', () => {
    const train = [0, 1].map((rank) => localShard(data, 'train', { rank, size: 2, scheme: 'label-shards', shardsPerPart: 1, seed: 2 }));
    // One label-sorted shard each: every peer sees at most 3 of the 4 classes (81 samples, ~20 per class).
    for (const s of train) expect(Array.from(labelHistogram(s)).filter((c) => c > 0).length).toBeLessThanOrEqual(3);
    const test = localShard(data, 'test', { rank: 0, size: 2, scheme: 'label-shards', shardsPerPart: 1, seed: 2 });
    expect(test.n).toBe(10);
  });

  it('splits regression data IID and refuses label-based schemes for it', () => {
    const reg = holdOut(linearRegression({ n: 50, dims: 2, noise: 0.1, seed: 3 }), 'prices.csv', 1);
    expect(localShard(reg, 'train', { rank: 1, size: 2, seed: 1 }).targets?.length).toBe(20);
    expect(() => localShard(reg, 'train', { rank: 0, size: 2, scheme: 'dirichlet', seed: 1 })).toThrow(
      /prices\.csv: "dirichlet" partitions by class label/,
    );
  });
});
