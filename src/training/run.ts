/**
 * One run's state on this peer, shared by the loop's phases (phases/*.ts): the config, the current
 * group, this peer's data, the model and its committed state, the exchange, and the few values
 * that carry from step to step (the `auto` probe, the batch shares, DP's accounting, the speed).
 */
import * as tf from '@tensorflow/tfjs';
import { pacer } from '../core/delay.ts';
import { augmentImages } from '../data/augment.ts';
import { DataError, featureSize, type Dataset } from '../data/dataset.ts';
import { LOCAL_DATASET } from '../data/local.ts';
import type { Batch } from '../ml/algorithms/distributed.ts';
import { FEDAVG_OUTER, OuterOptimizer } from '../ml/algorithms/rounds.ts';
import { RdpAccountant } from '../ml/dp.ts';
import { buildExchange, type GradientExchange } from '../ml/exchange/builder.ts';
import { Contribution } from '../ml/exchange/contribution.ts';
import { overRaw, type Exchange } from '../ml/exchange/stage.ts';
import { ControlFlags, type RoomControl } from '../ml/exchange/stages/control.ts';
import { checksumHex, getFlatWeights, paramCount, weightLayout } from '../ml/flat.ts';
import { lossKindFor, type LossKind, type ModelSpec } from '../ml/models.ts';
import { createOptimizer } from '../ml/optimizer.ts';
import { rffTransform } from '../ml/rff.ts';
import { lrFactor } from '../ml/schedule.ts';
import { OUTER_DEFAULTS } from '../protocol/catalogs.ts';
import { runKey, type TrainConfig } from '../protocol/run-config.ts';
import { GlobalOrder, localBatchSize, partOf, type Sampler } from './sampler.ts';
import { TrainingState } from './state.ts';
import type { Stragglers } from './stragglers.ts';
import type { Group, TrainerDeps, TrainResult } from './types.ts';

/**
 * Whether a run trains on served data: a dataset the server serves, split IID, by sgd, gd or diloco. Then
 * every peer holds the whole split and the global batch of step t is fixed by the seed and t
 * ({@link GlobalOrder}); the view only decides who computes which slice, so a run with crashes and
 * joins ends with the weights of a fault-free run. Otherwise (the tab's own data, a non-IID
 * partition that simulates federated data, FedAvg) each peer trains on its own shard, and a
 * peer's data leaves with it.
 */
export function servedData(cfg: TrainConfig): boolean {
  return cfg.dataset !== LOCAL_DATASET && cfg.partition.scheme === 'iid' && cfg.algorithm !== 'fedavg';
}

/** This peer's data for a view: its shard for (rank, size), or the whole splits (rank 0 of 1) when served. */
export interface Shard {
  rank: number;
  size: number;
  train: Dataset;
  test: Dataset;
}

/** `auto`: the steps after `from` whose timings are summed; the choice is made at step `until`. */
export interface Probe {
  from: number;
  until: number;
  commMs: number;
  computeMs: number;
}

/** Served data: the whole splits, loaded once whatever the view; held data: `g`'s rank's shard (null: `held` is it). */
export async function loadShards(cfg: TrainConfig, deps: TrainerDeps, g: Group, held?: Shard): Promise<Shard | null> {
  const [rank, size] = servedData(cfg) ? [0, 1] : [g.rank, g.size];
  if (held?.rank === rank && held.size === size) return null;
  const load = async (split: 'train' | 'test'): Promise<Dataset> => {
    const ds = await deps.loadShard(split, rank, size);
    if (!cfg.rff) return ds;
    const { featureNames: _, ...rest } = ds;
    return {
      ...rest,
      shape: [cfg.rff.features],
      x: await rffTransform(ds.x, ds.n, featureSize(ds.shape), { ...cfg.rff, seed: cfg.seed }),
    };
  };
  const [trainSet, testSet] = await Promise.all([load('train'), load('test')]);
  deps.emit({ type: 'data', train: trainSet.n, test: testSet.n, rank: g.rank, size: g.size });
  return { rank, size, train: trainSet, test: testSet };
}

/** The model `cfg` trains on data shaped as `shard`. */
export function modelSpec(cfg: TrainConfig, shard: Shard): ModelSpec {
  return {
    kind: cfg.model,
    inputShape: [...shard.train.shape],
    numClasses: shard.train.numClasses,
    seed: cfg.seed,
    ...(cfg.hidden ? { hidden: cfg.hidden } : {}),
    ...(cfg.transformer ? { transformer: cfg.transformer } : {}),
  };
}

export class Run {
  readonly served: boolean;
  readonly lossKind: LossKind;
  readonly params: number;
  readonly st: TrainingState;
  /** Every collective carries this peer's pause/stop; the room's totals after the last one. */
  readonly flags: ControlFlags;
  /** The group's collectives with the control flags: what every phase sums through. */
  readonly base: Exchange;
  /** The step's gradient exchange (exchange/builder.ts). */
  readonly exchange: GradientExchange;
  /** Served data: the global batches, the same on every peer and in every view. */
  readonly order: GlobalOrder | null;
  /** DP without secure aggregation: what this peer's ring neighbours have seen of its data (see ml/dp.ts). */
  readonly neighbour: RdpAccountant | null;

  /** Awaited before each local gradient: the loop gives way every frame (16 ms), even when no sum waits on the network (a lone peer, a round's local steps). */
  readonly pace = pacer(16);
  probe: Probe = { from: 0, until: 0, commMs: 0, computeMs: 0 };
  /** Held data: this peer's own order of its shard, drawn afresh at every agreement. */
  sampler: Sampler | null = null;
  /** `balance`: the part of the global batch per rank (0: on standby); null = the even split. */
  shares: number[] | null = null;
  /** DP-SGD: every peer's training examples together (agreed with the group), and the ε spent so far. */
  trainTotal = 0;
  epsilon: number | undefined;
  /** FedAvg and DiLoCo: local steps per round; null with `localSteps: 'auto'` until the view's probe round has measured them. */
  localSteps: number | null = null;
  /** This peer's compute speed, samples per ms (moving average; a standby peer's: its last probe). */
  speed = 0;
  /** ms the compute of this peer's last step (or round) took; 0 when it computed nothing. */
  stepMs = 0;
  /** `balance`: who is on standby and who missed deadlines, for the current group. */
  stragglers: Stragglers | null = null;
  last = { accuracy: 0, loss: 0 };
  recoveries = 0;
  /** Failed views since the last step was committed, and the step at the last failure. */
  failedInARow = 0;
  stepAtFault = -1;
  stopped = false;

  constructor(
    readonly cfg: TrainConfig,
    readonly deps: TrainerDeps,
    /** The group of the current view. */
    public g: Group,
    public shard: Shard,
    /** Made by the caller once the backend is selected (and disposed by it). */
    readonly model: tf.LayersModel,
    readonly spec: ModelSpec,
  ) {
    this.served = servedData(cfg);
    if (cfg.augment && shard.train.shape.length !== 3)
      throw new DataError(
        'bad-argument',
        `augment shifts and mirrors images; ${cfg.dataset}'s samples have shape [${shard.train.shape.join(', ')}]: drop augment for this dataset`,
      );
    this.flags = new ControlFlags(deps.control);
    this.base = this.flags.wrap(overRaw(() => this.g));
    this.lossKind = lossKindFor(this.spec);
    this.params = paramCount(this.model);
    const outer =
      cfg.algorithm === 'fedavg'
        ? FEDAVG_OUTER
        : cfg.algorithm === 'diloco'
          ? { lr: cfg.outerLr ?? OUTER_DEFAULTS.lr, momentum: cfg.outerMomentum ?? OUTER_DEFAULTS.momentum }
          : null;
    this.st = new TrainingState(
      this.model,
      createOptimizer(cfg.optimizer, this.params),
      outer && new OuterOptimizer(outer, this.params),
      runKey(cfg),
    );
    this.exchange = buildExchange(cfg, weightLayout(this.model));
    this.order = this.served ? new GlobalOrder(shard.train, cfg.seed) : null;
    this.neighbour = cfg.dp && !cfg.secureAggregation ? new RdpAccountant() : null;
  }

  /** The room's pause/stop requests as the last collective reported them. */
  get room(): RoomControl {
    return this.flags.room;
  }

  /** A plain vector summed over the group, with the control flags. */
  async sum(v: Float32Array): Promise<Float32Array> {
    return (await this.base.sum(Contribution.copyOf(v))).data;
  }

  /** Every rank's vector, with the control flags. */
  readonly allGather = async (v: Float32Array): Promise<Float32Array[]> =>
    (await this.base.allGather(Contribution.copyOf(v))).map((p) => p.data);

  /** `total` split over the view's ranks as evenly as can be. */
  evenSplit(total: number): number[] {
    return Array.from({ length: this.g.size }, (_, r) => localBatchSize(total, this.g.size, r));
  }

  /** This rank's part of global step `step`'s batch (sgd, diloco): its slice of the served batch, or its share drawn from its shard. */
  batchOf(step: number): Batch {
    const { g, cfg } = this;
    // Served data: a sample's place in the global batch keys its augmentation (the same on every
    // peer whatever the split); held data: this rank's own place.
    let b: Batch;
    let first: number;
    if (!this.order) {
      b = this.sampler!.next(this.shares?.[g.rank] ?? localBatchSize(cfg.batch, g.size, g.rank));
      first = (g.rank + 1) * 1_000_003;
    } else {
      const part = partOf(this.shares ?? this.evenSplit(cfg.batch), g.rank);
      b = this.order.slice(step, cfg.batch, part.from, part.count);
      first = part.from;
    }
    if (!cfg.augment) return b;
    const key = (i: number): number =>
      Math.imul(cfg.seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(step, 0xc2b2ae35) ^ Math.imul(first + i + 1, 0x27d4eb2f);
    return { ...b, x: augmentImages(b.x, b.count, this.shard.train.shape, cfg.augment, key) };
  }

  /** Sets the optimizer's lr for global step `step` by the config's schedule (none: the lr as configured). */
  scheduleLr(step: number): void {
    const { schedule, optimizer, steps } = this.cfg;
    if (schedule && 'lr' in optimizer) this.st.opt.setLearningRate(optimizer.lr * lrFactor(schedule, step, steps));
  }

  /** DP's sampling rate: the global batch over every peer's training examples (1 for full-batch GD). */
  samplingRate(): number {
    return this.cfg.algorithm === 'gd' ? 1 : Math.min(1, this.cfg.batch / this.trainTotal);
  }

  /** The result at the current committed step (what a finished run returns, what a failed run keeps). */
  async result(checksum?: string): Promise<TrainResult> {
    const weights = await getFlatWeights(this.model);
    const dp = this.cfg.dp;
    return {
      steps: this.st.step,
      stopped: this.stopped,
      ...this.last,
      checksum: checksum ?? checksumHex(weights),
      backend: tf.getBackend(),
      params: this.params,
      recoveries: this.recoveries,
      weights,
      spec: this.spec,
      ...(this.epsilon !== undefined ? { epsilon: this.epsilon } : {}),
      ...(this.neighbour && dp ? { neighbourEpsilon: this.neighbour.epsilon(dp.delta ?? 1e-5) } : {}),
    };
  }
}
