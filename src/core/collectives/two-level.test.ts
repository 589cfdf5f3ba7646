import { describe, expect, it, vi } from 'vitest';
import type { WireSpec } from '../../protocol/wire.ts';
import { codeOf, exactSum, firstDiff, makeRing, type Outcome, outcomes, randInts, sameBits } from '../../test/memory-ring.ts';
import { RingError } from '../errors.ts';
import { makeView, ringPosition } from '../membership/view.ts';
import { MemoryNetwork } from '../memory-transport.ts';
import { mulberry32 } from '../random.ts';
import { AUTO_TWO_LEVEL_MIN_PEERS, autoGroupSize, planAllreduce } from './communicator.ts';
import type { CollectiveContext } from './context.ts';
import { Mailbox } from './mailbox.ts';
import { twoLevelAllreduce, twoLevelPeers } from './two-level.ts';

vi.setConfig({ maxConcurrency: 50 });

/**
 * `n` peers on a fresh in-memory network, each with a bare collective context (no communicator,
 * so that any group size runs, the degenerate ones included). `sum` runs one two-level allreduce
 * on every peer (the next sequence number) and returns each peer's buffer.
 */
function peers(n: number, chunkBytes: number) {
  const net = new MemoryNetwork();
  const ids = Array.from({ length: n }, (_, i) => `p${i}`);
  const view = makeView('r', 0, ids);
  const eps = ids.map((id) => net.endpoint(id));
  const mailboxes = eps.map((ep) => new Mailbox(ep));
  let seq = 0;
  const stats = ids.map(() => ({ framesSent: 0, frameBytesSent: 0, payloadBytesSent: 0, framesReceived: 0 }));
  const sum = (inputs: Float32Array[], g: number, wire?: WireSpec): Promise<Float32Array[]> => {
    const s = seq++;
    return Promise.all(
      ids.map(async (id, r) => {
        const ctl = new AbortController();
        const ctx: CollectiveContext = {
          transport: eps[r]!,
          mailbox: mailboxes[r]!,
          view,
          pos: ringPosition(view, id)!,
          epoch: 0,
          seq: s,
          chunkBytes,
          signal: ctl.signal,
          abort: (e) => ctl.abort(e),
          stats: stats[r]!,
        };
        const buf = inputs[r]!.slice();
        await twoLevelAllreduce(ctx, buf, g, wire ? { wire } : {});
        return buf;
      }),
    );
  };
  return { sum, stats };
}

function expectSameBits(got: Float32Array[], label: string): void {
  got.forEach((g, r) => expect(sameBits(g, got[0]!), `${label}: rank ${r} differs from rank 0`).toBe(true));
}

describe('twoLevelAllreduce', () => {
  const CASES: [number, number[]][] = [
    [1, [1, 2]],
    [2, [1, 2, 3]],
    [3, [1, 2, 3]],
    [4, [1, 2, 3, 4]],
    [5, [1, 2, 3, 4, 6]],
    [6, [2, 3, 4, 5]],
    [7, [2, 3, 4]],
    [8, [2, 3, 4, 5]],
    [9, [2, 3, 4]],
    [10, [3, 4, 6]],
    [13, [4, 5]],
    [16, [4, 5]],
  ];
  it.each(CASES)(
    'sums exactly and bit-identically on %i peers, group sizes %j, for lengths 0, < shards, odd and primes, many chunks',
    async (n, groupSizes) => {
      const rnd = mulberry32(1000 + n);
      for (const g of groupSizes) {
        const lengths = [0, 1, 2, Math.max(0, g - 1), g + 1, n + 1, 13, 97, 1009, 10_007];
        for (const chunkBytes of [16, 1024]) {
          const ring = peers(n, chunkBytes);
          for (const len of lengths) {
            if (chunkBytes === 16 && len > 1009) continue; // covered with 1 KiB chunks
            const inputs = Array.from({ length: n }, () => randInts(rnd, len));
            const want = exactSum(inputs);
            const label = `n=${n} g=${g} len=${len} chunk=${chunkBytes}`;
            const got = await ring.sum(inputs, g);
            for (const v of got) {
              expect(v.length, label).toBe(len);
              expect(firstDiff(v, want), label).toBe(-1);
            }
          }
        }
      }
    },
  );

  it('equals the exact sum of fractional values that float32 sums without rounding, and agrees bit for bit on any floats', async () => {
    const rnd = mulberry32(7);
    const n = 10;
    const ring = peers(n, 64);
    // Multiples of 1/64 below 2^10: every partial sum of 10 of them is exact, whatever the order.
    const dyadic = Array.from({ length: n }, () => Float32Array.from({ length: 777 }, () => Math.floor((rnd() - 0.5) * 65_536) / 64));
    for (const v of await ring.sum(dyadic, 4)) expect(firstDiff(v, exactSum(dyadic))).toBe(-1);
    // Arbitrary floats: the order of the additions differs from the ring's, but every peer has the same bits.
    const floats = Array.from({ length: n }, () =>
      Float32Array.from({ length: 5003 }, () => (rnd() - 0.5) * 1e3 * 10 ** Math.floor(rnd() * 6)),
    );
    const got = await ring.sum(floats, 4);
    expectSameBits(got, 'floats');
    const want = exactSum(floats);
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[0]![i]! - want[i]!)).toBeLessThanOrEqual(1e-5 * 1e3 * 1e5);
    // NaN and Infinity reach every peer alike.
    floats[3]![10] = NaN;
    floats[8]![20] = Infinity;
    const special = await ring.sum(floats, 3);
    expectSameBits(special, 'NaN/Inf');
    expect(special[0]![10]).toBeNaN();
    expect(special[5]![20]).toBe(Infinity);
  });

  it("sends in total the ring's 2(N-1) copies of the vector, and a full group's peer takes 2(g-1) + 2(G-1) steps", async () => {
    for (const [n, g] of [
      [9, 3],
      [10, 4],
      [16, 4],
      [5, 4],
    ] as const) {
      const len = 1000;
      const ring = peers(n, 1 << 16);
      await ring.sum(
        Array.from({ length: n }, () => new Float32Array(len).fill(1)),
        g,
      );
      const payload = ring.stats.reduce((s, st) => s + st.payloadBytesSent, 0);
      expect(payload, `n=${n} g=${g}`).toBe(2 * (n - 1) * len * 4);
      // One chunk per segment: a frame per step. Rank 0 sits in a full group and owns one shard.
      const groups = Math.ceil(n / g);
      expect(ring.stats[0]!.framesSent, `n=${n} g=${g}`).toBe(2 * (g - 1) + 2 * (groups - 1));
    }
  });

  it('keeps the exact tail of the u32 wire, and adds its words modulo 2^32 on every peer alike', async () => {
    const rnd = mulberry32(11);
    const n = 7;
    const len = 503;
    const ring = peers(n, 64);
    const words = Array.from({ length: n }, () => Uint32Array.from({ length: len }, () => Math.floor(rnd() * 2 ** 32)));
    const inputs = words.map((w, r) => {
      const f = new Float32Array(w.buffer.slice(0));
      f[len - 1] = 100 + r; // a float32 count in the exact tail
      return f;
    });
    const got = await ring.sum(inputs, 3, { wire: 'u32', exact: 1 });
    expectSameBits(got, 'u32');
    const sum = new Uint32Array(new Float32Array(got[0]!).buffer);
    for (let i = 0; i < len - 1; i++) expect(sum[i]).toBe(words.reduce((s, w) => (s + w[i]!) % 2 ** 32, 0));
    expect(got[0]![len - 1]).toBe(100 * n + (n * (n - 1)) / 2);
  });

  it('refuses a lossy wire and a group size that is not a positive integer', async () => {
    const ring = peers(2, 64);
    const inputs = [new Float32Array(4), new Float32Array(4)];
    await expect(ring.sum(inputs, 2, { wire: 'f16', exact: 0 })).rejects.toThrow(RangeError);
    await expect(ring.sum(inputs, 0)).rejects.toThrow(RangeError);
    await expect(ring.sum(inputs, 1.5)).rejects.toThrow(RangeError);
  });
});

describe('two-level allreduce with slow links', () => {
  it("sums exactly when some peers' frames arrive late (group all-gather frames queue up behind the shard rings)", async () => {
    const n = 11;
    const ring = makeRing(n, { chunkBytes: 64, topology: { kind: 'two-level', groupSize: 4 } });
    // Rank 9 and 10 form the last group (4, 4, 3); rank 2 is in a full group.
    for (const [r, ms] of [
      [2, 5],
      [9, 3],
      [10, 8],
    ] as const)
      ring.peers[r]!.ep.inject({ kind: 'delay', ms });
    const rnd = mulberry32(21);
    for (const len of [5, 333, 1500]) {
      const inputs = ring.peers.map(() => randInts(rnd, len));
      const want = exactSum(inputs);
      const got = await Promise.all(ring.peers.map((p, r) => p.comm.allreduce(inputs[r]!)));
      for (const v of got) expect(firstDiff(v, want), `len=${len}`).toBe(-1);
    }
  });
});

describe('twoLevelPeers', () => {
  it('N=10, g=4 (groups 4, 4, 2): group neighbours and shard-ring neighbours, symmetric', () => {
    // Group 0 = 0..3: rank 0 owns shard 1 (block 1), ring of shard 1 = [0, 4, 8]; group 2 = {8, 9}:
    // 8 owns block 1 = shards 2, 3 (rings [1, 5, 8] and [2, 6, 8]), 9 owns block 0 = shards 0, 1.
    expect(twoLevelPeers(10, 4, 0)).toEqual([1, 3, 4, 9]);
    expect(twoLevelPeers(10, 4, 8)).toEqual([1, 2, 5, 6, 9]);
    expect(twoLevelPeers(10, 4, 9)).toEqual([0, 3, 4, 7, 8]);
    for (const [n, g] of [
      [10, 4],
      [5, 4],
      [16, 4],
      [13, 5],
      [7, 1],
      [7, 7],
    ]) {
      const talks = Array.from({ length: n! }, (_, r) => twoLevelPeers(n!, g!, r));
      talks.forEach((ps, a) => {
        for (const b of ps) expect(talks[b], `n=${n} g=${g}: ${a} talks to ${b}`).toContain(a);
      });
    }
    // g = 1 and g >= N are the ring: the two neighbours.
    expect(twoLevelPeers(7, 1, 0)).toEqual([1, 6]);
    expect(twoLevelPeers(7, 9, 3)).toEqual([2, 4]);
  });
});

describe('Communicator with a two-level topology', () => {
  it('picks the ring or two-level from the view alone; auto from AUTO_TWO_LEVEL_MIN_PEERS with autoGroupSize', () => {
    expect([8, 10, 13, 16, 32].map(autoGroupSize)).toEqual([2, 2, 5, 4, 4]);
    const auto = { kind: 'auto' } as const;
    expect(planAllreduce(auto, AUTO_TWO_LEVEL_MIN_PEERS - 1)).toEqual({ kind: 'ring' });
    expect(planAllreduce(auto, AUTO_TWO_LEVEL_MIN_PEERS)).toEqual({
      kind: 'two-level',
      groupSize: autoGroupSize(AUTO_TWO_LEVEL_MIN_PEERS),
    });
    expect(planAllreduce({ kind: 'auto', minPeers: 4 }, 9)).toEqual({ kind: 'two-level', groupSize: 3 });
    expect(planAllreduce({ kind: 'two-level', groupSize: 3 }, 10)).toEqual({ kind: 'two-level', groupSize: 3 });
    // Degenerate group sizes are the ring; lossy wires take the ring; u32 stays two-level.
    expect(planAllreduce({ kind: 'two-level', groupSize: 1 }, 10)).toEqual({ kind: 'ring' });
    expect(planAllreduce({ kind: 'two-level', groupSize: 12 }, 10)).toEqual({ kind: 'ring' });
    expect(planAllreduce({ kind: 'two-level', groupSize: 3 }, 10, { wire: 'i8', exact: 2 })).toEqual({ kind: 'ring' });
    expect(planAllreduce({ kind: 'two-level', groupSize: 3 }, 10, { wire: 'u32', exact: 2 }).kind).toBe('two-level');
    expect(() => planAllreduce({ kind: 'two-level', groupSize: 0 }, 10)).toThrow(RangeError);
    expect(() => makeRing(3, { topology: { kind: 'two-level', groupSize: -1 } })).toThrow(RangeError);
  });

  it('sums exactly with the topology of the communicator or of the call, and the other collectives stay on the ring', async () => {
    const n = 10;
    const ring = makeRing(n, { chunkBytes: 64, topology: { kind: 'two-level', groupSize: 4 } });
    const rnd = mulberry32(3);
    const inputs = ring.peers.map(() => randInts(rnd, 2001));
    const want = exactSum(inputs);
    // Queued without awaiting, mixed with other collectives: sequence numbers keep them apart.
    const [a, b, c, d] = await Promise.all([
      Promise.all(ring.peers.map((p, r) => p.comm.allreduce(inputs[r]!))),
      Promise.all(ring.peers.map((p, r) => p.comm.allGather(new Float32Array([r])))),
      Promise.all(ring.peers.map((p, r) => p.comm.allreduce(inputs[r]!, { topology: { kind: 'two-level', groupSize: 3 } }))),
      Promise.all(ring.peers.map((p, r) => p.comm.allreduceMean(inputs[r]!, 1, { topology: { kind: 'ring' } }))),
    ]);
    for (const v of [...a, ...c]) expect(firstDiff(v, want)).toBe(-1);
    for (const v of b) expect(v.map((x) => x[0])).toEqual(Array.from({ length: n }, (_, r) => r));
    for (const v of d) expect(v.count).toBe(n);
    expect(ring.peers[0]!.comm.allreducePeers()).toEqual(['p1', 'p3', 'p4', 'p9']);
    expect(ring.peers[0]!.comm.allreducePeers({ topology: { kind: 'ring' } })).toEqual(['p9', 'p1']);
    // A quantised wire falls back to the ring: same bits everywhere, two neighbours.
    expect(ring.peers[0]!.comm.allreducePeers({ wire: { wire: 'f16', exact: 0 } })).toEqual(['p9', 'p1']);
    const f16 = await Promise.all(ring.peers.map((p, r) => p.comm.allreduce(inputs[r]!, { wire: { wire: 'f16', exact: 1 } })));
    expectSameBits(f16, 'f16');
  });
});

describe.concurrent('two-level allreduce when a peer goes down mid-collective', () => {
  const TIMEOUT = 1500;
  // Rank 9 sits in the last, smaller group (4, 4, 2) and takes part in two shard rings; rank 5 in a full group.
  for (const [rank, kind, after] of [
    [9, 'close', 0],
    [9, 'close', 3],
    [5, 'close', 2],
    [5, 'crash', 4],
    [0, 'crash', 1],
  ] as const) {
    it(`every peer rejects with a RingError, peers that talk to it with 'peer-down': rank ${rank}, ${kind} after ${after} frames`, async ({
      expect: ex,
    }) => {
      const n = 10;
      const ring = makeRing(n, { chunkBytes: 64, timeoutMs: TIMEOUT, topology: { kind: 'two-level', groupSize: 4 } });
      const rnd = mulberry32(rank * 100 + after);
      // 16-float chunks, 60 chunks per peer's vector: the faulty peer is still in its group's reduce-scatter.
      const inputs = ring.peers.map(() => randInts(rnd, 960));
      ring.peers[rank]!.ep.inject(kind === 'close' ? { kind, after } : { kind, after, detectMs: 20 });
      const res: Outcome<Float32Array>[] = await outcomes(ring.peers.map((p, r) => p.comm.allreduce(inputs[r]!)));
      const talksTo = new Set(twoLevelPeers(n, 4, rank));
      res.forEach((o, r) => {
        const label = `rank ${r}: ${o.ok ? 'ok' : String(o.error)} after ${o.ms.toFixed(0)} ms`;
        ex(o.ok, label).toBe(false);
        if (o.ok) return;
        ex(o.error, label).toBeInstanceOf(RingError);
        if (talksTo.has(r)) {
          ex(codeOf(o), label).toBe('peer-down');
          ex(o.ms, label).toBeLessThan(TIMEOUT);
        } else if (r !== rank) ex(['peer-down', 'timeout'], label).toContain(codeOf(o));
      });
    });
  }
});
