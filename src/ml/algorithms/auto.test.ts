import { describe, expect, it } from 'vitest';
import { chooseCodec } from './auto.ts';
import type { Slot } from './compression.ts';

/** An MLP 784-128-10: two weight matrices and two bias vectors. */
const MLP: Slot[] = [
  { shape: [784, 128], offset: 0, size: 100_352 },
  { shape: [128], offset: 100_352, size: 128 },
  { shape: [128, 10], offset: 100_480, size: 1280 },
  { shape: [10], offset: 101_760, size: 10 },
];
/** Softmax regression on 8 features: a matrix too small for PowerSGD to pay. */
const SMALL: Slot[] = [
  { shape: [8, 4], offset: 0, size: 32 },
  { shape: [4], offset: 32, size: 4 },
];

describe('auto codec choice', () => {
  it('keeps the plain ring when the allreduce is a small part of the step', () => {
    const c = chooseCodec(10, 90, MLP);
    expect(c.spec).toBeNull();
    expect(c.reason).toBe('the allreduce took 10% of a step (10 of 100 ms): compression would save little');
  });

  it('takes fp16 when communication matters but does not dominate', () => {
    expect(chooseCodec(30, 70, MLP).spec).toEqual({ kind: 'fp16' });
  });

  it('takes PowerSGD rank 2 when communication dominates and the model has large matrices', () => {
    const c = chooseCodec(80, 20, MLP);
    expect(c.spec).toEqual({ kind: 'powersgd', rank: 2 });
    expect(c.reason).toMatch(/sends 45x less/);
  });

  it('takes int8 when communication dominates but PowerSGD would not pay', () => {
    const c = chooseCodec(80, 20, SMALL);
    expect(c.spec).toEqual({ kind: 'int8' });
    expect(c.reason).toMatch(/only 1\.\dx less/);
  });
});
