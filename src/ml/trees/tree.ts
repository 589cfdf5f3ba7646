/**
 * Decision trees grown depth-wise by histogram allreduce, as XGBoost's `hist` and LightGBM do across
 * machines: for the nodes of a level, every peer sums per-feature, per-bin statistics over its own
 * rows, one ring allreduce adds them up, and every peer picks the same best split from the same
 * sums (ties go to the lower feature, then the lower bin). Only the smaller child of each split is
 * summed; its sibling is the parent's histogram minus it (the subtraction trick).
 *
 * Statistics per row (`K` of them, the last one always the row count):
 * - classification: one-hot class counts, then 1; impurity by Gini;
 * - second order (boosting, regression): gradient, hessian, then 1; gain
 *   ½[G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)] − γ, leaf value −G/(H+λ).
 */
import type { SumAllPeers } from '../algorithms/distributed.ts';
import { binCount, type Bins } from './bins.ts';

/** Rows added to a histogram between two yields to the event loop. */
const ROWS_PER_SLICE = 2000;

/** Relative gain difference below which two splits are a tie. */
export const TIE_TOLERANCE = 1e-5;

export type Criterion = { kind: 'gini'; classes: number } | { kind: 'second-order'; lambda: number; gamma: number; minChildWeight: number };

export interface TreeOptions {
  maxDepth: number;
  /** Fewest rows (over all peers) a leaf may hold. */
  minSamplesLeaf: number;
  /** Most leaves the tree may have (default 2^maxDepth). */
  maxLeaves?: number;
  criterion: Criterion;
  /** Features a split may use (column subsampling); default all. */
  features?: readonly number[];
}

/** One node; a leaf has `feature === -1`. Serialisable as JSON. */
export interface TreeNode {
  feature: number;
  /** Split bin: rows with `bin <= bin` go left. */
  bin: number;
  /** The same split on raw values: `v < threshold` goes left. */
  threshold: number;
  left: number;
  right: number;
  /** Rows (over all peers) that reached the node. */
  count: number;
  /** Leaf output: class probabilities (gini) or the leaf weight (second order). */
  value: number[];
  gain: number;
}

export interface Tree {
  nodes: TreeNode[];
}

/** Traffic of one tree: floats summed by allreduce, and what summing every child would have cost. */
export interface GrowStats {
  floatsSummed: number;
  floatsWithoutSubtraction: number;
}

/** Statistics per row for a criterion. */
export const statsPerRow = (c: Criterion): number => (c.kind === 'gini' ? c.classes + 1 : 3);

interface Frontier {
  node: number;
  rows: Int32Array;
  /** Global histogram: [feature][bin][stat], `maxBins` bins per feature. */
  hist: Float64Array;
  depth: number;
}

interface Split {
  feature: number;
  bin: number;
  gain: number;
  /** Global stats of the left child. */
  left: Float64Array;
}

/**
 * Grows one tree on this peer's rows. `binned` is `n x d` bins, `stats` is `n x K` per-row
 * statistics (see {@link statsPerRow}). Every peer of the group must call it with the same bins and
 * options; all get the same tree.
 */
export async function growTree(
  sum: SumAllPeers,
  bins: Bins,
  binned: Uint8Array,
  stats: Float32Array,
  n: number,
  d: number,
  o: TreeOptions,
): Promise<{ tree: Tree; traffic: GrowStats }> {
  const K = statsPerRow(o.criterion);
  const B = Math.max(...Array.from({ length: d }, (_, f) => binCount(bins, f)));
  const histSize = d * B * K;
  const features = o.features ?? Array.from({ length: d }, (_, f) => f);
  const maxLeaves = o.maxLeaves ?? 2 ** o.maxDepth;
  const traffic: GrowStats = { floatsSummed: 0, floatsWithoutSubtraction: 0 };

  /**
   * Adds the rows' statistics into `out` (float64: the local sums lose nothing before the ring's
   * float32). Yields to the event loop every {@link ROWS_PER_SLICE} rows: a level of a deep tree on
   * many features takes seconds, and the peer's link heartbeats must keep flowing meanwhile.
   */
  const build = async (rows: Int32Array, out: Float64Array): Promise<void> => {
    // Only a row's non-zero statistics are added (class counts are one-hot: 2 of K).
    const ks = new Int32Array(K);
    const vs = new Float64Array(K);
    let done = 0;
    for (const i of rows) {
      if (++done % ROWS_PER_SLICE === 0) await new Promise((r) => setTimeout(r, 0));
      let m = 0;
      for (let k = 0; k < K; k++) {
        const v = stats[i * K + k]!;
        if (v !== 0) {
          ks[m] = k;
          vs[m++] = v;
        }
      }
      const rowBins = i * d;
      for (let f = 0; f < d; f++) {
        const base = (f * B + binned[rowBins + f]!) * K;
        for (let j = 0; j < m; j++) out[base + ks[j]!]! += vs[j]!;
      }
    }
  };
  /** Node totals: feature 0's bins summed (every row is in exactly one bin of each feature). */
  const totals = (hist: Float64Array): Float64Array => {
    const t = new Float64Array(K);
    for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) t[k]! += hist[b * K + k]!;
    return t;
  };
  const leafValue = (t: Float64Array): number[] => {
    const c = o.criterion;
    if (c.kind === 'gini') return Array.from(t.subarray(0, c.classes), (v) => (t[K - 1]! > 0 ? v / t[K - 1]! : 0));
    return [-t[0]! / (t[1]! + c.lambda)];
  };
  /** Impurity decrease (gini, weighted by rows) or second-order gain of a left/right split. */
  const gainOf = (parent: Float64Array, left: Float64Array, right: Float64Array): number => {
    const c = o.criterion;
    if (c.kind === 'gini') {
      const weighted = (s: Float64Array): number => {
        const cnt = s[K - 1]!;
        if (cnt <= 0) return 0;
        let sq = 0;
        for (let k = 0; k < c.classes; k++) sq += s[k]! * s[k]!;
        return cnt - sq / cnt; // cnt * gini
      };
      return weighted(parent) - weighted(left) - weighted(right);
    }
    const score = (s: Float64Array): number => (s[0]! * s[0]!) / (s[1]! + c.lambda);
    return 0.5 * (score(left) + score(right) - score(parent)) - c.gamma;
  };
  const admissible = (s: Float64Array): boolean =>
    s[K - 1]! >= o.minSamplesLeaf && (o.criterion.kind !== 'second-order' || s[1]! >= o.criterion.minChildWeight);

  /**
   * The best admissible split. Gains within {@link TIE_TOLERANCE} of the best count as ties and go
   * to the lowest feature, then bin: summed in another order (other peers, other shards), float32
   * statistics differ in their last bits, and that must not change the tree.
   */
  const best = (hist: Float64Array, parent: Float64Array): Split | null => {
    const found: Split[] = [];
    const left = new Float64Array(K);
    const right = new Float64Array(K);
    for (const f of features) {
      left.fill(0);
      const nb = binCount(bins, f);
      for (let b = 0; b < nb - 1; b++) {
        const base = (f * B + b) * K;
        for (let k = 0; k < K; k++) {
          left[k]! += hist[base + k]!;
          right[k] = parent[k]! - left[k]!;
        }
        if (!admissible(left) || !admissible(right)) continue;
        const gain = gainOf(parent, left, right);
        if (gain > 1e-9) found.push({ feature: f, bin: b, gain, left: left.slice() });
      }
    }
    if (found.length === 0) return null;
    const top = Math.max(...found.map((x) => x.gain));
    return found.find((x) => x.gain >= top - TIE_TOLERANCE * top)!;
  };

  const nodes: TreeNode[] = [];
  const makeNode = (hist: Float64Array): number => {
    const t = totals(hist);
    nodes.push({ feature: -1, bin: -1, threshold: NaN, left: -1, right: -1, count: t[K - 1]!, value: leafValue(t), gain: 0 });
    return nodes.length - 1;
  };

  const rootLocal = new Float64Array(histSize);
  await build(
    Int32Array.from({ length: n }, (_, i) => i),
    rootLocal,
  );
  const rootHist = Float64Array.from(await sum(Float32Array.from(rootLocal)));
  traffic.floatsSummed += histSize;
  traffic.floatsWithoutSubtraction += histSize;
  let frontier: Frontier[] = [{ node: makeNode(rootHist), rows: Int32Array.from({ length: n }, (_, i) => i), hist: rootHist, depth: 0 }];
  let leaves = 1;

  while (frontier.length > 0) {
    // Best splits of this level, the highest gains first while leaves remain.
    const candidates: { fr: Frontier; split: Split }[] = [];
    let searched = 0;
    for (const fr of frontier.filter((x) => x.depth < o.maxDepth)) {
      const split = best(fr.hist, totals(fr.hist));
      if (split) candidates.push({ fr, split });
      // A deep level has thousands of nodes to search: let the heartbeats through between them.
      if (++searched % 64 === 0) await new Promise((r) => setTimeout(r, 0));
    }
    candidates.sort((a, b) => b.split.gain - a.split.gain || a.fr.node - b.fr.node);
    const chosen = candidates.slice(0, Math.max(0, maxLeaves - leaves));
    if (chosen.length === 0) break;
    leaves += chosen.length;
    // Partition the local rows; sum only the smaller child of each split (by global count).
    const pending = chosen.map(({ fr, split }) => {
      const leftRows: number[] = [];
      const rightRows: number[] = [];
      for (const i of fr.rows) (binned[i * d + split.feature]! <= split.bin ? leftRows : rightRows).push(i);
      const parentCount = totals(fr.hist)[K - 1]!;
      const leftSmaller = split.left[K - 1]! <= parentCount - split.left[K - 1]!;
      return { fr, split, left: Int32Array.from(leftRows), right: Int32Array.from(rightRows), leftSmaller };
    });
    const local = new Float64Array(pending.length * histSize);
    for (const [j, p] of pending.entries()) await build(p.leftSmaller ? p.left : p.right, local.subarray(j * histSize, (j + 1) * histSize));
    const summed = Float64Array.from(await sum(Float32Array.from(local)));
    traffic.floatsSummed += local.length;
    traffic.floatsWithoutSubtraction += 2 * local.length;
    const next: Frontier[] = [];
    pending.forEach((p, j) => {
      const small = summed.slice(j * histSize, (j + 1) * histSize);
      const large = p.fr.hist.map((v, k) => v - small[k]!);
      const [lh, rh] = p.leftSmaller ? [small, large] : [large, small];
      const node = nodes[p.fr.node]!;
      node.feature = p.split.feature;
      node.bin = p.split.bin;
      node.threshold = bins.boundaries[p.split.feature]![p.split.bin]!;
      node.gain = p.split.gain;
      node.left = makeNode(lh);
      node.right = makeNode(rh);
      next.push(
        { node: node.left, rows: p.left, hist: lh, depth: p.fr.depth + 1 },
        { node: node.right, rows: p.right, hist: rh, depth: p.fr.depth + 1 },
      );
    });
    frontier = next;
  }
  return { tree: { nodes }, traffic };
}

/** The leaf output for one row of raw features (`x` at `offset`, `d` values). */
export function predictTree(t: Tree, x: ArrayLike<number>, offset = 0): number[] {
  let i = 0;
  for (;;) {
    const node = t.nodes[i]!;
    if (node.feature < 0) return node.value;
    i = x[offset + node.feature]! < node.threshold ? node.left : node.right;
  }
}

/** The leaf output for one binned row (`binned` at `offset`): the same route as its raw values take. */
export function leafOfBinned(t: Tree, binned: Uint8Array, offset: number): number[] {
  let i = 0;
  for (;;) {
    const node = t.nodes[i]!;
    if (node.feature < 0) return node.value;
    i = binned[offset + node.feature]! <= node.bin ? node.left : node.right;
  }
}
