/**
 * The `auto` codec's stage (ml/algorithms/auto.ts): no codec while the group's steps are measured
 * (the probe itself runs in the trainer, training/phases/codec.ts), then the codec the group
 * picked, until the next agreement, where a new group measures again.
 */
import type { Codec, CodecSpec, CompressorName } from '../codecs/codec.ts';
import type { Exchange, StepScope, WireAdditions } from '../stage.ts';

const NOTHING: WireAdditions = { tail: [], rounds: 0 };

export class AutoCodecStage implements Codec {
  readonly name = 'auto';
  /** The codec in force; null while probing, or when the group picked none. */
  chosen: Codec | null = null;

  /** `make`: the codec of a spec, for this model and run (the registry's). */
  constructor(private readonly make: (spec: CodecSpec<CompressorName>) => Codec) {}

  /** What the chosen codec adds (nothing while there is none). */
  get adds(): WireAdditions {
    return this.chosen?.adds ?? NOTHING;
  }

  /** A new group: no codec until it has measured its own steps. */
  reset(_step: number): void {
    this.chosen = null;
  }

  /** The group's pick at `step` (null: none), starting from the state every peer agrees on. */
  choose(spec: CodecSpec<CompressorName> | null, step: number): void {
    this.chosen = spec && this.make(spec);
    this.chosen?.reset(step);
  }

  wrap(inner: Exchange, scope: StepScope): Exchange {
    return this.chosen ? this.chosen.wrap(inner, scope) : inner;
  }
}
