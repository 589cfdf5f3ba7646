import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../core/random.ts';
import { decodeChunk, encodeChunk, splitChunk, toHalf, wireBytes, type Wire } from './wire.ts';

const roundTrip = (wire: Wire, v: Float32Array, exact: number): Float32Array => {
  const bytes = encodeChunk(wire, v, exact);
  expect(bytes.byteLength).toBe(wireBytes(wire, v.length - exact, exact));
  const out = new Float32Array(v.length);
  decodeChunk(wire, bytes, exact, out, false);
  return out;
};

describe('wire codecs', () => {
  const rnd = mulberry32(9);
  const v = Float32Array.from({ length: 999 }, () => (rnd() - 0.5) * 200);

  it('f32 is exact', () => {
    expect(Array.from(roundTrip('f32', v, 0))).toEqual(Array.from(v));
  });

  it('f16 errs by at most 2^-11 relative, keeps the exact tail, and is its own fixed point', () => {
    const out = roundTrip('f16', v, 3);
    for (let i = 0; i < v.length - 3; i++) expect(Math.abs(out[i]! - v[i]!)).toBeLessThanOrEqual(Math.abs(v[i]!) * 2 ** -11);
    expect(Array.from(out.subarray(-3))).toEqual(Array.from(v.subarray(-3)));
    expect(Array.from(roundTrip('f16', out, 3))).toEqual(Array.from(out));
  });

  it('f16 bits: known values, subnormals, saturation, Inf and NaN', () => {
    expect(toHalf(1)).toBe(0x3c00);
    expect(toHalf(-2)).toBe(0xc000);
    expect(toHalf(65504)).toBe(0x7bff);
    expect(toHalf(1e6)).toBe(0x7bff);
    expect(toHalf(-1e6)).toBe(0xfbff);
    expect(toHalf(2 ** -24)).toBe(0x0001);
    expect(toHalf(2 ** -26)).toBe(0);
    expect(toHalf(Infinity)).toBe(0x7c00);
    expect(toHalf(NaN) & 0x7fff).toBeGreaterThan(0x7c00);
    // Round half to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
    expect(toHalf(1 + 2 ** -11)).toBe(0x3c00);
    expect(toHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    const back = roundTrip('f16', Float32Array.of(2 ** -20, -3 * 2 ** -24, Infinity), 0);
    expect(Array.from(back)).toEqual([2 ** -20, -3 * 2 ** -24, Infinity]);
  });

  it('i8 errs by at most half a step of max|x|/127 and keeps the exact tail', () => {
    const out = roundTrip('i8', v, 2);
    let max = 0;
    for (let i = 0; i < v.length - 2; i++) max = Math.max(max, Math.abs(v[i]!));
    for (let i = 0; i < v.length - 2; i++) expect(Math.abs(out[i]! - v[i]!)).toBeLessThanOrEqual((max / 127) * 0.5 * (1 + 1e-6));
    expect(Array.from(out.subarray(-2))).toEqual(Array.from(v.subarray(-2)));
    // About a quarter of float32's bytes.
    expect(wireBytes('i8', 997, 2) / wireBytes('f32', 997, 2)).toBeLessThan(0.26);
  });

  it('i8: zeros stay zeros; a non-finite value turns the chunk into NaN', () => {
    expect(Array.from(roundTrip('i8', new Float32Array(5), 0))).toEqual([0, 0, 0, 0, 0]);
    const out = roundTrip('i8', Float32Array.of(1, Infinity, 3), 0);
    expect(out.every((x) => Number.isNaN(x))).toBe(true);
  });

  it('decoding with add accumulates into the output', () => {
    const out = Float32Array.of(1, 1, 1);
    decodeChunk('f16', encodeChunk('f16', Float32Array.of(0.5, 2, 7), 1), 1, out, true);
    expect(Array.from(out)).toEqual([1.5, 3, 8]);
  });

  it('u32 carries words bit for bit (NaN patterns too) and adds them modulo 2^32; the exact tail adds as floats', () => {
    const words = Uint32Array.of(0xffff_ffff, 0x7fa0_0001, 0x8000_0000, 5, 0);
    const v = new Float32Array(words.buffer);
    v[4] = 2.5;
    const bytes = encodeChunk('u32', v, 1);
    expect(bytes.byteLength).toBe(wireBytes('u32', 4, 1));
    const back = new Float32Array(5);
    decodeChunk('u32', bytes, 1, back, false);
    expect(Array.from(new Uint32Array(back.buffer))).toEqual(Array.from(new Uint32Array(v.buffer)));
    const acc = new Float32Array(new Uint32Array([2, 0x0060_0000, 0x8000_0000, 0xffff_fffe, 0]).buffer);
    acc[4] = 0.25;
    decodeChunk('u32', bytes, 1, acc, true);
    // 0xFFFFFFFF + 2 = 1; a NaN pattern plus a word is a word; 2^31 + 2^31 = 0; 5 + (-2) = 3.
    expect(Array.from(new Uint32Array(acc.buffer, 0, 4))).toEqual([1, 0x8000_0001, 0, 3]);
    expect(acc[4]).toBe(2.75);
  });

  it('splits a chunk at the start of the exact tail', () => {
    expect(splitChunk(0, 10, 100)).toEqual({ quantised: 10, exact: 0 });
    expect(splitChunk(95, 105, 100)).toEqual({ quantised: 5, exact: 5 });
    expect(splitChunk(100, 105, 100)).toEqual({ quantised: 0, exact: 5 });
  });
});
