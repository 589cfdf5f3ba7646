/**
 * Built-in datasets over HTTP: the list, and one peer's shard of a split.
 *
 * - `GET /api/datasets` -> `{datasets: DatasetInfo[]}` (name, title, classes, classNames, shape,
 *   train and test sizes).
 * - `GET /api/datasets/:name/shard?split=train|test&rank=&size=&scheme=&seed=&alpha=&shardsPerPart=`
 *   -> the samples of part `rank` of `partition(labels, {parts: size, scheme, seed, ...})`, encoded
 *   by `encodeShardParts` with u8 pixels (text: token ids as f32) (`application/octet-stream`, with Content-Length so the
 *   page can show progress). For `split=test` the scheme is ignored and the test set is split IID
 *   with the seed, so each peer evaluates a disjoint slice. A bad query answers 400 and an unknown
 *   dataset 404, both with `{error}` saying what is allowed.
 *
 * The IDX files are read and decompressed once, on first use, and kept as raw u8 (47 MB for the
 * Fashion-MNIST training images); a peer only ever downloads its own shard.
 */
import type express from 'express';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzip as gunzipCb } from 'node:zlib';
import { z } from 'zod';
import { BUILTIN_DATASETS, type BuiltinDataset, type Split } from '../data/builtin.ts';
import { DataError, featureSize, type Dataset } from '../data/dataset.ts';
import { parseIdx } from '../data/idx.ts';
import { shardPartitionOptions } from '../data/local.ts';
import { partition, partitionKey, PARTITION_SCHEMES, type PartitionOptions } from '../data/partition.ts';
import type { DatasetInfo } from '../data/shard-client.ts';
import { encodeShardParts } from '../data/shard-format.ts';
import { encodeText, textWindows } from '../data/text.ts';

const gunzip = promisify(gunzipCb);

/** Largest view size a shard request may name. */
export const MAX_SHARD_PARTS = 4096;
/** Partitions kept in memory (each is one Int32Array of the split's size). */
const PARTITION_CACHE_SIZE = 32;

/** One split in memory: raw u8 pixels (images) or token ids as floats (text), and labels. */
export interface LoadedSplit {
  n: number;
  shape: readonly number[];
  /** `n * prod(shape)` values: u8 pixels 0..255 (sent as is, read as value / 255) or token ids. */
  x: Uint8Array | Float32Array;
  labels: Int32Array;
}

/** Options of {@link registerDatasets}. */
export interface DatasetsOptions {
  /** The datasets to serve. Default: {@link BUILTIN_DATASETS}. */
  catalog?: Readonly<Record<string, BuiltinDataset>>;
}

/** The folder that holds a built-in dataset's files. */
export function datasetDir(root: string, name: string): string {
  return path.join(root, 'public', 'datasets', name);
}

/**
 * Reads one split of a built-in dataset from `<root>/public/datasets/<name>/`, checking it against
 * the catalog (u8 images of the declared shape, one integer label per image, labels < classes; a
 * text's windows as many as declared). Rejects with DataError naming the file and what to do.
 */
export async function loadBuiltinSplit(root: string, ds: BuiltinDataset, split: Split): Promise<LoadedSplit> {
  const dir = datasetDir(root, ds.name);
  const read = async (file: string): Promise<Uint8Array> => {
    const p = path.join(dir, file);
    let raw: Buffer;
    try {
      raw = await readFile(p);
    } catch (e) {
      throw new DataError(
        'not-found',
        `${ds.name}: cannot read ${p} (${(e as NodeJS.ErrnoException).code ?? String(e)}); the built-in datasets live in public/datasets/, restore them with "git checkout -- public/datasets"`,
      );
    }
    try {
      const bytes = await gunzip(raw);
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (e) {
      throw new DataError(
        'bad-format',
        `${ds.name}: ${p} is not valid gzip (${e instanceof Error ? e.message : String(e)}); restore it from git`,
      );
    }
  };
  if (ds.format === 'text') {
    const file = ds[split].text;
    const windows = textWindows(encodeText(new TextDecoder().decode(await read(file)), ds.classNames), ds.shape[0]!, ds.classNames);
    if (windows.n !== ds[split].n)
      throw new DataError('size-mismatch', `${ds.name}: ${file} makes ${windows.n} windows, expected ${ds[split].n}; restore it from git`);
    return { n: windows.n, shape: ds.shape, x: windows.x, labels: windows.y as Int32Array };
  }
  const s = ds[split];
  const [imBytes, lbBytes] = await Promise.all([read(s.images), read(s.labels)]);
  const im = parseIdx(imBytes);
  const lb = parseIdx(lbBytes);
  const d = featureSize(ds.shape);
  if (im.dtype !== 'u8' || im.dims[0] !== s.n || featureSize(im.dims.slice(1)) !== d) {
    throw new DataError(
      'size-mismatch',
      `${ds.name}: ${s.images} holds ${im.dtype} [${im.dims.join(', ')}], expected u8 [${s.n}, ${ds.shape.join(', ')}]`,
    );
  }
  if (lb.dims.length !== 1 || lb.dims[0] !== s.n || (lb.dtype !== 'u8' && lb.dtype !== 'i8' && lb.dtype !== 'i16' && lb.dtype !== 'i32')) {
    throw new DataError(
      'size-mismatch',
      `${ds.name}: ${s.labels} holds ${lb.dtype} [${lb.dims.join(', ')}], expected ${s.n} integer labels`,
    );
  }
  const labels = Int32Array.from(lb.data);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]! < 0 || labels[i]! >= ds.classNames.length) {
      throw new DataError('bad-value', `${ds.name}: label ${i} in ${s.labels} is ${labels[i]}, outside [0, ${ds.classNames.length})`);
    }
  }
  return { n: s.n, shape: ds.shape, x: im.data, labels };
}

/** A loaded split as a Dataset (pixels scaled to [0, 1], as a peer decodes its shard): for Node-side tools and benchmarks. */
export function splitToDataset(ds: BuiltinDataset, s: LoadedSplit): Dataset {
  const x = s.x instanceof Float32Array ? s.x.slice() : Float32Array.from(s.x, (v) => v / 255);
  return { n: s.n, shape: [...s.shape], x, y: s.labels, numClasses: ds.classNames.length, classNames: [...ds.classNames] };
}

const uintString = z
  .string()
  .regex(/^\d{1,10}$/)
  .transform(Number);

/** What each query parameter allows, quoted in 400 answers. */
const ALLOWED: Record<string, string> = {
  split: '"train" or "test" (default train)',
  rank: 'an integer with 0 <= rank < size',
  size: `an integer from 1 to ${MAX_SHARD_PARTS} (the number of peers)`,
  scheme: `one of ${PARTITION_SCHEMES.map((s) => `"${s}"`).join(', ')} (default iid; ignored for split=test)`,
  seed: 'an integer from 0 to 4294967295 (default 0)',
  alpha: 'a number > 0 and <= 1000, the Dirichlet concentration (default 0.5; scheme=dirichlet)',
  shardsPerPart: 'an integer from 1 to 1000 (default 2; scheme=label-shards)',
};

const shardQuerySchema = z.strictObject({
  split: z.enum(['train', 'test']).default('train'),
  rank: uintString,
  size: uintString.refine((v) => v >= 1 && v <= MAX_SHARD_PARTS),
  scheme: z.enum(PARTITION_SCHEMES as [PartitionOptions['scheme'], ...PartitionOptions['scheme'][]]).default('iid'),
  seed: uintString.refine((v) => v <= 0xffff_ffff).default(0),
  alpha: z
    .string()
    .regex(/^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/)
    .transform(Number)
    .refine((v) => v > 0 && v <= 1000)
    .optional(),
  shardsPerPart: uintString.refine((v) => v >= 1 && v <= 1000).optional(),
});

type ShardQuery = z.output<typeof shardQuerySchema>;

/** A 400 message for a query that does not fit {@link shardQuerySchema}. */
function queryError(query: Record<string, unknown>, issues: readonly z.core.$ZodIssue[]): string {
  const issue = issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const k = issue.keys[0]!;
    return `unknown query parameter "${k}"; allowed: ${Object.keys(ALLOWED).join(', ')}`;
  }
  const key = String(issue.path[0] ?? '');
  const got = query[key];
  if (got === undefined) return `missing query parameter "${key}": ${ALLOWED[key]}`;
  if (typeof got !== 'string') return `query parameter "${key}" must be given once, as ${ALLOWED[key]}`;
  return `bad query parameter "${key}": got ${JSON.stringify(got)}; allowed: ${ALLOWED[key]}`;
}

/** Validates a shard query: the parsed query, or a 400 message. */
export function parseShardQuery(query: Record<string, unknown>, n: number): ShardQuery | string {
  const r = shardQuerySchema.safeParse(query);
  if (!r.success) return queryError(query, r.error.issues);
  const q = r.data;
  if (q.rank >= q.size) return `bad query parameter "rank": got ${q.rank} with size ${q.size}; allowed: ${ALLOWED.rank}`;
  if (q.split === 'train' && q.scheme === 'label-shards' && q.size * (q.shardsPerPart ?? 2) > n) {
    return `bad query parameter "shardsPerPart": size * shardsPerPart = ${q.size * (q.shardsPerPart ?? 2)} shards exceed the ${n} samples; use fewer shards`;
  }
  return q;
}

/**
 * Adds `GET /api/datasets` and `GET /api/datasets/:name/shard` to `app`. `root` is the project root
 * (the folder that holds `public/`). Files are loaded lazily on the first shard request of each
 * split and cached; a failed load is retried on the next request.
 */
export function registerDatasets(app: express.Express, root: string, opts: DatasetsOptions = {}): void {
  const catalog = opts.catalog ?? BUILTIN_DATASETS;
  const splits = new Map<string, Promise<LoadedSplit>>();
  const partitions = new Map<string, Int32Array[]>();

  const loadSplit = (ds: BuiltinDataset, split: Split): Promise<LoadedSplit> => {
    const key = `${ds.name}/${split}`;
    let p = splits.get(key);
    if (!p) {
      p = loadBuiltinSplit(root, ds, split);
      splits.set(key, p);
      p.catch(() => splits.delete(key));
    }
    return p;
  };

  const parts = (ds: BuiltinDataset, split: Split, labels: Int32Array, o: PartitionOptions): { key: string; parts: Int32Array[] } => {
    const key = `${ds.name}/${split}/${partitionKey({ ...o, n: labels.length })}`;
    let p = partitions.get(key);
    if (p) {
      partitions.delete(key); // re-insert: most recently used last
    } else {
      p = partition(labels, o);
      if (partitions.size >= PARTITION_CACHE_SIZE) partitions.delete(partitions.keys().next().value!);
    }
    partitions.set(key, p);
    return { key, parts: p };
  };

  app.get('/api/datasets', (_req, res) => {
    const datasets: DatasetInfo[] = Object.values(catalog).map((d) => ({
      name: d.name,
      title: d.title,
      classes: d.classNames.length,
      classNames: [...d.classNames],
      shape: [...d.shape],
      train: d.train.n,
      test: d.test.n,
      source: d.source,
    }));
    res.json({ datasets });
  });

  app.get('/api/datasets/:name/shard', (req, res) => {
    const name = req.params.name;
    const ds = Object.hasOwn(catalog, name) ? catalog[name] : undefined;
    if (!ds) {
      res.status(404).json({ error: `unknown dataset "${name}"; available: ${Object.keys(catalog).join(', ')}` });
      return;
    }
    const split: Split = req.query.split === 'test' ? 'test' : 'train';
    const q = parseShardQuery(req.query as Record<string, unknown>, ds[split].n);
    if (typeof q === 'string') {
      res.status(400).json({ error: q });
      return;
    }
    void (async () => {
      try {
        const s = await loadSplit(ds, q.split);
        const o = shardPartitionOptions(q, ds.classNames.length);
        const { key, parts: all } = parts(ds, q.split, s.labels, o);
        const idx = all[q.rank]!;
        const d = featureSize(s.shape);
        const x = s.x instanceof Float32Array ? new Float32Array(idx.length * d) : new Uint8Array(idx.length * d);
        const y = new Int32Array(idx.length);
        for (let j = 0; j < idx.length; j++) {
          const i = idx[j]!;
          x.set(s.x.subarray(i * d, (i + 1) * d), j * d);
          y[j] = s.labels[i]!;
        }
        const body = encodeShardParts({
          n: idx.length,
          shape: s.shape,
          numClasses: ds.classNames.length,
          x,
          y,
          classNames: ds.classNames,
        });
        res.set({
          'Content-Type': 'application/octet-stream',
          'Content-Length': String(body.byteLength),
          'Cache-Control': 'no-cache',
          'X-RingTrain-Partition': `${key}/rank=${q.rank}`,
        });
        res.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
      } catch (e) {
        if (!res.headersSent) res.status(500).json({ error: e instanceof Error ? e.message : String(e) });
      }
    })();
  });
}
