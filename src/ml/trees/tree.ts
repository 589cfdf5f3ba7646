/**
 * Decision trees grown depth-wise by histogram allreduce, as XGBoost's `hist` and LightGBM do across
 * machines: for the nodes of a level, every peer sums per-feature, per-bin statistics over its own
 * rows, one ring allreduce adds them up, and every peer picks the same best split from the same
 * sums (ties go to the lower feature, then the lower bin). Only the smaller child of each split is
 * summed; its sibling is the parent's histogram minus it (the subtraction trick).
 *
 * The sums are exact, so N peers grow bit for bit the tree one peer grows on the union. Each row's
 * statistics are rounded once to fixed point (a power-of-two scale per statistic, agreed from the
 * global row count and largest value, {@link agreeScales}) and the histograms travel as int32 words
 * on the u32 wire, added modulo 2^32 without ever wrapping. Float32 sums, added in another order
 * by another number of peers, differed in their last bits; the subtraction trick amplified that in
 * small nodes, and near-ties between splits flipped (Fashion-MNIST, 5 rounds of depth 6: 1 and 4
 * peers grew different trees).
 *
 * Statistics per row (`K` of them, the last one always the row count):
 * - classification: one-hot class counts, then 1; impurity by Gini;
 * - second order (boosting, regression): gradient, hessian, then 1; gain
 *   ½[G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)] − γ, leaf value −G/(H+λ).
 */
import { nextTask } from '../../core/delay.ts';
import type { SumAllPeers } from '../algorithms/distributed.ts';
import { binCount, type Bins } from './bins.ts';

/** Rows added to a histogram between two yields to the event loop. */
const ROWS_PER_SLICE = 2000;

/** Every histogram sum stays below 2^SUM_BITS in magnitude, so int32 sums never wrap. */
const SUM_BITS = 30;
/** Float32 magnitudes lie in [2^EXP_MIN, 2^(EXP_MIN + EXP_SLOTS)). */
const EXP_MIN = -150;
const EXP_SLOTS = 280;

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
 * The fixed-point scale of each of the `K` statistics: 2^(SUM_BITS - ⌈log2 rows⌉ - e), where 2^e
 * bounds the statistic's magnitude over all rows, so a sum of any rows' rounded values stays below
 * 2^SUM_BITS. A max is not a sum, so each peer sends its exponents one-hot (and its row count) and
 * reads the highest exponent any peer sent: the same scales for any split of the same rows.
 */
async function agreeScales(sum: SumAllPeers, stats: Float32Array, n: number, K: number): Promise<Float64Array> {
  const v = new Float32Array(K * EXP_SLOTS + 1);
  for (let k = 0; k < K; k++) {
    let max = 0;
    for (let i = 0; i < n; i++) max = Math.max(max, Math.abs(stats[i * K + k]!));
    if (max > 0) v[k * EXP_SLOTS + Math.ceil(Math.log2(max)) - EXP_MIN] = 1;
  }
  v[K * EXP_SLOTS] = n;
  const all = await sum(v);
  const rowBits = Math.ceil(Math.log2(Math.max(all[K * EXP_SLOTS]!, 1)));
  return Float64Array.from({ length: K }, (_, k) => {
    let top = EXP_SLOTS - 1;
    while (top >= 0 && all[k * EXP_SLOTS + top] === 0) top--;
    return 2 ** (SUM_BITS - rowBits - (top < 0 ? 0 : top + EXP_MIN));
  });
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
  const features = o.features ?? Array.from({ length: d }, (_, f) => f);
  if (features.length === 0) throw new RangeError('growTree: no feature to split on (features is empty)');
  const B = Math.max(...features.map((f) => binCount(bins, f)));
  // Histograms hold the features a split may use, slot s for feature features[s]: with column
  // subsampling, the others cost neither adds nor traffic.
  const F = features.length;
  const histSize = F * B * K;
  const maxLeaves = o.maxLeaves ?? 2 ** o.maxDepth;
  const traffic: GrowStats = { floatsSummed: 0, floatsWithoutSubtraction: 0 };
  // Histograms hold whole numbers: statistic k in units of 1 / scales[k].
  const scales = await agreeScales(sum, stats, n, K);
  const unit = scales.map((x) => 1 / x);
  const fixed = Float64Array.from(stats, (v, j) => Math.round(v * scales[j % K]!));

  /**
   * Adds the rows' fixed-point statistics into `out`. Yields to the event loop every
   * {@link ROWS_PER_SLICE} rows: a level of a deep tree on many features takes seconds, and the
   * peer's link heartbeats must keep flowing meanwhile.
   */
  const build = async (rows: Int32Array, out: Float64Array): Promise<void> => {
    // Only a row's non-zero statistics are added (class counts are one-hot: 2 of K).
    const ks = new Int32Array(K);
    const vs = new Float64Array(K);
    let done = 0;
    for (const i of rows) {
      if (++done % ROWS_PER_SLICE === 0) await nextTask();
      let m = 0;
      for (let k = 0; k < K; k++) {
        const v = fixed[i * K + k]!;
        if (v !== 0) {
          ks[m] = k;
          vs[m++] = v;
        }
      }
      const rowBins = i * d;
      for (let s = 0; s < F; s++) {
        const base = (s * B + binned[rowBins + features[s]!]!) * K;
        for (let j = 0; j < m; j++) out[base + ks[j]!]! += vs[j]!;
      }
    }
  };
  /** The group's sum of whole-number histograms, exact: int32 words on the u32 wire. */
  const sumExact = async (local: Float64Array): Promise<Float64Array> => {
    const words = new Float32Array(local.length);
    new Int32Array(words.buffer).set(local);
    const total = await sum(words, { wire: 'u32', exact: 0 });
    traffic.floatsSummed += local.length;
    return Float64Array.from(new Int32Array(total.buffer, total.byteOffset, total.length));
  };
  /** Node totals: slot 0's bins summed (every row is in exactly one bin of each feature). */
  const totals = (hist: Float64Array): Float64Array => {
    const t = new Float64Array(K);
    for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) t[k]! += hist[b * K + k]!;
    return t;
  };
  /** Rows (over all peers) in a node with totals `t`. */
  const rowsOf = (t: Float64Array): number => t[K - 1]! * unit[K - 1]!;
  const leafValue = (t: Float64Array): number[] => {
    const c = o.criterion;
    const rows = rowsOf(t);
    if (c.kind === 'gini') return Array.from(t.subarray(0, c.classes), (v, k) => (rows > 0 ? (v * unit[k]!) / rows : 0));
    return [-(t[0]! * unit[0]!) / (t[1]! * unit[1]! + c.lambda)];
  };
  /** Impurity decrease (gini, weighted by rows) or second-order gain of a left/right split. */
  const gainOf = (parent: Float64Array, left: Float64Array, right: Float64Array): number => {
    const c = o.criterion;
    if (c.kind === 'gini') {
      const weighted = (s: Float64Array): number => {
        const cnt = rowsOf(s);
        if (cnt <= 0) return 0;
        let sq = 0;
        for (let k = 0; k < c.classes; k++) sq += (s[k]! * unit[k]!) ** 2;
        return cnt - sq / cnt; // cnt * gini
      };
      return weighted(parent) - weighted(left) - weighted(right);
    }
    const score = (s: Float64Array): number => (s[0]! * unit[0]!) ** 2 / (s[1]! * unit[1]! + c.lambda);
    return 0.5 * (score(left) + score(right) - score(parent)) - c.gamma;
  };
  const admissible = (s: Float64Array): boolean =>
    rowsOf(s) >= o.minSamplesLeaf && (o.criterion.kind !== 'second-order' || s[1]! * unit[1]! >= o.criterion.minChildWeight);

  /** The best admissible split; the sums being exact, every peer computes the same gains. */
  const best = (hist: Float64Array, parent: Float64Array): Split | null => {
    let top: Split | null = null;
    const left = new Float64Array(K);
    const right = new Float64Array(K);
    for (let s = 0; s < F; s++) {
      const f = features[s]!;
      left.fill(0);
      const nb = binCount(bins, f);
      for (let b = 0; b < nb - 1; b++) {
        const base = (s * B + b) * K;
        for (let k = 0; k < K; k++) {
          left[k]! += hist[base + k]!;
          right[k] = parent[k]! - left[k]!;
        }
        if (!admissible(left) || !admissible(right)) continue;
        const gain = gainOf(parent, left, right);
        if (gain > (top?.gain ?? 1e-9)) top = { feature: f, bin: b, gain, left: left.slice() };
      }
    }
    return top;
  };

  const nodes: TreeNode[] = [];
  const makeNode = (hist: Float64Array): number => {
    const t = totals(hist);
    nodes.push({ feature: -1, bin: -1, threshold: NaN, left: -1, right: -1, count: rowsOf(t), value: leafValue(t), gain: 0 });
    return nodes.length - 1;
  };

  const rootLocal = new Float64Array(histSize);
  await build(
    Int32Array.from({ length: n }, (_, i) => i),
    rootLocal,
  );
  const rootHist = await sumExact(rootLocal);
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
      if (++searched % 64 === 0) await nextTask();
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
    const summed = await sumExact(local);
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
