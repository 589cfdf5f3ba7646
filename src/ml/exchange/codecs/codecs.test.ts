import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../core/random.ts';
import { memoryRing, ringExchange } from '../../../test/helpers.ts';
import { Contribution, GRADIENT_TAIL } from '../contribution.ts';
import { compressorFor } from '../registry.ts';
import type { CodecSpec, Compressor, CompressorName, Slot } from './codec.ts';
import { orthonormalise } from './powersgd.ts';

type CompressionSpec = CodecSpec<CompressorName>;

/** A 6 x 4 matrix and a bias of 4, as a dense layer's flat gradient. */
const SLOTS: Slot[] = [
  { shape: [6, 4], offset: 0, size: 24 },
  { shape: [4], offset: 24, size: 4 },
];
const N = 28;

const packed = (grad: Float32Array, count: number): Contribution =>
  Contribution.over(Float32Array.from([...grad, 0.25 * count, count]), GRADIENT_TAIL);
const randomGrad = (seed: number): Float32Array => {
  const r = mulberry32(seed);
  return Float32Array.from({ length: N }, () => r() * 2 - 1);
};

/** One compressed sum over a ring of `grads.length` peers; returns every peer's result and compressor. */
async function ringSum(
  spec: CompressionSpec,
  grads: Float32Array[],
  compressors?: Compressor[],
): Promise<{ sums: Float32Array[]; cs: Compressor[] }> {
  const ring = memoryRing(grads.length, { chunkBytes: 4096, timeoutMs: 10_000 });
  const cs = compressors ?? grads.map(() => compressorFor(spec, SLOTS, 5));
  const sums = await Promise.all(ring.map(async (c, i) => (await cs[i]!.sum(ringExchange(c).sum)(packed(grads[i]!, 2))).data));
  return { sums, cs };
}

describe('compression', () => {
  it('random-k: every peer gets the same sparse sum of the same coordinates; sent + carried = the true sum', async () => {
    const grads = [1, 2, 3].map(randomGrad);
    const { sums, cs } = await ringSum({ kind: 'randomk', ratio: 0.25 }, grads);
    for (const s of sums) expect(Array.from(s)).toEqual(Array.from(sums[0]!));
    const out = sums[0]!;
    expect(out.subarray(0, N).filter((x) => x !== 0).length).toBe(7);
    expect([out[N], out[N + 1]]).toEqual([1.5, 6]);
    for (let i = 0; i < N; i++) {
      const truth = grads.reduce((a, g) => a + g[i]!, 0);
      const carried = cs.reduce((a, c) => a + c.carried()[i]!, 0);
      expect(out[i]! + carried).toBeCloseTo(truth, 5);
    }
    expect(cs[0]!.stats).toEqual({ floatsSent: 9, floatsDense: 30 });
  });

  it('PowerSGD rank 1 recovers a rank-1 sum exactly, biases as they are, in two small sums', async () => {
    // Each peer's matrix is u v_iᵀ: the sum u (Σ v_i)ᵀ has rank 1.
    const u = [1, -2, 0.5, 3, 1, -1];
    const grads = [
      [1, 0, 2, -1],
      [0.5, 1, -1, 0],
      [2, 2, 0, 1],
    ].map((v, p) => {
      const g = new Float32Array(N);
      for (let i = 0; i < 6; i++) for (let c = 0; c < 4; c++) g[i * 4 + c] = u[i]! * v[c]!;
      for (let c = 0; c < 4; c++) g[24 + c] = p + c;
      return g;
    });
    const { sums, cs } = await ringSum({ kind: 'powersgd', rank: 1 }, grads);
    for (const s of sums) expect(Array.from(s)).toEqual(Array.from(sums[0]!));
    for (let i = 0; i < N; i++)
      expect(sums[0]![i]!).toBeCloseTo(
        grads.reduce((a, g) => a + g[i]!, 0),
        4,
      );
    // P (6) + bias (4) + loss + count, then Q (4): 16 floats instead of 30.
    expect(cs[0]!.stats).toEqual({ floatsSent: 16, floatsDense: 30 });
  });

  it('error feedback: over many steps the applied updates add up to the true gradients (nothing is lost)', async () => {
    for (const spec of [
      { kind: 'randomk', ratio: 0.1 },
      { kind: 'powersgd', rank: 1 },
    ] as CompressionSpec[]) {
      const grads = [7, 8].map(randomGrad);
      const cs = grads.map(() => compressorFor(spec, SLOTS, 9));
      const applied = new Float64Array(N);
      const steps = 200;
      for (let t = 0; t < steps; t++) {
        const { sums } = await ringSum(spec, grads, cs);
        for (let i = 0; i < N; i++) applied[i]! += sums[0]![i]!;
      }
      // applied + carried = steps x true sum, and the carried part stays bounded.
      let err = 0;
      let scale = 0;
      for (let i = 0; i < N; i++) {
        const truth = steps * (grads[0]![i]! + grads[1]![i]!);
        const carried = cs[0]!.carried()[i]! + cs[1]!.carried()[i]!;
        expect(applied[i]! + carried).toBeCloseTo(truth, 2);
        err += (applied[i]! - truth) ** 2;
        scale += truth ** 2;
      }
      expect(Math.sqrt(err / scale)).toBeLessThan(0.1);
    }
  });

  it('orthonormalises columns and rejects bad settings', () => {
    const p = Float32Array.from([3, 1, 4, 1, 0, 2]);
    orthonormalise(p, 3, 2);
    const col = (j: number): number[] => [p[j]!, p[2 + j]!, p[4 + j]!];
    const dot = (a: number[], b: number[]): number => a.reduce((s, x, i) => s + x * b[i]!, 0);
    expect(dot(col(0), col(0))).toBeCloseTo(1, 6);
    expect(dot(col(1), col(1))).toBeCloseTo(1, 6);
    expect(dot(col(0), col(1))).toBeCloseTo(0, 6);
    expect(() => compressorFor({ kind: 'randomk', ratio: 0 }, SLOTS, 1)).toThrow(/ratio must be in \(0, 1\]/);
    expect(() => compressorFor({ kind: 'powersgd', rank: 0.5 }, SLOTS, 1)).toThrow(/rank must be a whole number/);
  });
});
