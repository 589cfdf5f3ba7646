/**
 * How a chunk of float32 values travels in a frame: as float32, as float16, or as int8 with one
 * float32 scale per chunk (symmetric: value ≈ q × scale, scale = max |value| / 127). The last
 * `exact` values of a vector (sample counts, control flags) always travel as float32, so they stay
 * whole numbers; a chunk's payload is its quantised part, padded to 4 bytes, then its exact part.
 *
 * `u32` is not a codec but modular arithmetic for secure aggregation (ml/algorithms/secure.ts): the
 * vector's float32 slots hold the bit patterns of uint32 words, sent as they are and added modulo
 * 2^32, so that masks cancel exactly. The words are only ever read through Uint32Array views: as
 * floats 1 in 256 of them are NaNs, whose bits an arithmetic copy need not keep.
 *
 * Pure functions; every peer decodes the same bytes to the same bits.
 *
 * Error bounds: float16 keeps 11 significant bits (relative error ≤ 2⁻¹¹ in its normal range,
 * finite values beyond ±65504 saturate there); int8 errs by at most scale / 2 per value. NaN and
 * ±Inf survive both (an int8 chunk holding one decodes to NaN throughout), so the gradient guard
 * still sees a broken contribution.
 */
import { DType } from './frame.ts';

export type Wire = 'f32' | 'f16' | 'i8' | 'u32';

/** How a vector is sent: its element type on the wire and how many trailing values stay float32. */
export interface WireSpec {
  wire: Wire;
  exact: number;
}

export const WIRE_DTYPE: Record<Wire, DType> = { f32: DType.Float32, f16: DType.Float16, i8: DType.Int8Scaled, u32: DType.Uint32Mod };

const pad4 = (n: number): number => (n + 3) & ~3;

/** The quantised and exact parts of the chunk [start, end) of a vector whose exact part begins at `exactFrom`. */
export function splitChunk(start: number, end: number, exactFrom: number): { quantised: number; exact: number } {
  const quantised = Math.max(0, Math.min(end, exactFrom) - start);
  return { quantised, exact: end - start - quantised };
}

/** Payload bytes of a chunk with `quantised` + `exact` values. */
export function wireBytes(wire: Wire, quantised: number, exact: number): number {
  if (wire === 'f32' || wire === 'u32') return 4 * (quantised + exact);
  const head = wire === 'f16' ? 2 * quantised : quantised > 0 ? 4 + quantised : 0;
  return pad4(head) + 4 * exact;
}

// float16 <-> float32 by bits (Node 20 has no Float16Array).
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float16 bits nearest to `x` (round half to even); finite values beyond the range saturate. */
export function toHalf(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7f_ffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7bff;
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit-one mantissa into place, rounding to even.
    if (e < -10) return sign;
    const m = mant | 0x80_0000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let out = m >>> shift;
    if (rest > half || (rest === half && out & 1)) out++;
    return sign | out;
  }
  let out = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && out & 1)) out++;
  // Rounding up past the largest finite half saturates too.
  return sign | Math.min(out, 0x7bff);
}

let halves: Float32Array | null = null;
/** float32 values of all 65536 float16 bit patterns. */
function halfTable(): Float32Array {
  if (halves) return halves;
  halves = new Float32Array(65_536);
  for (let h = 0; h < 65_536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    halves[h] =
      exp === 0 ? sign * mant * 2 ** -24 : exp === 0x1f ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return halves;
}

/** Encodes `src` (a chunk's values, the last `exact` of them kept float32) for the wire. */
export function encodeChunk(wire: Wire, src: Float32Array, exact: number): Uint8Array {
  if (wire === 'f32' || wire === 'u32') return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  const q = src.length - exact;
  const out = new Uint8Array(wireBytes(wire, q, exact));
  const dv = new DataView(out.buffer);
  let o = 0;
  if (wire === 'f16') {
    for (let i = 0; i < q; i++, o += 2) dv.setUint16(o, toHalf(src[i]!), true);
  } else if (q > 0) {
    let max = 0;
    for (let i = 0; i < q; i++) max = Math.max(max, Math.abs(src[i]!));
    // NaN if any value is NaN or infinite: the chunk then decodes to NaN and the guard sees it.
    const scale = Number.isFinite(max) ? max / 127 : NaN;
    dv.setFloat32(0, scale, true);
    o = 4;
    for (let i = 0; i < q; i++, o++) dv.setInt8(o, scale > 0 ? Math.round(src[i]! / scale) : 0);
  }
  o = pad4(o);
  for (let i = q; i < src.length; i++, o += 4) dv.setFloat32(o, src[i]!, true);
  return out;
}

/**
 * Decodes a chunk of `out.length` values (the last `exact` float32) into `out`, or adds them to it
 * with `add`. The caller has checked the payload's length with {@link wireBytes}.
 */
export function decodeChunk(wire: Wire, payload: Uint8Array, exact: number, out: Float32Array, add: boolean): void {
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const q = out.length - exact;
  let o = 0;
  const put = (i: number, x: number): void => {
    out[i] = add ? out[i]! + x : x;
  };
  if (wire === 'f32' || wire === 'u32') {
    // Frames keep payloads 4-byte aligned (protocol/frame.ts), so a view needs no copy.
    const v = new Float32Array(payload.buffer, payload.byteOffset, out.length);
    // Setting from an array of the same type copies the bytes, NaN payloads included.
    if (!add) out.set(v);
    else if (wire === 'f32') for (let i = 0; i < v.length; i++) out[i]! += v[i]!;
    else {
      const a = new Uint32Array(out.buffer, out.byteOffset, q);
      const b = new Uint32Array(payload.buffer, payload.byteOffset, q);
      // A Uint32Array stores the sum modulo 2^32.
      for (let i = 0; i < q; i++) a[i] = a[i]! + b[i]!;
      for (let i = q; i < out.length; i++) out[i]! += v[i]!;
    }
    return;
  }
  if (wire === 'f16') {
    const table = halfTable();
    for (let i = 0; i < q; i++, o += 2) put(i, table[dv.getUint16(o, true)]!);
  } else if (q > 0) {
    const scale = dv.getFloat32(0, true);
    o = 4;
    for (let i = 0; i < q; i++, o++) put(i, dv.getInt8(o) * scale);
  }
  o = pad4(o);
  for (let i = q; i < out.length; i++, o += 4) put(i, dv.getFloat32(o, true));
}
