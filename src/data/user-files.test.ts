import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DataError } from './dataset.ts';
import { encodeIdx } from './idx.ts';
import { loadUserData, type PickedFile } from './user-files.ts';

const text = (name: string, s: string): PickedFile => ({ name, bytes: new TextEncoder().encode(s) });

const CSV = [
  'size,colour,price,kind',
  ...Array.from({ length: 20 }, (_, i) => `${i},${i % 2 ? 'red' : 'blue'},${i * 1.5},${i % 3 ? 'a' : 'b'}`),
].join('\n');

describe('loadUserData', () => {
  it('reads a CSV with a label column and a categorical column, and holds out 20% for testing', async () => {
    const d = await loadUserData({ kind: 'csv', file: text('shop.csv', CSV), label: 'kind', task: 'classification' }, 3);
    expect(d.source).toBe('shop.csv');
    expect(d.train.n + d.test.n).toBe(20);
    expect(d.test.n).toBe(4);
    // size, price, and colour one-hot (blue, red).
    expect(d.train.shape).toEqual([4]);
    expect(d.train.numClasses).toBe(2);
    // Without a label column, the last one is the label; a .tsv file is tab-separated.
    const tsv = await loadUserData({ kind: 'csv', file: text('shop.tsv', CSV.replaceAll(',', '\t')), task: 'classification' }, 3);
    expect(tsv.train.x).toEqual(d.train.x);
  });

  it('names the file, row and column of a bad value', async () => {
    const bad = CSV.replace('7,red,10.5', '7,red,ten');
    const e = await loadUserData({
      kind: 'csv',
      file: text('shop.csv', bad),
      label: 'kind',
      task: 'classification',
      numeric: ['price'],
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DataError);
    expect((e as DataError).message).toMatch(/^shop\.csv: row 9, column "price": "ten"/);
  });

  it('reads an IDX images file and its labels file in either order, gzip-compressed or not', async () => {
    const images = encodeIdx({ dtype: 'u8', dims: [6, 2, 2], data: Uint8Array.from({ length: 24 }, (_, i) => i * 10) });
    const labels = encodeIdx({ dtype: 'u8', dims: [6], data: Uint8Array.from([0, 1, 2, 0, 1, 2]) });
    for (const files of [
      [
        { name: 'im.gz', bytes: gzipSync(images) },
        { name: 'lb', bytes: labels },
      ],
      [
        { name: 'lb.gz', bytes: gzipSync(labels) },
        { name: 'im', bytes: images },
      ],
    ]) {
      const d = await loadUserData({ kind: 'idx', files });
      expect(d.train.shape).toEqual([2, 2, 1]);
      expect(d.train.n + d.test.n).toBe(6);
      expect(d.train.numClasses).toBe(3);
    }
    await expect(loadUserData({ kind: 'idx', files: [{ name: 'im', bytes: images }] })).rejects.toThrow(/exactly two IDX files/);
    await expect(
      loadUserData({
        kind: 'idx',
        files: [
          { name: 'im', bytes: images },
          { name: 'broken', bytes: labels.subarray(0, 10) },
        ],
      }),
    ).rejects.toThrow(/^broken: /);
  });

  it('makes the same synthetic set on every call with the same seeds', async () => {
    const a = await loadUserData({ kind: 'spirals', n: 50, noise: 0.05, seed: 4 }, 1);
    const b = await loadUserData({ kind: 'spirals', n: 50, noise: 0.05, seed: 4 }, 1);
    expect(a.train.x).toEqual(b.train.x);
    expect(a.test.n).toBe(10);
  });
});
