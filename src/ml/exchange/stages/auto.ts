/**
 * The `auto` codec's stage (ml/algorithms/auto.ts): no codec while the group's steps are measured
 * (the probe itself runs in the trainer, training/phases/codec.ts), then the codec the group
 * picked, until the next agreement, where a new group measures again.
 */
import type { CompressionSpec, Slot } from '../../algorithms/compression.ts';
import type { Exchange, Stage, WireAdditions } from '../stage.ts';
import { CodecStage } from './compression.ts';

const NOTHING: WireAdditions = { tail: [], rounds: 0 };

export class AutoCodecStage implements Stage {
  readonly name = 'auto';
  /** The codec in force; null while probing, or when the group picked none. */
  chosen: CodecStage | null = null;

  constructor(
    private readonly slots: Slot[],
    private readonly seed: number,
  ) {}

  /** What the chosen codec adds (nothing while there is none). */
  get adds(): WireAdditions {
    return this.chosen?.adds ?? NOTHING;
  }

  /** A new group: no codec until it has measured its own steps. */
  reset(_step: number): void {
    this.chosen = null;
  }

  /** The group's pick at `step` (null: none), starting from the state every peer agrees on. */
  choose(name: string, spec: Exclude<CompressionSpec, { kind: 'auto' }> | null, step: number): void {
    this.chosen = spec && new CodecStage(name, spec, this.slots, this.seed);
    this.chosen?.reset(step);
  }

  wrap(inner: Exchange): Exchange {
    return this.chosen ? this.chosen.wrap(inner) : inner;
  }
}
