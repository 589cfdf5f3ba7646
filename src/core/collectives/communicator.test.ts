import { describe, expect, it, vi } from 'vitest';
import { DType, encodeFrame, MAX_FRAME_PAYLOAD, Op, type FrameHeader } from '../../protocol/frame.ts';
import { RingError, type RingErrorCode } from '../errors.ts';
import { makeView } from '../membership/view.ts';
import { MemoryNetwork, type Fault } from '../memory-transport.ts';
import type { Transport } from '../transport.ts';
import { Communicator, DEFAULT_CHUNK_BYTES } from './communicator.ts';
import { Mailbox } from './mailbox.ts';
import { chunkCount, segmentRange } from './partition.ts';
import { mulberry32 } from '../random.ts';
import {
  codeOf,
  exactSum,
  firstDiff,
  makeRing,
  nextView,
  onAll,
  outcomes,
  type Outcome,
  type Peer,
  randBytes,
  randInts,
  rejectionOf,
  sameBits,
} from '../../test/memory-ring.ts';

// The fault tests mostly wait for timeouts: run them side by side (each has its own network).
vi.setConfig({ maxConcurrency: 100 });

// The harness (N endpoints on one MemoryNetwork, a Communicator per peer) is src/test/memory-ring.ts.

// ---------------------------------------------------------------------------------------------
// Correctness
// ---------------------------------------------------------------------------------------------

describe('Communicator.allreduce', () => {
  const SIZES = [1, 2, 3, 4, 5, 6, 7, 8];
  it.each(SIZES)('sums exactly on %i peers, for lengths 0, 1, < N, primes and ~100k, small and default chunks', async (n) => {
    const rnd = mulberry32(100 + n);
    const lengths = [0, 1, Math.max(0, n - 1), n, n + 1, 2, 13, 97, 1009, 100_003];
    for (const chunkBytes of [64, 1024, DEFAULT_CHUNK_BYTES]) {
      const ring = makeRing(n, { chunkBytes, timeoutMs: 10_000 });
      for (const len of lengths) {
        if (chunkBytes === 64 && len > 2000) continue; // ~6k frames per peer: covered by 1024 B chunks
        const inputs = ring.peers.map(() => randInts(rnd, len));
        const copies = inputs.map((v) => v.slice());
        const want = exactSum(inputs);
        const got = await onAll(ring, (p, r) => p.comm.allreduce(inputs[r]!));
        for (const g of got) {
          expect(g.length).toBe(len);
          expect(firstDiff(g, want), `n=${n} len=${len} chunk=${chunkBytes}`).toBe(-1);
        }
        // The inputs are untouched and the results are fresh arrays.
        inputs.forEach((v, r) => expect(sameBits(v, copies[r]!)).toBe(true));
        got.forEach((g, r) => expect(g).not.toBe(inputs[r]));
      }
    }
  });

  it('moves 2(N-1)/N of the vector per peer, in frames of at most chunkBytes', async () => {
    const n = 5;
    const len = 1003;
    const ring = makeRing(n, { chunkBytes: 64 });
    const rnd = mulberry32(9);
    await onAll(ring, (p) => p.comm.allreduce(randInts(rnd, len)));
    const payload = ring.peers.reduce((s, p) => s + p.comm.stats.payloadBytesSent, 0);
    expect(payload).toBe(2 * (n - 1) * len * 4);
    for (const p of ring.peers) {
      const segBytes = Math.ceil(len / n) * 4;
      expect(p.comm.stats.payloadBytesSent).toBeLessThanOrEqual(2 * (n - 1) * segBytes);
      expect(p.comm.stats.frameBytesSent - p.comm.stats.payloadBytesSent).toBe(32 * p.comm.stats.framesSent);
      expect(p.comm.stats.framesReceived).toBe(p.comm.stats.framesSent);
      // Every frame carries at most 64 B, so each of the 2(N-1) steps takes several frames.
      expect(p.comm.stats.payloadBytesSent).toBeLessThanOrEqual(64 * p.comm.stats.framesSent);
      const smallest = segmentRange(len, n, n - 1);
      expect(p.comm.stats.framesSent).toBeGreaterThanOrEqual(2 * (n - 1) * chunkCount(smallest.end - smallest.start, 16));
    }
  });

  it('reports progress through onFrame', async () => {
    const ring = makeRing(3, { chunkBytes: 64 });
    const frames = [0, 0, 0];
    await onAll(ring, (p, r) => p.comm.allreduce(new Float32Array(300).fill(r), { onFrame: () => frames[r]!++ }));
    ring.peers.forEach((p, r) => expect(frames[r]).toBe(p.comm.stats.framesReceived));
    expect(frames[0]).toBeGreaterThan(4);
  });

  it('sums non-integer values to bit-identical results on every peer', async () => {
    const ring = makeRing(6, { chunkBytes: 256 });
    const rnd = mulberry32(77);
    const inputs = ring.peers.map(() => Float32Array.from({ length: 5000 }, () => (rnd() - 0.5) * 1e3));
    const got = await onAll(ring, (p, r) => p.comm.allreduce(inputs[r]!));
    const want = exactSum(inputs);
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[0]![i]! - want[i]!)).toBeLessThan(1e-2);
  });
});

describe('Communicator.allreduce with a quantised wire', () => {
  it.each(['f16', 'i8'] as const)(
    "%s: every peer gets the same bits, within the codec's error of the sum, with an exact float32 tail",
    async (wire) => {
      const ring = makeRing(4, { chunkBytes: 256 });
      const rnd = mulberry32(5);
      const len = 1001;
      // Gradient-like values, then a whole-number tail (sample counts) that must stay exact.
      const inputs = ring.peers.map((_, r) => Float32Array.from({ length: len }, (_, i) => (i >= len - 2 ? 1000 + r : (rnd() - 0.5) * 4)));
      const got = await onAll(ring, (p, r) => p.comm.allreduce(inputs[r]!, { wire: { wire, exact: 2 } }));
      const want = exactSum(inputs);
      expect([got[0]![len - 2], got[0]![len - 1]]).toEqual([4006, 4006]);
      // Each of the 3 reduce hops and the owner's broadcast quantise once; values are at most 8 here.
      const tol = wire === 'f16' ? 4 * 8 * 2 ** -11 : 4 * (8 / 127 / 2);
      let worst = 0;
      for (let i = 0; i < len - 2; i++) worst = Math.max(worst, Math.abs(got[0]![i]! - want[i]!));
      expect(worst).toBeLessThan(tol);
      expect(worst).toBeGreaterThan(0);
      // Fewer bytes than float32: half for f16, about a quarter for i8 (plus a scale per chunk).
      const f32Bytes = 2 * 3 * (len / 4) * 4;
      const ratio = ring.peers[0]!.comm.stats.payloadBytesSent / f32Bytes;
      expect(ratio).toBeLessThan(wire === 'f16' ? 0.52 : 0.3);
    },
  );

  it('i8: a NaN in any contribution reaches every peer as NaN (the gradient guard must see it)', async () => {
    const ring = makeRing(3, { chunkBytes: 64 });
    const inputs = ring.peers.map((_, r) => Float32Array.from({ length: 40 }, (_, i) => (r === 1 && i === 7 ? NaN : i)));
    const got = await onAll(ring, (p, r) => p.comm.allreduce(inputs[r]!, { wire: { wire: 'i8', exact: 0 } }));
    for (const g of got) expect(Number.isNaN(g[7])).toBe(true);
  });
});

describe('Communicator.allGather', () => {
  it.each([1, 2, 3, 5])("gives every peer every rank's vector, bit for bit, on %i peers", async (n) => {
    const ring = makeRing(n, { chunkBytes: 64 });
    const rnd = mulberry32(n + 40);
    const inputs = ring.peers.map(() => Float32Array.from({ length: 37 }, () => rnd() - 0.5));
    const got = await Promise.all(ring.peers.map((p, r) => p.comm.allGather(inputs[r]!)));
    for (const parts of got) parts.forEach((part, r) => expect(sameBits(part, inputs[r]!)).toBe(true));
    // Each peer forwards N-1 vectors' worth (the all-gather half of a ring allreduce).
    if (n > 1) expect(ring.peers[0]!.comm.stats.payloadBytesSent).toBe((n - 1) * 37 * 4);
  });
});

describe('Communicator.allreduceMean', () => {
  it.each([1, 2, 3, 7])('divides the sum by the total count on %i peers, identically everywhere', async (n) => {
    const ring = makeRing(n, { chunkBytes: 128 });
    const rnd = mulberry32(n);
    const len = 333;
    const inputs = ring.peers.map(() => randInts(rnd, len));
    const counts = ring.peers.map((_, r) => r + 1);
    const total = counts.reduce((a, b) => a + b, 0);
    const got = await Promise.all(ring.peers.map((p, r) => p.comm.allreduceMean(inputs[r]!, counts[r]!)));
    const sum = exactSum(inputs);
    for (const g of got) {
      expect(g.count).toBe(total);
      expect(g.mean.length).toBe(len);
      for (let i = 0; i < len; i++) if (g.mean[i] !== Math.fround(sum[i]! / total)) throw new Error(`mean[${i}]`);
      expect(sameBits(g.mean, got[0]!.mean)).toBe(true);
    }
  });

  it("rejects with 'protocol' when the total count is not positive", async () => {
    const ring = makeRing(2);
    const errs = await Promise.all(ring.peers.map((p) => rejectionOf(p.comm.allreduceMean(new Float32Array(3), 0))));
    for (const e of errs) expect(e.code).toBe('protocol');
  });

  it('accepts a zero count on some peers', async () => {
    const ring = makeRing(3);
    const got = await Promise.all(ring.peers.map((p, r) => p.comm.allreduceMean(new Float32Array([r * 10]), r === 1 ? 0 : 1)));
    for (const g of got) expect([g.count, g.mean[0]]).toEqual([2, 15]); // (0 + 10 + 20) / (1 + 0 + 1)
  });
});

describe('Communicator.broadcast', () => {
  it.each([1, 2, 3, 5])('delivers the root bytes to every peer, from every root (%i peers)', async (n) => {
    const ring = makeRing(n, { chunkBytes: 64 });
    const rnd = mulberry32(n * 31);
    for (const len of [0, 1, 3, 63, 64, 65, 128, 1000, 4099]) {
      for (let root = 0; root < n; root++) {
        const data = randBytes(rnd, len);
        const copy = data.slice();
        const got = await Promise.all(ring.peers.map((p, r) => p.comm.broadcast(root, r === root ? data : null)));
        got.forEach((g, r) => {
          expect(g.byteLength).toBe(len);
          expect(sameBits(g, copy), `n=${n} len=${len} root=${root} rank=${r}`).toBe(true);
        });
        expect(got[root]).toBe(data);
      }
    }
  });

  it('sends each chunk once per link: N-1 payload copies in total', async () => {
    const n = 4;
    const ring = makeRing(n, { chunkBytes: 100 });
    await Promise.all(ring.peers.map((p, r) => p.comm.broadcast(2, r === 2 ? new Uint8Array(1234) : null)));
    expect(ring.peers.reduce((s, p) => s + p.comm.stats.payloadBytesSent, 0)).toBe((n - 1) * 1234);
    expect(ring.peers[1]!.comm.stats.framesSent).toBe(0); // the root's predecessor forwards nothing
  });

  it('rejects a root that is not a rank, and a root without data, as programmer errors', async () => {
    const solo = makeRing(1).peers[0]!.comm;
    await expect(solo.broadcast(1, new Uint8Array(1))).rejects.toThrow(RangeError);
    await expect(solo.broadcast(-1, new Uint8Array(1))).rejects.toThrow(RangeError);
    await expect(solo.broadcast(0, null)).rejects.toThrow(TypeError);
    // The communicator is still usable afterwards.
    expect([...(await solo.broadcast(0, new Uint8Array([5])))]).toEqual([5]);
  });
});

describe('Communicator.broadcast against a predecessor that sends too much', () => {
  /** p0 plays a lying root: `frames` broadcast chunks of 256 B, each announcing `chunks` in all. */
  async function flood(frames: number, chunks: number, maxBytes?: number): Promise<Outcome<Uint8Array>> {
    const ring = makeRing(2, { chunkBytes: 256, timeoutMs: 2_000 });
    for (let c = 0; c < frames; c++) {
      const h: FrameHeader = { op: Op.Broadcast, dtype: DType.Bytes, epoch: 0, seq: 0, segment: 0, chunk: c, chunks };
      await ring.peers[0]!.ep.send('p1', encodeFrame(h, new Uint8Array(256)));
    }
    const [o] = await outcomes([ring.peers[1]!.comm.broadcast(0, null, maxBytes === undefined ? {} : { maxBytes })]);
    return o!;
  }

  it('refuses more than the caller-given bound, however the chunks are announced', async () => {
    const o = await flood(8, 8, 1024);
    expect(codeOf(o)).toBe('protocol');
    expect(String(!o.ok && o.error)).toMatch(/more than 1024 B/);
    // Within the bound it is an ordinary broadcast.
    const fits = await flood(4, 4, 1024);
    expect(fits.ok && fits.value.byteLength).toBe(1024);
  });

  it('refuses a root that announces more than 64 MiB by default, at its first frame', async () => {
    const o = await flood(1, 2 ** 20);
    expect(codeOf(o)).toBe('protocol');
    expect(String(!o.ok && o.error)).toMatch(/more than 67108864 B \(announced 1048576 chunks\)/);
  });
});

describe('Communicator.barrier, shift and allToAllSum', () => {
  it.each([1, 2, 3, 5])('barrier resolves on all %i peers', async (n) => {
    const ring = makeRing(n);
    await Promise.all(ring.peers.map((p) => p.comm.barrier()));
    await Promise.all(ring.peers.map((p) => p.comm.barrier()));
  });

  it('barrier does not resolve while a peer is missing', async () => {
    const ring = makeRing(3, { timeoutMs: 300 });
    const res = await outcomes(ring.peers.slice(0, 2).map((p) => p.comm.barrier()));
    for (const o of res) {
      expect(codeOf(o)).toBe('timeout');
      expect(o.ms).toBeGreaterThanOrEqual(299);
      expect(o.ms).toBeLessThan(300 + MARGIN);
    }
  });

  it.each([1, 2, 3, 4])('shift completes on %i peers and counts its bytes', async (n) => {
    const ring = makeRing(n, { chunkBytes: 64 });
    for (const bytes of [0, 1, 63, 64, 65, 10_000]) {
      const before = ring.peers.map((p) => ({ ...p.comm.stats }));
      await Promise.all(ring.peers.map((p) => p.comm.shift(bytes)));
      ring.peers.forEach((p, r) => {
        const frames = n === 1 ? 0 : chunkCount(bytes, 64);
        expect(p.comm.stats.framesSent - before[r]!.framesSent).toBe(frames);
        expect(p.comm.stats.framesReceived - before[r]!.framesReceived).toBe(frames);
        expect(p.comm.stats.payloadBytesSent - before[r]!.payloadBytesSent).toBe(n === 1 ? 0 : bytes);
      });
    }
  });

  it.each([1, 2, 3, 4, 6])('allToAllSum equals the exact sum on %i peers', async (n) => {
    const rnd = mulberry32(n * 7);
    for (const chunkBytes of [64, DEFAULT_CHUNK_BYTES]) {
      const ring = makeRing(n, { chunkBytes });
      for (const len of [0, 1, 15, 16, 17, 1001]) {
        const inputs = ring.peers.map(() => randInts(rnd, len));
        const copies = inputs.map((v) => v.slice());
        const got = await onAll(ring, (p, r) => p.comm.allToAllSum(inputs[r]!));
        expect(firstDiff(got[0]!, exactSum(inputs))).toBe(-1);
        inputs.forEach((v, r) => expect(sameBits(v, copies[r]!)).toBe(true));
      }
    }
  });

  it('allToAllSum moves (N-1) copies of the vector per peer', async () => {
    const n = 4;
    const ring = makeRing(n);
    await Promise.all(ring.peers.map((p) => p.comm.allToAllSum(new Float32Array(100))));
    for (const p of ring.peers) expect(p.comm.stats.payloadBytesSent).toBe((n - 1) * 400);
  });
});

describe('Communicator runs collectives one at a time, in call order', () => {
  /** The same script on every peer: mixed collectives whose results are checked afterwards. */
  function script(p: Peer, r: number, n: number, seed: number): Promise<unknown>[] {
    const rnd = mulberry32(seed + r);
    return [
      p.comm.allreduce(randInts(rnd, 1000)),
      p.comm.broadcast(n - 1, r === n - 1 ? new Uint8Array([1, 2, 3, 4, 5]) : null),
      p.comm.barrier(),
      p.comm.allToAllSum(new Float32Array(50).fill(r)),
      p.comm.shift(500),
      p.comm.allreduceMean(new Float32Array(7).fill(r), 1),
      p.comm.allreduce(new Float32Array([r, 1])),
    ];
  }

  function check(results: unknown[][], n: number, seed: number): void {
    const sum = exactSum(Array.from({ length: n }, (_, r) => randInts(mulberry32(seed + r), 1000)));
    const rankSum = (n * (n - 1)) / 2;
    for (const res of results) {
      expect(firstDiff(res[0] as Float32Array, sum)).toBe(-1);
      expect([...(res[1] as Uint8Array)]).toEqual([1, 2, 3, 4, 5]);
      expect(res[2]).toBeUndefined();
      expect((res[3] as Float32Array).every((x) => x === rankSum)).toBe(true);
      expect(res[4]).toBeUndefined();
      const mean = res[5] as { mean: Float32Array; count: number };
      expect(mean.count).toBe(n);
      expect(mean.mean.every((x) => x === Math.fround(rankSum / n))).toBe(true);
      expect([...(res[6] as Float32Array)]).toEqual([rankSum, n]);
    }
  }

  it('gives correct results when each collective is awaited in turn', async () => {
    const n = 4;
    const ring = makeRing(n, { chunkBytes: 128 });
    const results: unknown[][] = ring.peers.map(() => []);
    const rnd = mulberry32(5);
    for (let i = 0; i < 3; i++) {
      const outs = await Promise.all(
        ring.peers.map(async (p, r) => {
          const out: unknown[] = [];
          for (const c of script(p, r, n, 1)) out.push(await c);
          return out;
        }),
      );
      outs.forEach((o, r) => (results[r] = o));
      check(results, n, 1);
      // Also a plain allreduce in between, for good measure.
      const v = ring.peers.map(() => randInts(rnd, 77));
      const got = await onAll(ring, (p, r) => p.comm.allreduce(v[r]!));
      expect(firstDiff(got[0]!, exactSum(v))).toBe(-1);
    }
  });

  it.each([2, 3, 5])('serialises collectives called without awaiting (%i peers)', async (n) => {
    const ring = makeRing(n, { chunkBytes: 64 });
    const pending = ring.peers.map((p, r) => script(p, r, n, 40));
    const results = await Promise.all(pending.map((ps) => Promise.all(ps)));
    check(results, n, 40);
  });
});

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

type FaultKind = 'none' | 'drop' | 'delay' | 'close' | 'crash';
const FAULT_KINDS: FaultKind[] = ['drop', 'delay', 'close', 'crash'];
/** Long enough that a 20 ms failure detection wins the race even on a loaded 2-core machine. */
const TIMEOUT = 1200;
/** Slack for timers and a busy event loop (tests in this block run concurrently). */
const MARGIN = 1500;

function faultOf(kind: FaultKind, after: number): Fault | null {
  switch (kind) {
    case 'none':
      return null;
    case 'drop':
      return { kind, after };
    case 'delay':
      return { kind, after, ms: TIMEOUT + 250 };
    case 'close':
      return { kind, after };
    case 'crash':
      return { kind, after, detectMs: 20 };
  }
}

const isLinkFault = (k: FaultKind | undefined): boolean => k === 'close' || k === 'crash';

/**
 * Runs one allreduce on `n` peers with the faults armed, and checks every peer's outcome:
 * - a result is always the exact sum (a failed collective never yields a partial result);
 * - a non-faulty peer next to a closed or crashed peer fails with 'peer-down', before its timeout;
 * - any other failure of a non-faulty peer is a 'timeout', at its timeout;
 * - `mustFail` peers fail; everything settles within the timeout plus a margin.
 */
async function runWithFaults(
  ex: typeof expect,
  n: number,
  faults: Map<number, Fault>,
  mustFail: (rank: number) => boolean,
): Promise<Outcome<Float32Array>[]> {
  const segElems = 64; // 4 chunks of 16 elements per segment: 8(N-1) frames per peer
  const ring = makeRing(n, { chunkBytes: 64, timeoutMs: TIMEOUT });
  const rnd = mulberry32(n * 1000 + faults.size);
  const inputs = ring.peers.map(() => randInts(rnd, segElems * n));
  const want = exactSum(inputs);
  for (const [rank, f] of faults) ring.peers[rank]!.ep.inject(f);
  const res = await outcomes(ring.peers.map((p, r) => p.comm.allreduce(inputs[r]!)));
  const kindAt = (r: number): FaultKind | undefined => faults.get(r)?.kind as FaultKind | undefined;
  res.forEach((o, r) => {
    const label = `rank ${r} of ${n}, faults ${JSON.stringify([...faults])}: ${o.ok ? 'ok' : String(o.error)} after ${o.ms.toFixed(0)} ms`;
    ex(o.ms, label).toBeLessThan(TIMEOUT + MARGIN);
    if (o.ok) {
      ex(firstDiff(o.value, want), label).toBe(-1);
      ex(mustFail(r), label).toBe(false);
      return;
    }
    ex(o.error, label).toBeInstanceOf(RingError);
    const code = (o.error as RingError).code;
    if (faults.has(r)) {
      ex(['timeout', 'peer-down'], label).toContain(code);
      return;
    }
    const nextToLinkFault = isLinkFault(kindAt((r + 1) % n)) || isLinkFault(kindAt((r + n - 1) % n));
    if (nextToLinkFault) {
      ex(code, label).toBe('peer-down');
      ex(o.ms, label).toBeLessThan(TIMEOUT);
    } else {
      ex(code, label).toBe('timeout');
      ex(o.ms, label).toBeGreaterThanOrEqual(TIMEOUT - 2);
    }
  });
  return res;
}

describe.concurrent('Communicator under injected faults (one faulty peer)', () => {
  for (const n of [3, 5]) {
    const perPeer = 8 * (n - 1); // frames each peer sends in one allreduce
    const phases: [string, number][] = [
      ['before the first frame', 0],
      ['in reduce-scatter', perPeer / 4],
      ['at the first all-gather frame', perPeer / 2],
      ['in all-gather', (3 * perPeer) / 4],
    ];
    for (const kind of FAULT_KINDS) {
      for (const [phase, after] of phases) {
        const inRs = after < perPeer / 2;
        it(`${n} peers, ${kind} on rank 1 ${phase} (after ${after} frames)`, async ({ expect: ex }) => {
          const res = await runWithFaults(ex, n, new Map([[1, faultOf(kind, after)!]]), (r) =>
            // In reduce-scatter every peer still needs the faulty peer's data; later, at least its successor does.
            r !== 1 ? inRs || r === 2 : false,
          );
          // A closed peer learns of it at once too.
          if (kind === 'close' && !res[1]!.ok) ex(codeOf(res[1]!)).toBe('peer-down');
        });
      }
    }
  }
});

describe.concurrent('Communicator under a grid of fault pairs', () => {
  const kinds: FaultKind[] = ['none', ...FAULT_KINDS];
  for (const [a, b] of [
    [1, 2],
    [1, 3],
  ] as const) {
    for (const ka of kinds) {
      for (const kb of kinds) {
        it(`4 peers: rank ${a} ${ka}, rank ${b} ${kb}`, async ({ expect: ex }) => {
          const faults = new Map<number, Fault>();
          const fa = faultOf(ka, 0);
          // Both from the start: a later fault could never fire, as its peer may fail first.
          const fb = faultOf(kb, 0);
          if (fa) faults.set(a, fa);
          if (fb) faults.set(b, fb);
          const res = await runWithFaults(ex, 4, faults, (r) => faults.size > 0 && !faults.has(r));
          if (faults.size === 0) ex(res.every((o) => o.ok)).toBe(true);
        });
      }
    }
  }
});

describe.concurrent('Communicator faults in other collectives', () => {
  it("broadcast: peers downstream of a closed peer fail with 'peer-down', upstream ones finish", async ({ expect: ex }) => {
    const ring = makeRing(5, { chunkBytes: 64, timeoutMs: TIMEOUT });
    const data = randBytes(mulberry32(3), 1000);
    ring.peers[2]!.ep.inject({ kind: 'close', after: 3 });
    const res = await outcomes(ring.peers.map((p, r) => p.comm.broadcast(0, r === 0 ? data : null)));
    ex(res[0]!.ok || codeOf(res[0]!) === 'peer-down').toBe(true);
    const r1 = res[1]!;
    ex(r1.ok && sameBits(r1.value, data)).toBe(true);
    ex(codeOf(res[3]!)).toBe('peer-down');
    ex(codeOf(res[4]!)).toBe('timeout');
    for (const o of res) ex(o.ms).toBeLessThan(TIMEOUT + MARGIN);
  });

  it("allToAllSum: every peer fails with 'peer-down' when any peer crashes", async ({ expect: ex }) => {
    const ring = makeRing(4, { chunkBytes: 64, timeoutMs: TIMEOUT });
    ring.peers[3]!.ep.inject({ kind: 'crash', after: 2, detectMs: 10 });
    const res = await outcomes(ring.peers.map((p) => p.comm.allToAllSum(new Float32Array(200))));
    for (const r of [0, 1, 2]) {
      ex(codeOf(res[r]!)).toBe('peer-down');
      ex(res[r]!.ms).toBeLessThan(TIMEOUT);
    }
    ex(codeOf(res[3]!)).toBe('timeout');
  });

  it("shift: a dropped link fails the receiver with 'timeout'", async ({ expect: ex }) => {
    const ring = makeRing(3, { chunkBytes: 64, timeoutMs: TIMEOUT });
    ring.peers[0]!.ep.inject({ kind: 'drop', after: 1 });
    const res = await outcomes(ring.peers.map((p) => p.comm.shift(640)));
    ex(codeOf(res[1]!)).toBe('timeout');
    ex(res[2]!.ok).toBe(true);
  });

  it("a collective started after a neighbour went down fails with 'peer-down' at once, not at its timeout", async ({ expect: ex }) => {
    const ring = makeRing(3, { timeoutMs: 5_000 });
    ring.peers[2]!.ep.inject({ kind: 'close' });
    // p0 receives from p2 (its predecessor), and p1 sends to p2 (its successor).
    const res = await outcomes<unknown>([ring.peers[0]!.comm.allreduce(new Float32Array(4)), ring.peers[1]!.comm.barrier()]);
    for (const o of res) {
      ex(codeOf(o)).toBe('peer-down');
      ex(o.ms).toBeLessThan(1_000);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// close(), AbortSignal, timeouts
// ---------------------------------------------------------------------------------------------

describe.concurrent('Communicator.close and AbortSignal', () => {
  it("close() rejects the running and the queued collectives with 'view-changed'", async () => {
    const ring = makeRing(2, { timeoutMs: 10_000 });
    const c = ring.peers[0]!.comm;
    // Only p0 calls: the first collective waits for p1 forever, the others queue behind it.
    const running = c.allreduce(new Float32Array(10));
    const queued = [c.broadcast(0, new Uint8Array(3)), c.barrier(), c.shift(10)];
    const t0 = performance.now();
    c.close();
    for (const p of [running, ...queued]) expect((await rejectionOf(p)).code).toBe('view-changed');
    expect(performance.now() - t0).toBeLessThan(500);
    // Later calls reject too, and close is idempotent.
    c.close(new RingError('closed', 'again'));
    expect((await rejectionOf(c.allreduce(new Float32Array(1)))).code).toBe('view-changed');
  });

  it('close(reason) rejects with the given reason', async () => {
    const ring = makeRing(2);
    const c = ring.peers[1]!.comm;
    const p = c.allreduce(new Float32Array(3));
    c.close(new RingError('closed', 'page unloading'));
    expect((await rejectionOf(p)).code).toBe('closed');
  });

  it('close() stops a collective whose transport send resolves only after the abort (no hang)', async () => {
    const net = new MemoryNetwork();
    const ids = ['a', 'b', 'c'];
    const view = makeView('room', 0, ids);
    for (const id of ids) net.endpoint(id);
    // b's sends complete late, and ignore the abort: like a congested link whose buffer drains.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const inner = net.endpoint('b');
    const slow: Transport = {
      self: inner.self,
      maxMessageBytes: inner.maxMessageBytes,
      send: (to, msg) => gate.then(() => inner.send(to, msg)),
      onMessage: (h) => inner.onMessage(h),
      onPeerDown: (h) => inner.onPeerDown(h),
    };
    const comm = new Communicator({ transport: slow, mailbox: new Mailbox(slow), view, timeoutMs: 10_000 });
    const p = comm.allreduce(new Float32Array(3)); // one chunk per step: step 1 waits on step 0's receive
    await Promise.resolve();
    comm.close();
    open();
    const [o] = await outcomes([p]);
    expect(codeOf(o!)).toBe('view-changed');
    expect(o!.ms).toBeLessThan(1_000);
  });

  it("an AbortSignal rejects a running collective with 'aborted'", async () => {
    const ring = makeRing(3);
    const ctl = new AbortController();
    const p = ring.peers[0]!.comm.allreduce(new Float32Array(100), { signal: ctl.signal });
    ctl.abort();
    expect((await rejectionOf(p)).code).toBe('aborted');
  });

  it('an AbortSignal whose reason is a RingError rejects with that error', async () => {
    const ring = makeRing(3);
    const ctl = new AbortController();
    const reason = new RingError('view-changed', 'coordinator sent epoch 2');
    const p = ring.peers[1]!.comm.broadcast(0, null, { signal: ctl.signal });
    ctl.abort(reason);
    expect(await rejectionOf(p)).toBe(reason);
  });

  it("an already-aborted signal rejects with 'aborted' without touching the network", async () => {
    const ring = makeRing(2);
    const ctl = new AbortController();
    ctl.abort();
    expect((await rejectionOf(ring.peers[0]!.comm.allreduce(new Float32Array(5), { signal: ctl.signal }))).code).toBe('aborted');
    expect(ring.peers[0]!.comm.stats.framesSent).toBe(0);
  });

  it('a collective rejected before it started still uses up its sequence number, so peers stay in step', async () => {
    const ring = makeRing(2, { timeoutMs: 300 });
    const [a, b] = ring.peers.map((p) => p.comm) as [Communicator, Communicator];
    const ctl = new AbortController();
    ctl.abort();
    // Collective #0: a aborts it before it starts; b runs it alone and times out.
    const r0 = await outcomes([a.allreduce(new Float32Array(2), { signal: ctl.signal }), b.allreduce(new Float32Array(2))]);
    expect(r0.map(codeOf)).toEqual(['aborted', 'timeout']);
    // Collective #1 works on both, and b's stale frames of #0 are discarded.
    const got = await onAll(ring, (p, r) => p.comm.allreduce(new Float32Array([r + 1, 10])));
    expect([...got[0]!]).toEqual([3, 20]);
  });

  it("a per-call timeoutMs overrides the communicator's", async () => {
    const ring = makeRing(2, { timeoutMs: 60_000 });
    const [o] = await outcomes([ring.peers[0]!.comm.allreduce(new Float32Array(1), { timeoutMs: 100 })]);
    expect(codeOf(o!)).toBe('timeout');
    expect(o!.ms).toBeGreaterThanOrEqual(99);
    expect(o!.ms).toBeLessThan(100 + MARGIN);
  });
});

// ---------------------------------------------------------------------------------------------
// Protocol violations
// ---------------------------------------------------------------------------------------------

describe.concurrent('Communicator rejects protocol violations from a neighbour', () => {
  function header(h: Partial<FrameHeader> = {}): FrameHeader {
    return { op: Op.ReduceScatter, dtype: DType.Float32, epoch: 0, seq: 0, segment: 0, chunk: 0, chunks: 1, ...h };
  }

  /** p0 sends `bytes` to p1 before anyone starts; then all three run one allreduce of length 6. */
  async function injectBefore(bytes: Uint8Array): Promise<Outcome<Float32Array>> {
    const ring = makeRing(3, { timeoutMs: 300 });
    await ring.peers[0]!.ep.send('p1', bytes);
    const res = await outcomes(ring.peers.map((p) => p.comm.allreduce(new Float32Array(6).fill(1))));
    return res[1]!;
  }

  it.each<[string, Uint8Array, RingErrorCode]>([
    ['a truncated frame', new Uint8Array(10), 'protocol'],
    ['garbage of frame size', new Uint8Array(40).fill(0xab), 'protocol'],
    [
      'a frame of another protocol version',
      (() => {
        const f = encodeFrame(header({ segment: 0 }), new Uint8Array(8));
        f[2] = 99;
        return f;
      })(),
      'protocol',
    ],
    [
      'a broadcast frame where a reduce-scatter frame is due',
      encodeFrame(header({ op: Op.Broadcast, dtype: DType.Bytes }), new Uint8Array(8)),
      'protocol',
    ],
    ['a frame for the wrong segment', encodeFrame(header({ segment: 2 }), new Uint8Array(8)), 'protocol'],
    ['a frame with the wrong chunk count', encodeFrame(header({ chunks: 2 }), new Uint8Array(8)), 'protocol'],
    ['a frame of the wrong size', encodeFrame(header(), new Uint8Array(12)), 'protocol'],
    ['a bytes frame where floats are due', encodeFrame(header({ dtype: DType.Bytes }), new Uint8Array(8)), 'protocol'],
    ['a frame of a later collective (desync)', encodeFrame(header({ seq: 1 }), new Uint8Array(8)), 'protocol'],
    ['a frame of a later epoch', encodeFrame(header({ epoch: 1 }), new Uint8Array(8)), 'view-changed'],
  ])('%s -> %s, promptly', async (_name, bytes, code) => {
    const o = await injectBefore(bytes);
    expect(codeOf(o)).toBe(code);
    expect(o.ms).toBeLessThan(250);
  });

  it('frames of an older collective or an older epoch are ignored', async () => {
    const ring = makeRing(2, { timeoutMs: 1_000 });
    await onAll(ring, (p) => p.comm.allreduce(new Float32Array(2)));
    // A stray frame of collective #0 arrives while #1 runs: discarded.
    await ring.peers[0]!.ep.send('p1', encodeFrame(header({ seq: 0, segment: 1 }), new Uint8Array(4)));
    expect([...(await onAll(ring, (p) => p.comm.allreduce(new Float32Array([1, 2]))))[0]!]).toEqual([2, 4]);
    // A stray frame of epoch 0 arrives in epoch 1: discarded.
    const next = nextView(ring, ['p0', 'p1']);
    await ring.peers[0]!.ep.send('p1', encodeFrame(header({ epoch: 0, seq: 7, segment: 1 }), new Uint8Array(4)));
    expect([...(await onAll(next, (p) => p.comm.allreduce(new Float32Array([1, 2]))))[0]!]).toEqual([2, 4]);
  });

  it("a garbage frame arriving mid-collective fails the receiver with 'protocol'", async () => {
    const ring = makeRing(3, { chunkBytes: 64, timeoutMs: 500 });
    let frames = 0;
    const onFrame = (): void => {
      if (++frames === 2) void ring.peers[0]!.ep.send('p1', new Uint8Array(33));
    };
    const res = await outcomes(ring.peers.map((p, r) => p.comm.allreduce(new Float32Array(3000).fill(r), r === 1 ? { onFrame } : {})));
    expect(codeOf(res[1]!)).toBe('protocol');
    expect(res[1]!.ms).toBeLessThan(300);
    expect(ring.peers[1]!.mb.badFrameCount).toBe(1);
    // Its neighbours learn of it only by its silence.
    expect(codeOf(res[0]!)).toBe('timeout');
    expect(codeOf(res[2]!)).toBe('timeout');
  });
});

// ---------------------------------------------------------------------------------------------
// Recovery on a new view
// ---------------------------------------------------------------------------------------------

describe.concurrent('Communicator on a new view after a failure', () => {
  it.each<FaultKind>(FAULT_KINDS)('survivors of a %s fault re-form the ring at epoch+1 and sum exactly', async (kind) => {
    const ring = makeRing(5, { chunkBytes: 64, timeoutMs: 300 });
    const rnd = mulberry32(11);
    ring.peers[2]!.ep.inject(faultOf(kind, 7)!);
    const first = await outcomes(ring.peers.map((p) => p.comm.allreduce(randInts(rnd, 500))));
    for (const r of [0, 1, 3, 4]) expect(['timeout', 'peer-down']).toContain(codeOf(first[r]!));
    // Stale frames of epoch 0 are still buffered (or, for 'delay', still on their way).
    const survivors = ['p0', 'p1', 'p3', 'p4'];
    const next = nextView(ring, survivors, { chunkBytes: 64, timeoutMs: 2_000 });
    for (let round = 0; round < 3; round++) {
      const inputs = next.peers.map(() => randInts(rnd, 1001));
      const got = await onAll(next, (p, r) => p.comm.allreduce(inputs[r]!));
      expect(firstDiff(got[0]!, exactSum(inputs))).toBe(-1);
    }
    await Promise.all(next.peers.map((p) => p.comm.barrier()));
  });

  it('discards frames of the old epoch that arrive after the new epoch has begun', async () => {
    const ring = makeRing(3, { chunkBytes: 64, timeoutMs: 200 });
    // p1's frames of epoch 0 arrive 400 ms late, in the middle of epoch 1.
    ring.peers[1]!.ep.inject({ kind: 'delay', ms: 400 });
    const first = await outcomes(ring.peers.map((p) => p.comm.allreduce(new Float32Array(300).fill(1))));
    expect(first.map(codeOf)).toEqual(['timeout', 'timeout', 'timeout']);
    ring.peers[1]!.ep.inject({ kind: 'delay', ms: 0, after: 0 });
    const next = nextView(ring, ['p0', 'p1', 'p2'], { chunkBytes: 64, timeoutMs: 3_000 });
    const rnd = mulberry32(12);
    const t0 = performance.now();
    let rounds = 0;
    // Keep summing until the stale frames have certainly arrived, and a few rounds after.
    while (performance.now() - t0 < 600 || rounds < 3) {
      const inputs = next.peers.map(() => randInts(rnd, 300));
      const got = await onAll(next, (p, r) => p.comm.allreduce(inputs[r]!));
      expect(firstDiff(got[0]!, exactSum(inputs))).toBe(-1);
      rounds++;
    }
    expect(ring.peers.every((p) => p.mb.badFrameCount === 0)).toBe(true);
  });

  it("a peer that is already in the new epoch makes an old-epoch collective fail with 'view-changed'", async () => {
    const ring = makeRing(2, { timeoutMs: 2_000 });
    const old = ring.peers[1]!.comm.allreduce(new Float32Array(4));
    // p0 has moved on to epoch 1 and starts its first collective there.
    ring.peers[0]!.comm.close();
    const fresh = new Communicator({
      transport: ring.peers[0]!.ep,
      mailbox: ring.peers[0]!.mb,
      view: makeView('room', 1, ['p0', 'p1']),
      timeoutMs: 300,
    });
    const ahead = fresh.allreduce(new Float32Array(4));
    const [o] = await outcomes([old]);
    expect(codeOf(o!)).toBe('view-changed');
    expect(o!.ms).toBeLessThan(300);
    expect((await rejectionOf(ahead)).code).toBe('timeout');
  });
});

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

describe('Communicator options', () => {
  const net = new MemoryNetwork();
  const ep = net.endpoint('x');
  const mb = new Mailbox(ep);
  const view = makeView('r', 0, ['x']);

  it('throws RangeError when the transport is not a member of the view', () => {
    expect(() => new Communicator({ transport: ep, mailbox: mb, view: makeView('r', 0, ['y']) })).toThrow(/not a member/);
  });

  it('rounds chunkBytes down to a multiple of 4 and rejects less than 4', () => {
    expect(new Communicator({ transport: ep, mailbox: mb, view, chunkBytes: 70 }).chunkBytes).toBe(68);
    expect(() => new Communicator({ transport: ep, mailbox: mb, view, chunkBytes: 3 })).toThrow(RangeError);
  });

  it('caps chunkBytes by the transport and by the largest frame', () => {
    const small = new MemoryNetwork({ maxMessageBytes: 1000 }).endpoint('x');
    expect(new Communicator({ transport: small, mailbox: new Mailbox(small), view, chunkBytes: 4096 }).chunkBytes).toBe(968);
    const big = new MemoryNetwork({ maxMessageBytes: 4 << 20 }).endpoint('x');
    expect(new Communicator({ transport: big, mailbox: new Mailbox(big), view, chunkBytes: 1 << 20 }).chunkBytes).toBeLessThanOrEqual(
      MAX_FRAME_PAYLOAD,
    );
  });

  it('works with a transport that allows messages larger than a frame', async () => {
    const ring = makeRing(3, { maxMessageBytes: 4 << 20, chunkBytes: 1 << 20 });
    const rnd = mulberry32(4);
    const inputs = ring.peers.map(() => randInts(rnd, 300_000));
    const got = await onAll(ring, (p, r) => p.comm.allreduce(inputs[r]!));
    expect(firstDiff(got[0]!, exactSum(inputs))).toBe(-1);
  });

  it('rejects a timeout that is not a positive number of ms a timer can hold', async () => {
    for (const t of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
      expect(() => new Communicator({ transport: ep, mailbox: mb, view, timeoutMs: t }), String(t)).toThrow(RangeError);
    }
    const c = new Communicator({ transport: ep, mailbox: mb, view });
    await expect(c.allreduce(new Float32Array(1), { timeoutMs: Number.POSITIVE_INFINITY })).rejects.toThrow(RangeError);
    // A 1-peer allreduce with a valid timeout still works after that.
    expect([...(await c.allreduce(new Float32Array([4])))]).toEqual([4]);
  });

  it('exposes rank, size and view', () => {
    const ring = makeRing(4);
    ring.peers.forEach((p, r) => {
      expect([p.comm.rank, p.comm.size, p.comm.view.epoch]).toEqual([r, 4, 0]);
      expect(p.comm.pos.next).toBe(`p${(r + 1) % 4}`);
      expect(p.comm.pos.prev).toBe(`p${(r + 3) % 4}`);
    });
  });
});
