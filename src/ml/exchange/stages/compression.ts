/**
 * The compression stages (ml/algorithms/compression.ts): fp16 and int8 put the body on a smaller
 * wire; random-k sends a seeded share of the coordinates; PowerSGD sends its P factors with the
 * gradient's tail, then its Q factors with none (one extra round). Random-k and PowerSGD keep what
 * they did not send (error feedback), which {@link CodecStage.reset} clears at every agreement.
 */
import { Compressor, quantisedWire, type CompressionSpec, type Slot } from '../../algorithms/compression.ts';
import { withSum, type Exchange, type Stage, type WireAdditions } from '../stage.ts';

/** A codec's stage: its compressor (residual, factors) lives across steps. */
export class CodecStage implements Stage {
  readonly compressor: Compressor;
  readonly adds: WireAdditions;

  constructor(
    readonly name: string,
    spec: Exclude<CompressionSpec, { kind: 'auto' }>,
    slots: Slot[],
    seed: number,
  ) {
    this.compressor = new Compressor(spec, slots, seed);
    const wire = quantisedWire(spec);
    this.adds = { tail: [], rounds: spec.kind === 'powersgd' ? 1 : 0, ...(wire ? { wire } : {}) };
  }

  /** Back to the state every peer of a new group agrees on at `step`. */
  reset(step: number): void {
    this.compressor.reset(step);
  }

  wrap(inner: Exchange): Exchange {
    return withSum(inner, this.compressor.sum(inner.sum));
  }
}
