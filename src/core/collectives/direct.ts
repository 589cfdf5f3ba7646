import { DType, float32Payload, Op } from '../../protocol/frame.ts';
import { f32Bytes, receiveFrame, sendFrame, type CollectiveContext } from './context.ts';
import { chunkCount, mod } from './partition.ts';
import { settleBoth } from './ring-allreduce.ts';

/**
 * Concurrent ring shift: every peer sends `bytes` bytes to its successor while receiving as many
 * from its predecessor. It measures the per-link speed under the same load as a ring step.
 */
export async function ringShift(ctx: CollectiveContext, bytes: number): Promise<void> {
  const { size: n, next, prev } = ctx.pos;
  if (n === 1) return;
  const payload = new Uint8Array(Math.min(bytes, ctx.chunkBytes));
  const chunks = chunkCount(bytes, ctx.chunkBytes);
  const size = (c: number): number => Math.min(ctx.chunkBytes, bytes - c * ctx.chunkBytes);
  const sendLoop = async (): Promise<void> => {
    for (let c = 0; c < chunks; c++) {
      await sendFrame(
        ctx,
        next,
        { op: Op.Direct, dtype: DType.Bytes, segment: 0, chunk: c, chunks },
        payload.subarray(0, Math.max(0, size(c))),
      );
    }
  };
  const recvLoop = async (): Promise<void> => {
    for (let c = 0; c < chunks; c++) {
      await receiveFrame(ctx, prev, { op: Op.Direct, dtype: DType.Bytes, chunk: c, chunks, bytes: Math.max(0, size(c)) });
    }
  };
  await settleBoth(ctx, sendLoop(), recvLoop());
}

/**
 * The naive all-to-all sum (DISCO's decentralised scheme): every peer sends its whole vector to
 * every other peer and sums what it receives, in rank order so every peer gets identical bits.
 * Sends and receives (N−1)·S bytes per peer; kept as the baseline the ring is measured against.
 */
export async function allToAllSum(ctx: CollectiveContext, data: Float32Array): Promise<Float32Array> {
  const { rank, size: n } = ctx.pos;
  const chunkElems = ctx.chunkBytes / 4;
  const chunks = chunkCount(data.length, chunkElems);
  const received: Float32Array[] = [];
  received[rank] = data;
  const sendTo = async (to: string): Promise<void> => {
    for (let c = 0; c < chunks; c++) {
      const start = c * chunkElems;
      const end = Math.min(data.length, start + chunkElems);
      await sendFrame(ctx, to, { op: Op.Direct, dtype: DType.Float32, segment: rank, chunk: c, chunks }, f32Bytes(data, start, end));
    }
  };
  const receiveFrom = async (from: string, fromRank: number): Promise<void> => {
    const v = new Float32Array(data.length);
    for (let c = 0; c < chunks; c++) {
      const start = c * chunkElems;
      const end = Math.min(data.length, start + chunkElems);
      const f = await receiveFrame(ctx, from, {
        op: Op.Direct,
        dtype: DType.Float32,
        segment: fromRank,
        chunk: c,
        chunks,
        bytes: (end - start) * 4,
      });
      v.set(float32Payload(f), start);
    }
    received[fromRank] = v;
  };
  // In N−1 rounds (send to rank+k while receiving from rank−k), so each peer drives one outgoing
  // and one incoming link at a time instead of 2(N−1) at once: the same bytes as the naive
  // scheme, with less contention, which makes it a stronger baseline.
  const members = ctx.view.members;
  for (let k = 1; k < n; k++) {
    const from = members[mod(rank - k, n)]!;
    await settleBoth(ctx, sendTo(members[mod(rank + k, n)]!.peerId), receiveFrom(from.peerId, from.rank));
  }
  const out = new Float32Array(data.length);
  for (let r = 0; r < n; r++) {
    const v = received[r]!;
    for (let i = 0; i < out.length; i++) out[i]! += v[i]!;
  }
  return out;
}
