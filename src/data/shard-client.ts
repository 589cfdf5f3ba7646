/**
 * The page's side of `GET /api/datasets/:name/shard`: building the URL and downloading a shard with
 * progress. Uses only `fetch` and web streams (browser and Node alike); the fetch function is
 * injectable for tests.
 */
import { delay } from '../core/delay.ts';
import type { Split } from './builtin.ts';
import { DataError, type Dataset } from './dataset.ts';
import type { PartitionScheme } from './partition.ts';
import { decodeShard } from './shard-format.ts';

/** The list entry `GET /api/datasets` returns for each dataset. */
export interface DatasetInfo {
  name: string;
  title: string;
  /** Number of classes. */
  classes: number;
  classNames: string[];
  /** Per-sample shape, channels last. */
  shape: number[];
  /** Samples in the training split. */
  train: number;
  /** Samples in the test split. */
  test: number;
  source: string;
}

/** Which shard to ask for. For `split: 'test'` the scheme is ignored (the test set is split IID). */
export interface ShardRequest {
  split: Split;
  /** This peer's rank in the view, `0 <= rank < size`. */
  rank: number;
  /** The view size (number of parts). */
  size: number;
  scheme?: PartitionScheme;
  seed?: number;
  /** dirichlet only. */
  alpha?: number;
  /** label-shards only. */
  shardsPerPart?: number;
}

/** The path and query of a shard, e.g. `/api/datasets/fashion-mnist/shard?split=train&rank=0&size=3`. */
export function shardPath(name: string, req: ShardRequest): string {
  const q = new URLSearchParams({ split: req.split, rank: String(req.rank), size: String(req.size) });
  if (req.scheme !== undefined) q.set('scheme', req.scheme);
  if (req.seed !== undefined) q.set('seed', String(req.seed));
  if (req.alpha !== undefined) q.set('alpha', String(req.alpha));
  if (req.shardsPerPart !== undefined) q.set('shardsPerPart', String(req.shardsPerPart));
  return `/api/datasets/${encodeURIComponent(name)}/shard?${q.toString()}`;
}

/** Options of {@link fetchShard}. */
export interface FetchShardOptions {
  /** Aborts the download; the promise then resolves to DataError('aborted'). */
  signal?: AbortSignal;
  /** Called as bytes arrive; `total` is undefined when the server sent no Content-Length. */
  onProgress?: (loaded: number, total: number | undefined) => void;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

/**
 * Downloads and decodes one shard. Never rejects for expected failures: resolves to a DataError
 * with code 'fetch-failed' (network error, or an HTTP error, with the server's `{error}` message),
 * 'aborted', or whatever {@link decodeShard} returns for a malformed body.
 */
export async function fetchShard(url: string, opts: FetchShardOptions = {}): Promise<Dataset | DataError> {
  for (let attempt = 1; ; attempt++) {
    const got = await downloadOnce(url, opts);
    if (!(got instanceof NetworkError)) return got;
    if (attempt === SHARD_ATTEMPTS)
      return new DataError(
        'fetch-failed',
        `fetchShard: could not download ${url} (${got.message}; ${attempt} attempts); is the server running?`,
      );
    // A server busy with many peers fetching at once can drop a connection: wait, then ask again.
    // Aborted while waiting: the next attempt says so at once.
    await delay(attempt * SHARD_RETRY_MS, opts.signal).catch(() => undefined);
  }
}

/** Downloads of a shard tried before a network error is final (HTTP errors are final at once). */
export const SHARD_ATTEMPTS = 3;
/** Wait before the second attempt, ms (doubled before the third). */
const SHARD_RETRY_MS = 500;

/** A download that failed on the network (no HTTP answer): worth another attempt. */
class NetworkError extends Error {}

async function downloadOnce(url: string, opts: FetchShardOptions): Promise<Dataset | DataError | NetworkError> {
  const f = opts.fetch ?? globalThis.fetch;
  const aborted = (): DataError => new DataError('aborted', `fetchShard: the download of ${url} was aborted`);
  if (opts.signal?.aborted) return aborted();
  try {
    const res = await f(url, opts.signal ? { signal: opts.signal } : {});
    if (!res.ok) {
      let detail = res.statusText;
      try {
        const body = (await res.json()) as { error?: unknown };
        if (typeof body.error === 'string') detail = body.error;
      } catch {
        // Not JSON: keep the status text.
      }
      return new DataError('fetch-failed', `fetchShard: ${url} answered ${res.status}: ${detail}`);
    }
    const header = res.headers.get('content-length');
    const total = header !== null && /^\d+$/.test(header) ? Number(header) : undefined;
    if (!res.body) return decodeShard(new Uint8Array(await res.arrayBuffer()));
    const reader = res.body.getReader();
    let buf = new Uint8Array(total ?? 1 << 16);
    let loaded = 0;
    opts.onProgress?.(0, total);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (loaded + value.length > buf.length) {
        const grown = new Uint8Array(Math.max(buf.length * 2, loaded + value.length));
        grown.set(buf.subarray(0, loaded));
        buf = grown;
      }
      buf.set(value, loaded);
      loaded += value.length;
      opts.onProgress?.(loaded, total);
    }
    return decodeShard(buf.subarray(0, loaded));
  } catch (e) {
    if (opts.signal?.aborted) return aborted();
    return new NetworkError(e instanceof Error ? e.message : String(e));
  }
}
