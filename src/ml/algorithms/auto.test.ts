import { describe, expect, it } from 'vitest';
import { chooseCodec } from './auto.ts';
import type { Slot } from '../exchange/codecs/codec.ts';

/** An MLP 784-128-10: two weight matrices and two bias vectors (PowerSGD r2 sends 1/45). */
const MLP: Slot[] = [
  { shape: [784, 128], offset: 0, size: 100_352 },
  { shape: [128], offset: 100_352, size: 128 },
  { shape: [128, 10], offset: 100_480, size: 1280 },
  { shape: [10], offset: 100_480 + 1280, size: 10 },
];
/** Softmax regression on 8 features: a matrix too small for PowerSGD to pay. */
const SMALL: Slot[] = [
  { shape: [8, 4], offset: 0, size: 32 },
  { shape: [4], offset: 32, size: 4 },
];

describe('auto codec choice', () => {
  it('keeps the plain ring when the allreduce is a small part of the step', () => {
    const c = chooseCodec({ commMs: 10, computeMs: 90, latencyMs: 2, waitMs: 0 }, MLP);
    expect(c.spec).toBeNull();
    expect(c.reason).toBe(
      'allreduce 10 of a 100 ms step, 2 ms of it latency, 0 waiting for the slowest peer; predicted step: none 100, fp16 96, int8 94, powersgd-r2 94 ms',
    );
  });

  it('takes PowerSGD rank 2 when bandwidth dominates and the model has large matrices', () => {
    expect(chooseCodec({ commMs: 300, computeMs: 50, latencyMs: 5, waitMs: 0 }, MLP).spec).toEqual({ kind: 'powersgd', rank: 2 });
  });

  it('does not take PowerSGD when latency dominates: its second round costs more than its bytes save', () => {
    // A far link: 6 hops of 80 ms make most of the allreduce.
    const c = chooseCodec({ commMs: 900, computeMs: 300, latencyMs: 480, waitMs: 0 }, MLP);
    expect(c.spec).toEqual({ kind: 'int8' });
    expect(c.reason).toMatch(/none 1200, fp16 990, int8 885, powersgd-r2 1269 ms$/);
  });

  it('does not count the wait for a slow peer as communication a codec could shorten', () => {
    // 300 ms of the 320 ms allreduce is waiting for a straggler: nothing to gain.
    expect(chooseCodec({ commMs: 320, computeMs: 300, latencyMs: 10, waitMs: 300 }, MLP).spec).toBeNull();
    expect(chooseCodec({ commMs: 320, computeMs: 300, latencyMs: 10, waitMs: 0 }, MLP).spec).toEqual({ kind: 'powersgd', rank: 2 });
  });

  it('takes fp16 over int8 unless int8 gains another 10% of the step', () => {
    expect(chooseCodec({ commMs: 100, computeMs: 200, latencyMs: 0, waitMs: 0 }, SMALL).spec).toEqual({ kind: 'fp16' });
  });
});
