/**
 * This peer's shard of a split: from the data loaded in this peer (`dataset: "local"`), or
 * downloaded from the server, with its progress.
 */
import { DataError, type Dataset } from '../data/dataset.ts';
import { LOCAL_DATASET, localShard, type LocalData } from '../data/local.ts';
import { fetchShard, shardPath } from '../data/shard-client.ts';
import type { TrainConfig } from '../training/trainer.ts';

export type ShardConfig = Pick<TrainConfig, 'dataset' | 'partition'>;

export interface ShardSource {
  /** The data loaded in this peer, if any. */
  local: LocalData | null;
  /** Server origin for downloads (default: relative to the page). */
  origin?: string | undefined;
  /** A download's bytes so far; `total` when the server said. */
  onProgress?: (split: 'train' | 'test', loaded: number, total: number | undefined) => void;
  /** A download finished (or failed). */
  onDone?: () => void;
}

export async function loadShard(
  src: ShardSource,
  config: ShardConfig,
  split: 'train' | 'test',
  rank: number,
  size: number,
): Promise<Dataset> {
  if (config.dataset === LOCAL_DATASET) {
    if (!src.local)
      throw new DataError(
        'not-found',
        'dataset "local": no data is loaded in this tab; pick a file under "Your own data" (or call ringtrain.useData) on every peer first',
      );
    return localShard(src.local, split, { rank, size, ...config.partition });
  }
  const path = shardPath(config.dataset, { split, rank, size, ...config.partition });
  const ds = await fetchShard(`${src.origin ?? ''}${path}`, {
    onProgress: (loaded, total) => src.onProgress?.(split, loaded, total),
  });
  src.onDone?.();
  if (ds instanceof DataError) throw ds;
  return ds;
}
