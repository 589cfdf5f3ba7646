/**
 * `npm run bench -- svm-trees`: Fashion-MNIST test accuracy, training time and histogram traffic of
 * the linear SVM (hinge loss, averaged Pegasos steps), the SVM on random Fourier features, decision
 * trees of the given depths, and gradient-boosted trees, each with N = 1 and N = 4 peers (headless
 * tabs, or Node peers with `--runtime node`). A tree row of N > 1 peers is checked against the row of
 * the same parameters with 1 peer (`same_as_1_peer`: the models' checksums are equal).
 */
import { createHash } from 'node:crypto';
import type { DrivenPeer, RunEvent } from '../src/harness/driven.ts';
import type { TrainConfig, TrainResult } from '../src/training/trainer.ts';
import type { TreeResult, TreeTrainConfig } from '../src/training/trees.ts';
import { type PeerRuntime, startPeers } from './allreduce.ts';

export const SVM_TREE_MODELS = ['linear-svm', 'rff-svm', 'tree', 'gbdt'] as const;
export type SvmTreeModel = (typeof SVM_TREE_MODELS)[number];

export interface SvmTreeRow {
  model: SvmTreeModel;
  params: Record<string, number | string>;
  peers: number;
  /** Where the peers ran (absent in rows measured before Node peers: headless tabs). */
  runtime?: PeerRuntime;
  test_accuracy: number;
  train_s: number;
  /**
   * Trees: a checksum of the whole model (splits, thresholds, counts, leaf values), and whether it
   * equals the 1-peer model's (rows of N > 1 peers, when that row exists): the histogram sums are
   * exact, so N peers must grow the 1-peer model bit for bit.
   */
  model_checksum?: string;
  same_as_1_peer?: boolean;
  /** Payload bytes rank 0 sent over its data channels during the run (0 with one peer). */
  bytes_sent: number;
  /** Trees: bytes of the histograms summed, and what summing both children of every split would have been. */
  histogram_bytes?: number;
  histogram_bytes_without_subtraction?: number;
}

/** Boosting parameters a row may set (the tree trainer's defaults for the others; learningRate 0.3). */
export const GBDT_PARAMS = ['learningRate', 'lambda', 'gamma', 'minChildWeight', 'colSample', 'subsample'] as const;
export type GbdtParams = Partial<Record<(typeof GBDT_PARAMS)[number], number>>;

export interface SvmTreeOptions {
  peers: number[];
  models: readonly SvmTreeModel[];
  svmSteps: number;
  /** One tree row per depth. */
  treeDepths: number[];
  rounds: number;
  gbdtDepth: number;
  bins: number;
  /** rff-svm: random features and the RBF width. */
  rffFeatures: number;
  gamma: number;
  /** Headless tabs (default) or Node peers; both on the wasm backend. */
  runtime?: PeerRuntime;
  /** gbdt: parameters over the trainer's defaults. */
  gbdt?: GbdtParams;
}

/** Rows measured now replace earlier rows of the same model, parameters, peers and runtime; the others stay. */
export function mergeRows(earlier: SvmTreeRow[], fresh: SvmTreeRow[]): SvmTreeRow[] {
  const key = (r: SvmTreeRow): string => JSON.stringify([r.model, r.params, r.peers, r.runtime ?? 'browser']);
  const replaced = new Set(fresh.map(key));
  return [...earlier.filter((r) => !replaced.has(key(r))), ...fresh].sort(
    (a, b) => SVM_TREE_MODELS.indexOf(a.model) - SVM_TREE_MODELS.indexOf(b.model) || a.peers - b.peers,
  );
}

const round = (x: number, d = 4): number => Math.round(x * 10 ** d) / 10 ** d;

/** Payload bytes rank 0 has sent so far. */
const sent = async (p: DrivenPeer): Promise<number> => (await p.call<{ payloadBytesSent: number }>('stats')).payloadBytesSent;

const SVM = { batch: 128, optimizer: 'pegasos', lambda: 1e-4 } as const;

async function svm(pages: DrivenPeer[], steps: number, rff?: TrainConfig['rff']): Promise<{ accuracy: number; s: number; bytes: number }> {
  const config: TrainConfig = {
    dataset: 'fashion-mnist',
    partition: { scheme: 'iid', seed: 1 },
    model: 'svm',
    algorithm: 'sgd',
    optimizer: { kind: SVM.optimizer, lambda: SVM.lambda },
    batch: SVM.batch,
    steps,
    seed: 3,
    ...(rff ? { rff } : {}),
  };
  const before = await sent(pages[0]!);
  const t0 = performance.now();
  const rs = (await Promise.all(pages.map((p) => p.run({ kind: 'train', config })))) as TrainResult[];
  return { accuracy: rs[0]!.accuracy, s: (performance.now() - t0) / 1000, bytes: (await sent(pages[0]!)) - before };
}

async function trees(
  pages: DrivenPeer[],
  config: TreeTrainConfig,
  log: (s: string) => void,
): Promise<{ accuracy: number; s: number; bytes: number; floats: number; without: number; json: string }> {
  const before = await sent(pages[0]!);
  const t0 = performance.now();
  const progress = (e: RunEvent): void => {
    if (e.type === 'round') log(`  ${config.model} round ${e.round}/${e.rounds} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  };
  const rs = (await Promise.all(pages.map((p, i) => p.run({ kind: 'trees', config }, i === 0 ? progress : undefined)))) as TreeResult[];
  if (new Set(rs.map((r) => r.checksum)).size !== 1)
    throw new Error(`peers disagree on the ${config.model}: checksums ${rs.map((r) => r.checksum).join(', ')}`);
  const s = (performance.now() - t0) / 1000;
  return {
    accuracy: rs[0]!.accuracy,
    s,
    bytes: (await sent(pages[0]!)) - before,
    floats: rs[0]!.floatsSummed,
    without: rs[0]!.floatsWithoutSubtraction,
    json: rs[0]!.json,
  };
}

export async function benchSvmTrees(
  o: SvmTreeOptions,
  log: (s: string) => void,
  onRows: (rows: SvmTreeRow[]) => void,
  /** Rows of earlier runs: a tree row of N > 1 peers is compared with the 1-peer row there when this run has none. */
  earlier: SvmTreeRow[] = [],
): Promise<SvmTreeRow[]> {
  const rows: SvmTreeRow[] = [];
  const add = (r: SvmTreeRow): void => {
    rows.push(r);
    onRows(rows);
    const hist = r.histogram_bytes
      ? `, histograms ${(r.histogram_bytes / 1e6).toFixed(1)} MB (${(r.histogram_bytes_without_subtraction! / 1e6).toFixed(1)} MB without subtraction)`
      : '';
    const same = r.same_as_1_peer === undefined ? '' : `, ${r.same_as_1_peer ? 'the same model as' : 'NOT the same model as'} 1 peer`;
    log(
      `${r.model.padEnd(10)} ${r.runtime} peers ${r.peers}  accuracy ${r.test_accuracy.toFixed(4)}  ${r.train_s.toFixed(1)} s  sent ${(r.bytes_sent / 1e6).toFixed(1)} MB${hist}${same}  ${JSON.stringify(r.params)}`,
    );
  };
  const runtime = o.runtime ?? 'browser';
  const alone = (model: SvmTreeModel, params: SvmTreeRow['params']): SvmTreeRow | undefined =>
    [...rows, ...earlier].find(
      (r) => r.peers === 1 && r.model === model && r.model_checksum && JSON.stringify(r.params) === JSON.stringify(params),
    );
  let built = false;
  for (const n of o.peers) {
    const cluster = await startPeers(runtime, n, { backend: 'wasm', build: !built });
    built = true;
    const treeRow = async (model: 'tree' | 'gbdt', depth: number, params: Record<string, number>): Promise<void> => {
      const t = await trees(
        cluster.peers,
        {
          dataset: 'fashion-mnist',
          partition: { scheme: 'iid', seed: 1 },
          model,
          rounds: o.rounds,
          maxDepth: depth,
          bins: o.bins,
          seed: 1,
          ...(model === 'gbdt' ? o.gbdt : {}),
        },
        log,
      );
      const all = { ...params, depth, bins: o.bins, features: 784 };
      const one = n > 1 ? alone(model, all) : undefined;
      const checksum = createHash('sha256').update(t.json).digest('hex').slice(0, 12);
      const row = {
        peers: n,
        runtime,
        test_accuracy: round(t.accuracy),
        train_s: round(t.s, 1),
        bytes_sent: t.bytes,
        histogram_bytes: 4 * t.floats,
        histogram_bytes_without_subtraction: 4 * t.without,
        model_checksum: checksum,
        ...(one ? { same_as_1_peer: one.model_checksum === checksum } : {}),
      };
      add({ model, params: all, ...row });
    };
    try {
      if (o.models.includes('linear-svm')) {
        const s = await svm(cluster.peers, o.svmSteps);
        add({
          model: 'linear-svm',
          params: { steps: o.svmSteps, ...SVM },
          peers: n,
          runtime,
          test_accuracy: round(s.accuracy),
          train_s: round(s.s, 1),
          bytes_sent: s.bytes,
        });
      }
      if (o.models.includes('rff-svm')) {
        const s = await svm(cluster.peers, o.svmSteps, { features: o.rffFeatures, gamma: o.gamma });
        add({
          model: 'rff-svm',
          params: { steps: o.svmSteps, ...SVM, features: o.rffFeatures, gamma: o.gamma },
          peers: n,
          runtime,
          test_accuracy: round(s.accuracy),
          train_s: round(s.s, 1),
          bytes_sent: s.bytes,
        });
      }
      if (o.models.includes('tree')) for (const depth of o.treeDepths) await treeRow('tree', depth, {});
      if (o.models.includes('gbdt')) await treeRow('gbdt', o.gbdtDepth, { rounds: o.rounds, learningRate: 0.3, ...o.gbdt });
    } finally {
      await cluster.close();
    }
  }
  return rows;
}
