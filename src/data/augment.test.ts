import { describe, expect, it } from 'vitest';
import { augmentImages } from './augment.ts';

describe('seeded image augmentation', () => {
  it('shifts and mirrors a sample exactly, by its key alone: the same sample gets the same view in any split', () => {
    // One 3x3 image, values 1..9 row by row.
    const img = Float32Array.from({ length: 9 }, (_, i) => i + 1);
    // No shift, flip certain for some key: find a key that flips, and check the mirror.
    const mirror = [3, 2, 1, 6, 5, 4, 9, 8, 7];
    const views = Array.from({ length: 20 }, (_, k) => Array.from(augmentImages(img, 1, [3, 3, 1], { shift: 0, flip: true }, () => k)));
    expect(views.some((v) => v.join() === mirror.join())).toBe(true);
    expect(views.some((v) => v.join() === Array.from(img).join())).toBe(true);
    for (const v of views) expect([mirror.join(), Array.from(img).join()]).toContain(v.join());
    // Shifts move content and fill zeros; the pixel sum only loses what left the frame.
    const shifted = Array.from({ length: 30 }, (_, k) => augmentImages(img, 1, [3, 3, 1], { shift: 1, flip: false }, () => 100 + k));
    expect(shifted.some((v) => v[0] === 0 && v[4] === 1)).toBe(true);
    for (const v of shifted) expect(v.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(45);
    // A batch of 6 augmented whole equals its two halves augmented apart with the same keys.
    const batch = Float32Array.from({ length: 6 * 9 }, (_, i) => (i * 7) % 11);
    const key = (g: number): number => 5000 + g;
    const whole = augmentImages(batch, 6, [3, 3, 1], { shift: 1, flip: true }, key);
    const a = augmentImages(batch.subarray(0, 27), 3, [3, 3, 1], { shift: 1, flip: true }, (i) => key(i));
    const b = augmentImages(batch.subarray(27), 3, [3, 3, 1], { shift: 1, flip: true }, (i) => key(3 + i));
    expect(Array.from(whole)).toEqual([...a, ...b]);
    expect(Array.from(whole)).not.toEqual(Array.from(batch));
  });
});
