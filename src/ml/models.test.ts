import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MlError } from './errors.ts';
import { checksum, checksumHex, getFlatWeights, paramCount, setFlatWeights, weightChecksum, weightLayout } from './flat.ts';
import { createModel, hasConv, lossKindFor, type ModelSpec } from './models.ts';
import { modelBuilder } from '../test/helpers.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const build = modelBuilder();

const SPECS: [string, ModelSpec, number][] = [
  ['softmax 784-10', { kind: 'softmax', inputShape: [784], numClasses: 10, seed: 1 }, 7850],
  ['mlp 784-128-10 (default hidden)', { kind: 'mlp', inputShape: [784], numClasses: 10, seed: 1 }, 784 * 128 + 128 + 1290],
  [
    'mlp from [28,28,1] (flattens)',
    { kind: 'mlp', inputShape: [28, 28, 1], numClasses: 10, hidden: [32, 16], seed: 1 },
    784 * 32 + 32 + 32 * 16 + 16 + 170,
  ],
  // conv 32: 32*9+32; conv 64: 64*32*9+64; 5x5x64=1600 -> 128 relu -> 10
  ['cnn from [784] (reshapes)', { kind: 'cnn', inputShape: [784], numClasses: 10, seed: 1 }, 320 + 18496 + 1600 * 128 + 128 + 1290],
  [
    'cnn [12,12,1] without dense layers',
    { kind: 'cnn', inputShape: [12, 12, 1], numClasses: 3, hidden: [4], dense: [], seed: 1 },
    40 + 5 * 5 * 4 * 3 + 3,
  ],
  [
    'cnn [12,12,1], dense 6',
    { kind: 'cnn', inputShape: [12, 12, 1], numClasses: 3, hidden: [4], dense: [6], seed: 1 },
    40 + 100 * 6 + 6 + 6 * 3 + 3,
  ],
  ['regression (numClasses 0)', { kind: 'mlp', inputShape: [5], numClasses: 0, hidden: [4], seed: 1 }, 24 + 5],
];

describe('createModel', () => {
  it.each(SPECS)('%s has the expected parameter count and output', (_, spec, params) => {
    const m = build(spec);
    expect(paramCount(m)).toBe(params);
    expect(m.outputs[0]!.shape).toEqual([null, spec.numClasses === 0 ? 1 : spec.numClasses]);
    expect(hasConv(m)).toBe(spec.kind === 'cnn');
    expect(lossKindFor(spec)).toBe(spec.numClasses === 0 ? 'mse' : 'crossentropy');
  });

  it.each(SPECS)('%s: the same seed gives bit-identical weights, another seed different ones', async (_, spec) => {
    const a = await getFlatWeights(build(spec), { fromDevice: true });
    const b = await getFlatWeights(build(spec), { fromDevice: true });
    const c = await getFlatWeights(build({ ...spec, seed: spec.seed + 1 }), { fromDevice: true });
    expect(checksum(a)).toBe(checksum(b));
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(checksum(a)).not.toBe(checksum(c));
  });

  it('kernels are Glorot/He uniform within their limits, biases zero, mean near 0', async () => {
    const m = build({ kind: 'mlp', inputShape: [784], numClasses: 10, seed: 5 });
    const flat = await getFlatWeights(m);
    const [k1, b1, k2, b2] = weightLayout(m);
    const slice = (s: typeof k1) => flat.subarray(s!.offset, s!.offset + s!.size);
    const he = Math.sqrt(6 / 784);
    const glorot = Math.sqrt(6 / (128 + 10));
    const w1 = slice(k1);
    expect(Math.max(...w1.map(Math.abs))).toBeLessThanOrEqual(he);
    expect(Math.max(...w1.map(Math.abs))).toBeGreaterThan(0.95 * he);
    expect(Math.abs(w1.reduce((s, v) => s + v, 0) / w1.length)).toBeLessThan(0.01 * he);
    expect(Math.max(...slice(k2).map(Math.abs))).toBeLessThanOrEqual(glorot);
    expect(slice(b1).every((v) => v === 0)).toBe(true);
    expect(slice(b2).every((v) => v === 0)).toBe(true);
  });

  it.each<[string, Partial<ModelSpec>]>([
    ['kind', { kind: 'rnn' as 'mlp' }],
    ['inputShape', { inputShape: [] }],
    ['inputShape', { inputShape: [3.5] }],
    ['numClasses', { numClasses: 1 }],
    ['hidden', { hidden: [0] }],
    ['seed', { seed: Number.NaN }],
  ])('rejects a bad spec.%s with MlError naming it', (field, patch) => {
    const spec = { kind: 'mlp', inputShape: [4], numClasses: 2, seed: 1, ...patch } as ModelSpec;
    expect(() => createModel(spec)).toThrow(MlError);
    expect(() => createModel(spec)).toThrow(`spec.${field}`);
  });

  it('rejects hidden layers for softmax and an input a CNN cannot take', () => {
    expect(() => createModel({ kind: 'softmax', inputShape: [4], numClasses: 2, hidden: [3], seed: 1 })).toThrow(/hidden must be empty/);
    expect(() => createModel({ kind: 'cnn', inputShape: [10], numClasses: 2, seed: 1 })).toThrow(/does not fit a CNN/);
    expect(() => createModel({ kind: 'mlp', inputShape: [4], numClasses: 2, dense: [3], seed: 1 })).toThrow(/dense is only for the CNN/);
    expect(() => createModel({ kind: 'cnn', inputShape: [784], numClasses: 2, dense: [0], seed: 1 })).toThrow(
      /dense must be an array of positive integers/,
    );
  });

  it('leaves no tensors behind after dispose', () => {
    const before = tf.memory().numTensors;
    createModel({ kind: 'cnn', inputShape: [784], numClasses: 10, seed: 3 }).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('flat weights', () => {
  const spec: ModelSpec = { kind: 'mlp', inputShape: [6], numClasses: 3, hidden: [5], seed: 11 };

  it('round-trips through setFlatWeights and a device readback', async () => {
    const m = build(spec);
    const n = paramCount(m);
    const v = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.5);
    setFlatWeights(m, v);
    const back = await getFlatWeights(m, { fromDevice: true });
    expect(Array.from(back)).toEqual(Array.from(v));
    expect(await weightChecksum(m)).toBe(checksumHex(v));
    // The copy we got is ours: changing it does not touch the model.
    back[0] = 42;
    expect((await getFlatWeights(m))[0]).toBe(v[0]);
  });

  it('maps the layout onto the model weights in order (kernel [in,out] row-major, then bias)', async () => {
    const m = build(spec);
    const flat = await getFlatWeights(m);
    const ws = m.getWeights();
    let off = 0;
    for (const w of ws) {
      const vals = await w.data();
      expect(Array.from(flat.subarray(off, off + w.size))).toEqual(Array.from(vals));
      off += w.size;
    }
    expect(off).toBe(flat.length);
  });

  it('rejects a wrong length or a non-finite value with a typed error, changing nothing', async () => {
    const m = build(spec);
    const n = paramCount(m);
    const before = await getFlatWeights(m);
    for (const len of [n - 1, n + 1, 0]) {
      try {
        setFlatWeights(m, new Float32Array(len));
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(MlError);
        expect((e as MlError).code).toBe('shape-mismatch');
        expect((e as MlError).message).toContain(`${n} parameters`);
      }
    }
    const nan = before.slice();
    nan[3] = Number.NaN;
    expect(() => setFlatWeights(m, nan)).toThrow(/flat\[3\] is NaN/);
    expect(checksum(await getFlatWeights(m, { fromDevice: true }))).toBe(checksum(before));
  });

  it('notices writes that bypass setFlatWeights (master copy goes stale, next read is from the device)', async () => {
    const m = build(spec);
    const old = await getFlatWeights(m);
    const replaced = m.getWeights().map((w) => tf.mul(w, 2));
    m.setWeights(replaced);
    tf.dispose(replaced);
    const now = await getFlatWeights(m);
    expect(Array.from(now)).toEqual(Array.from(old).map((v) => Math.fround(v * 2)));
  });

  it('keeps tf.memory().numTensors unchanged across get/set', async () => {
    const m = build(spec);
    const v = await getFlatWeights(m, { fromDevice: true });
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      setFlatWeights(m, v);
      await getFlatWeights(m, { fromDevice: true });
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('checksum is FNV-1a over the float bytes', () => {
    expect(checksum(new Float32Array(0))).toBe(0x811c9dc5);
    // FNV-1a("\0\0\0\0") (the bytes of 0.0f).
    let h = 0x811c9dc5;
    for (let i = 0; i < 4; i++) h = Math.imul(h, 0x01000193) >>> 0;
    expect(checksum(new Float32Array([0]))).toBe(h);
    expect(checksum(new Float32Array([0]))).not.toBe(checksum(new Float32Array([-0])));
    const a = Float32Array.from({ length: 1000 }, (_, i) => i / 7);
    const b = a.slice();
    b[500] = Math.fround(b[500]! * (1 + 2 ** -23));
    expect(checksum(a)).not.toBe(checksum(b));
    expect(checksumHex(a)).toMatch(/^[0-9a-f]{8}$/);
    // A view is hashed over its own bytes only.
    expect(checksum(a.subarray(10, 20))).toBe(checksum(a.slice(10, 20)));
  });
});
