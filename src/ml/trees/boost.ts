/**
 * Gradient-boosted trees over the ring (second-order, as XGBoost): each round, every peer computes
 * the gradient and hessian of the loss on its rows, and one histogram tree per output is grown by
 * histogram allreduce ({@link growTree}); the scores move by the learning rate times the leaf weights.
 * Multi-class uses the softmax loss (one tree per class per round); regression the squared error.
 * Column subsampling draws from a seed shared by all peers, so every peer uses the same features.
 * Row subsampling keys each row by a hash of its bins mixed with the round's shared seed, so a row
 * is in or out of a round whichever peer holds it: N peers grow the trees one peer grows on the union.
 */
import { mulberry32 } from '../../core/random.ts';
import type { SumAllPeers } from '../algorithms/distributed.ts';
import type { Bins } from './bins.ts';
import { growTree, leafOfBinned, predictTree, type GrowStats, type Tree } from './tree.ts';

export interface GbdtOptions {
  rounds: number;
  learningRate: number;
  maxDepth: number;
  minSamplesLeaf: number;
  /** L2 on leaf weights (λ), split penalty (γ), smallest hessian sum per child. */
  lambda: number;
  gamma: number;
  minChildWeight: number;
  /** Number of classes, or 0 for regression. */
  classes: number;
  /** Share of features each tree may use (default 1). */
  colSample?: number;
  /** Share of rows each round uses (default 1); a left-out row adds nothing to the histograms. */
  subsample?: number;
  seed: number;
}

/** A trained model; plain data, serialisable as JSON. */
export interface Gbdt {
  classes: number;
  learningRate: number;
  /** Starting score per output (log prior for classes, the mean for regression). */
  base: number[];
  /** `trees[round][output]`. */
  trees: Tree[][];
}

/** Raw scores (one per output) of one row. */
export function gbdtScores(m: Gbdt, x: ArrayLike<number>, offset = 0): number[] {
  const s = [...m.base];
  for (const round of m.trees) round.forEach((t, c) => (s[c]! += m.learningRate * predictTree(t, x, offset)[0]!));
  return s;
}

/** A 32-bit FNV-1a hash of each binned row: the row's identity, whichever peer holds it. */
function rowKeys(binned: Uint8Array, n: number, d: number): Uint32Array {
  const keys = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let h = 0x811c9dc5;
    for (let f = i * d; f < (i + 1) * d; f++) h = Math.imul(h ^ binned[f]!, 0x01000193);
    keys[i] = h >>> 0;
  }
  return keys;
}

function softmaxInPlace(s: Float64Array): void {
  let max = -Infinity;
  for (const v of s) if (v > max) max = v;
  let z = 0;
  for (let k = 0; k < s.length; k++) z += s[k] = Math.exp(s[k]! - max);
  for (let k = 0; k < s.length; k++) s[k]! /= z;
}

/**
 * Trains on this peer's `n` rows (`binned` by the agreed `bins`, labels `y` or regression
 * `targets`). Every peer of the group calls it with the same options and gets the same model.
 * `onRound` reports progress, the round's traffic and the model so far. `resume` continues the
 * rounds of a model grown so far (possibly by another group, on other bins): this peer's scores
 * come from its raw rows `x`, and round r draws the same features and rows as it would have.
 */
export async function trainGbdt(
  sum: SumAllPeers,
  bins: Bins,
  binned: Uint8Array,
  labels: Int32Array | Float32Array,
  n: number,
  d: number,
  o: GbdtOptions,
  onRound?: (round: number, traffic: GrowStats, model: Gbdt) => void,
  resume?: { model: Gbdt; x: Float32Array },
): Promise<Gbdt> {
  const outputs = o.classes > 0 ? o.classes : 1;
  const scores = new Float64Array(n * outputs);
  const model = resume ? { ...resume.model, trees: [...resume.model.trees] } : await startGbdt(sum, labels, n, o);
  for (let i = 0; i < n; i++) scores.set(resume ? gbdtScores(model, resume.x, i * d) : model.base, i * outputs);
  const stats = new Float32Array(n * 3);
  const probs = new Float64Array(n * outputs);
  const subsample = o.subsample !== undefined && o.subsample < 1 ? o.subsample : undefined;
  const keys = subsample !== undefined ? rowKeys(binned, n, d) : undefined;
  const inRound = new Uint8Array(n).fill(1);
  for (let round = model.trees.length; round < o.rounds; round++) {
    // Each round's draws come from (seed, round) alone, so a resumed run draws what it would have.
    const rand = mulberry32(o.seed * 7919 + round);
    const features =
      o.colSample && o.colSample < 1 ? Array.from({ length: d }, (_, f) => f).filter(() => rand() < o.colSample!) : undefined;
    if (keys) {
      const roundSeed = Math.floor(rand() * 2 ** 32);
      for (let i = 0; i < n; i++) inRound[i] = mulberry32(keys[i]! ^ roundSeed)() < subsample! ? 1 : 0;
    }
    // Softmax of every row once per round; each class's tree reads its column.
    if (o.classes > 0) {
      probs.set(scores);
      for (let i = 0; i < n; i++) softmaxInPlace(probs.subarray(i * outputs, (i + 1) * outputs));
    }
    const trees: Tree[] = [];
    const traffic: GrowStats = { floatsSummed: 0, floatsWithoutSubtraction: 0 };
    for (let c = 0; c < outputs; c++) {
      for (let i = 0; i < n; i++) {
        const q = probs[i * outputs + c]!;
        const w = inRound[i]!;
        stats[i * 3] = w * (o.classes > 0 ? q - (labels[i] === c ? 1 : 0) : scores[i]! - labels[i]!);
        stats[i * 3 + 1] = w * (o.classes > 0 ? Math.max(q * (1 - q), 1e-6) : 1);
        stats[i * 3 + 2] = w;
      }
      const { tree, traffic: t } = await growTree(sum, bins, binned, stats, n, d, {
        maxDepth: o.maxDepth,
        minSamplesLeaf: o.minSamplesLeaf,
        criterion: { kind: 'second-order', lambda: o.lambda, gamma: o.gamma, minChildWeight: o.minChildWeight },
        ...(features?.length ? { features } : {}),
      });
      traffic.floatsSummed += t.floatsSummed;
      traffic.floatsWithoutSubtraction += t.floatsWithoutSubtraction;
      trees.push(tree);
    }
    // Scores move only after every output's tree of the round is grown (softmax uses all of them).
    for (let i = 0; i < n; i++) trees.forEach((t, c) => (scores[i * outputs + c]! += o.learningRate * leafOfBinned(t, binned, i * d)[0]!));
    model.trees.push(trees);
    onRound?.(round + 1, traffic, model);
  }
  return model;
}

/** A model with no trees yet: the base score from the group's label statistics. */
async function startGbdt(sum: SumAllPeers, labels: Int32Array | Float32Array, n: number, o: GbdtOptions): Promise<Gbdt> {
  let base: number[];
  if (o.classes > 0) {
    const counts = new Float32Array(o.classes + 1);
    for (let i = 0; i < n; i++) counts[labels[i]!]!++;
    counts[o.classes] = n;
    const total = await sum(counts);
    base = Array.from(total.subarray(0, o.classes), (c) => Math.log(Math.max(c, 1) / total[o.classes]!));
  } else {
    let s = 0;
    for (let i = 0; i < n; i++) s += labels[i]!;
    const total = await sum(Float32Array.from([s, n]));
    base = [total[1]! > 0 ? total[0]! / total[1]! : 0];
  }
  return { classes: o.classes, learningRate: o.learningRate, base, trees: [] };
}
