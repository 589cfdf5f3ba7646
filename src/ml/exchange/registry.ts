/**
 * The codecs (`compression.kind`) and the robust rules (`robust.rule`) a config can name, by name.
 * The names, their descriptions and their options are the catalogs' (protocol/catalogs.ts `CODECS`
 * and `AGGREGATION_RULES`); the tables here attach one factory per name and are exhaustive over
 * them, so a name without a factory (or a factory without a name) does not compile. Adding a
 * codec or a rule is its file (codecs/*.ts implementing `Compressor`, rules/*.ts a `RobustRuleFn`),
 * its entry here and its catalog entry (ARCHITECTURE.md, "One step's exchange"). The builder
 * (builder.ts) looks configs up in these tables only.
 */
import type { AggregationRuleName, CodecName } from '../../protocol/catalogs.ts';
import type { Codec, CodecFactory, CodecSpec, Compressor, CompressorName, Slot } from './codecs/codec.ts';
import { fp16 } from './codecs/fp16.ts';
import { int8 } from './codecs/int8.ts';
import { powersgd } from './codecs/powersgd.ts';
import { randomk } from './codecs/randomk.ts';
import { median } from './rules/median.ts';
import type { BoundRule, RobustRuleFn, RuleSpec } from './rules/rule.ts';
import { trimmedMean } from './rules/trimmed-mean.ts';
import type { Stage } from './stage.ts';
import { AutoCodecStage } from './stages/auto.ts';
import { RobustStage } from './stages/robust.ts';

/** The codecs proper (every codec name but `auto`). */
export const COMPRESSORS = { fp16, int8, randomk, powersgd } satisfies { [K in CompressorName]: CodecFactory<K, Compressor> };

/** Every codec a config can name: the codecs proper, and `auto`, which picks one of them. */
export const CODECS = {
  ...COMPRESSORS,
  auto: (_spec, slots, seed) => new AutoCodecStage((spec) => compressorFor(spec, slots, seed)),
} satisfies { [K in CodecName]: CodecFactory<K> };

/** The robust rules. */
export const RULES = { median, 'trimmed-mean': trimmedMean } satisfies { [K in AggregationRuleName]: RobustRuleFn<K> };

/** The codec proper of `spec`, for a model of `slots` in a run of `seed`. */
export function compressorFor(spec: CodecSpec<CompressorName>, slots: Slot[], seed: number): Compressor {
  return (COMPRESSORS[spec.kind] as CodecFactory<CompressorName, Compressor>)(spec, slots, seed);
}

/** The codec stage of `spec`. */
export function codecFor(spec: CodecSpec, slots: Slot[], seed: number): Codec {
  return (CODECS[spec.kind] as CodecFactory<CodecName>)(spec, slots, seed);
}

/** The rule of `spec` with its options bound. */
export function ruleOf(spec: RuleSpec): BoundRule {
  const rule = RULES[spec.rule] as RobustRuleFn<AggregationRuleName>;
  return (voters) => rule(spec, voters);
}

/** The robust rule stage of `spec`. */
export function ruleFor(spec: RuleSpec): Stage {
  return new RobustStage(spec.rule, ruleOf(spec));
}
