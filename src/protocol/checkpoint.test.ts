import { describe, expect, it } from 'vitest';
import { CHECKPOINT_HEADER_BYTES, CheckpointError, decodeCheckpoint, encodeCheckpoint, type Checkpoint } from './checkpoint.ts';

const CKPT: Checkpoint = {
  step: 42,
  runKey: '{"model":"softmax","seed":7}',
  weights: Float32Array.from([1.5, -2, 3.25, 0]),
  optimizer: Float32Array.from([2, 42, 0.1, 0.2]),
};

describe('checkpoint format', () => {
  it('round-trips step, run key, weights and optimizer state', () => {
    expect(decodeCheckpoint(encodeCheckpoint(CKPT))).toEqual(CKPT);
    const odd = { ...CKPT, runKey: 'é', optimizer: new Float32Array(0) };
    expect(decodeCheckpoint(encodeCheckpoint(odd))).toEqual(odd);
  });

  it('rejects every single flipped bit, truncation, padding and foreign bytes', () => {
    const good = encodeCheckpoint(CKPT);
    for (let bit = 0; bit < good.length * 8; bit++) {
      const bad = good.slice();
      bad[bit >> 3]! ^= 1 << (bit & 7);
      // Reserved header bytes (28..31) are not checked; every other bit is.
      if (bit >> 3 >= 28 && bit >> 3 < CHECKPOINT_HEADER_BYTES) continue;
      expect(decodeCheckpoint(bad), `bit ${bit}`).toBeInstanceOf(CheckpointError);
    }
    expect(String(decodeCheckpoint(good.subarray(0, good.length - 4)))).toMatch(/truncated or padded/);
    expect(String(decodeCheckpoint(new Uint8Array([...good, 0, 0, 0, 0])))).toMatch(/truncated or padded/);
    expect(String(decodeCheckpoint(new Uint8Array(10)))).toMatch(/shorter than its 32-byte header/);
    expect(String(decodeCheckpoint(new TextEncoder().encode('x'.repeat(64))))).toMatch(/bad magic/);
  });
});
