import { DType, float32Payload, Op } from '../../protocol/frame.ts';
import { abortReason, RingError } from '../errors.ts';
import { f32Bytes, receiveFrame, sendFrame, type CollectiveContext } from './context.ts';
import { chunkCount, chunkRange, mod, segmentRange } from './partition.ts';

/**
 * Ring allreduce (sum) of `buf` in place: N−1 reduce-scatter steps, then N−1 all-gather steps.
 * Each peer sends and receives 2(N−1)/N of the vector. Chunks are pipelined: chunk c of step s is
 * forwarded as soon as chunk c of step s−1 has been received and reduced, while later chunks are
 * still arriving, so sends overlap receives.
 *
 * On failure `buf` holds a partial result and must be discarded.
 */
export async function ringAllreduce(ctx: CollectiveContext, buf: Float32Array): Promise<void> {
  const { rank, size: n, next, prev } = ctx.pos;
  if (n === 1) return;
  const chunkElems = ctx.chunkBytes / 4;
  const steps = 2 * (n - 1);
  const sendSeg = (s: number): number => (s < n - 1 ? mod(rank - s, n) : mod(rank + 1 - (s - n + 1), n));
  const recvSeg = (s: number): number => (s < n - 1 ? mod(rank - s - 1, n) : mod(rank - (s - n + 1), n));
  const opOf = (s: number): Op => (s < n - 1 ? Op.ReduceScatter : Op.AllGather);

  // Receiver progress: steps < doneStep are complete, and chunks < doneChunk of step doneStep.
  let doneStep = 0;
  let doneChunk = 0;
  const wakers = new Set<() => void>();
  const ready = (s: number, c: number): boolean =>
    s === 0 || doneStep > s - 1 || (doneStep === s - 1 && doneChunk > c);
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
    for (let s = 0; s < steps; s++) {
      const segment = sendSeg(s);
      const seg = segmentRange(buf.length, n, segment);
      const chunks = chunkCount(seg.end - seg.start, chunkElems);
      for (let c = 0; c < chunks; c++) {
        while (!ready(s, c)) {
          await progressed();
          if (ctx.signal.aborted) throw abortReason(ctx.signal);
        }
        if (ctx.signal.aborted) throw abortReason(ctx.signal);
        const r = chunkRange(seg, chunkElems, c);
        await sendFrame(ctx, next, { op: opOf(s), dtype: DType.Float32, segment, chunk: c, chunks }, f32Bytes(buf, r.start, r.end));
      }
    }
  };

  const recvLoop = async (): Promise<void> => {
    for (let s = 0; s < steps; s++) {
      const segment = recvSeg(s);
      const seg = segmentRange(buf.length, n, segment);
      const chunks = chunkCount(seg.end - seg.start, chunkElems);
      const reduce = s < n - 1;
      for (let c = 0; c < chunks; c++) {
        const r = chunkRange(seg, chunkElems, c);
        const f = await receiveFrame(ctx, prev, {
          op: opOf(s),
          dtype: DType.Float32,
          segment,
          chunk: c,
          chunks,
          bytes: (r.end - r.start) * 4,
        });
        const v = float32Payload(f);
        if (reduce) {
          for (let i = 0, j = r.start; i < v.length; i++, j++) buf[j]! += v[i]!;
        } else {
          buf.set(v, r.start);
        }
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
