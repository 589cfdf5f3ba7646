import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync, gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { FASHION_MNIST } from './builtin.ts';
import { type DataError, labelHistogram } from './dataset.ts';
import { encodeIdx, gunzip, idxToDataset, isGzip, MAX_IDX_RANK, parseIdx, type IdxArray } from './idx.ts';
import { dataError } from '../test/helpers.ts';

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../public/datasets/fashion-mnist');

/** A hand-written big-endian IDX file. */
function idx(code: number, dims: number[], body: number[]): Uint8Array {
  const head = [0, 0, code, dims.length];
  for (const d of dims) head.push((d >>> 24) & 255, (d >>> 16) & 255, (d >>> 8) & 255, d & 255);
  return Uint8Array.from([...head, ...body]);
}

const SAMPLES: IdxArray[] = [
  { dtype: 'u8', dims: [2, 3], data: Uint8Array.from([0, 1, 127, 128, 254, 255]) },
  { dtype: 'i8', dims: [5], data: Int8Array.from([-128, -1, 0, 1, 127]) },
  { dtype: 'i16', dims: [2, 2], data: Int16Array.from([-32768, -1, 258, 32767]) },
  { dtype: 'i32', dims: [3], data: Int32Array.from([-2147483648, 16909060, 2147483647]) },
  { dtype: 'f32', dims: [1, 1, 3], data: Float32Array.from([-1.5, 0, 3.25e10]) },
  { dtype: 'f64', dims: [2], data: Float64Array.from([Math.PI, -1e-300]) },
  { dtype: 'u8', dims: [0, 28, 28], data: new Uint8Array(0) },
];

describe('parseIdx / encodeIdx', () => {
  it.each(SAMPLES.map((s) => [`${s.dtype} [${s.dims.join(',')}]`, s] as const))('round trips %s', (_, s) => {
    const back = parseIdx(encodeIdx(s));
    expect(back.dtype).toBe(s.dtype);
    expect(back.dims).toEqual(s.dims);
    expect(back.data.constructor).toBe(s.data.constructor);
    expect(Array.from(back.data)).toEqual(Array.from(s.data));
  });

  it('reads big-endian elements as the format defines them', () => {
    expect(Array.from(parseIdx(idx(0x0b, [2], [0x01, 0x02, 0xff, 0xfe])).data)).toEqual([258, -2]);
    expect(Array.from(parseIdx(idx(0x0c, [1], [0x01, 0x02, 0x03, 0x04])).data)).toEqual([0x01020304]);
    expect(Array.from(parseIdx(idx(0x0d, [1], [0x3f, 0x80, 0, 0])).data)).toEqual([1]);
    expect(Array.from(parseIdx(idx(0x0e, [1], [0xc0, 0, 0, 0, 0, 0, 0, 0])).data)).toEqual([-2]);
    expect(Array.from(parseIdx(idx(0x09, [2], [0x80, 0x7f])).data)).toEqual([-128, 127]);
  });

  it('parses from a view at any byte offset', () => {
    const file = encodeIdx(SAMPLES[3]!);
    const padded = new Uint8Array(file.length + 3);
    padded.set(file, 3);
    expect(Array.from(parseIdx(padded.subarray(3)).data)).toEqual(Array.from(SAMPLES[3]!.data));
  });

  it.each<[string, Uint8Array, DataError['code'], RegExp]>([
    ['empty input', new Uint8Array(0), 'truncated', /shorter than the 4-byte/],
    ['3 bytes', Uint8Array.from([0, 0, 8]), 'truncated', /shorter/],
    ['bad magic', idx(0x08, [1], [1]).map((b, i) => (i === 0 ? 1 : b)), 'bad-format', /first two bytes must be zero/],
    ['unknown dtype 0x0a', idx(0x0a, [1], [1]), 'bad-format', /unknown IDX dtype code 0x0a/],
    ['rank 0', Uint8Array.from([0, 0, 8, 0, 1]), 'bad-dims', /rank 0/],
    ['rank 9', Uint8Array.from([0, 0, 8, MAX_IDX_RANK + 1, ...new Array(36).fill(1)]), 'bad-dims', /rank 9/],
    ['header cut in the dims', idx(0x08, [2, 2], [1, 2, 3, 4]).subarray(0, 9), 'truncated', /header/],
    ['data cut short', idx(0x0c, [2], [0, 0, 0, 1, 0, 0, 0]), 'truncated', /need 8 B of data, the file has 7 B/],
    ['trailing bytes', idx(0x08, [2], [1, 2, 3]), 'size-mismatch', /1 B follow/],
    ['absurd dims', idx(0x08, [0xffffffff, 0xffffffff, 2], []), 'bad-dims', /exceed/],
    ['absurd but in range of u32', idx(0x0e, [60000, 28, 28], [1, 2, 3]), 'truncated', /need 376320000 B/],
    ['gzip', gzipSync(encodeIdx(SAMPLES[0]!)), 'bad-format', /gzip-compressed; decompress/],
  ])('rejects %s', (_, bytes, code, message) => {
    const e = dataError(() => parseIdx(bytes));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
    expect(e.message).toMatch(/^parseIdx: /);
  });

  it('rejects every truncation of a valid file', () => {
    const file = encodeIdx(SAMPLES[2]!);
    for (let k = 0; k < file.length; k++) expect(dataError(() => parseIdx(file.subarray(0, k))).code).toBe('truncated');
  });

  it('encodeIdx refuses data that does not fit the dims', () => {
    expect(dataError(() => encodeIdx({ dtype: 'u8', dims: [3], data: new Uint8Array(2) })).code).toBe('bad-argument');
  });
});

describe('gzip helpers', () => {
  it('isGzip recognises the gzip magic', () => {
    expect(isGzip(gzipSync(Uint8Array.from([1, 2, 3])))).toBe(true);
    expect(isGzip(encodeIdx(SAMPLES[0]!))).toBe(false);
    expect(isGzip(new Uint8Array(1))).toBe(false);
  });

  it('gunzip (DecompressionStream) undoes zlib and passes plain bytes through', async () => {
    const plain = encodeIdx(SAMPLES[4]!);
    expect(Array.from(await gunzip(gzipSync(plain)))).toEqual(Array.from(plain));
    expect(await gunzip(plain)).toBe(plain);
  });

  it('gunzip rejects corrupt gzip with a DataError', async () => {
    const z = gzipSync(new Uint8Array(1000).fill(7));
    await expect(gunzip(z.subarray(0, z.length - 12))).rejects.toMatchObject({ code: 'bad-format' });
  });
});

describe('idxToDataset', () => {
  const images: IdxArray = { dtype: 'u8', dims: [3, 2, 2], data: Uint8Array.from([0, 255, 51, 102, 1, 2, 3, 4, 5, 6, 7, 8]) };
  const labels: IdxArray = { dtype: 'u8', dims: [3], data: Uint8Array.from([2, 0, 1]) };

  it('scales u8 pixels to [0, 1] and adds a channel axis', () => {
    const ds = idxToDataset(images, labels, { classNames: ['a', 'b', 'c'] });
    expect(ds.n).toBe(3);
    expect(ds.shape).toEqual([2, 2, 1]);
    expect(Array.from(ds.x.subarray(0, 4))).toEqual([0, 1, 0.2, 0.4].map(Math.fround));
    expect(Array.from(ds.y)).toEqual([2, 0, 1]);
    expect(ds.numClasses).toBe(3);
    expect(ds.classNames).toEqual(['a', 'b', 'c']);
  });

  it('accepts raw IDX bytes, keeps trailing dims, and infers the class count', () => {
    const flat = encodeIdx({ dtype: 'f32', dims: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) });
    const ds = idxToDataset(flat, encodeIdx({ dtype: 'i32', dims: [2], data: Int32Array.from([0, 4]) }));
    expect(ds.shape).toEqual([3]);
    expect(Array.from(ds.x)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(ds.numClasses).toBe(5);
  });

  it.each<[string, () => unknown, DataError['code'], RegExp]>([
    [
      'count mismatch',
      () => idxToDataset(images, { dtype: 'u8', dims: [2], data: new Uint8Array(2) }),
      'size-mismatch',
      /3 images but 2 labels/,
    ],
    ['swapped files', () => idxToDataset(images, images), 'size-mismatch', /swap/],
    ['float labels', () => idxToDataset(images, { dtype: 'f32', dims: [3], data: new Float32Array(3) }), 'bad-format', /integer dtype/],
    [
      'negative label',
      () => idxToDataset(images, { dtype: 'i8', dims: [3], data: Int8Array.from([0, -1, 0]) }),
      'bad-value',
      /label 1 is -1/,
    ],
    ['label beyond class names', () => idxToDataset(images, labels, { classNames: ['a', 'b'] }), 'bad-value', /one name per class/],
    [
      'zero images',
      () => idxToDataset({ dtype: 'u8', dims: [0, 2], data: new Uint8Array(0) }, { dtype: 'u8', dims: [0], data: new Uint8Array(0) }),
      'empty',
      /0 images/,
    ],
  ])('rejects %s', (_, f, code, message) => {
    const e = dataError(f);
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
  });

  it('reads the shipped Fashion-MNIST test split', () => {
    const im = new Uint8Array(gunzipSync(readFileSync(path.join(DIR, FASHION_MNIST.test.images))));
    const lb = new Uint8Array(gunzipSync(readFileSync(path.join(DIR, FASHION_MNIST.test.labels))));
    const ds = idxToDataset(im, lb, { classNames: FASHION_MNIST.classNames });
    expect(ds.n).toBe(10000);
    expect(ds.shape).toEqual([28, 28, 1]);
    expect(Array.from(labelHistogram(ds))).toEqual(new Array(10).fill(1000));
    let min = Infinity;
    let max = -Infinity;
    for (const v of ds.x) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    expect([min, max]).toEqual([0, 1]);
  });
});
