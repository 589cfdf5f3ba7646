/**
 * A compact binary container for one data shard, sent by the server to a peer.
 *
 * Layout, little-endian; every section starts 4-byte aligned (padding bytes are zero):
 *
 * | offset | size        | field |
 * |-------:|------------:|-------|
 * | 0      | 4           | magic "RTDS" |
 * | 4      | 1           | version (1) |
 * | 5      | 1           | x dtype: 1 = u8 (value / 255), 2 = f32 |
 * | 6      | 1           | flags: bit 0 = regression targets follow the labels; others 0 |
 * | 7      | 1           | rank r of the per-sample shape, 0..{@link MAX_SHARD_RANK} |
 * | 8      | 4           | n, samples |
 * | 12     | 4           | numClasses (0 = regression) |
 * | 16     | 4           | m, bytes of UTF-8 JSON metadata `{classNames?, featureNames?}` (0 = none) |
 * | 20     | 4 * r       | shape dims, each >= 1 |
 * |        | m, pad      | metadata |
 * |        | n*d*(1|4), pad | x, d = prod(shape) |
 * |        | 4 * n       | y, i32 class indices (zeros for regression) |
 * |        | 4 * n       | targets, f32 (only with flag bit 0) |
 *
 * The whole buffer must be exactly this long.
 */
import { DataError, checkDataset, featureSize, type Dataset } from './dataset.ts';

/** The bytes "RTDS" read as a little-endian u32. */
export const SHARD_MAGIC = 0x53445452;
/** Format version; a decoder rejects any other. */
export const SHARD_VERSION = 1;
/** Bytes of the fixed header, before the shape dims. */
export const SHARD_HEADER_BYTES = 20;
/** Most dims a per-sample shape may have. */
export const MAX_SHARD_RANK = 8;
/** Most classes a shard may declare; rejects absurd headers. */
export const MAX_SHARD_CLASSES = 1 << 16;

/** Element type of the features in a shard. */
export const ShardXType = { U8: 1, F32: 2 } as const;
/** 1 (u8) or 2 (f32). */
export type ShardXType = (typeof ShardXType)[keyof typeof ShardXType];

const FLAG_TARGETS = 1;

const align4 = (k: number): number => (k + 3) & ~3;

/**
 * The fields of a shard, with features either as floats or as raw u8 pixels (0..255, decoded as
 * value / 255). The server builds these straight from IDX bytes without a float copy.
 */
export interface ShardParts {
  n: number;
  shape: readonly number[];
  numClasses: number;
  /** Features: u8 pixels (0..255) or floats, `n * prod(shape)` values. */
  x: Uint8Array | Float32Array;
  y: Int32Array;
  targets?: Float32Array;
  classNames?: readonly string[];
  featureNames?: readonly string[];
}

/**
 * Encodes {@link ShardParts}. Throws DataError('bad-argument') when the parts break a Dataset
 * invariant (a programmer error): whatever it returns, {@link decodeShard} accepts.
 */
export function encodeShardParts(p: ShardParts): Uint8Array<ArrayBuffer> {
  const check = checkDataset(p);
  if (check) throw new DataError('bad-argument', `encodeShard: ${check.message}`);
  if (p.shape.length > MAX_SHARD_RANK) throw new DataError('bad-argument', `encodeShard: rank ${p.shape.length} exceeds ${MAX_SHARD_RANK}`);
  if (p.numClasses > MAX_SHARD_CLASSES)
    throw new DataError('bad-argument', `encodeShard: ${p.numClasses} classes exceed ${MAX_SHARD_CLASSES}`);
  const d = featureSize(p.shape);
  const u8 = p.x instanceof Uint8Array;
  const metaObj: { classNames?: readonly string[]; featureNames?: readonly string[] } = {};
  if (p.classNames) metaObj.classNames = p.classNames;
  if (p.featureNames) metaObj.featureNames = p.featureNames;
  const meta = Object.keys(metaObj).length ? new TextEncoder().encode(JSON.stringify(metaObj)) : new Uint8Array(0);
  const rank = p.shape.length;
  const metaAt = SHARD_HEADER_BYTES + 4 * rank;
  const xAt = align4(metaAt + meta.length);
  const yAt = align4(xAt + p.n * d * (u8 ? 1 : 4));
  const tAt = yAt + 4 * p.n;
  const total = tAt + (p.targets ? 4 * p.n : 0);
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, SHARD_MAGIC, true);
  dv.setUint8(4, SHARD_VERSION);
  dv.setUint8(5, u8 ? ShardXType.U8 : ShardXType.F32);
  dv.setUint8(6, p.targets ? FLAG_TARGETS : 0);
  dv.setUint8(7, rank);
  dv.setUint32(8, p.n, true);
  dv.setUint32(12, p.numClasses, true);
  dv.setUint32(16, meta.length, true);
  p.shape.forEach((s, i) => dv.setUint32(SHARD_HEADER_BYTES + 4 * i, s, true));
  out.set(meta, metaAt);
  if (u8) out.set(p.x as Uint8Array, xAt);
  else for (let i = 0; i < p.x.length; i++) dv.setFloat32(xAt + 4 * i, p.x[i]!, true);
  for (let i = 0; i < p.n; i++) dv.setInt32(yAt + 4 * i, p.y[i]!, true);
  if (p.targets) for (let i = 0; i < p.n; i++) dv.setFloat32(tAt + 4 * i, p.targets[i]!, true);
  return out;
}

/** Options of {@link encodeShard}. */
export interface EncodeShardOptions {
  /**
   * Store features as u8, `round(x * 255)` clamped to 0..255: a quarter of the size, exact for
   * pixels that were u8 / 255, lossy for anything else. Default false (f32).
   */
  pixelsAsU8?: boolean;
}

/**
 * Encodes a Dataset as a shard. Throws DataError('bad-argument') if the dataset breaks an
 * invariant of {@link Dataset} (a programmer error).
 */
export function encodeShard(ds: Dataset, opts: EncodeShardOptions = {}): Uint8Array<ArrayBuffer> {
  let x: Uint8Array | Float32Array = ds.x;
  if (opts.pixelsAsU8) {
    const q = new Uint8Array(ds.x.length);
    for (let i = 0; i < q.length; i++) q[i] = Math.round(ds.x[i]! * 255); // Uint8Array clamps; NaN -> 0
    x = q;
  }
  return encodeShardParts({ ...ds, x });
}

/** `src[i] / 255` as floats. A small function of its own, so that the engine optimises the loop. */
function unitFloats(src: Uint8Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! / 255;
  return out;
}

function readF32(dv: DataView, at: number, count: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = dv.getFloat32(at + 4 * i, true);
  return out;
}

function readI32(dv: DataView, at: number, count: number): Int32Array {
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) out[i] = dv.getInt32(at + 4 * i, true);
  return out;
}

function isStringArray(v: unknown, length: number): v is string[] {
  return Array.isArray(v) && v.length === length && v.every((s) => typeof s === 'string');
}

/** A shard's header and where its sections lie, as read by {@link readShardHeader}. */
export interface ShardHeader {
  n: number;
  shape: number[];
  numClasses: number;
  xType: ShardXType;
  classNames?: string[];
  featureNames?: string[];
  /** Byte offsets into the shard: features, labels, and regression targets (-1 when absent). */
  xOffset: number;
  yOffset: number;
  targetsOffset: number;
}

/**
 * Reads and checks everything but the section contents: magic, version, dtype, flags, dims,
 * metadata, padding and the exact total length. Lets a caller use the u8 pixels in place (e.g. to
 * keep a shard at a quarter of the float size, or to fingerprint it). Returns, never throws, a
 * DataError (the codes of {@link decodeShard}, except 'bad-value').
 */
export function readShardHeader(bytes: Uint8Array): ShardHeader | DataError {
  const len = bytes.byteLength;
  if (len < SHARD_HEADER_BYTES)
    return new DataError('truncated', `decodeShard: ${len} B is shorter than the ${SHARD_HEADER_BYTES} B header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, len);
  if (dv.getUint32(0, true) !== SHARD_MAGIC)
    return new DataError('bad-format', 'decodeShard: not a RingTrain shard (bad magic); is the URL right?');
  const version = dv.getUint8(4);
  if (version !== SHARD_VERSION) {
    return new DataError('bad-format', `decodeShard: shard version ${version}, this page reads version ${SHARD_VERSION}; reload the page`);
  }
  const xType = dv.getUint8(5);
  if (xType !== ShardXType.U8 && xType !== ShardXType.F32) return new DataError('bad-format', `decodeShard: unknown x dtype ${xType}`);
  const flags = dv.getUint8(6);
  if (flags & ~FLAG_TARGETS) return new DataError('bad-format', `decodeShard: unknown flags 0x${flags.toString(16)}`);
  const rank = dv.getUint8(7);
  if (rank > MAX_SHARD_RANK) return new DataError('bad-dims', `decodeShard: rank ${rank} exceeds ${MAX_SHARD_RANK}`);
  const n = dv.getUint32(8, true);
  const numClasses = dv.getUint32(12, true);
  if (numClasses > MAX_SHARD_CLASSES) return new DataError('bad-dims', `decodeShard: ${numClasses} classes exceed ${MAX_SHARD_CLASSES}`);
  const hasTargets = (flags & FLAG_TARGETS) !== 0;
  if (hasTargets !== (numClasses === 0)) {
    return new DataError('bad-format', `decodeShard: ${numClasses} classes ${hasTargets ? 'with' : 'without'} regression targets`);
  }
  const metaLen = dv.getUint32(16, true);
  const metaAt = SHARD_HEADER_BYTES + 4 * rank;
  if (len < metaAt) return new DataError('truncated', `decodeShard: ${len} B is shorter than the ${metaAt} B header of rank ${rank}`);
  const shape: number[] = [];
  let d = 1;
  for (let i = 0; i < rank; i++) {
    const s = dv.getUint32(SHARD_HEADER_BYTES + 4 * i, true);
    if (s === 0) return new DataError('bad-dims', `decodeShard: shape dim ${i} is 0`);
    shape.push(s);
    d *= s;
    if (d > len)
      return new DataError('truncated', `decodeShard: a sample of shape [${shape.join(', ')}...] is larger than the ${len} B shard`);
  }
  // All sizes below are < 2^53: n, metaLen < 2^32 and d <= len.
  const xBytes = n * d * (xType === ShardXType.U8 ? 1 : 4);
  const xAt = align4(metaAt + metaLen);
  const yAt = align4(xAt + xBytes);
  const tAt = yAt + 4 * n;
  const total = tAt + (hasTargets ? 4 * n : 0);
  if (len < total)
    return new DataError('truncated', `decodeShard: the header announces ${total} B, the shard has ${len} B; download it again`);
  if (len > total) return new DataError('size-mismatch', `decodeShard: ${len - total} B follow the ${total} B the header announces`);
  for (let i = metaAt + metaLen; i < xAt; i++) if (bytes[i] !== 0) return new DataError('bad-format', 'decodeShard: padding is not zero');
  for (let i = xAt + xBytes; i < yAt; i++) if (bytes[i] !== 0) return new DataError('bad-format', 'decodeShard: padding is not zero');

  const header: ShardHeader = { n, shape, numClasses, xType, xOffset: xAt, yOffset: yAt, targetsOffset: hasTargets ? tAt : -1 };
  if (metaLen > 0) {
    let meta: unknown;
    try {
      meta = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(metaAt, metaAt + metaLen)));
    } catch {
      return new DataError('bad-format', 'decodeShard: the metadata is not UTF-8 JSON');
    }
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta))
      return new DataError('bad-format', 'decodeShard: the metadata is not an object');
    const m = meta as { classNames?: unknown; featureNames?: unknown };
    if (m.classNames !== undefined) {
      if (!isStringArray(m.classNames, numClasses))
        return new DataError('bad-format', `decodeShard: classNames must be ${numClasses} strings`);
      header.classNames = m.classNames;
    }
    if (m.featureNames !== undefined) {
      if (!isStringArray(m.featureNames, d)) return new DataError('bad-format', `decodeShard: featureNames must be ${d} strings`);
      header.featureNames = m.featureNames;
    }
  }
  return header;
}

/**
 * Decodes a shard into a Dataset with freshly allocated arrays (nothing views `bytes`).
 *
 * Returns, never throws, a DataError: 'truncated' (shorter than the header or the sections it
 * announces), 'size-mismatch' (bytes after the last section), 'bad-format' (magic, version, dtype,
 * flags, padding or metadata), 'bad-dims' (rank, a zero dim, too many classes), 'bad-value' (a
 * label outside [0, numClasses), or labels in a regression shard). The sizes are checked against
 * the input's length before anything is allocated: the result holds at most 4 bytes per input
 * byte (u8 pixels become floats).
 */
export function decodeShard(bytes: Uint8Array): Dataset | DataError {
  const h = readShardHeader(bytes);
  if (h instanceof DataError) return h;
  const { n, shape, numClasses, classNames, featureNames } = h;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const y = readI32(dv, h.yOffset, n);
  for (let i = 0; i < n; i++) {
    const c = y[i]!;
    if (numClasses > 0 ? c < 0 || c >= numClasses : c !== 0) {
      return new DataError(
        'bad-value',
        `decodeShard: label ${i} is ${c}, ${numClasses > 0 ? `outside [0, ${numClasses})` : 'but a regression shard has zero labels'}`,
      );
    }
  }
  const count = n * featureSize(shape);
  const x = h.xType === ShardXType.U8 ? unitFloats(bytes.subarray(h.xOffset, h.xOffset + count)) : readF32(dv, h.xOffset, count);
  const targets = h.targetsOffset >= 0 ? readF32(dv, h.targetsOffset, n) : undefined;
  return {
    n,
    shape,
    x,
    y,
    numClasses,
    ...(targets ? { targets } : {}),
    ...(classNames ? { classNames } : {}),
    ...(featureNames ? { featureNames } : {}),
  };
}
