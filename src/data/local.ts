/**
 * Data held in the tab itself (a CSV or IDX file the user picked, or a synthetic set): a seeded
 * train/test hold-out, and this peer's shard of it cut exactly as the server cuts a built-in
 * dataset. Every peer that loads the same file gets disjoint shards that together cover it; a peer
 * keeps only its own shard once training starts.
 */
import type { Split } from './builtin.ts';
import { DataError, subset, type Dataset } from './dataset.ts';
import { partition, type PartitionOptions } from './partition.ts';
import { permutation, rng } from './sampling.ts';
import type { ShardRequest } from './shard-client.ts';

/**
 * How a shard request partitions its split: the train split by the requested scheme, the test split
 * always IID (so each peer evaluates a disjoint slice). Shared by the server and the page.
 */
export function shardPartitionOptions(req: ShardRequest, numClasses: number): PartitionOptions {
  const seed = req.seed ?? 0;
  if (req.split === 'test') return { scheme: 'iid', parts: req.size, seed };
  const scheme = req.scheme ?? 'iid';
  return {
    scheme,
    parts: req.size,
    seed,
    ...(numClasses > 0 ? { numClasses } : {}),
    ...(scheme === 'dirichlet' && req.alpha !== undefined ? { alpha: req.alpha } : {}),
    ...(scheme === 'label-shards' && req.shardsPerPart !== undefined ? { shardsPerPart: req.shardsPerPart } : {}),
  };
}

/** The dataset name a training config uses for the data loaded in the tab. */
export const LOCAL_DATASET = 'local';

/** A dataset the user brought, split into train and test. */
export interface LocalData {
  train: Dataset;
  test: Dataset;
  /** Where it came from, for the page ("iris.csv", "synthetic blobs"). */
  source: string;
}

/** Share of the samples held out for testing. */
export const DEFAULT_TEST_FRACTION = 0.2;

/** Test samples of a hold-out of `n` samples: round(n * testFraction), at least one, and at least one left to train on. */
export function testSize(n: number, testFraction = DEFAULT_TEST_FRACTION): number {
  return Math.min(n - 1, Math.max(1, Math.round(n * testFraction)));
}

/**
 * Splits `ds` into train and test by a seeded shuffle: `round(n * testFraction)` samples (at least
 * one, and at least one left to train on) go to test. Throws DataError('empty') for fewer than 2
 * samples and 'bad-argument' for a fraction outside (0, 1).
 */
export function holdOut(ds: Dataset, source: string, seed: number, testFraction = DEFAULT_TEST_FRACTION): LocalData {
  if (!(testFraction > 0 && testFraction < 1))
    throw new DataError('bad-argument', `holdOut: testFraction must be in (0, 1), got ${testFraction}`);
  if (ds.n < 2) throw new DataError('empty', `${source}: ${ds.n} sample(s); at least 2 are needed to hold one out for testing`);
  const order = permutation(ds.n, rng(seed));
  const nTest = testSize(ds.n, testFraction);
  return { train: subset(ds, order.subarray(nTest)), test: subset(ds, order.subarray(0, nTest)), source };
}

/**
 * This peer's shard of a split of local data, for `req.rank` of `req.size`. Throws
 * DataError('bad-argument') for a label-based scheme on a regression dataset.
 */
export function localShard(data: LocalData, split: Split, req: Omit<ShardRequest, 'split'>): Dataset {
  const ds = data[split];
  if (ds.numClasses === 0 && (req.scheme ?? 'iid') !== 'iid') {
    throw new DataError(
      'bad-argument',
      `${data.source}: "${req.scheme}" partitions by class label, but this is a regression dataset; use the iid scheme`,
    );
  }
  const parts = partition(ds.y, shardPartitionOptions({ ...req, split }, ds.numClasses));
  return subset(ds, parts[req.rank]!);
}
