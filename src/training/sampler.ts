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

/** Cycles through a shard in a seeded order, reshuffled each pass. */
export class Sampler {
  private order: Int32Array;
  private pos = 0;
  private readonly rand: () => number;
  constructor(private readonly ds: Dataset, seed: number) {
    this.rand = mulberry32(seed);
    this.order = this.shuffle();
  }
  private shuffle(): Int32Array {
    const o = Int32Array.from({ length: this.ds.n }, (_, i) => i);
    for (let i = o.length - 1; i > 0; i--) {
      const j = Math.floor(this.rand() * (i + 1));
      [o[i], o[j]] = [o[j]!, o[i]!];
    }
    return o;
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

