/**
 * Training a decision tree or gradient-boosted trees with every peer of a view: each peer loads its
 * shard, the group agrees on bins, and the trees grow by histogram allreduce (ml/trees). Every peer
 * ends with the same model (plain JSON) and the distributed test accuracy.
 *
 * Elastic: a failed collective re-forms the group on the next view, which re-cuts the shards and
 * agrees on bins again; boosting keeps the rounds already grown (a holder of the agreed model
 * hands it to the others, training/consensus.ts) and grows the rest; a single tree is grown again.
 */
import { fnv1a } from '../protocol/checkpoint.ts';
import { featureSize } from '../data/dataset.ts';
import { agreeBins, binRows } from '../ml/trees/bins.ts';
import { gbdtScores, trainGbdt, type Gbdt } from '../ml/trees/boost.ts';
import { growTree, predictTree, statsPerRow, type Tree } from '../ml/trees/tree.ts';
import { parseTreeConfig, type TreeTrainConfig } from '../protocol/run-config.ts';
import { adoptChosen, gatherClaims, senderOf } from './consensus.ts';
import { MAX_RECOVERIES, recoverable, type Group, type TrainerDeps } from './trainer.ts';

export type { TreeTrainConfig } from '../protocol/run-config.ts';

export type TreeEvent =
  | { type: 'data'; train: number; test: number; rank: number; size: number }
  | { type: 'bins'; features: number; ms: number }
  /** A round done (a tree is one round); floats the round summed, and without the subtraction trick. */
  | { type: 'round'; round: number; rounds: number; floatsSummed: number; floatsWithoutSubtraction: number; ms: number }
  /** Classification: accuracy; regression (numClasses 0): `accuracy` is 0 and `rmse` is set. */
  | { type: 'eval'; accuracy: number; rmse?: number; count: number }
  /** A collective of view `epoch` failed; the group re-forms on the next view. */
  | { type: 'fault'; epoch: number; reason: string }
  /** The group of view `epoch` goes on from `rounds` boosting rounds grown so far (taken from rank `source`). */
  | { type: 'sync'; epoch: number; size: number; rounds: number; source: number };

export interface TreeResult {
  model: 'tree' | 'gbdt';
  /** The model as JSON: `{kind: 'tree', tree}` or `{kind: 'gbdt', gbdt}`. */
  json: string;
  /** FNV-1a of the JSON, equal on every peer. */
  checksum: string;
  /** Test accuracy (classification), 0 for regression. */
  accuracy: number;
  /** Regression: root mean squared error on the test split. */
  rmse?: number;
  trainMs: number;
  /** Floats this peer put through allreduce for histograms. */
  floatsSummed: number;
  floatsWithoutSubtraction: number;
}

type Deps = Pick<TrainerDeps, 'group' | 'loadShard'> & {
  emit(e: TreeEvent): void;
  /** Boosting: called once when the run fails for good, with the rounds grown so far (none: not called). */
  keepFailed?(grown: TreeResult): void;
};

/** Re-runs `attempt` on the next view after each recoverable failure (at most MAX_RECOVERIES times). */
async function elastic<T>(deps: Deps, attempt: (g: Group) => Promise<T>): Promise<T> {
  let g = await deps.group();
  for (let recoveries = 0; ; recoveries++) {
    try {
      return await attempt(g);
    } catch (e) {
      if (!recoverable(e) || recoveries >= MAX_RECOVERIES) throw e;
      deps.emit({ type: 'fault', epoch: g.epoch, reason: e.message });
      g = await deps.group(g.epoch);
    }
  }
}

/** The boosting rounds the group goes on from (training/consensus.ts). */
async function agreeRounds(g: Group, mine: Gbdt | null, deps: Deps): Promise<Gbdt | null> {
  const states = mine && mine.trees.length > 0 ? [{ held: mine.trees.length, bytes: new TextEncoder().encode(JSON.stringify(mine)) }] : [];
  const { chosen, mine: held } = await gatherClaims((v) => g.allGather(v), states);
  if (!chosen) return null;
  const bytes = await adoptChosen(g, chosen, states[held]?.bytes ?? null, chosen.held);
  deps.emit({ type: 'sync', epoch: g.epoch, size: g.size, rounds: chosen.held, source: senderOf(chosen, g.epoch) });
  return held === 0 ? mine : (JSON.parse(new TextDecoder().decode(bytes)) as Gbdt);
}

export type TreeModel = { kind: 'tree'; tree: Tree } | { kind: 'gbdt'; gbdt: Gbdt };

/** Class scores, or the one regression output, of a row of raw features. */
export const scoresOf = (model: TreeModel, x: Float32Array, offset: number): number[] =>
  model.kind === 'tree' ? predictTree(model.tree, x, offset) : gbdtScores(model.gbdt, x, offset);

/** The test split's [correct, squared error, count] on this peer, to be summed over the group. */
function testSums(model: TreeModel, test: { x: Float32Array; y: Int32Array; targets?: Float32Array; n: number }, d: number): Float32Array {
  let correct = 0;
  let se = 0;
  for (let i = 0; i < test.n; i++) {
    const s = scoresOf(model, test.x, i * d);
    if (test.targets) se += (s[0]! - test.targets[i]!) ** 2;
    else if (s.indexOf(Math.max(...s)) === test.y[i]) correct++;
  }
  return Float32Array.from([correct, se, test.n]);
}

/** Trains on this peer's shard with the group; every peer calls it with the same config. */
export async function trainTrees(config: TreeTrainConfig, deps: Deps): Promise<TreeResult> {
  const cfg = parseTreeConfig(config);
  /** Boosting: the rounds grown so far, kept across views. */
  let grown: Gbdt | null = null;
  try {
    return await elastic(deps, async (g) => {
      grown = cfg.model === 'gbdt' ? await agreeRounds(g, grown, deps) : null;
      return growOnView(cfg, g, deps, grown, (m) => (grown = m));
    });
  } catch (e) {
    const kept = grown as Gbdt | null;
    if (kept && kept.trees.length > 0 && deps.keepFailed) {
      const json = JSON.stringify({ kind: 'gbdt', gbdt: kept });
      deps.keepFailed({
        model: 'gbdt',
        json,
        checksum: checksumOf(json),
        accuracy: 0,
        trainMs: 0,
        floatsSummed: 0,
        floatsWithoutSubtraction: 0,
      });
    }
    throw e;
  }
}

const checksumOf = (json: string): string => fnv1a(new TextEncoder().encode(json)).toString(16).padStart(8, '0');

/** The whole training on one view's group (from the rounds `resume` holds, when there are any). */
async function growOnView(
  cfg: TreeTrainConfig,
  g: Group,
  deps: Deps,
  resume: Gbdt | null,
  onRound: (m: Gbdt) => void,
): Promise<TreeResult> {
  const [train, test] = await Promise.all([deps.loadShard('train', g.rank, g.size), deps.loadShard('test', g.rank, g.size)]);
  deps.emit({ type: 'data', train: train.n, test: test.n, rank: g.rank, size: g.size });
  const regression = train.numClasses === 0;
  if (regression && cfg.model === 'tree')
    throw new RangeError(
      `trainTrees: this dataset is a regression (no classes); train model 'gbdt' on it (rounds: 1 and learningRate: 1 grow a single regression tree)`,
    );
  if (train.numClasses === 1)
    throw new RangeError(`trainTrees: ${cfg.model} needs at least 2 classes; this dataset has 1 (every label is the same)`);
  for (const [name, v] of [
    ['subsample', cfg.subsample],
    ['colSample', cfg.colSample],
  ] as const) {
    if (v !== undefined && !(v > 0 && v <= 1)) throw new RangeError(`trainTrees: ${name} must be in (0, 1]; got ${v}`);
  }
  const d = featureSize(train.shape);
  const sum = g.sum;
  const t0 = performance.now();
  const bins = await agreeBins(sum, g.rank, g.size, train.x, train.n, d, cfg.bins);
  deps.emit({ type: 'bins', features: d, ms: performance.now() - t0 });
  const binned = binRows(bins, train.x, train.n, d);
  const traffic = { floatsSummed: 0, floatsWithoutSubtraction: 0 };
  let model: TreeModel;
  if (cfg.model === 'tree') {
    const criterion = { kind: 'gini', classes: train.numClasses } as const;
    const K = statsPerRow(criterion);
    const stats = new Float32Array(train.n * K);
    for (let i = 0; i < train.n; i++) {
      stats[i * K + train.y[i]!] = 1;
      stats[i * K + K - 1] = 1;
    }
    const t1 = performance.now();
    const r = await growTree(sum, bins, binned, stats, train.n, d, {
      maxDepth: cfg.maxDepth,
      minSamplesLeaf: cfg.minSamplesLeaf ?? 1,
      criterion,
    });
    Object.assign(traffic, r.traffic);
    deps.emit({ type: 'round', round: 1, rounds: 1, ...r.traffic, ms: performance.now() - t1 });
    model = { kind: 'tree', tree: r.tree };
  } else {
    const rounds = cfg.rounds ?? 10;
    let last = performance.now();
    const gbdt = await trainGbdt(
      sum,
      bins,
      binned,
      train.targets ?? train.y,
      train.n,
      d,
      {
        rounds,
        learningRate: cfg.learningRate ?? 0.3,
        maxDepth: cfg.maxDepth,
        minSamplesLeaf: cfg.minSamplesLeaf ?? 1,
        lambda: cfg.lambda ?? 1,
        gamma: cfg.gamma ?? 0,
        minChildWeight: cfg.minChildWeight ?? 1e-3,
        classes: train.numClasses,
        ...(cfg.colSample !== undefined ? { colSample: cfg.colSample } : {}),
        ...(cfg.subsample !== undefined ? { subsample: cfg.subsample } : {}),
        seed: cfg.seed,
      },
      (round, t, m) => {
        traffic.floatsSummed += t.floatsSummed;
        traffic.floatsWithoutSubtraction += t.floatsWithoutSubtraction;
        const now = performance.now();
        onRound({ ...m, trees: [...m.trees] });
        deps.emit({ type: 'round', round, rounds, ...t, ms: now - last });
        last = now;
      },
      resume ? { model: resume, x: train.x } : undefined,
    );
    model = { kind: 'gbdt', gbdt };
  }
  const trainMs = performance.now() - t0;
  const s = await sum(testSums(model, test, d));
  const count = s[2]!;
  const accuracy = count > 0 ? s[0]! / count : 0;
  const rmse = regression ? { rmse: Math.sqrt(s[1]! / Math.max(count, 1)) } : {};
  deps.emit({ type: 'eval', accuracy, ...rmse, count });
  const json = JSON.stringify(model);
  return { model: cfg.model, json, checksum: checksumOf(json), accuracy, ...rmse, trainMs, ...traffic };
}
