import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../core/random.ts';
import { memoryRing } from '../../test/helpers.ts';
import { maskedSum, maskFor, maskKeyPair, pairKey } from './secure.ts';

/** Pearson correlation of two equal-length vectors. */
function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]! / n;
    mb += b[i]! / n;
  }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i]! - ma) * (b[i]! - mb);
    saa += (a[i]! - ma) ** 2;
    sbb += (b[i]! - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

describe('secure aggregation by pairwise masks', () => {
  it('both ends of a pair derive the same mask; another epoch or step gives another', async () => {
    const [a, b] = await Promise.all([maskKeyPair(), maskKeyPair()]);
    const ab = await pairKey(a.privateKey, b.pub, 'lab', 3);
    const ba = await pairKey(b.privateKey, a.pub, 'lab', 3);
    const m1 = await maskFor(ab, 7, 1000, 10);
    expect(Array.from(await maskFor(ba, 7, 1000, 10))).toEqual(Array.from(m1));
    expect(Array.from(await maskFor(ab, 8, 1000, 10))).not.toEqual(Array.from(m1));
    expect(Array.from(await maskFor(await pairKey(a.privateKey, b.pub, 'lab', 4), 7, 1000, 10))).not.toEqual(Array.from(m1));
    expect(Math.max(...m1.map(Math.abs))).toBeLessThanOrEqual(10);
  });

  it('4 peers: the masked ring sum equals the plain sum to float tolerance, and what a neighbour receives is unrelated to the gradient', async () => {
    const n = 4;
    const len = 5000;
    const pairs = await Promise.all(Array.from({ length: n }, () => maskKeyPair()));
    const keys = await Promise.all(pairs.map((p, i) => Promise.all(pairs.map((q, j) => (i === j ? null : pairKey(p.privateKey, q.pub, 'lab', 1))))));
    const grads = Array.from({ length: n }, (_, i) => {
      const r = mulberry32(i + 1);
      return Float32Array.from({ length: len }, () => r() * 2 - 1);
    });
    const ring = memoryRing(n, { chunkBytes: 8192, timeoutMs: 10_000 });
    // What rank 0 puts on the wire: its masked contribution, as its neighbour first sees it.
    let sent: Float32Array | null = null;
    const sums = await Promise.all(
      ring.map((c, rank) =>
        maskedSum(
          (v) => {
            if (rank === 0) sent = v.slice();
            return c.allreduce(v);
          },
          rank,
          keys[rank]!,
          5,
          100,
        )(grads[rank]!),
      ),
    );
    const plain = Array.from({ length: len }, (_, i) => grads.reduce((a, g) => a + g[i]!, 0));
    let err = 0;
    for (const s of sums) {
      expect(Array.from(s)).toEqual(Array.from(sums[0]!));
      for (let i = 0; i < len; i++) err = Math.max(err, Math.abs(s[i]! - plain[i]!));
    }
    // Masks of magnitude 100 over 4 peers: rounding of a few 1e-5.
    expect(err).toBeLessThan(1e-4);
    expect(Math.abs(correlation(sent!, grads[0]!))).toBeLessThan(0.05);
    expect(Math.abs(correlation(grads[0]!, grads[0]!))).toBeCloseTo(1, 6);
  });
});
