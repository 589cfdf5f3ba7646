import { describe, expect, it } from 'vitest';
import { loadUserData } from '../data/user-files.ts';
import { AGGREGATION_RULES, ALGORITHMS, CODECS, DATASETS, MODELS, OPTIMIZERS, TREE_MODELS } from '../protocol/catalogs.ts';
import { choicesOf, namesOf, type Catalog } from '../protocol/registry.ts';
import { DATASET_FACTORIES, trainSamples } from '../training/datasets.ts';
import { jobFromFields } from '../training/job.ts';
import { CLI_DATASETS, TRAIN_USAGE } from './usage.ts';

describe('ringtrain train --help', () => {
  it('lists every name of every catalog with its description (datasets: the built-in and synthetic ones)', () => {
    const catalogs: Catalog[] = [MODELS, TREE_MODELS, OPTIMIZERS, ALGORITHMS, CODECS, AGGREGATION_RULES];
    for (const c of catalogs)
      for (const name of namesOf(c)) {
        expect(TRAIN_USAGE).toMatch(
          new RegExp(`\\n  ${name.replace('-', '\\-')} +${c[name]!.description.replace(/[()[\]`.*+?]/g, '\\$&')}\\n`),
        );
      }
    for (const c of [CODECS, AGGREGATION_RULES]) for (const ch of choicesOf(c)) expect(TRAIN_USAGE).toContain(ch.value);
    expect(CLI_DATASETS).toEqual(['fashion-mnist', 'moby-dick', 'blobs', 'spirals', 'linear']);
    for (const d of CLI_DATASETS) expect(TRAIN_USAGE).toContain(`  ${d}  `);
    expect(TRAIN_USAGE).not.toMatch(/\n {2}local /);
    expect(TRAIN_USAGE).toMatch(
      /--dataset D {8}fashion-mnist, moby-dick, blobs, spirals or linear \(default fashion-mnist; moby-dick for the transformer\)/,
    );
    // The SVM's and the transformer's form fields have flags, with the form's defaults.
    expect(TRAIN_USAGE).toMatch(/--lambda X .*\(default 0\.0001\)/);
    expect(TRAIN_USAGE).toMatch(/--kernel-features F, --kernel-gamma G[\s\S]*default 0: the linear SVM; G 0\.02/);
    expect(TRAIN_USAGE).toMatch(/--lm-layers L, --lm-width W, --lm-heads H[\s\S]*\(2, 128, 4\)/);
    expect(TRAIN_USAGE).toMatch(/--rounds R, --col-sample S[\s\S]*\(50, 0\.5\)/);
  });
});

describe('dataset registry', () => {
  it('an epoch of a built-in set is its whole train split; of a synthetic set, what the hold-out leaves', () => {
    expect(trainSamples('fashion-mnist')).toBe(60_000);
    expect(trainSamples('blobs')).toBe(1600);
    expect(trainSamples('local', 95)).toBe(95);
    expect(trainSamples('cifar-10')).toBeUndefined();
    expect(Object.keys(DATASET_FACTORIES)).toEqual(namesOf(DATASETS));
  });

  it('"linear", added by one catalog entry and one factory, is a regression set the CLI trains', async () => {
    const made = DATASET_FACTORIES.linear;
    const data = await loadUserData(made.input, 0);
    expect(data.train.n).toBe(trainSamples('linear'));
    expect(data.train.numClasses).toBe(0);
    expect(data.train.shape).toEqual([8]);
    const job = jobFromFields({ dataset: 'local', epochs: '2', batch: '100' }, trainSamples('linear'));
    expect(job.config).toMatchObject({ dataset: 'local', steps: 32 });
  });
});
