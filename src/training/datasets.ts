/**
 * The dataset registry's factories: how each dataset of the catalog (protocol/catalogs.ts's
 * DATASETS) is made: served from its IDX files, generated from a seed in every peer, or loaded by
 * the tab. A dataset without a factory, or with one of another source, does not compile.
 */
import { FASHION_MNIST, MOBY_DICK, type BuiltinDataset } from '../data/builtin.ts';
import { LOCAL_DATASET, testSize } from '../data/local.ts';
import type { UserDataInput } from '../data/user-files.ts';
import type { DATASETS, DatasetName } from '../protocol/catalogs.ts';

/** A synthetic set's generator input (loaded into each peer as its own data, dataset "local"). */
export type SyntheticInput = Extract<UserDataInput, { kind: 'blobs' | 'spirals' | 'linear' }>;

/** How one dataset is made. */
export type DatasetFactory =
  | { source: 'builtin'; dataset: BuiltinDataset }
  | { source: 'synthetic'; input: SyntheticInput }
  | { source: 'local' };

export const DATASET_FACTORIES = {
  'fashion-mnist': { source: 'builtin', dataset: FASHION_MNIST },
  'moby-dick': { source: 'builtin', dataset: MOBY_DICK },
  blobs: { source: 'synthetic', input: { kind: 'blobs', n: 2000, classes: 4, dims: 8, spread: 0.5, seed: 1 } },
  spirals: { source: 'synthetic', input: { kind: 'spirals', n: 2000, noise: 0.1, seed: 1 } },
  linear: { source: 'synthetic', input: { kind: 'linear', n: 2000, dims: 8, noise: 0.1, seed: 1 } },
  [LOCAL_DATASET]: { source: 'local' },
} as const satisfies { [N in DatasetName]: Extract<DatasetFactory, { source: (typeof DATASETS)[N]['source'] }> };

/**
 * Training samples of a dataset (what one epoch covers): a built-in set's whole train split (the
 * trainer trains on all of it), a synthetic set's samples less the held-out test share, the tab's
 * own data as loaded (`localSamples`). Undefined for a name the catalog lacks or data not loaded.
 */
export function trainSamples(dataset: string, localSamples?: number): number | undefined {
  if (!Object.hasOwn(DATASET_FACTORIES, dataset)) return undefined;
  const f: DatasetFactory = DATASET_FACTORIES[dataset as DatasetName];
  switch (f.source) {
    case 'builtin':
      return f.dataset.train.n;
    case 'synthetic':
      return f.input.n - testSize(f.input.n);
    case 'local':
      return localSamples;
  }
}
