import { Op } from '../../protocol/frame.ts';
import { decodeChunk, encodeChunk, splitChunk, WIRE_DTYPE, wireBytes, type WireSpec } from '../../protocol/wire.ts';
import { abortReason, RingError } from '../errors.ts';
import { receiveFrame, sendFrame, type CollectiveContext } from './context.ts';
import { chunkCount, chunkRange, mod, type Range, segmentRange } from './partition.ts';

/** What a ring allreduce runs on, besides its context and buffer. */
export interface RingOptions {
  /** The values' type on the wire (protocol/wire.ts); default float32. */
  wire?: WireSpec;
  /** Runs one half only: the reduce-scatter (peer r ends with the sum of segment r + 1, mod N) or the all-gather. */
  only?: 'reduce-scatter' | 'all-gather';
  /**
   * The element range of segment i, for i in [0, N); default `segmentRange(buf.length, N, i)`. The
   * segments must partition `buf` in ring order, and alike on every peer of the ring.
   */
  segment?: (index: number) => Range;
  /**
   * Added to the segment index in every frame header, so that the frames of several rings that one
   * collective runs (two-level.ts) cannot be taken for each other: each ring checks its own range.
   */
  tag?: number;
}

/**
 * Ring allreduce (sum) of `buf` in place: N−1 reduce-scatter steps, then N−1 all-gather steps.
 * Each peer sends and receives 2(N−1)/N of the vector. Chunks are pipelined: chunk c of step s is
 * forwarded as soon as chunk c of step s−1 has been received and reduced, while later chunks are
 * still arriving, so sends overlap receives.
 *
 * The ring is `ctx.pos`: a collective may run it on a sub-ring of its view by passing a context
 * with another position (two-level.ts does).
 *
 * With a quantised `wire` (protocol/wire.ts) each hop of the reduce-scatter sends its partial sum
 * quantised; in the all-gather the owner of a segment replaces its values by their decoded
 * quantisation and every peer forwards the bytes it received unchanged, so all peers end with the
 * same bits. `only: 'all-gather'` skips the reduce-scatter: an all-gather where peer r's data sits
 * in segment r + 1 (mod N) and the other segments are overwritten. `only: 'reduce-scatter'` stops
 * after it: peer r then holds the sum of segment r + 1 (kept at full precision whatever the wire)
 * and partial sums elsewhere.
 *
 * On failure `buf` holds a partial result and must be discarded.
 */
export async function ringAllreduce(ctx: CollectiveContext, buf: Float32Array, o: RingOptions = {}): Promise<void> {
  const { rank, size: n, next, prev } = ctx.pos;
  if (n === 1) return;
  const { wire, exact } = o.wire ?? { wire: 'f32', exact: 0 };
  const dtype = WIRE_DTYPE[wire];
  const exactFrom = buf.length - exact;
  // Chunks hold the same values whatever the wire, so both ends agree on their ranges.
  const chunkElems = ctx.chunkBytes / 4;
  const first = o.only === 'all-gather' ? n - 1 : 0;
  const steps = o.only === 'reduce-scatter' ? n - 1 : 2 * (n - 1);
  const tag = o.tag ?? 0;
  const segmentOf = o.segment ?? ((i: number): Range => segmentRange(buf.length, n, i));
  // All-gather payloads received, to forward unchanged at the next step (key: segment, chunk).
  const forward = new Map<string, Uint8Array>();
  const sendSeg = (s: number): number => (s < n - 1 ? mod(rank - s, n) : mod(rank + 1 - (s - n + 1), n));
  const recvSeg = (s: number): number => (s < n - 1 ? mod(rank - s - 1, n) : mod(rank - (s - n + 1), n));
  const opOf = (s: number): Op => (s < n - 1 ? Op.ReduceScatter : Op.AllGather);

  // Receiver progress: steps < doneStep are complete, and chunks < doneChunk of step doneStep.
  let doneStep = first;
  let doneChunk = 0;
  const wakers = new Set<() => void>();
  const ready = (s: number, c: number): boolean => s === first || doneStep > s - 1 || (doneStep === s - 1 && doneChunk > c);
  // Resolves on the receiver's next progress or on abort. The signal may already be aborted (the
  // abort can land while a send is settling): then resolve at once, since 'abort' will not fire again.
  const progressed = (): Promise<void> =>
    new Promise<void>((resolve) => {
      if (ctx.signal.aborted) {
        resolve();
        return;
      }
      const done = (): void => {
        wakers.delete(done);
        ctx.signal.removeEventListener('abort', done);
        resolve();
      };
      wakers.add(done);
      ctx.signal.addEventListener('abort', done);
    });

  const sendLoop = async (): Promise<void> => {
    for (let s = first; s < steps; s++) {
      const segment = sendSeg(s);
      const seg = segmentOf(segment);
      const chunks = chunkCount(seg.end - seg.start, chunkElems);
      for (let c = 0; c < chunks; c++) {
        while (!ready(s, c)) {
          await progressed();
          if (ctx.signal.aborted) throw abortReason(ctx.signal);
        }
        if (ctx.signal.aborted) throw abortReason(ctx.signal);
        const r = chunkRange(seg, chunkElems, c);
        const key = `${segment}:${c}`;
        let payload = forward.get(key);
        forward.delete(key);
        if (!payload) {
          const values = buf.subarray(r.start, r.end);
          const { exact: exactHere } = splitChunk(r.start, r.end, exactFrom);
          payload = encodeChunk(wire, values, exactHere);
          // The owner's first all-gather send: keep what the others will decode.
          if (s === n - 1 && wire !== 'f32') decodeChunk(wire, payload, exactHere, values, false);
        }
        await sendFrame(ctx, next, { op: opOf(s), dtype, segment: tag + segment, chunk: c, chunks }, payload);
      }
    }
  };

  const recvLoop = async (): Promise<void> => {
    for (let s = first; s < steps; s++) {
      const segment = recvSeg(s);
      const seg = segmentOf(segment);
      const chunks = chunkCount(seg.end - seg.start, chunkElems);
      const reduce = s < n - 1;
      for (let c = 0; c < chunks; c++) {
        const r = chunkRange(seg, chunkElems, c);
        const part = splitChunk(r.start, r.end, exactFrom);
        const f = await receiveFrame(ctx, prev, {
          op: opOf(s),
          dtype,
          segment: tag + segment,
          chunk: c,
          chunks,
          bytes: wireBytes(wire, part.quantised, part.exact),
        });
        decodeChunk(wire, f.payload, part.exact, buf.subarray(r.start, r.end), reduce);
        // The last all-gather step's segment goes no further.
        if (!reduce && s < steps - 1) forward.set(`${segment}:${c}`, f.payload);
        if (c === chunks - 1) {
          doneStep = s + 1;
          doneChunk = 0;
        } else {
          doneChunk = c + 1;
        }
        for (const w of wakers) w();
      }
    }
  };

  await settleBoth(ctx, sendLoop(), recvLoop());
}

/**
 * Waits for concurrent loops of one collective. The first failure aborts the collective (so the
 * other loop stops promptly) and is rethrown once both have settled: no floating promise remains.
 */
export async function settleBoth(ctx: CollectiveContext, ...loops: Promise<void>[]): Promise<void> {
  await Promise.allSettled(
    loops.map((p) =>
      p.catch((e: unknown) => {
        ctx.abort(e instanceof RingError ? e : new RingError('protocol', String(e)));
      }),
    ),
  );
  if (ctx.signal.aborted) throw abortReason(ctx.signal);
}
