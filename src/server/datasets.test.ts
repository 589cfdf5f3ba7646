import express from 'express';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FASHION_MNIST, MOBY_DICK } from '../data/builtin.ts';
import { decodeText, TEXT_VOCABULARY } from '../data/text.ts';
import { DataError, labelHistogram, type Dataset } from '../data/dataset.ts';
import { fetchShard, SHARD_ATTEMPTS, shardPath, type DatasetInfo, type ShardRequest } from '../data/shard-client.ts';
import { decodeShard, readShardHeader } from '../data/shard-format.ts';
import { loadBuiltinSplit, registerDatasets } from './datasets.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Served {
  base: string;
  close(): Promise<void>;
}

async function serve(root: string): Promise<Served> {
  const app = express();
  registerDatasets(app, root);
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let srv: Served;
beforeAll(async () => {
  srv = await serve(ROOT);
});
afterAll(async () => {
  await srv.close();
});

async function shard(req: ShardRequest, name = 'fashion-mnist'): Promise<Dataset> {
  const ds = await fetchShard(srv.base + shardPath(name, req));
  if (ds instanceof DataError) throw ds;
  return ds;
}

/** FNV-1a over one sample's u8 pixels and its label. */
function fingerprint(bytes: Uint8Array, from: number, d: number, label: number): number {
  let h = 0x811c9dc5 ^ label;
  for (let j = from; j < from + d; j++) h = Math.imul(h ^ bytes[j]!, 0x01000193);
  return h >>> 0;
}

describe('GET /api/datasets', () => {
  it('lists Fashion-MNIST with its classes, sizes and shape', async () => {
    const res = await fetch(`${srv.base}/api/datasets`);
    expect(res.status).toBe(200);
    const { datasets } = (await res.json()) as { datasets: DatasetInfo[] };
    expect(datasets).toContainEqual(
      expect.objectContaining({
        name: 'fashion-mnist',
        classes: 10,
        train: 60000,
        test: 10000,
        shape: [28, 28, 1],
        classNames: [...FASHION_MNIST.classNames],
      }),
    );
  });
});

describe('the built-in text (Moby-Dick)', () => {
  it('is listed with its vocabulary and windows, and 2 shards of its windows are the text: consecutive windows share one token', async () => {
    const { datasets } = (await (await fetch(`${srv.base}/api/datasets`)).json()) as { datasets: DatasetInfo[] };
    expect(datasets).toContainEqual(
      expect.objectContaining({ name: 'moby-dick', classes: 96, train: 8626, test: 850, shape: [129], classNames: [...TEXT_VOCABULARY] }),
    );
    const full = await loadBuiltinSplit(ROOT, MOBY_DICK, 'test');
    expect(full.x).toBeInstanceOf(Float32Array);
    const text = decodeText(full.x.subarray(0, 129));
    expect(text.startsWith('CHAPTER 126. The Life-Buoy.')).toBe(true);
    for (let i = 0; i + 1 < full.n; i++) expect(full.x[i * 129 + 128]).toBe(full.x[(i + 1) * 129]);
    const parts = await Promise.all([0, 1].map((rank) => shard({ split: 'test', rank, size: 2, seed: 3 }, 'moby-dick')));
    expect(parts[0]!.n + parts[1]!.n).toBe(850);
    const windows = new Set<string>();
    for (const p of parts) {
      expect(p.shape).toEqual([129]);
      for (let i = 0; i < p.n; i++) {
        const w = p.x.subarray(i * 129, (i + 1) * 129);
        expect(w.every((t) => Number.isInteger(t) && t >= 0 && t < 96)).toBe(true);
        expect(p.y[i]).toBe(w[128]);
        windows.add(decodeText(w));
      }
    }
    const all = new Set(Array.from({ length: full.n }, (_, i) => decodeText(full.x.subarray(i * 129, (i + 1) * 129))));
    expect(windows).toEqual(all);
  });
});

describe('GET /api/datasets/:name/shard', () => {
  it('names the partition in a header and reports download progress', async () => {
    const url = srv.base + shardPath('fashion-mnist', { split: 'test', rank: 1, size: 4, seed: 7 });
    const head = await fetch(url);
    expect(head.headers.get('content-type')).toBe('application/octet-stream');
    expect(head.headers.get('x-ringtrain-partition')).toBe('fashion-mnist/test/iid/parts=4/seed=7/n=10000/rank=1');
    await head.arrayBuffer();
    const progress: [number, number | undefined][] = [];
    const ds = await fetchShard(url, { onProgress: (loaded, total) => progress.push([loaded, total]) });
    expect(ds).not.toBeInstanceOf(DataError);
    const total = progress[0]![1]!;
    expect(total).toBeGreaterThan(2500 * 784);
    expect(progress[0]).toEqual([0, total]);
    expect(progress.at(-1)).toEqual([total, total]);
  });

  it('serves 3 disjoint IID shards that together are exactly the training set', async () => {
    const raws = await Promise.all(
      [0, 1, 2].map(async (rank) => {
        const res = await fetch(srv.base + shardPath('fashion-mnist', { split: 'train', rank, size: 3, seed: 7 }));
        return new Uint8Array(await res.arrayBuffer());
      }),
    );
    // Rank 0, decoded as a peer does: about a third of the set, pixels k/255 in [0, 1], labels 0..9.
    const s = decodeShard(raws[0]!);
    if (s instanceof DataError) throw s;
    expect(s.n).toBe(20000);
    expect(s.shape).toEqual([28, 28, 1]);
    expect(s.numClasses).toBe(10);
    expect(s.classNames).toEqual([...FASHION_MNIST.classNames]);
    let min = Infinity;
    let max = -Infinity;
    let offGrid = 0;
    for (const v of s.x) {
      if (v < min) min = v;
      if (v > max) max = v;
      if (Math.abs(v * 255 - Math.round(v * 255)) > 1e-3) offGrid++;
    }
    expect([min, max, offGrid]).toEqual([0, 1, 0]);
    const hist = labelHistogram(s);
    expect(hist.reduce((a, b) => a + b)).toBe(20000); // every label in 0..9
    for (const c of hist) expect(Math.abs(c - 2000)).toBeLessThan(200); // IID: about 2000 per class

    // Disjoint and covering: the per-sample fingerprints (pixels + label) of the three shards, as a
    // multiset, equal those of the whole training set.
    const d = 784;
    const got = new Uint32Array(60000);
    let k = 0;
    for (const raw of raws) {
      const h = readShardHeader(raw);
      if (h instanceof DataError) throw h;
      expect(h.n).toBe(20000);
      const labels = new DataView(raw.buffer, raw.byteOffset + h.yOffset, 4 * h.n);
      for (let i = 0; i < h.n; i++) got[k++] = fingerprint(raw, h.xOffset + i * d, d, labels.getInt32(4 * i, true));
    }
    const full = await loadBuiltinSplit(ROOT, FASHION_MNIST, 'train');
    const want = new Uint32Array(full.n);
    for (let i = 0; i < full.n; i++) want[i] = fingerprint(full.x as Uint8Array, i * d, d, full.labels[i]!);
    got.sort();
    want.sort();
    let differ = 0;
    for (let i = 0; i < 60000; i++) if (got[i] !== want[i]) differ++;
    expect(differ).toBe(0);
  });

  it('label-shards: each of 5 parts sees at most 2 labels; the test split ignores the scheme', async () => {
    const s = await shard({ split: 'train', rank: 0, size: 5, scheme: 'label-shards', seed: 1 });
    expect(s.n).toBe(12000);
    expect(labelHistogram(s).filter((c) => c > 0).length).toBeLessThanOrEqual(2);
    const a = await shard({ split: 'test', rank: 3, size: 4, scheme: 'label-shards', seed: 2 });
    const b = await shard({ split: 'test', rank: 3, size: 4, seed: 2 });
    expect(a.n).toBe(2500);
    expect(Array.from(a.y)).toEqual(Array.from(b.y));
    expect(labelHistogram(a).filter((c) => c > 0).length).toBe(10);
  });

  it.each<[string, string, RegExp]>([
    ['a missing rank', 'size=3', /^missing query parameter "rank": an integer with 0 <= rank < size$/],
    [
      'a rank that is not a number',
      'rank=abc&size=3',
      /^bad query parameter "rank": got "abc"; allowed: an integer with 0 <= rank < size$/,
    ],
    ['rank >= size', 'rank=3&size=3', /^bad query parameter "rank": got 3 with size 3/],
    ['size 0', 'rank=0&size=0', /^bad query parameter "size": got "0"; allowed: an integer from 1 to 4096/],
    [
      'an unknown scheme',
      'rank=0&size=2&scheme=random',
      /^bad query parameter "scheme": got "random"; allowed: one of "iid", "label-shards", "dirichlet"/,
    ],
    ['an unknown split', 'rank=0&size=2&split=validation', /^bad query parameter "split": got "validation"; allowed: "train" or "test"/],
    ['alpha <= 0', 'rank=0&size=2&scheme=dirichlet&alpha=-1', /^bad query parameter "alpha": got "-1"; allowed: a number > 0/],
    ['a seed beyond u32', 'rank=0&size=2&seed=4294967296', /^bad query parameter "seed"/],
    [
      'a misspelt parameter',
      'rank=0&size=2&sead=1',
      /^unknown query parameter "sead"; allowed: split, rank, size, scheme, seed, alpha, shardsPerPart$/,
    ],
    ['a repeated parameter', 'rank=0&rank=1&size=2', /^query parameter "rank" must be given once/],
    [
      'more shards than samples',
      'rank=0&size=4096&scheme=label-shards&shardsPerPart=1000',
      /^bad query parameter "shardsPerPart": .* exceed the 60000 samples/,
    ],
  ])('answers 400 for %s, naming the parameter', async (_, query, message) => {
    const res = await fetch(`${srv.base}/api/datasets/fashion-mnist/shard?${query}`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string };
    expect(body.error).toMatch(message);
  });

  it('answers 404 for an unknown dataset, and fetchShard turns errors into DataError values', async () => {
    const res = await fetch(`${srv.base}/api/datasets/mnist/shard?rank=0&size=1`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'unknown dataset "mnist"; available: fashion-mnist, moby-dick' });
    const e = await fetchShard(srv.base + shardPath('fashion-mnist', { split: 'train', rank: 5, size: 2 }));
    expect(e).toBeInstanceOf(DataError);
    expect(e).toMatchObject({ code: 'fetch-failed', message: expect.stringMatching(/answered 400: bad query parameter "rank"/) });
    const aborted = await fetchShard(srv.base + shardPath('fashion-mnist', { split: 'test', rank: 0, size: 1 }), {
      signal: AbortSignal.abort(),
    });
    expect(aborted).toMatchObject({ code: 'aborted' });
  });

  it('fetchShard asks again after a dropped connection (a server busy with many peers), and gives up after 3 attempts saying so', async () => {
    const url = srv.base + shardPath('fashion-mnist', { split: 'test', rank: 0, size: 4 });
    let calls = 0;
    const dropsOnce: typeof fetch = (input, init) => (++calls === 1 ? Promise.reject(new TypeError('fetch failed')) : fetch(input, init));
    const ds = await fetchShard(url, { fetch: dropsOnce });
    expect(ds).not.toBeInstanceOf(DataError);
    expect((ds as Dataset).n).toBe(2500);
    expect(calls).toBe(2);
    calls = 0;
    const down: typeof fetch = () => {
      calls++;
      return Promise.reject(new TypeError('fetch failed'));
    };
    expect(await fetchShard(url, { fetch: down })).toMatchObject({
      code: 'fetch-failed',
      message: expect.stringMatching(/fetch failed; 3 attempts/),
    });
    expect(calls).toBe(SHARD_ATTEMPTS);
  });

  it('answers 500 with what to do when the dataset files are missing', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'ringtrain-data-'));
    const other = await serve(empty);
    try {
      const res = await fetch(`${other.base}/api/datasets/fashion-mnist/shard?split=test&rank=0&size=2`);
      expect(res.status).toBe(500);
      const { error } = (await res.json()) as { error: string };
      expect(error).toMatch(/^fashion-mnist: cannot read .*t10k-.*\(ENOENT\); .*git checkout -- public\/datasets/);
    } finally {
      await other.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
