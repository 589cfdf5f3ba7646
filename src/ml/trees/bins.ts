/**
 * Feature binning that every peer agrees on, for histogram-based trees (XGBoost `hist`, LightGBM).
 *
 * 1. The global range of each feature: every peer writes its per-feature min and max into its own
 *    slot of a vector, and one sum gathers them all.
 * 2. A fine sketch: each peer counts its values in {@link SKETCH_BUCKETS} equal-width buckets over
 *    that range; one sum gives the global fine histogram.
 * 3. Bin boundaries at the quantiles of the fine histogram (deduplicated), computed identically on
 *    every peer from the same sums. A constant feature gets no boundary (one bin, never split).
 *
 * A value `v` falls in bin `b = #{boundaries <= v}`; a split "at bin s" sends `v < boundaries[s]` left.
 */
import type { SumAllPeers } from '../algorithms/distributed.ts';

/** Resolution of the per-feature sketch the quantiles are read from. */
export const SKETCH_BUCKETS = 1024;
/** Most bins a feature may have (bins are stored as bytes). */
export const MAX_BINS = 256;

export interface Bins {
  /** Per feature, the increasing bin boundaries (`bins - 1` of them, fewer after deduplication). */
  boundaries: Float32Array[];
}

/** Number of bins of feature `f`. */
export const binCount = (b: Bins, f: number): number => b.boundaries[f]!.length + 1;

/**
 * Agrees on bin boundaries for `d` features of this peer's `n` rows (`x` row-major). Every peer of
 * the group must call it with the same `maxBins`. Non-finite values are rejected.
 */
export async function agreeBins(
  sum: SumAllPeers,
  rank: number,
  size: number,
  x: Float32Array,
  n: number,
  d: number,
  maxBins: number,
): Promise<Bins> {
  if (!Number.isInteger(maxBins) || maxBins < 2 || maxBins > MAX_BINS)
    throw new RangeError(`agreeBins: maxBins must be an integer in [2, ${MAX_BINS}], got ${maxBins}`);
  for (let i = 0; i < n * d; i++)
    if (!Number.isFinite(x[i]!))
      throw new RangeError(`agreeBins: row ${Math.floor(i / d)}, feature ${i % d} is ${x[i]}; replace missing or infinite values first`);
  // 1. Ranges: slots [rank][feature][min, max, has-rows].
  const slots = new Float32Array(size * d * 3);
  for (let f = 0; f < d; f++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = x[i * d + f]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const o = (rank * d + f) * 3;
    if (n > 0) slots.set([lo, hi, 1], o);
  }
  const all = await sum(slots);
  const lo = new Float64Array(d).fill(Infinity);
  const hi = new Float64Array(d).fill(-Infinity);
  for (let r = 0; r < size; r++) {
    for (let f = 0; f < d; f++) {
      const o = (r * d + f) * 3;
      if (all[o + 2] === 0) continue;
      lo[f] = Math.min(lo[f]!, all[o]!);
      hi[f] = Math.max(hi[f]!, all[o + 1]!);
    }
  }
  // 2. Fine sketch over the global range.
  const bucket = (f: number, v: number): number =>
    Math.min(SKETCH_BUCKETS - 1, Math.floor(((v - lo[f]!) / (hi[f]! - lo[f]!)) * SKETCH_BUCKETS));
  const sketch = new Float32Array(d * SKETCH_BUCKETS);
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < d; f++) if (hi[f]! > lo[f]!) sketch[f * SKETCH_BUCKETS + bucket(f, x[i * d + f]!)]!++;
  }
  const global = await sum(sketch);
  // 3. Quantile boundaries: the upper edge of the bucket where each quantile falls.
  const boundaries: Float32Array[] = [];
  for (let f = 0; f < d; f++) {
    if (!(hi[f]! > lo[f]!)) {
      boundaries.push(new Float32Array(0));
      continue;
    }
    const counts = global.subarray(f * SKETCH_BUCKETS, (f + 1) * SKETCH_BUCKETS);
    const total = counts.reduce((a, b) => a + b, 0);
    const out: number[] = [];
    let acc = 0;
    let q = 1;
    for (let k = 0; k < SKETCH_BUCKETS - 1 && q < maxBins; k++) {
      acc += counts[k]!;
      if (acc >= (q * total) / maxBins) {
        const edge = Math.fround(lo[f]! + ((k + 1) / SKETCH_BUCKETS) * (hi[f]! - lo[f]!));
        if (out.length === 0 || edge > out.at(-1)!) out.push(edge);
        while (q < maxBins && acc >= (q * total) / maxBins) q++;
      }
    }
    boundaries.push(Float32Array.from(out));
  }
  return { boundaries };
}

/** The bin of `v` for feature `f`: the number of boundaries `<= v` (binary search). */
export function binOf(b: Bins, f: number, v: number): number {
  const t = b.boundaries[f]!;
  let lo = 0;
  let hi = t.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (t[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** All rows binned, row-major `n x d` bytes. */
export function binRows(b: Bins, x: Float32Array, n: number, d: number): Uint8Array {
  const out = new Uint8Array(n * d);
  for (let i = 0; i < n; i++) for (let f = 0; f < d; f++) out[i * d + f] = binOf(b, f, x[i * d + f]!);
  return out;
}
