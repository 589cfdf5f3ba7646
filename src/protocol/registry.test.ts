import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BLOBS_GD } from '../test/room.ts';
import { AGGREGATION_RULES, ALGORITHMS, CODECS, DATASETS, MODELS, OPTIMIZERS, TREE_MODELS, type ModelName } from './catalogs.ts';
import { catalog, choicesOf, namesOf, specSchema, type Catalog } from './registry.ts';
import { ConfigError, jobSchema, parseJob, parseTrainConfig } from './run-config.ts';

const ALL: Record<string, Catalog> = { MODELS, TREE_MODELS, DATASETS, OPTIMIZERS, ALGORITHMS, CODECS, AGGREGATION_RULES };

/** The message of the ConfigError `value` gets. */
function refusal(value: unknown): string {
  try {
    parseTrainConfig(value);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).message;
  }
  throw new Error(`parsed: ${JSON.stringify(value)}`);
}

describe('catalogs', () => {
  it('every name of every catalog appears in the job schema', () => {
    const schema = JSON.stringify(z.toJSONSchema(jobSchema));
    // As an enum value or a discriminator's const; datasets (an open name) in the field's description.
    const word = (name: string): RegExp => new RegExp(`(^|[^\\w-])${name.replace(/[-]/g, '\\-')}([^\\w-]|$)`);
    for (const [what, c] of Object.entries(ALL)) for (const name of namesOf(c)) expect(schema, `${what}: ${name}`).toMatch(word(name));
  });

  it('the schema refuses an unknown name, listing the valid ones', () => {
    const list = (c: Catalog): string => namesOf(c).join(', ');
    expect(refusal({ ...BLOBS_GD, model: 'forest' })).toBe(`run config: model: "forest" is not one of ${list(MODELS)}`);
    expect(refusal({ ...BLOBS_GD, algorithm: 'admm' })).toBe(`run config: algorithm: "admm" is not one of ${list(ALGORITHMS)}`);
    expect(refusal({ ...BLOBS_GD, optimizer: { kind: 'nadam', lr: 1 } })).toBe(
      `run config: optimizer.kind: "nadam" is not one of ${list(OPTIMIZERS)}`,
    );
    expect(refusal({ ...BLOBS_GD, compression: { kind: 'zip' } })).toBe(
      `run config: compression.kind: "zip" is not one of ${list(CODECS)}`,
    );
    expect(refusal({ ...BLOBS_GD, robust: { rule: 'mode' } })).toBe(
      `run config: robust.rule: "mode" is not one of ${list(AGGREGATION_RULES)}`,
    );
    const trees = { dataset: 'fashion-mnist', partition: { scheme: 'iid', seed: 1 }, model: 'forest', maxDepth: 3, bins: 16, seed: 1 };
    expect(() => parseJob({ kind: 'trees', config: trees })).toThrow(`"forest" is not one of ${list(TREE_MODELS)}`);
  });

  it("a known name's options are still checked", () => {
    expect(refusal({ ...BLOBS_GD, compression: { kind: 'powersgd' } })).toMatch(/^run config: compression.rank: /);
    expect(refusal({ ...BLOBS_GD, optimizer: { kind: 'sgd', lr: 1, beta: 0.9 } })).toMatch(/Unrecognized key: "beta"/);
  });

  it("every preset is a valid value of its name's options, and choice values are unique", () => {
    for (const [what, c] of Object.entries({ CODECS, AGGREGATION_RULES })) {
      const schema = specSchema(c, what === 'CODECS' ? 'kind' : 'rule');
      const choices = choicesOf(c);
      expect(new Set(choices.map((ch) => ch.value)).size).toBe(choices.length);
      for (const ch of choices)
        expect(schema.safeParse({ [what === 'CODECS' ? 'kind' : 'rule']: ch.name, ...ch.options }).success).toBe(true);
    }
  });

  it('a registry missing a factory for a name does not compile', () => {
    const factories = {
      softmax: () => 'softmax',
      mlp: () => 'mlp',
      cnn: () => 'cnn',
      // @ts-expect-error: svm, a model of the catalog, has no factory
    } satisfies Record<ModelName, () => string>;
    expect(Object.keys(factories)).not.toContain('svm');
    // And a factory for a name the catalog lacks is refused too.
    const extra = catalog({ a: { label: 'a', description: 'a', options: z.strictObject({}) } });
    // @ts-expect-error: b is not a name of the catalog
    const more = { a: 1, b: 2 } satisfies Record<keyof typeof extra, number>;
    expect(more.a).toBe(1);
  });
});
