/**
 * Seeded data augmentation for images: each sample shifted by up to `shift` pixels in x and y
 * (zeros fill in) and, with `flip`, mirrored left to right with probability 1/2. What a sample
 * gets is drawn from its key alone (the run's seed, the global step and its place in the global
 * batch), so every peer makes the same view of the same sample however the batch is split.
 */
import { mulberry32 } from '../core/random.ts';

export interface AugmentOptions {
  /** Largest shift in pixels, each axis (0: none). */
  shift: number;
  /** Mirror left to right with probability 1/2. */
  flip: boolean;
}

/**
 * The samples of `x` (count × h·w·c, channels last) augmented into a new array; sample i draws
 * from `keyOf(i)`.
 */
export function augmentImages(
  x: Float32Array,
  count: number,
  shape: readonly number[],
  o: AugmentOptions,
  keyOf: (i: number) => number,
): Float32Array {
  const [h = 1, w = 1, c = 1] = shape;
  const per = h * w * c;
  const out = new Float32Array(x.length);
  for (let i = 0; i < count; i++) {
    const r = mulberry32(keyOf(i));
    const dx = Math.floor(r() * (2 * o.shift + 1)) - o.shift;
    const dy = Math.floor(r() * (2 * o.shift + 1)) - o.shift;
    const flip = o.flip && r() < 0.5;
    const src = i * per;
    for (let y = 0; y < h; y++) {
      const sy = y - dy;
      if (sy < 0 || sy >= h) continue;
      for (let xx = 0; xx < w; xx++) {
        const sx = (flip ? w - 1 - xx : xx) - dx;
        if (sx < 0 || sx >= w) continue;
        for (let k = 0; k < c; k++) out[src + (y * w + xx) * c + k] = x[src + (sy * w + sx) * c + k]!;
      }
    }
  }
  return out;
}
