import { encodeFrame, type Frame, type FrameHeader } from '../../protocol/frame.ts';
import { RingError } from '../errors.ts';
import type { RingPosition, View } from '../membership/view.ts';
import type { PeerId, Transport } from '../transport.ts';
import type { Mailbox } from './mailbox.ts';

/** Bytes moved by one communicator, cumulative. `frameBytes` includes headers. */
export interface TrafficStats {
  framesSent: number;
  frameBytesSent: number;
  payloadBytesSent: number;
  framesReceived: number;
}

/** Everything one running collective needs: who it talks to, its ids, and its abort signal. */
export interface CollectiveContext {
  transport: Transport;
  mailbox: Mailbox;
  view: View;
  pos: RingPosition;
  epoch: number;
  seq: number;
  /** Largest payload per frame, bytes (a multiple of 4). */
  chunkBytes: number;
  signal: AbortSignal;
  /** Aborts this collective with `reason` (the first failure wins). */
  abort: (reason: RingError) => void;
  stats: TrafficStats;
  /** Called after each frame received, for progress reporting. */
  onFrame?: () => void;
}

/** Encodes and sends one frame of this collective, counting the bytes. */
export async function sendFrame(
  ctx: CollectiveContext,
  to: PeerId,
  h: Omit<FrameHeader, 'epoch' | 'seq'>,
  payload: Uint8Array,
): Promise<void> {
  const frame = encodeFrame({ ...h, epoch: ctx.epoch, seq: ctx.seq }, payload);
  await ctx.transport.send(to, frame, ctx.signal);
  ctx.stats.framesSent++;
  ctx.stats.frameBytesSent += frame.byteLength;
  ctx.stats.payloadBytesSent += payload.byteLength;
}

/**
 * Takes the next frame of this collective from `from` and checks that its header is the one
 * expected; a mismatch is a 'protocol' RingError naming the field.
 */
export async function receiveFrame(
  ctx: CollectiveContext,
  from: PeerId,
  expect: Partial<Omit<FrameHeader, 'epoch' | 'seq'>> & { bytes?: number },
): Promise<Frame> {
  const f = await ctx.mailbox.take(from, ctx.epoch, ctx.seq, ctx.signal);
  ctx.stats.framesReceived++;
  for (const k of ['op', 'dtype', 'segment', 'chunk', 'chunks'] as const) {
    const want = expect[k];
    if (want !== undefined && f[k] !== want) {
      throw new RingError('protocol', `frame ${k} is ${f[k]}, expected ${want}`, from);
    }
  }
  if (expect.bytes !== undefined && f.payload.byteLength !== expect.bytes) {
    throw new RingError('protocol', `frame carries ${f.payload.byteLength} B, expected ${expect.bytes}`, from);
  }
  ctx.onFrame?.();
  return f;
}

/** A byte view of part of a Float32Array, without copying. */
export function f32Bytes(a: Float32Array, start: number, end: number): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset + start * 4, (end - start) * 4);
}
