/**
 * Binary frame codec for data-channel traffic between peers.
 *
 * Layout (little-endian), a fixed 32-byte header followed by the payload:
 *
 * | offset | size | field        |
 * |-------:|-----:|--------------|
 * | 0      | 2    | magic 0x5254 ("RT") |
 * | 2      | 1    | protocol version |
 * | 3      | 1    | op (see {@link Op}) |
 * | 4      | 1    | dtype (see {@link DType}) |
 * | 5      | 3    | reserved, must be 0 |
 * | 8      | 4    | view epoch |
 * | 12     | 4    | collective sequence number within the epoch |
 * | 16     | 4    | segment (ring step or segment index) |
 * | 20     | 4    | chunk index |
 * | 24     | 4    | chunk count |
 * | 28     | 4    | payload length in bytes |
 *
 * The header is 32 bytes so a payload that starts right after it is 4-byte aligned
 * (a Float32Array view needs no copy).
 */
import { PROTOCOL_VERSION } from './version.ts';

export const FRAME_MAGIC = 0x5254;
export const FRAME_HEADER_BYTES = 32;
/** Largest payload a frame may carry: Chromium's SCTP maxMessageSize (256 KiB) less the header. */
export const MAX_FRAME_PAYLOAD = 262_144 - FRAME_HEADER_BYTES;
/** Upper bound on chunks in one segment; rejects absurd counts before anything is allocated. */
export const MAX_CHUNK_COUNT = 1 << 20;

/** What a frame belongs to. */
export const Op = {
  ReduceScatter: 1,
  AllGather: 2,
  Broadcast: 3,
  Heartbeat: 4,
  /** Point-to-point payload (benchmarks, all-to-all). */
  Direct: 5,
} as const;
export type Op = (typeof Op)[keyof typeof Op];

/** Element type of the payload. */
export const DType = {
  Bytes: 0,
  Float32: 1,
  /** float16 values, then the chunk's exact float32 tail (protocol/wire.ts). */
  Float16: 2,
  /** A float32 scale, int8 values, then the chunk's exact float32 tail (protocol/wire.ts). */
  Int8Scaled: 3,
  /** uint32 words that add modulo 2^32, then the chunk's exact float32 tail (protocol/wire.ts). */
  Uint32Mod: 4,
} as const;
export type DType = (typeof DType)[keyof typeof DType];

const DTYPE_SIZE: Record<DType, number> = {
  [DType.Bytes]: 1,
  [DType.Float32]: 4,
  [DType.Float16]: 2,
  [DType.Int8Scaled]: 1,
  [DType.Uint32Mod]: 4,
};
const OPS = new Set<number>(Object.values(Op));

/** A decoded frame. `payload` views the original buffer where alignment allows, else a copy. */
export interface Frame {
  op: Op;
  dtype: DType;
  epoch: number;
  seq: number;
  segment: number;
  chunk: number;
  chunks: number;
  payload: Uint8Array;
}

export type FrameHeader = Omit<Frame, 'payload'>;

export type FrameErrorCode =
  | 'truncated'
  | 'bad-magic'
  | 'bad-version'
  | 'bad-op'
  | 'bad-dtype'
  | 'bad-reserved'
  | 'bad-chunk'
  | 'bad-length'
  | 'oversized';

/** A frame that cannot be decoded. Returned, never thrown, by {@link decodeFrame}. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  constructor(
    readonly code: FrameErrorCode,
    message: string,
  ) {
    super(`frame rejected (${code}): ${message}`);
  }
}

function checkU32(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new RangeError(`encodeFrame: ${name} must be a u32, got ${v}`);
  }
}

/**
 * Encodes a header and payload into one buffer ready for `RTCDataChannel.send`.
 * Throws RangeError on a programmer error (field out of range, unknown op or dtype, payload too
 * large or not a whole number of dtype elements): whatever it returns, {@link decodeFrame} accepts.
 */
export function encodeFrame(h: FrameHeader, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  for (const k of ['epoch', 'seq', 'segment', 'chunk', 'chunks'] as const) checkU32(k, h[k]);
  if (payload.byteLength > MAX_FRAME_PAYLOAD) {
    throw new RangeError(`encodeFrame: payload of ${payload.byteLength} B exceeds ${MAX_FRAME_PAYLOAD} B`);
  }
  if (h.chunks < 1 || h.chunk >= h.chunks || h.chunks > MAX_CHUNK_COUNT) {
    throw new RangeError(`encodeFrame: chunk ${h.chunk} of ${h.chunks} is out of range`);
  }
  // Refuse what decodeFrame would reject, so every encoded frame decodes.
  if (!OPS.has(h.op)) throw new RangeError(`encodeFrame: op ${h.op} is not an Op`);
  if (!(h.dtype in DTYPE_SIZE)) {
    throw new RangeError(`encodeFrame: dtype ${h.dtype} is not a DType`);
  }
  if (payload.byteLength % DTYPE_SIZE[h.dtype] !== 0) {
    throw new RangeError(`encodeFrame: a dtype ${h.dtype} payload of ${payload.byteLength} B is not whole elements`);
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, FRAME_MAGIC, true);
  dv.setUint8(2, PROTOCOL_VERSION);
  dv.setUint8(3, h.op);
  dv.setUint8(4, h.dtype);
  dv.setUint32(8, h.epoch, true);
  dv.setUint32(12, h.seq, true);
  dv.setUint32(16, h.segment, true);
  dv.setUint32(20, h.chunk, true);
  dv.setUint32(24, h.chunks, true);
  dv.setUint32(28, payload.byteLength, true);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Decodes one frame. Every field is bounds-checked; anything malformed, truncated or oversized
 * yields a {@link FrameError} value. Never throws, never allocates more than the input's size.
 */
export function decodeFrame(buf: ArrayBuffer | Uint8Array): Frame | FrameError {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  if (bytes.byteLength < FRAME_HEADER_BYTES) {
    return new FrameError('truncated', `${bytes.byteLength} B is shorter than the ${FRAME_HEADER_BYTES} B header`);
  }
  if (bytes.byteLength > FRAME_HEADER_BYTES + MAX_FRAME_PAYLOAD) {
    return new FrameError('oversized', `${bytes.byteLength} B exceeds the largest frame`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint16(0, true) !== FRAME_MAGIC) return new FrameError('bad-magic', 'not a RingTrain frame');
  const version = dv.getUint8(2);
  if (version !== PROTOCOL_VERSION) {
    return new FrameError('bad-version', `version ${version}, expected ${PROTOCOL_VERSION}`);
  }
  const op = dv.getUint8(3);
  if (!OPS.has(op)) return new FrameError('bad-op', `unknown op ${op}`);
  const dtype = dv.getUint8(4);
  if (!(dtype in DTYPE_SIZE)) return new FrameError('bad-dtype', `unknown dtype ${dtype}`);
  if (dv.getUint8(5) | dv.getUint8(6) | dv.getUint8(7)) return new FrameError('bad-reserved', 'reserved bytes are not zero');
  const chunk = dv.getUint32(20, true);
  const chunks = dv.getUint32(24, true);
  if (chunks < 1 || chunks > MAX_CHUNK_COUNT || chunk >= chunks) {
    return new FrameError('bad-chunk', `chunk ${chunk} of ${chunks}`);
  }
  const length = dv.getUint32(28, true);
  if (length !== bytes.byteLength - FRAME_HEADER_BYTES) {
    return new FrameError('bad-length', `header says ${length} B, frame carries ${bytes.byteLength - FRAME_HEADER_BYTES} B`);
  }
  if (length % DTYPE_SIZE[dtype as DType] !== 0) {
    return new FrameError('bad-length', `${length} B is not a whole number of dtype ${dtype} elements`);
  }
  const start = bytes.byteOffset + FRAME_HEADER_BYTES;
  const payload = start % 4 === 0 ? new Uint8Array(bytes.buffer, start, length) : bytes.slice(FRAME_HEADER_BYTES);
  return {
    op: op as Op,
    dtype: dtype as DType,
    epoch: dv.getUint32(8, true),
    seq: dv.getUint32(12, true),
    segment: dv.getUint32(16, true),
    chunk,
    chunks,
    payload,
  };
}

/** Views a Float32 payload as a Float32Array (the decoder guarantees alignment and length). */
export function float32Payload(f: Frame): Float32Array {
  return new Float32Array(f.payload.buffer, f.payload.byteOffset, f.payload.byteLength / 4);
}
