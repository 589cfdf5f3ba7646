import { describe, expect, it } from 'vitest';
import { DataError, type Dataset } from './dataset.ts';
import { rng } from './sampling.ts';
import { decodeShard, encodeShard, SHARD_HEADER_BYTES } from './shard-format.ts';
import { gaussianBlobs, linearRegression } from './synthetic.ts';

/** Pixel-like data: every value is k / 255. */
function pixels(n: number, seed: number): Dataset {
  const r = rng(seed);
  const x = new Float32Array(n * 12);
  for (let i = 0; i < x.length; i++) x[i] = Math.floor(r() * 256) / 255;
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = Math.floor(r() * 3);
  return { n, shape: [2, 2, 3], x, y, numClasses: 3, classNames: ['a', 'b', 'ç"\\'] };
}

function decoded(bytes: Uint8Array): Dataset {
  const d = decodeShard(bytes);
  if (d instanceof DataError) throw d;
  return d;
}

const CASES: [string, Dataset, boolean][] = [
  ['u8 pixels', pixels(17, 1), true],
  ['f32 features', gaussianBlobs({ n: 9, classes: 4, dims: 3, spread: 1, seed: 2 }), false],
  ['regression', linearRegression({ n: 5, dims: 2, noise: 0.1, seed: 3 }), false],
  ['no samples', { ...pixels(0, 1) }, true],
  ['a scalar shape, no names', { n: 3, shape: [], x: Float32Array.from([1, -2, 3]), y: Int32Array.from([0, 1, 0]), numClasses: 2 }, false],
];

describe('shard format', () => {
  it.each(CASES)('round trips %s', (_, ds, u8) => {
    const bytes = encodeShard(ds, { pixelsAsU8: u8 });
    const back = decoded(bytes);
    expect(back.n).toBe(ds.n);
    expect(back.shape).toEqual(ds.shape);
    expect(back.numClasses).toBe(ds.numClasses);
    expect(Array.from(back.x)).toEqual(Array.from(ds.x));
    expect(Array.from(back.y)).toEqual(Array.from(ds.y));
    expect(back.targets && Array.from(back.targets)).toEqual(ds.targets && Array.from(ds.targets));
    expect(back.classNames).toEqual(ds.classNames);
    expect(back.featureNames).toEqual(ds.featureNames);
    // Fresh arrays: nothing views the input.
    expect(back.x.buffer).not.toBe(bytes.buffer);
  });

  it('u8 pixels take a byte per value and decode exactly; any byte offset works', () => {
    const ds = pixels(100, 4);
    const u8 = encodeShard(ds, { pixelsAsU8: true });
    const f32 = encodeShard(ds);
    expect(f32.length - u8.length).toBe(3 * 100 * 12);
    const shifted = new Uint8Array(u8.length + 1);
    shifted.set(u8, 1);
    expect(Array.from(decoded(shifted.subarray(1)).x)).toEqual(Array.from(ds.x));
  });

  it('rejects every truncation, and any trailing byte', () => {
    for (const [, ds, u8] of CASES) {
      const bytes = encodeShard(ds, { pixelsAsU8: u8 });
      for (let k = 0; k < bytes.length; k++) {
        const r = decodeShard(bytes.subarray(0, k));
        expect(r).toBeInstanceOf(DataError);
        expect((r as DataError).code).toBe('truncated');
      }
      const longer = new Uint8Array(bytes.length + 1);
      longer.set(bytes);
      expect(decodeShard(longer)).toMatchObject({ code: 'size-mismatch' });
    }
  });

  /** A valid shard with one header field changed. */
  function patched(edit: (dv: DataView, bytes: Uint8Array) => void, ds: Dataset = pixels(4, 9), u8 = true): Uint8Array {
    const bytes = encodeShard(ds, { pixelsAsU8: u8 });
    edit(new DataView(bytes.buffer), bytes);
    return bytes;
  }

  it.each<[string, Uint8Array, DataError['code'], RegExp]>([
    ['bad magic', patched((dv) => dv.setUint8(0, 0)), 'bad-format', /bad magic/],
    ['a newer version', patched((dv) => dv.setUint8(4, 2)), 'bad-format', /version 2.*reload/],
    ['an unknown x dtype', patched((dv) => dv.setUint8(5, 3)), 'bad-format', /x dtype 3/],
    ['unknown flags', patched((dv) => dv.setUint8(6, 4)), 'bad-format', /flags/],
    ['targets on a classification shard', patched((dv) => dv.setUint8(6, 1)), 'bad-format', /3 classes with regression targets/],
    ['rank 9', patched((dv) => dv.setUint8(7, 9)), 'bad-dims', /rank 9/],
    ['a zero dim', patched((dv) => dv.setUint32(SHARD_HEADER_BYTES, 0, true)), 'bad-dims', /dim 0 is 0/],
    ['an absurd dim', patched((dv) => dv.setUint32(SHARD_HEADER_BYTES, 0xffffffff, true)), 'truncated', /larger than/],
    ['an absurd n', patched((dv) => dv.setUint32(8, 0xffffffff, true)), 'truncated', /announces/],
    ['absurd classes', patched((dv) => dv.setUint32(12, 0xffffffff, true)), 'bad-dims', /classes exceed/],
    ['a label out of range', patched((dv, b) => dv.setInt32(b.length - 4, 3, true)), 'bad-value', /label 3 is 3, outside \[0, 3\)/],
    ['a negative label', patched((dv, b) => dv.setInt32(b.length - 8, -1, true)), 'bad-value', /label 2 is -1/],
    ['metadata that is not JSON', patched((_, b) => (b[SHARD_HEADER_BYTES + 12] = 0xff)), 'bad-format', /metadata/],
  ])('rejects %s', (_, bytes, code, message) => {
    const r = decodeShard(bytes);
    expect(r).toBeInstanceOf(DataError);
    expect((r as DataError).code).toBe(code);
    expect((r as DataError).message).toMatch(message);
  });

  it('rejects metadata that does not match the header, and non-zero padding', () => {
    const ds = pixels(2, 3);
    const bytes = encodeShard({ ...ds, classNames: ['x', 'y', 'zz'] }, { pixelsAsU8: true });
    const text = new TextDecoder().decode(bytes);
    const at = text.indexOf('"zz"');
    const wrong = bytes.slice();
    wrong.set(new TextEncoder().encode('1   '), at); // ["x","y",1   ]
    expect(decodeShard(wrong)).toMatchObject({ code: 'bad-format', message: expect.stringMatching(/classNames must be 3 strings/) });
    // Metadata of 29 B is padded to 32 B before x.
    const meta = new TextEncoder().encode(JSON.stringify({ classNames: ['x', 'y', 'zz'] }));
    const padAt = SHARD_HEADER_BYTES + 12 + meta.length;
    expect(padAt % 4).not.toBe(0);
    const padded = bytes.slice();
    padded[padAt] = 1;
    expect(decodeShard(padded)).toMatchObject({ code: 'bad-format', message: expect.stringMatching(/padding/) });
  });

  it('encode refuses a dataset that breaks its invariants', () => {
    expect(() => encodeShard({ ...pixels(2, 1), y: new Int32Array(3) })).toThrow(/encodeShard: dataset: y has 3 labels/);
  });

  it('never throws on a few thousand mutated or random buffers', () => {
    const r = rng(99);
    const seeds = CASES.map(([, ds, u8]) => encodeShard(ds, { pixelsAsU8: u8 }));
    let accepted = 0;
    for (let t = 0; t < 4000; t++) {
      const base = seeds[t % seeds.length]!;
      let buf: Uint8Array;
      const kind = t % 4;
      if (kind === 0) {
        buf = base.slice();
        const flips = 1 + Math.floor(r() * 4);
        for (let f = 0; f < flips; f++) buf[Math.floor(r() * buf.length)] = Math.floor(r() * 256);
      } else if (kind === 1) {
        // Mutate the header only, where sizes live.
        buf = base.slice();
        buf[Math.floor(r() * Math.min(buf.length, 40))] = Math.floor(r() * 256);
      } else if (kind === 2) {
        buf = base.slice(0, Math.floor(r() * base.length));
      } else {
        buf = new Uint8Array(Math.floor(r() * 200));
        for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(r() * 256);
        if (r() < 0.5 && buf.length >= 5) buf.set([0x52, 0x54, 0x44, 0x53, 1]);
      }
      const out = decodeShard(buf);
      if (!(out instanceof DataError)) {
        accepted++;
        expect(out.x.length).toBe(out.n * out.shape.reduce((a, b) => a * b, 1));
        expect(out.x.length).toBeLessThanOrEqual(buf.length);
      }
    }
    expect(accepted).toBeGreaterThan(0); // pixel-byte flips still decode
  });
});
