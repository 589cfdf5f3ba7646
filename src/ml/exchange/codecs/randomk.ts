/**
 * Random-k: a share of the coordinates, the same ones on every peer (drawn from the run's seed and
 * the step), summed as a dense k-vector with the gradient's tail. What it did not send stays in
 * the residual (error feedback, codec.ts).
 */
import { mulberry32 } from '../../../core/random.ts';
import { Contribution } from '../contribution.ts';
import type { SumOf, WireAdditions } from '../stage.ts';
import { ErrorFeedbackCodec, type CodecFactory, type Slot } from './codec.ts';

export class RandomKCodec extends ErrorFeedbackCodec {
  readonly name = 'randomk';
  readonly adds: WireAdditions = { tail: [], rounds: 0 };

  constructor(
    /** The share of the coordinates sent, in (0, 1]. */
    private readonly ratio: number,
    slots: Slot[],
    seed: number,
  ) {
    super(slots, seed);
    if (!(ratio > 0 && ratio <= 1)) throw new RangeError(`compression: randomk ratio must be in (0, 1]; got ${ratio}`);
  }

  protected async compress(x: Float32Array, c: Contribution, out: Contribution, plain: SumOf): Promise<void> {
    const n = x.length;
    const k = Math.max(1, Math.round(n * this.ratio));
    // The same k coordinates on every peer: a seeded partial shuffle.
    const rand = mulberry32((this.seed * 31_337 + this.step) >>> 0);
    const order = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(rand() * (n - i));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const idx = order.subarray(0, k);
    const send = Contribution.zeros(k, c.tail);
    this.residual.set(x);
    idx.forEach((coord, i) => {
      send.data[i] = x[coord]!;
      this.residual[coord] = 0;
    });
    send.tailValues.set(c.tailValues);
    const total = await plain(send);
    idx.forEach((coord, i) => (out.data[coord] = total.data[i]!));
    out.tailValues.set(total.tailValues);
    this.stats.floatsSent += send.length;
  }
}

export const randomk: CodecFactory<'randomk', RandomKCodec> = (spec, slots, seed) => new RandomKCodec(spec.ratio, slots, seed);
