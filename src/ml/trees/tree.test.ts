import { describe, expect, it } from 'vitest';
import type { Communicator } from '../../core/collectives/communicator.ts';
import { memoryRing } from '../../test/helpers.ts';
import { holdOut, localShard } from '../../data/local.ts';
import { gaussianBlobs, linearRegression } from '../../data/synthetic.ts';
import type { Dataset } from '../../data/dataset.ts';
import type { LocalData } from '../../data/local.ts';
import type { SumAllPeers } from '../algorithms/distributed.ts';
import { agreeBins, binOf, binRows, type Bins } from './bins.ts';
import { gbdtScores, trainGbdt, type Gbdt } from './boost.ts';
import { growTree, predictTree, statsPerRow, type Tree, type TreeOptions } from './tree.ts';

const ringOf = (n: number): Communicator[] => memoryRing(n, { chunkBytes: 16_384, timeoutMs: 20_000 });
const sumOf =
  (comm: Communicator): SumAllPeers =>
  (v, wire) =>
    comm.allreduce(v, wire ? { wire } : {});

const DATA = holdOut(gaussianBlobs({ n: 900, classes: 4, dims: 5, spread: 0.35, seed: 8 }), 'blobs', 2);
const OPTS: TreeOptions = { maxDepth: 5, minSamplesLeaf: 3, criterion: { kind: 'gini', classes: 4 } };

function classStats(ds: Dataset): Float32Array {
  const K = statsPerRow(OPTS.criterion);
  const s = new Float32Array(ds.n * K);
  for (let i = 0; i < ds.n; i++) {
    s[i * K + ds.y[i]!] = 1;
    s[i * K + K - 1] = 1;
  }
  return s;
}

/** What each peer has once its shard is loaded and the group agreed on bins. */
interface Binned {
  ds: Dataset;
  d: number;
  sum: SumAllPeers;
  bins: Bins;
  binned: Uint8Array;
}

/** Runs `fn` on every peer of a `peers`-ring, each holding its shard of `data`'s training split, binned with `bins`. */
function onShards<T>(peers: number, bins: number, fn: (p: Binned) => Promise<T>, data: LocalData = DATA): Promise<T[]> {
  return Promise.all(
    ringOf(peers).map(async (comm, rank) => {
      const ds = localShard(data, 'train', { rank, size: peers, seed: 3 });
      const d = ds.shape[0]!;
      const sum = sumOf(comm);
      const b = await agreeBins(sum, rank, peers, ds.x, ds.n, d, bins);
      return fn({ ds, d, sum, bins: b, binned: binRows(b, ds.x, ds.n, d) });
    }),
  );
}

/** Trains a tree on `peers` shards of DATA's training split. */
function treeOn(peers: number, bins = 32): Promise<Awaited<ReturnType<typeof growTree>>[]> {
  return onShards(peers, bins, (p) => growTree(p.sum, p.bins, p.binned, classStats(p.ds), p.ds.n, p.d, OPTS));
}

function accuracy(t: Tree, ds: Dataset): number {
  const d = ds.shape[0]!;
  let ok = 0;
  for (let i = 0; i < ds.n; i++) {
    const p = predictTree(t, ds.x, i * d);
    if (p.indexOf(Math.max(...p)) === ds.y[i]) ok++;
  }
  return ok / ds.n;
}

describe('histogram trees over the ring', () => {
  it('3 peers on 3 shards grow exactly the tree 1 peer grows on the union', async () => {
    const [solo] = await treeOn(1);
    const three = await treeOn(3);
    for (const r of three) expect(r.tree).toEqual(solo!.tree);
    expect(solo!.tree.nodes.length).toBeGreaterThan(7);
    expect(accuracy(solo!.tree, DATA.test)).toBeGreaterThan(0.85);
    // The subtraction trick sums one child per split instead of two.
    const t = three[0]!.traffic;
    expect(t.floatsSummed).toBeLessThan(0.6 * t.floatsWithoutSubtraction);
  });

  it('a tree limited to some features splits on those only, the same on 3 peers, and its histograms hold only them', async () => {
    const grow = (peers: number, features?: number[]) =>
      onShards(peers, 32, (p) =>
        growTree(p.sum, p.bins, p.binned, classStats(p.ds), p.ds.n, p.d, { ...OPTS, ...(features ? { features } : {}) }),
      );
    const [all] = await grow(1);
    const [solo] = await grow(1, [1, 3]);
    for (const r of await grow(3, [1, 3])) expect(r.tree).toEqual(solo!.tree);
    const used = new Set(solo!.tree.nodes.filter((x) => x.feature >= 0).map((x) => x.feature));
    expect([...used].sort()).toEqual([1, 3]);
    // A histogram per node (both children of every split counted): 2 of the 5 features' worth.
    const perNode = (r: typeof solo): number => r!.traffic.floatsWithoutSubtraction / r!.tree.nodes.length;
    expect(perNode(solo) / perNode(all)).toBe(2 / 5);
  });

  it('bins agree across peers, split values at their boundaries, and a constant feature gets one bin', async () => {
    const ring = ringOf(2);
    const x = [Float32Array.from([0, 5, 1, 5, 2, 5]), Float32Array.from([3, 5, 4, 5])];
    const bins = await Promise.all(ring.map((c, r) => agreeBins((v) => c.allreduce(v), r, 2, x[r]!, x[r]!.length / 2, 2, 4)));
    expect(bins[0]).toEqual(bins[1]);
    expect(bins[0]!.boundaries[1]!.length).toBe(0);
    const edges = Array.from(bins[0]!.boundaries[0]!);
    expect(edges.length).toBe(3);
    for (const e of edges) expect(binOf(bins[0]!, 0, e)).toBe(edges.indexOf(e) + 1);
    await expect(agreeBins(async (v) => v, 0, 1, Float32Array.from([1, NaN]), 1, 2, 4)).rejects.toThrow(/row 0, feature 1 is NaN/);
  });
});

describe('gradient-boosted trees over the ring', () => {
  const GB = {
    rounds: 5,
    learningRate: 0.3,
    maxDepth: 3,
    minSamplesLeaf: 3,
    lambda: 1,
    gamma: 0,
    minChildWeight: 1e-3,
    classes: 4,
    seed: 1,
  };

  const boostOn = (
    peers: number,
    extra: Partial<typeof GB> & { subsample?: number; colSample?: number } = {},
    data: LocalData = DATA,
  ): Promise<Gbdt[]> =>
    onShards(peers, 32, (p) => trainGbdt(p.sum, p.bins, p.binned, p.ds.targets ?? p.ds.y, p.ds.n, p.d, { ...GB, ...extra }), data);
  const shape = (m: Gbdt): unknown => m.trees.map((r) => r.map((t) => t.nodes.map((x) => [x.feature, x.bin, x.left, x.right, x.count])));
  /** Every peer's model is the solo model bit for bit: splits, counts, leaf values and base scores. */
  const expectSame = (models: Gbdt[], solo: Gbdt): void => {
    for (const m of models) expect(JSON.stringify(m)).toBe(JSON.stringify(solo));
  };

  it('5 rounds on 3 peers give bit for bit the model of 1 peer on the union', async () => {
    const [solo] = await boostOn(1);
    expectSame(await boostOn(3), solo!);
    const d = DATA.test.shape[0]!;
    let ok = 0;
    for (let i = 0; i < DATA.test.n; i++) {
      const s = gbdtScores(solo!, DATA.test.x, i * d);
      if (s.indexOf(Math.max(...s)) === DATA.test.y[i]) ok++;
    }
    expect(ok / DATA.test.n).toBeGreaterThan(0.85);
  });

  it('row and column subsampling pick the same rows and features whichever peer holds them', async () => {
    const opts = { subsample: 0.6, colSample: 0.8 };
    const [solo] = await boostOn(1, opts);
    expectSame(await boostOn(3, opts), solo!);
    // Each round's trees saw about 60% of the rows, a different 60% each round.
    const rootCounts = solo!.trees.map((r) => r[0]!.nodes[0]!.count);
    for (const c of rootCounts) expect(Math.abs(c / DATA.train.n - 0.6)).toBeLessThan(0.06);
    expect(new Set(rootCounts).size).toBeGreaterThan(1);
    expect(shape(solo!)).not.toEqual(shape((await boostOn(1))[0]!));
  });

  it('regression (squared error) on 2 peers matches 1 peer and fits a linear target', async () => {
    const data = holdOut(linearRegression({ n: 800, dims: 3, noise: 0.1, seed: 4 }), 'linear', 2);
    const reg = { classes: 0, rounds: 20, maxDepth: 4 };
    const [solo] = await boostOn(1, reg, data);
    expectSame(await boostOn(2, reg, data), solo!);
    const t = data.test.targets!;
    const mean = t.reduce((a, b) => a + b, 0) / t.length;
    let se = 0;
    let ss = 0;
    for (let i = 0; i < data.test.n; i++) {
      se += (gbdtScores(solo!, data.test.x, i * 3)[0]! - t[i]!) ** 2;
      ss += (t[i]! - mean) ** 2;
    }
    // R² well above 0: the trees explain most of the variance.
    expect(1 - se / ss).toBeGreaterThan(0.8);
  });
});

describe('trees on awkward input', () => {
  it('a peer with an empty shard changes nothing; a constant feature is never split', async () => {
    const ds = DATA.train;
    const d = ds.shape[0]!;
    // Feature 0 made constant.
    const x = ds.x.slice();
    for (let i = 0; i < ds.n; i++) x[i * d] = 0.5;
    const shards = [
      { x, n: ds.n, stats: classStats(ds) },
      { x: new Float32Array(0), n: 0, stats: new Float32Array(0) },
    ];
    const grow = async (parts: typeof shards): Promise<Tree[]> => {
      const ring = ringOf(parts.length);
      return Promise.all(
        ring.map(async (comm, rank) => {
          const sum = sumOf(comm);
          const p = parts[rank]!;
          const b = await agreeBins(sum, rank, parts.length, p.x, p.n, d, 16);
          return (await growTree(sum, b, binRows(b, p.x, p.n, d), p.stats, p.n, d, OPTS)).tree;
        }),
      );
    };
    const [alone] = await grow([shards[0]!]);
    const pair = await grow(shards);
    expect(pair[0]).toEqual(alone);
    expect(pair[1]).toEqual(alone);
    expect(alone!.nodes.some((nd) => nd.feature === 0)).toBe(false);
    expect(alone!.nodes.length).toBeGreaterThan(3);
  });
});
