import { describe, expect, it } from 'vitest';
import {
  decodeFrame,
  DType,
  encodeFrame,
  float32Payload,
  FRAME_HEADER_BYTES,
  FRAME_MAGIC,
  FrameError,
  type FrameErrorCode,
  type FrameHeader,
  MAX_CHUNK_COUNT,
  MAX_FRAME_PAYLOAD,
  Op,
} from './frame.ts';
import { PROTOCOL_VERSION } from './version.ts';
import { mulberry32 } from '../core/random.ts';

const OPS = Object.values(Op);
const U32_EDGES = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff];

function randomU32(rnd: () => number): number {
  return rnd() < 0.2 ? U32_EDGES[Math.floor(rnd() * U32_EDGES.length)]! : Math.floor(rnd() * 0x1_0000_0000);
}

function randomHeader(rnd: () => number, dtype: DType): FrameHeader {
  const chunks = rnd() < 0.1 ? MAX_CHUNK_COUNT : 1 + Math.floor(rnd() * 1000);
  return {
    op: OPS[Math.floor(rnd() * OPS.length)]!,
    dtype,
    epoch: randomU32(rnd),
    seq: randomU32(rnd),
    segment: randomU32(rnd),
    chunk: Math.floor(rnd() * chunks),
    chunks,
  };
}

function randomBytes(rnd: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

function header(): FrameHeader {
  return { op: Op.ReduceScatter, dtype: DType.Float32, epoch: 7, seq: 3, segment: 2, chunk: 1, chunks: 4 };
}

/** A valid Float32 frame of `elems` elements. */
function validFrame(elems = 5): Uint8Array<ArrayBuffer> {
  const v = new Float32Array(elems).map((_, i) => i * 1.5 - 2);
  return encodeFrame(header(), new Uint8Array(v.buffer));
}

function expectError(r: ReturnType<typeof decodeFrame>, code: FrameErrorCode): void {
  expect(r).toBeInstanceOf(FrameError);
  expect((r as FrameError).code).toBe(code);
}

function withU8(frame: Uint8Array, offset: number, value: number): Uint8Array {
  const out = frame.slice();
  out[offset] = value;
  return out;
}

function withU32(frame: Uint8Array, offset: number, value: number): Uint8Array {
  const out = frame.slice();
  new DataView(out.buffer).setUint32(offset, value, true);
  return out;
}

describe('encodeFrame / decodeFrame round trip', () => {
  it('round-trips 2000 random Float32 and Bytes frames exactly', () => {
    const rnd = mulberry32(1);
    for (let i = 0; i < 2000; i++) {
      const dtype = i % 2 === 0 ? DType.Float32 : DType.Bytes;
      const h = randomHeader(rnd, dtype);
      const unit = dtype === DType.Float32 ? 4 : 1;
      const len = (rnd() < 0.05 ? Math.floor(MAX_FRAME_PAYLOAD / unit) : Math.floor(rnd() * 300)) * unit;
      const payload = randomBytes(rnd, len);
      const wire = encodeFrame(h, payload);
      expect(wire.byteLength).toBe(FRAME_HEADER_BYTES + len);
      const f = decodeFrame(wire);
      if (f instanceof FrameError) throw f;
      const { payload: got, ...gotHeader } = f;
      expect(gotHeader).toEqual(h);
      expect(got.byteLength).toBe(len);
      expect(Buffer.from(got).equals(Buffer.from(payload))).toBe(true);
    }
  });

  it('writes the documented little-endian header layout', () => {
    const wire = encodeFrame(
      { op: Op.Broadcast, dtype: DType.Bytes, epoch: 0x01020304, seq: 5, segment: 6, chunk: 7, chunks: 8 },
      new Uint8Array([9, 10, 11]),
    );
    const dv = new DataView(wire.buffer);
    expect(dv.getUint16(0, true)).toBe(FRAME_MAGIC);
    expect(wire[2]).toBe(PROTOCOL_VERSION);
    expect(wire[3]).toBe(Op.Broadcast);
    expect(wire[4]).toBe(DType.Bytes);
    expect([wire[5], wire[6], wire[7]]).toEqual([0, 0, 0]);
    expect([8, 12, 16, 20, 24, 28].map((o) => dv.getUint32(o, true))).toEqual([0x01020304, 5, 6, 7, 8, 3]);
    expect([...wire.subarray(FRAME_HEADER_BYTES)]).toEqual([9, 10, 11]);
  });

  it('decodes a frame that is an ArrayBuffer, and one at an unaligned offset (copying the payload)', () => {
    const wire = validFrame(3);
    const fromBuffer = decodeFrame(wire.buffer);
    if (fromBuffer instanceof FrameError) throw fromBuffer;
    expect([...float32Payload(fromBuffer)]).toEqual([-2, -0.5, 1]);

    const shifted = new Uint8Array(wire.byteLength + 1);
    shifted.set(wire, 1);
    const unaligned = decodeFrame(shifted.subarray(1));
    if (unaligned instanceof FrameError) throw unaligned;
    expect(unaligned.payload.byteOffset % 4).toBe(0);
    expect([...float32Payload(unaligned)]).toEqual([-2, -0.5, 1]);
  });

  it('views the payload without a copy when it is aligned', () => {
    const wire = validFrame(2);
    const f = decodeFrame(wire);
    if (f instanceof FrameError) throw f;
    expect(f.payload.buffer).toBe(wire.buffer);
    expect(f.payload.byteOffset).toBe(FRAME_HEADER_BYTES);
  });

  it('round-trips an empty payload', () => {
    const f = decodeFrame(encodeFrame(header(), new Uint8Array(0)));
    if (f instanceof FrameError) throw f;
    expect(f.payload.byteLength).toBe(0);
    expect(float32Payload(f).length).toBe(0);
  });
});

describe('decodeFrame rejects malformed frames with a typed code', () => {
  it('rejects every truncation of a valid frame (prefixes of length 0..len-1)', () => {
    const wire = validFrame(7);
    for (let n = 0; n < wire.byteLength; n++) {
      const r = decodeFrame(wire.subarray(0, n));
      // Shorter than the header: 'truncated'; a whole header but less payload than it declares: 'bad-length'.
      expectError(r, n < FRAME_HEADER_BYTES ? 'truncated' : 'bad-length');
    }
  });

  it('rejects trailing bytes beyond the declared length', () => {
    const wire = validFrame(2);
    const longer = new Uint8Array(wire.byteLength + 4);
    longer.set(wire);
    expectError(decodeFrame(longer), 'bad-length');
  });

  it.each<[string, (f: Uint8Array) => Uint8Array, FrameErrorCode]>([
    ['magic low byte', (f) => withU8(f, 0, 0x00), 'bad-magic'],
    ['magic high byte', (f) => withU8(f, 1, 0xff), 'bad-magic'],
    ['version 0', (f) => withU8(f, 2, 0), 'bad-version'],
    ['version + 1', (f) => withU8(f, 2, PROTOCOL_VERSION + 1), 'bad-version'],
    ['op 0', (f) => withU8(f, 3, 0), 'bad-op'],
    ['op 6', (f) => withU8(f, 3, 6), 'bad-op'],
    ['op 255', (f) => withU8(f, 3, 255), 'bad-op'],
    ['dtype 5', (f) => withU8(f, 4, 5), 'bad-dtype'],
    ['dtype 255', (f) => withU8(f, 4, 255), 'bad-dtype'],
    ['reserved byte 5', (f) => withU8(f, 5, 1), 'bad-reserved'],
    ['reserved byte 6', (f) => withU8(f, 6, 0x80), 'bad-reserved'],
    ['reserved byte 7', (f) => withU8(f, 7, 0xff), 'bad-reserved'],
    ['chunks 0', (f) => withU32(f, 24, 0), 'bad-chunk'],
    ['chunks above MAX_CHUNK_COUNT', (f) => withU32(f, 24, MAX_CHUNK_COUNT + 1), 'bad-chunk'],
    ['chunk == chunks', (f) => withU32(f, 20, 4), 'bad-chunk'],
    ['chunk 0xffffffff', (f) => withU32(f, 20, 0xffff_ffff), 'bad-chunk'],
    ['length + 1', (f) => withU32(f, 28, 21), 'bad-length'],
    ['length - 1', (f) => withU32(f, 28, 19), 'bad-length'],
    ['length 0xffffffff', (f) => withU32(f, 28, 0xffff_ffff), 'bad-length'],
  ])('corrupted %s -> %s', (_name, corrupt, code) => {
    expectError(decodeFrame(corrupt(validFrame(5))), code);
  });

  it('accepts any epoch, seq and segment (they are checked by the mailbox, not the codec)', () => {
    for (const off of [8, 12, 16]) {
      const f = decodeFrame(withU32(validFrame(5), off, 0xffff_ffff));
      expect(f).not.toBeInstanceOf(FrameError);
    }
  });

  it('rejects a Float32 payload that is not a whole number of elements', () => {
    const wire = encodeFrame({ ...header(), dtype: DType.Bytes }, new Uint8Array(6));
    expectError(decodeFrame(withU8(wire, 4, DType.Float32)), 'bad-length');
  });

  it('rejects a frame larger than the largest frame as oversized, whatever its header', () => {
    const big = new Uint8Array(FRAME_HEADER_BYTES + MAX_FRAME_PAYLOAD + 1);
    big.set(encodeFrame({ ...header(), dtype: DType.Bytes }, new Uint8Array(0)));
    expectError(decodeFrame(big), 'oversized');
    expectError(decodeFrame(new Uint8Array(10 * 1024 * 1024)), 'oversized');
  });

  it('accepts the largest legal frame', () => {
    const f = decodeFrame(encodeFrame({ ...header(), dtype: DType.Bytes }, new Uint8Array(MAX_FRAME_PAYLOAD)));
    expect(f).not.toBeInstanceOf(FrameError);
  });

  it('returns FrameError values whose message names the code', () => {
    const e = decodeFrame(new Uint8Array(3));
    expect(e).toBeInstanceOf(Error);
    expect((e as FrameError).name).toBe('FrameError');
    expect((e as FrameError).message).toContain('truncated');
  });
});

describe('encodeFrame rejects programmer errors with a RangeError', () => {
  const p = new Uint8Array(4);
  it.each<[string, Partial<FrameHeader>]>([
    ['negative epoch', { epoch: -1 }],
    ['epoch above u32', { epoch: 2 ** 32 }],
    ['fractional seq', { seq: 1.5 }],
    ['NaN segment', { segment: Number.NaN }],
    ['chunks 0', { chunks: 0, chunk: 0 }],
    ['chunk == chunks', { chunk: 4, chunks: 4 }],
    ['chunks above MAX_CHUNK_COUNT', { chunk: 0, chunks: MAX_CHUNK_COUNT + 1 }],
    ['unknown op', { op: 0 as Op }],
    ['unknown dtype', { dtype: 7 as DType }],
  ])('%s', (_name, patch) => {
    expect(() => encodeFrame({ ...header(), ...patch }, p)).toThrow(RangeError);
  });

  it('a payload larger than MAX_FRAME_PAYLOAD', () => {
    expect(() => encodeFrame({ ...header(), dtype: DType.Bytes }, new Uint8Array(MAX_FRAME_PAYLOAD + 1))).toThrow(/exceeds/);
  });

  it('a Float32 payload that is not a multiple of 4 bytes (it would not decode)', () => {
    expect(() => encodeFrame(header(), new Uint8Array(6))).toThrow(RangeError);
  });
});

describe('decodeFrame fuzz', () => {
  it('never throws on 100000+ random and mutated frames; a Frame always matches its header length', () => {
    const rnd = mulberry32(0xc0ffee);
    const seeds: Uint8Array[] = [];
    for (let i = 0; i < 64; i++) {
      const dtype = i % 2 === 0 ? DType.Float32 : DType.Bytes;
      const unit = dtype === DType.Float32 ? 4 : 1;
      seeds.push(encodeFrame(randomHeader(rnd, dtype), randomBytes(rnd, Math.floor(rnd() * 64) * unit)));
    }
    const counts = { frames: 0, errors: new Map<string, number>() };
    const check = (input: Uint8Array): void => {
      let r: ReturnType<typeof decodeFrame>;
      try {
        r = decodeFrame(input);
      } catch (e) {
        throw new Error(`decodeFrame threw on ${Buffer.from(input).toString('hex')}: ${String(e)}`);
      }
      if (r instanceof FrameError) {
        counts.errors.set(r.code, (counts.errors.get(r.code) ?? 0) + 1);
        return;
      }
      counts.frames++;
      const declared = new DataView(input.buffer, input.byteOffset, input.byteLength).getUint32(28, true);
      if (r.payload.byteLength !== declared || declared !== input.byteLength - FRAME_HEADER_BYTES) {
        throw new Error(`payload ${r.payload.byteLength} B but header says ${declared} B`);
      }
      if (r.chunk >= r.chunks || r.chunks > MAX_CHUNK_COUNT) throw new Error(`chunk ${r.chunk} of ${r.chunks} accepted`);
      if (r.dtype === DType.Float32 && r.payload.byteLength % 4 !== 0) throw new Error('ragged Float32 payload');
    };

    const N = 120_000;
    for (let i = 0; i < N; i++) {
      const mode = i % 4;
      if (mode === 0) {
        // Pure noise, sometimes with a valid magic and version so later checks are reached.
        const b = randomBytes(rnd, Math.floor(rnd() * 96));
        if (b.length >= 3 && rnd() < 0.7) {
          b[0] = FRAME_MAGIC & 0xff;
          b[1] = FRAME_MAGIC >> 8;
          b[2] = PROTOCOL_VERSION;
        }
        check(b);
      } else {
        const b = seeds[Math.floor(rnd() * seeds.length)]!.slice();
        if (mode === 1) {
          // Flip 1-4 random bits.
          for (let k = 1 + Math.floor(rnd() * 4); k > 0; k--) {
            const at = Math.floor(rnd() * b.length);
            b[at]! ^= 1 << Math.floor(rnd() * 8);
          }
          check(b);
        } else if (mode === 2) {
          // Overwrite one header byte, biased towards the checked fields.
          b[Math.floor(rnd() * FRAME_HEADER_BYTES)] = Math.floor(rnd() * 256);
          check(rnd() < 0.5 ? b : b.subarray(0, Math.floor(rnd() * b.length)));
        } else {
          // Splice: truncate, extend, or re-declare the length; then view at a random offset.
          const cut = Math.floor(rnd() * (b.length + 8));
          const out = new Uint8Array(cut + 3);
          out.set(b.subarray(0, Math.min(cut, b.length)), 3);
          if (cut >= FRAME_HEADER_BYTES && rnd() < 0.5) {
            new DataView(out.buffer).setUint32(3 + 28, cut - FRAME_HEADER_BYTES, true);
          }
          check(out.subarray(3));
        }
      }
    }
    const total = counts.frames + [...counts.errors.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(N);
    // The corpus reaches every branch: some frames decode, and each error code occurs.
    expect(counts.frames).toBeGreaterThan(1000);
    for (const code of ['truncated', 'bad-magic', 'bad-version', 'bad-op', 'bad-dtype', 'bad-reserved', 'bad-chunk', 'bad-length']) {
      expect(counts.errors.get(code) ?? 0, code).toBeGreaterThan(0);
    }
  });
});
