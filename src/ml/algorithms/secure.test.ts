import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../core/random.ts';
import { memoryRing } from '../../test/helpers.ts';
import { Contribution } from '../exchange/contribution.ts';
import { clampBound, maskedSum, maskFor, maskKeyPair, pairKey, SECURE_SCALE } from './secure.ts';

/** Every peer's pair keys for a group of `n` (null at its own rank). */
async function groupKeys(n: number): Promise<(CryptoKey | null)[][]> {
  const pairs = await Promise.all(Array.from({ length: n }, () => maskKeyPair()));
  return Promise.all(pairs.map((p, i) => Promise.all(pairs.map((q, j) => (i === j ? null : pairKey(p.privateKey, q.pub, 'lab', 1))))));
}

/**
 * Masked sums of `inputs` (one per peer) over an in-memory ring, with small chunks so that the
 * clear tail shares a chunk with masked words; `sent`: the words rank 0 hands the ring. `clear`:
 * 1 when the last value is a sample count (the public tail), 0 for none.
 */
async function ringSums(
  inputs: Float32Array[],
  keys: (CryptoKey | null)[][],
  clear: number,
): Promise<{ sums: Float32Array[]; sent: Uint32Array }> {
  const ring = memoryRing(inputs.length, { chunkBytes: 512, timeoutMs: 10_000 });
  let sent = new Uint32Array(0);
  const sums = await Promise.all(
    ring.map((c, rank) =>
      maskedSum(
        async (w) => {
          if (rank === 0) sent = new Uint32Array(w.data.slice().buffer);
          return w.like(await c.allreduce(w.data, w.wire ? { wire: { wire: w.wire, exact: w.tail.length } } : {}));
        },
        rank,
        keys[rank]!,
        5,
        SECURE_SCALE,
      )(Contribution.over(inputs[rank]!, clear ? ['count'] : [])),
    ),
  );
  return { sums: sums.map((s) => s.data.slice()), sent };
}

/** Pearson's chi-square of the top 4 bits of `words` against the uniform distribution (15 degrees of freedom). */
function chiSquareTop4(words: Uint32Array): number {
  const bins = new Array<number>(16).fill(0);
  for (const w of words) bins[w >>> 28]!++;
  const expected = words.length / 16;
  return bins.reduce((a, b) => a + (b - expected) ** 2 / expected, 0);
}

/** P(chi-square with 15 degrees of freedom > 60) ≈ 2.5e-7: a uniform sample fails this about never. */
const CHI2_15_CRITICAL = 60;

describe('secure aggregation by pairwise masks modulo 2^32', () => {
  it('both ends of a pair derive the same mask words; another epoch or step gives others', async () => {
    const [a, b] = await Promise.all([maskKeyPair(), maskKeyPair()]);
    const ab = await pairKey(a.privateKey, b.pub, 'lab', 3);
    const ba = await pairKey(b.privateKey, a.pub, 'lab', 3);
    const m1 = await maskFor(ab, 7, 1000);
    expect(Array.from(await maskFor(ba, 7, 1000))).toEqual(Array.from(m1));
    expect(Array.from(await maskFor(ab, 8, 1000))).not.toEqual(Array.from(m1));
    expect(Array.from(await maskFor(await pairKey(a.privateKey, b.pub, 'lab', 4), 7, 1000))).not.toEqual(Array.from(m1));
  });

  it('2 to 5 peers: the masks cancel exactly, the sum is bit for bit Σ round(x·S) / S, and the clear count stays exact', async () => {
    const len = 1001;
    for (let n = 2; n <= 5; n++) {
      const rnd = mulberry32(n);
      // Values of both signs over several magnitudes; the last one is a sample count.
      const inputs = Array.from({ length: n }, (_, r) =>
        Float32Array.from({ length: len }, (_, i) => (i === len - 1 ? 7 + r : (rnd() - 0.5) * 10 ** Math.floor(rnd() * 6 - 3))),
      );
      const { sums } = await ringSums(inputs, await groupKeys(n), 1);
      const expected = new Float32Array(len);
      for (let i = 0; i < len - 1; i++) expected[i] = inputs.reduce((a, x) => a + Math.round(x[i]! * SECURE_SCALE), 0) / SECURE_SCALE;
      expected[len - 1] = inputs.reduce((a, x) => a + x[len - 1]!, 0);
      for (const s of sums) expect(Array.from(new Uint32Array(s.buffer))).toEqual(Array.from(new Uint32Array(expected.buffer)));
      expect(sums[0]![len - 1]).toBe(n * 7 + (n * (n - 1)) / 2);
    }
  });

  it('what a peer hands the ring is uniform in its top bits whatever the input; unmasked, the same test fails', async () => {
    const len = 65_536;
    const keys = await groupKeys(2);
    const rnd = mulberry32(11);
    const gradient = Float32Array.from({ length: len }, () => (rnd() - 0.5) * 0.01);
    for (const input of [new Float32Array(len), gradient, new Float32Array(len).fill(100)]) {
      const { sent } = await ringSums([input, new Float32Array(len)], keys, 0);
      expect(chiSquareTop4(sent.subarray(0, len))).toBeLessThan(CHI2_15_CRITICAL);
      // The same peers without keys: the words are the fixed-point gradient itself.
      const plain = await ringSums(
        [input, new Float32Array(len)],
        [
          [null, null],
          [null, null],
        ],
        0,
      );
      expect(chiSquareTop4(plain.sent.subarray(0, len))).toBeGreaterThan(CHI2_15_CRITICAL);
    }
  });

  it('a value past the bound saturates at ±⌊(2^31 − 1) / N⌋ / S, so even N of them cannot wrap the sum', async () => {
    const bound = clampBound(2);
    expect(bound).toBe(2 ** 30 - 1);
    const { sums } = await ringSums([Float32Array.of(1e9, -1e9, 1e9), Float32Array.of(1, 1, 1e9)], await groupKeys(2), 0);
    // 1e9 counts as (2^30 - 1) / 4096 ≈ 262 144; two of them still sum below 2^31 / S.
    expect(Array.from(sums[0]!)).toEqual(
      [bound + SECURE_SCALE, -bound + SECURE_SCALE, 2 * bound].map((q) => Math.fround(q / SECURE_SCALE)),
    );
    expect(sums[0]![2]).toBeGreaterThan(0);
  });

  it("a NaN or ±Inf on any peer turns every peer's masked sum into NaN; the clear count still adds", async () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const { sums } = await ringSums(
        [Float32Array.of(1, 2, 3), Float32Array.of(bad, 2, 4), Float32Array.of(1, 2, 5)],
        await groupKeys(3),
        1,
      );
      for (const s of sums) {
        expect(Array.from(s.subarray(0, 2)).every(Number.isNaN)).toBe(true);
        expect(s[2]).toBe(12);
      }
    }
  });
});
