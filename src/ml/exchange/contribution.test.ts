import { describe, expect, it } from 'vitest';
import { MlError } from '../errors.ts';
import { Contribution, GRADIENT_TAIL, SPARE } from './contribution.ts';

describe('Contribution', () => {
  it('packs [grad | loss | count] with named accessors, and keeps spare room after it', () => {
    const c = Contribution.gradient(Float32Array.of(1, 2, 3), 4, 0.5);
    expect(Array.from(c.data)).toEqual([1, 2, 3, 0.5, 4]);
    expect(c.tail).toEqual(GRADIENT_TAIL);
    expect(Array.from(c.body)).toEqual([1, 2, 3]);
    expect(Array.from(c.tailValues)).toEqual([0.5, 4]);
    expect([c.loss, c.count, c.bodyLength, c.length]).toEqual([0.5, 4, 3, 5]);
    expect(c.data.buffer.byteLength).toBe(4 * (5 + SPARE));
    // Without a loss: [grad | count].
    expect(Array.from(Contribution.gradient(Float32Array.of(1), 2).data)).toEqual([1, 2]);
    expect(() => Contribution.gradient(Float32Array.of(1), -1)).toThrow(/count/);
    expect(() => Contribution.gradient(Float32Array.of(1), 2 ** 24 + 1)).toThrow(MlError);
  });

  it('appends tail values in place while there is room, then copies; the old view hands its room over', () => {
    const c = Contribution.gradient(Float32Array.of(1, 2), 3, 1);
    const flagged = c.append({ pause: 1, stop: 0 });
    expect(flagged.data.buffer).toBe(c.data.buffer);
    expect(flagged.tail).toEqual(['loss', 'count', 'pause', 'stop']);
    expect([flagged.get('pause'), flagged.get('stop'), flagged.count]).toEqual([1, 0, 3]);
    // The original view is unchanged, and appending from it again no longer writes over the flags.
    expect(Array.from(c.data)).toEqual([1, 2, 1, 3]);
    const again = c.append({ broken: 1 });
    expect(again.data.buffer).not.toBe(c.data.buffer);
    expect(flagged.get('pause')).toBe(1);
    // A view over someone else's array (an all-gather's part) never writes past itself.
    const shared = new Float32Array(8);
    const part = Contribution.over(shared.subarray(0, 4), GRADIENT_TAIL);
    part.append({ pause: 7 });
    expect(shared[4]).toBe(0);
    // Dropping the tail again is a view.
    const dropped = flagged.dropTail(2);
    expect(dropped.tail).toEqual(GRADIENT_TAIL);
    expect(dropped.data.buffer).toBe(c.data.buffer);
    expect(() => dropped.dropTail(3)).toThrow(RangeError);
  });

  it('the public tail is what secure aggregation leaves clear: the count and flags, not the loss', () => {
    expect(Contribution.zeros(3, GRADIENT_TAIL).publicTail).toBe(1);
    expect(Contribution.zeros(3, []).publicTail).toBe(0);
    expect(Contribution.zeros(3, GRADIENT_TAIL).append({ pause: 0, stop: 0 }).publicTail).toBe(3);
    expect(Contribution.zeros(3, ['loss']).publicTail).toBe(0);
  });

  it('turns a summed gradient into the mean in place, with the same bits as dividing each sum', () => {
    const sum = Contribution.gradient(Float32Array.of(3, 6, 7), 3, 1);
    const before = Float32Array.from(sum.body, (x) => x / 3);
    const { grad, loss, count } = sum.toMean();
    expect(grad.buffer).toBe(sum.data.buffer);
    expect(Array.from(grad)).toEqual(Array.from(before));
    expect([loss, count]).toEqual([Math.fround(1 / 3), 3]);
    expect(() => Contribution.gradient(Float32Array.of(1), 0).toMean()).toThrow(MlError);
    expect(() => Contribution.over(Float32Array.of(1, 2)).toMean()).toThrow(MlError);
  });

  it('reads a sum with its layout and wire, and refuses one of another length', () => {
    const c = Contribution.zeros(2, GRADIENT_TAIL).onWire('f16');
    const s = c.like(Float32Array.of(1, 2, 3, 4));
    expect([s.wire, s.count, s.loss]).toEqual(['f16', 4, 3]);
    expect(() => c.like(new Float32Array(3))).toThrow(/layout/);
    expect(() => c.get('pause')).toThrow(/no pause/);
    const copy = s.copy();
    copy.data[0] = 9;
    expect(s.data[0]).toBe(1);
    expect(Array.from(new Float32Array(s.bytes().slice().buffer))).toEqual([1, 2, 3, 4]);
  });
});
