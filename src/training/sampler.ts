/**
 * Batches of a peer's shard: its share of a global batch, drawn in a seeded order.
 */
import type { Batch } from '../ml/algorithms/distributed.ts';
import { featureSize, type Dataset } from '../data/dataset.ts';
import { mulberry32 } from '../core/random.ts';

/** Samples of a local batch for `rank` when a global batch of `global` is split over `size` peers. */
export function localBatchSize(global: number, size: number, rank: number): number {
  return Math.floor(global / size) + (rank < global % size ? 1 : 0);
}

/** 0..n-1 in the order of a Fisher-Yates shuffle drawn from `rand`. */
function permutation(n: number, rand: () => number): Int32Array {
  const o = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = o.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [o[i], o[j]] = [o[j]!, o[i]!];
  }
  return o;
}

/** The samples [from, from + count) of `ds` as a batch (views, no copy). */
export function sliceOf(ds: Dataset, from: number, count: number): Batch {
  const per = featureSize(ds.shape);
  const y = ds.targets ?? ds.y;
  return { x: ds.x.subarray(from * per, (from + count) * per), y: y.subarray(from, from + count), count };
}

/** Where rank `rank` starts and how many it takes when `parts` (one size per rank) cut a range. */
export function partOf(parts: readonly number[], rank: number): { from: number; count: number } {
  let from = 0;
  for (let r = 0; r < rank; r++) from += parts[r]!;
  return { from, count: parts[rank]! };
}

/**
 * The global batches of a run on served data: the whole split, and an endless sequence of seeded
 * permutations of it, one per epoch; global step t's batch of B is positions [(t-1)B, tB) of that
 * sequence. Which samples a step uses depends on the seed and the step alone, never on who is in
 * the view: the view only decides who computes which slice of it.
 */
export class GlobalOrder {
  private readonly perms = new Map<number, Int32Array>();
  constructor(
    private readonly ds: Dataset,
    private readonly seed: number,
  ) {}

  private perm(epoch: number): Int32Array {
    let p = this.perms.get(epoch);
    if (!p) {
      p = permutation(this.ds.n, mulberry32(this.seed * 7919 + epoch * 104_729 + 1));
      // A step's batch spans at most two epochs: keep the last two permutations.
      for (const e of this.perms.keys()) if (e < epoch - 1) this.perms.delete(e);
      this.perms.set(epoch, p);
    }
    return p;
  }

  /** Positions [from, from + count) of global step `step`'s batch of `global` samples. */
  slice(step: number, global: number, from: number, count: number): Batch {
    const per = featureSize(this.ds.shape);
    const n = this.ds.n;
    const targets = this.ds.targets;
    const x = new Float32Array(count * per);
    const y = targets ? new Float32Array(count) : new Int32Array(count);
    const start = (step - 1) * global + from;
    for (let k = 0; k < count; k++) {
      const pos = start + k;
      const i = this.perm(Math.floor(pos / n))[pos % n]!;
      x.set(this.ds.x.subarray(i * per, (i + 1) * per), k * per);
      y[k] = (targets ?? this.ds.y)[i]!;
    }
    return { x, y, count };
  }
}

/** Cycles through a shard in a seeded order, reshuffled each pass. */
export class Sampler {
  private order: Int32Array;
  private pos = 0;
  private readonly rand: () => number;
  constructor(
    private readonly ds: Dataset,
    seed: number,
  ) {
    this.rand = mulberry32(seed);
    this.order = this.shuffle();
  }
  private shuffle(): Int32Array {
    return permutation(this.ds.n, this.rand);
  }
  next(count: number): Batch {
    const per = featureSize(this.ds.shape);
    const n = Math.min(count, this.ds.n);
    const x = new Float32Array(n * per);
    const targets = this.ds.targets;
    const y = targets ? new Float32Array(n) : new Int32Array(n);
    for (let k = 0; k < n; k++) {
      if (this.pos === this.order.length) {
        this.order = this.shuffle();
        this.pos = 0;
      }
      const i = this.order[this.pos++]!;
      x.set(this.ds.x.subarray(i * per, (i + 1) * per), k * per);
      y[k] = (targets ?? this.ds.y)[i]!;
    }
    return { x, y, count: n };
  }
}

/**
 * Splits a global batch of `global` samples in proportion to `weights` (each peer's measured
 * samples/s), by largest remainder: the parts sum to `global`, and when `global >= weights.length`
 * every peer keeps at least one sample (so it keeps measuring its speed). Deterministic: every peer
 * computes the same split from the same (allreduced) weights. Non-positive or non-finite weights
 * count as the smallest positive one; all of them invalid gives the equal split.
 */
export function proportionalSplit(global: number, weights: ArrayLike<number>): number[] {
  const n = weights.length;
  const valid = Array.from(weights, (w) => (Number.isFinite(w) && w > 0 ? w : 0));
  const floor = Math.min(...valid.filter((w) => w > 0));
  if (!Number.isFinite(floor)) return Array.from({ length: n }, (_, r) => localBatchSize(global, n, r));
  const w = valid.map((x) => (x > 0 ? x : floor));
  const min = global >= n ? 1 : 0;
  const spread = global - min * n;
  const total = w.reduce((a, b) => a + b, 0);
  const exact = w.map((x) => (spread * x) / total);
  const parts = exact.map((x) => min + Math.floor(x));
  let left = global - parts.reduce((a, b) => a + b, 0);
  // Largest remainders first; ties go to the lower rank.
  const order = exact.map((x, r) => ({ r, rem: x - Math.floor(x) })).sort((a, b) => b.rem - a.rem || a.r - b.r);
  for (const { r } of order) {
    if (left === 0) break;
    parts[r]!++;
    left--;
  }
  return parts;
}
