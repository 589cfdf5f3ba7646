/**
 * The stages a config can name, by name: the codecs (`compression.kind`) and the robust rules
 * (`robust.rule`). Adding one is its stage's file plus an entry here; the builder (builder.ts)
 * looks configs up in these tables only.
 */
import type { CompressionSpec, Slot } from '../algorithms/compression.ts';
import type { RobustRule } from '../algorithms/robust.ts';
import type { Stage } from './stage.ts';
import { AutoCodecStage } from './stages/auto.ts';
import { CodecStage } from './stages/compression.ts';
import { RobustStage } from './stages/robust.ts';

/** A codec's stage: it keeps state across steps, which every agreement resets. */
export interface Codec extends Stage {
  reset(step: number): void;
}

type CodecFactory<K extends CompressionSpec['kind']> = (spec: Extract<CompressionSpec, { kind: K }>, slots: Slot[], seed: number) => Codec;

export const CODECS: { [K in CompressionSpec['kind']]: CodecFactory<K> } = {
  fp16: (spec, slots, seed) => new CodecStage('fp16', spec, slots, seed),
  int8: (spec, slots, seed) => new CodecStage('int8', spec, slots, seed),
  randomk: (spec, slots, seed) => new CodecStage('randomk', spec, slots, seed),
  powersgd: (spec, slots, seed) => new CodecStage('powersgd', spec, slots, seed),
  auto: (_spec, slots, seed) => new AutoCodecStage(slots, seed),
};

export const RULES: { [K in RobustRule['rule']]: (rule: Extract<RobustRule, { rule: K }>) => Stage } = {
  median: (rule) => new RobustStage(rule),
  'trimmed-mean': (rule) => new RobustStage(rule),
};

/** The codec stage of `spec`. */
export function codecFor(spec: CompressionSpec, slots: Slot[], seed: number): Codec {
  return (CODECS[spec.kind] as CodecFactory<CompressionSpec['kind']>)(spec as never, slots, seed);
}

/** The robust rule stage of `rule`. */
export function ruleFor(rule: RobustRule): Stage {
  return (RULES[rule.rule] as (r: RobustRule) => Stage)(rule);
}
