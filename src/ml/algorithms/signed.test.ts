import { describe, expect, it } from 'vitest';
import { signedAllGather, signingKeyPair, verifyingKey } from './signed.ts';

/** 3 peers in one all-gather through `route`, which may change what reaches peer `to` from `from` (a forwarder's doing). */
async function gatherAll(
  vectors: Float32Array[],
  route: (from: number, to: number, v: Float32Array) => Float32Array,
  withKey = [true, true, true],
) {
  const pairs = await Promise.all(vectors.map(() => signingKeyPair()));
  const publicKeys = await Promise.all(pairs.map((p, r) => (withKey[r] ? verifyingKey(p.pub) : null)));
  // Every peer's signed vector; the gather returns once all have sent theirs.
  const sent: Float32Array[] = [];
  let arrived!: () => void;
  const all = new Promise<void>((resolve) => (arrived = resolve));
  const gathers = vectors.map((_, rank) =>
    signedAllGather(
      async (mine) => {
        sent[rank] = mine;
        if (sent.filter(Boolean).length === vectors.length) arrived();
        await all;
        return sent.map((v, from) => (from === rank ? v : route(from, rank, v.slice())));
      },
      { rank, context: 'room|7', privateKey: withKey[rank] ? pairs[rank]!.privateKey : null, publicKeys },
    ),
  );
  return Promise.allSettled(vectors.map((v, r) => gathers[r]!(v)));
}

const vectors = [Float32Array.of(1, 2, NaN), Float32Array.of(3, 4, 5), Float32Array.of(-1, 0.5, 1e30)];

describe('signed all-gather', () => {
  it('returns every contribution exactly, NaN included', async () => {
    const out = await gatherAll(vectors, (_f, _t, v) => v);
    for (const o of out) {
      expect(o.status).toBe('fulfilled');
      expect((o as PromiseFulfilledResult<Float32Array[]>).value).toEqual(vectors);
    }
  });

  it('refuses a contribution a forwarder changed, naming whose it was', async () => {
    // What reaches peer 2 from peer 0 went through peer 1, which scaled it.
    const out = await gatherAll(vectors, (from, to, v) => (from === 0 && to === 2 ? v.map((x, i) => (i < 3 ? x * -100 : x)) : v));
    expect(out[0]!.status).toBe('fulfilled');
    expect(out[1]!.status).toBe('fulfilled');
    expect(out[2]).toMatchObject({
      status: 'rejected',
      reason: { code: 'protocol', message: expect.stringMatching(/rank 0 arrived altered/) },
    });
  });

  it("refuses a contribution swapped for another peer's, signature and all", async () => {
    const out = await gatherAll(vectors, (from, to, v) => (from === 0 && to === 2 ? v.map((x, i) => (i < 3 ? vectors[1]![i]! : x)) : v));
    expect(out[2]).toMatchObject({ status: 'rejected', reason: { message: expect.stringMatching(/rank 0/) } });
  });

  it('a peer without a key is neither signed nor checked; the others still are', async () => {
    const out = await gatherAll(vectors, (from, _t, v) => (from === 0 ? v.map((x, i) => (i === 1 ? 9 : x)) : v), [false, true, true]);
    expect((out[2] as PromiseFulfilledResult<Float32Array[]>).value[0]![1]).toBe(9);
    const checked = await gatherAll(vectors, (from, _t, v) => (from === 1 ? v.map((x, i) => (i === 1 ? 9 : x)) : v), [false, true, true]);
    expect(checked[0]).toMatchObject({ status: 'rejected' });
  });
});
