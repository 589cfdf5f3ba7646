import { MAX_CHECKPOINT_BYTES } from '../../protocol/checkpoint.ts';
import { DType, Op } from '../../protocol/frame.ts';
import { RingError } from '../errors.ts';
import { receiveFrame, sendFrame, type CollectiveContext } from './context.ts';
import { chunkCount } from './partition.ts';

/** The most a receiver accepts unless the caller says otherwise: the largest state a run broadcasts is a checkpoint. */
export const DEFAULT_MAX_BROADCAST_BYTES = MAX_CHECKPOINT_BYTES;

/**
 * Broadcast of a byte buffer from rank `root` along the ring (a pipelined chain): the root sends
 * chunks to its successor and every other peer forwards each chunk as it arrives, except the
 * predecessor of the root. Returns the root's bytes on every peer (the root gets its own buffer back).
 * A receiver takes at most `maxBytes`: a predecessor that announces or sends more fails the
 * collective with 'protocol' before more is buffered.
 */
export async function ringBroadcast(
  ctx: CollectiveContext,
  root: number,
  data: Uint8Array | null,
  maxBytes = DEFAULT_MAX_BROADCAST_BYTES,
): Promise<Uint8Array> {
  const { rank, size: n, next, prev } = ctx.pos;
  if (root < 0 || root >= n || !Number.isInteger(root)) {
    throw new RangeError(`broadcast: root ${root} is not a rank of this ${n}-peer view`);
  }
  if (rank === root) {
    if (!data) throw new TypeError('broadcast: the root must pass the data to send');
    if (n === 1) return data;
    const chunks = chunkCount(data.byteLength, ctx.chunkBytes);
    for (let c = 0; c < chunks; c++) {
      const part = data.subarray(c * ctx.chunkBytes, Math.min(data.byteLength, (c + 1) * ctx.chunkBytes));
      await sendFrame(ctx, next, { op: Op.Broadcast, dtype: DType.Bytes, segment: root, chunk: c, chunks }, part);
    }
    return data;
  }
  const forward = (rank + 1) % n !== root;
  const parts: Uint8Array[] = [];
  let total = 0;
  let chunks = 1;
  for (let c = 0; c < chunks; c++) {
    const f = await receiveFrame(ctx, prev, { op: Op.Broadcast, dtype: DType.Bytes, segment: root, chunk: c });
    if (c === 0) chunks = f.chunks;
    else if (f.chunks !== chunks) throw new RingError('protocol', `chunk count changed from ${chunks} to ${f.chunks}`, prev);
    if (chunks > chunkCount(maxBytes, ctx.chunkBytes) || total + f.payload.byteLength > maxBytes) {
      throw new RingError('protocol', `broadcast of more than ${maxBytes} B (announced ${chunks} chunks)`, prev);
    }
    if (forward) {
      await sendFrame(ctx, next, { op: Op.Broadcast, dtype: DType.Bytes, segment: root, chunk: c, chunks }, f.payload);
    }
    parts.push(f.payload);
    total += f.payload.byteLength;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
