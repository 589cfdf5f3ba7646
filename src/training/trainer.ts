/**
 * The training loop every peer of a room runs with the same config: loads its shard, builds the
 * model from the shared seed, then steps (synchronous SGD, full-batch GD, or federated averaging)
 * with the ring doing the sums. It reports typed events, evaluates on the peers' slices of the
 * test set, and checks that all weights are identical (resynchronising if not).
 *
 * Elastic and transactional: a step is numbered globally, and weights and optimizer state change
 * only once the step's allreduce has completed. When a collective fails (a peer died, the view
 * changed, a timeout), the step is abandoned, the loop waits for the next view, re-cuts its shard
 * for its new rank, and the group agrees on the corroborated state with most steps (consensus.ts: a
 * newcomer, a peer whose last allreduce did not complete, or a lone peer that completed a step the
 * others did not, takes it over by broadcast, checked against its digest). Then the next step
 * number runs: no step is lost beyond the aborted one, none is applied twice. When no peer has any
 * state yet, the newest stored checkpoint of the same run is restored.
 */
import * as tf from '@tensorflow/tfjs';
import { RingError } from '../core/errors.ts';
import { featureSize, type Dataset } from '../data/dataset.ts';
import { LOCAL_DATASET } from '../data/local.ts';
import { federatedRound, synchronousStep, type StepTimings, type SumAllPeers } from '../ml/algorithms/distributed.ts';
import { AUTO_PROBE_STEPS, chooseCodec } from '../ml/algorithms/auto.ts';
import { Compressor } from '../ml/algorithms/compression.ts';
import { guardedSum } from '../ml/algorithms/guard.ts';
import { robustSum } from '../ml/algorithms/robust.ts';
import { maskedSum } from '../ml/algorithms/secure.ts';
import type { BackendReport } from '../ml/backend.ts';
import { checksumHex, getFlatWeights, paramCount, setFlatWeights, weightLayout } from '../ml/flat.ts';
import { createModel, lossKindFor, type ModelSpec } from '../ml/models.ts';
import { createOptimizer, type FlatOptimizer } from '../ml/optimizer.ts';
import { rffTransform } from '../ml/rff.ts';
import { dpEpsilon, RdpAccountant, privateGradients } from '../ml/dp.ts';
import { adoptChosen, gatherClaims, senderOf, type HeldState } from './consensus.ts';
import { evaluate } from '../ml/step.ts';
import { decodeCheckpoint, encodeCheckpoint } from '../protocol/checkpoint.ts';
import { parseTrainConfig, runKey, type TrainConfig } from '../protocol/run-config.ts';
import type { WireSpec } from '../protocol/wire.ts';
import { GlobalOrder, localBatchSize, partOf, proportionalSplit, Sampler, sliceOf } from './sampler.ts';

export type Algorithm = TrainConfig['algorithm'];

export type { TrainConfig } from '../protocol/run-config.ts';

export type TrainEvent =
  | { type: 'backend'; report: BackendReport }
  | { type: 'data'; train: number; test: number; rank: number; size: number }
  /** `samples`: the global batch; `localSamples`: this peer's part of it. */
  | ({
      type: 'step';
      step: number;
      steps: number;
      loss: number;
      samples: number;
      localSamples: number;
      samplesPerSec: number;
      epoch: number;
      size: number;
    } & StepTimings)
  | { type: 'eval'; step: number; accuracy: number; loss: number; count: number }
  | { type: 'checksum'; step: number; checksum: string; resynced: boolean }
  /** The room paused (some peer asked), resumed (no peer asks any more), or is stopping after `step`. */
  | { type: 'control'; step: number; state: 'paused' | 'resumed' | 'stopping' }
  /** A collective of view `epoch` failed after `step` committed steps; the loop waits for a new view. */
  | { type: 'fault'; step: number; epoch: number; reason: string }
  /** The group of view `epoch` agreed on the state at `step`, taken from rank `source` (or a stored checkpoint). */
  | { type: 'sync'; step: number; epoch: number; size: number; source: number | 'checkpoint' | 'seed' }
  | { type: 'checkpoint'; step: number; bytes: number; error?: string }
  /** DP-SGD: the privacy spent so far, (ε, δ). */
  /** `neighbourEpsilon`: against this peer's ring neighbour; absent with secure aggregation (see ml/dp.ts). */
  | { type: 'privacy'; step: number; epsilon: number; neighbourEpsilon?: number; delta: number }
  /** The contributions of `ranks` were left out of step `step`'s sum; `self`: this peer's own. */
  | { type: 'rejected'; step: number; ranks: number[]; self: boolean }
  /** compression `auto`: the codec the group picked at `step`, and why. */
  | { type: 'codec'; step: number; codec: string; reason: string };

export interface TrainResult {
  /** Steps completed: `config.steps`, or fewer when a peer stopped the run. */
  steps: number;
  stopped: boolean;
  accuracy: number;
  loss: number;
  checksum: string;
  backend: string;
  params: number;
  /** Views this peer recovered from during the run. */
  recoveries: number;
  /** DP-SGD: ε spent for the configured δ. */
  epsilon?: number;
  /** DP-SGD without secure aggregation: ε against this peer's ring neighbour. */
  neighbourEpsilon?: number;
  /** The final weights, identical on every peer, and the model they fill (for export and prediction). */
  weights: Float32Array;
  spec: ModelSpec;
}

export type Poison = 'nan' | 'huge' | 'flip';

/** What this peer asks of the room; read at every collective sum. */
export interface TrainControl {
  pause: boolean;
  stop: boolean;
  /**
   * Fault drill: this peer sends NaN, gradients 1e6 times too large, or (`flip`) its gradient
   * times -100 (a byzantine peer pushing the model uphill), and does not check itself.
   */
  poison?: Poison;
}

/** While paused, how often the peers exchange their control flags (ms). */
export const PAUSE_POLL_MS = 200;
/** sgd with `balance`: steps between speed measurements. */
export const BALANCE_EVERY = 5;
/**
 * Failed views a run recovers from before giving up: in a row without a committed step for
 * gradient runs (a long run survives any number of faults as long as it progresses, and a member
 * that keeps forcing new views slows the run but cannot end it), in all for trees.
 */
export const MAX_RECOVERIES = 100;

/** The peers of one view, with the collectives the loop needs. */
export interface Group {
  epoch: number;
  rank: number;
  size: number;
  /** Elementwise sum over the view (ring allreduce); `wire`: the values' type on the wire. */
  sum(v: Float32Array, wire?: WireSpec): Promise<Float32Array>;
  /** Every rank's vector (ring all-gather): state agreement and robust aggregation. */
  allGather(v: Float32Array): Promise<Float32Array[]>;
  /** Bytes of rank `root` to every peer. */
  broadcast(root: number, data: Uint8Array | null): Promise<Uint8Array>;
  /** Reports peers (by rank) whose contributions this peer left out of a sum. */
  reportInvalid?(step: number, ranks: number[]): void;
  /** Secure aggregation: the key shared with each rank for this view (null at this peer's own rank). */
  maskKeys?(): Promise<(CryptoKey | null)[]>;
}

/** What the loop needs from its surroundings (the page wires the session and the server). */
export interface TrainerDeps {
  /**
   * The group of the current view once its ring is up. With `failedEpoch`: the group of a newer
   * view (asking the coordinator for one when the failed view is still current). Rejects when no
   * usable view comes (this peer was evicted, or left).
   */
  group(failedEpoch?: number): Promise<Group>;
  /** This peer's shard of a split for `rank` of `size`. */
  loadShard(split: 'train' | 'test', rank: number, size: number): Promise<Dataset>;
  /** Picks and activates the tfjs backend for the model. */
  selectBackend(spec: ModelSpec): Promise<BackendReport>;
  emit(e: TrainEvent): void;
  /**
   * This peer's pause/stop requests. Every sum the loop makes carries them, so all peers learn the
   * room's requests from the same sums and pause, resume or stop at the same step.
   */
  control?: () => TrainControl;
  /** Stores a checkpoint; rank 0 calls it every `checkpointEvery` steps. */
  saveCheckpoint?(bytes: Uint8Array<ArrayBuffer>): Promise<void>;
  /** The newest stored checkpoint of this room, or null. */
  loadCheckpoint?(): Promise<Uint8Array | null>;
  /**
   * Called once when the run fails for good, before train() rejects, with the model of the last
   * committed step (not called when no step was agreed), so that a failed run still leaves a model.
   */
  keepFailed?(committed: TrainResult): void;
  signal?: AbortSignal;
}

/**
 * Whether a run trains on served data: a dataset the server serves, split IID, by sgd or gd. Then
 * every peer holds the whole split and the global batch of step t is fixed by the seed and t
 * ({@link GlobalOrder}); the view only decides who computes which slice, so a run with crashes and
 * joins ends with the weights of a fault-free run. Otherwise (the tab's own data, a non-IID
 * partition that simulates federated data, FedAvg) each peer trains on its own shard, and a
 * peer's data leaves with it.
 */
export function servedData(cfg: TrainConfig): boolean {
  return cfg.dataset !== LOCAL_DATASET && cfg.partition.scheme === 'iid' && cfg.algorithm !== 'fedavg';
}

/** Failures a new view can cure; anything else ends the run. */
export function recoverable(e: unknown): e is RingError {
  return e instanceof RingError && e.code !== 'aborted';
}

/** The room's pause/stop requests as the last sum reported them: how many peers ask for each. */
interface RoomControl {
  pause: number;
  stop: number;
}

/**
 * `sum` with this peer's control flags appended to every vector; the room's totals land in `room`
 * after each sum. Every peer makes the same sums in the same order, so all see the same totals.
 */
function controlled(group: () => Group, control: TrainerDeps['control'], room: RoomControl) {
  const withFlags = (v: Float32Array): Float32Array => {
    const mine = control?.() ?? { pause: false, stop: false };
    const ext = new Float32Array(v.length + 2);
    ext.set(v);
    ext[v.length] = mine.pause ? 1 : 0;
    ext[v.length + 1] = mine.stop ? 1 : 0;
    return ext;
  };
  const note = (pause: number, stop: number): void => {
    room.pause = pause;
    room.stop = stop;
  };
  return {
    /** The sum; the flags travel as exact float32 whatever the wire. */
    sum: async (v: Float32Array, wire?: WireSpec): Promise<Float32Array> => {
      const total = await group().sum(withFlags(v), wire && { wire: wire.wire, exact: wire.exact + 2 });
      note(total[v.length]!, total[v.length + 1]!);
      return total.subarray(0, v.length);
    },
    /** Every rank's vector (the flags summed over the ranks). */
    allGather: async (v: Float32Array): Promise<Float32Array[]> => {
      const parts = await group().allGather(withFlags(v));
      note(
        parts.reduce((a, p) => a + p[v.length]!, 0),
        parts.reduce((a, p) => a + p[v.length + 1]!, 0),
      );
      return parts.map((p) => p.subarray(0, v.length));
    },
  };
}

/** Resolves after `ms`, or rejects with the signal's reason when it fires first. */
function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** This peer's data for a view: its shard for (rank, size), or the whole splits (rank 0 of 1) when served. */
interface Shard {
  rank: number;
  size: number;
  train: Dataset;
  test: Dataset;
}

/** A state kept in memory: its step, weights and optimizer state. */
interface Snapshot {
  step: number;
  weights: Float32Array;
  optimizer: Float32Array;
}

/** The model, its optimizer and the committed step: what a checkpoint or a newcomer receives. */
class TrainingState {
  /** Last committed global step. */
  step = 0;
  /** False until this peer has agreed on a state with a group (a newcomer has nothing to offer). */
  agreed = false;
  /** FedAvg: the optimizer's initial state. Each peer's optimizer state is its own there, so agreement covers the weights alone. */
  private readonly fresh: Float32Array | null;

  constructor(
    readonly model: tf.LayersModel,
    readonly opt: FlatOptimizer,
    readonly key: string,
    localOptimizer: boolean,
  ) {
    this.fresh = localOptimizer ? opt.getState() : null;
  }

  async encode(): Promise<Uint8Array<ArrayBuffer>> {
    return encodeCheckpoint({
      step: this.step,
      runKey: this.key,
      weights: await getFlatWeights(this.model),
      optimizer: this.opt.getState(),
    });
  }

  /** The state before the last committed step (see consensus.ts). */
  private previous: Snapshot | null = null;

  /** The current state, to go back to if the next step does not commit. */
  async snapshot(): Promise<Snapshot> {
    return { step: this.step, weights: await getFlatWeights(this.model), optimizer: this.opt.getState() };
  }

  /** Commits a step taken from `before`. */
  commit(before: Snapshot): void {
    this.step++;
    this.previous = before;
  }

  /** Goes back to `before` (a step that did not commit). */
  rollBack(before: Snapshot): void {
    setFlatWeights(this.model, before.weights);
    this.opt.setState(before.optimizer);
  }

  /** What this peer claims in an agreement: its state, then the one before its last step. */
  async held(): Promise<HeldState[]> {
    if (!this.agreed) return [];
    const shared = (c: Snapshot): HeldState => ({
      held: c.step + 1,
      bytes: encodeCheckpoint({ ...c, runKey: this.key, optimizer: this.fresh ?? c.optimizer }),
    });
    const out = [shared(await this.snapshot())];
    if (this.previous?.step === this.step - 1) out.push(shared(this.previous));
    return out;
  }

  /** Restores encoded state; a CheckpointError or another run's key is an Error saying which. */
  restore(bytes: Uint8Array): Error | null {
    const c = decodeCheckpoint(bytes);
    if (c instanceof Error) return c;
    if (c.runKey !== this.key) return new Error(`the checkpoint belongs to another run (${c.runKey})`);
    setFlatWeights(this.model, c.weights);
    this.opt.setState(c.optimizer);
    this.step = c.step;
    this.previous = null;
    return null;
  }
}

/** Runs the whole training on this peer. Rejects with the first unrecoverable RingError / MlError / DataError. */
export async function train(config: TrainConfig, deps: TrainerDeps): Promise<TrainResult> {
  // The one door: whatever the caller built, the loop runs only a config the schema accepts.
  const cfg = parseTrainConfig(config);
  let g = await deps.group();
  const served = servedData(cfg);
  /** Served data: the whole splits, loaded once whatever the view; held data: this rank's shard. */
  const loadShards = async (held?: Shard): Promise<Shard | null> => {
    const [rank, size] = served ? [0, 1] : [g.rank, g.size];
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
  };
  let shard = (await loadShards())!;
  const spec: ModelSpec = {
    kind: cfg.model,
    inputShape: [...shard.train.shape],
    numClasses: shard.train.numClasses,
    seed: cfg.seed,
    ...(cfg.hidden ? { hidden: cfg.hidden } : {}),
  };
  const report = await deps.selectBackend(spec);
  deps.emit({ type: 'backend', report });
  const model = createModel(spec);
  const room: RoomControl = { pause: 0, stop: 0 };
  const { sum, allGather } = controlled(() => g, deps.control, room);
  try {
    const lossKind = lossKindFor(spec);
    const params = paramCount(model);
    const st = new TrainingState(model, createOptimizer(cfg.optimizer, params), runKey(cfg), cfg.algorithm === 'fedavg');
    const auto = cfg.compression?.kind === 'auto' && cfg.algorithm !== 'fedavg';
    let compressor =
      cfg.compression && !auto && cfg.algorithm !== 'fedavg' ? new Compressor(cfg.compression, weightLayout(model), cfg.seed) : null;
    /** `auto`: the steps after `from` whose timings are summed; the choice is made at step `until`. */
    let probe = { from: 0, until: 0, commMs: 0, computeMs: 0 };
    /** Held data: this peer's own order of its shard, drawn afresh at every sync. */
    let sampler: Sampler | null = null;
    /** Served data: the global batches, the same on every peer and in every view. */
    const order = served ? new GlobalOrder(shard.train, cfg.seed) : null;
    /** `total` split over the view's ranks as evenly as can be. */
    const evenSplit = (total: number): number[] => Array.from({ length: g.size }, (_, r) => localBatchSize(total, g.size, r));
    let last = { accuracy: 0, loss: 0 };
    let recoveries = 0;
    /** Failed views since the last step was committed, and the step at the last failure. */
    let failedInARow = 0;
    let stepAtFault = -1;
    let stopped = false;

    /** Evaluates the optimizer's averaged weights where it keeps them (the iterate stays for training). */
    const evalAll = async (): Promise<void> => {
      const avg = st.opt.averagedWeights();
      const iterate = avg ? await getFlatWeights(model) : null;
      if (avg) setFlatWeights(model, avg);
      // Each peer scores its slice of the test set (the whole of its shard on held data).
      const part = served ? partOf(evenSplit(shard.test.n), g.rank) : { from: 0, count: shard.test.n };
      const test = sliceOf(shard.test, part.from, part.count);
      const r = await evaluate(model, test.x, test.y, { lossKind }).finally(() => iterate && setFlatWeights(model, iterate));
      const s = await sum(new Float32Array([r.correct, r.count, r.lossSum]));
      last = { accuracy: s[0]! / s[1]!, loss: s[2]! / s[1]! };
      deps.emit({ type: 'eval', step: st.step, accuracy: last.accuracy, loss: last.loss, count: s[1]! });
    };
    /**
     * Checks that every peer holds the same weights. Where some do not, the weights most peers hold
     * (among those at least two hold) are sent by one of their holders and checked against their
     * digest on arrival, so neither one peer nor the sender can impose others (consensus.ts).
     * Returns the checksum.
     */
    const verify = async (): Promise<string> => {
      const w = await getFlatWeights(model);
      const mine = new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
      const { chosen, mine: held } = await gatherClaims(allGather, [{ held: 1, bytes: mine }]);
      const resynced = chosen!.holders.length < g.size;
      if (resynced) {
        const bytes = await adoptChosen(g, chosen!, held === 0 ? mine : null, st.step);
        if (held !== 0) setFlatWeights(model, new Float32Array(bytes.slice().buffer));
      }
      const ref = checksumHex(await getFlatWeights(model));
      deps.emit({ type: 'checksum', step: st.step, checksum: ref, resynced });
      return ref;
    };
    /**
     * Agrees on one state with the group (consensus.ts): every peer states what it holds, and the
     * corroborated state with the most steps is sent by one of its holders, checked on arrival.
     * When no peer has any, rank 0 offers the newest stored checkpoint of this run (or
     * nothing: the seeded start, identical everywhere).
     */
    const agree = async (): Promise<void> => {
      // Alongside: whether each peer had stopped and, for DP, its training examples (control flow
      // after this depends only on what every peer gathered).
      const states = await st.held();
      const { chosen: m, extras, mine } = await gatherClaims(allGather, states, [stopped ? 1 : 0, shard.train.n]);
      stopped = extras.some((x) => x[0]! > 0);
      // Served data: every peer loaded the whole split.
      trainTotal = served ? shard.train.n : extras.reduce((a, x) => a + x[1]!, 0);
      let source: number | 'checkpoint' | 'seed';
      if (!m) {
        const stored = g.rank === 0 ? ((await deps.loadCheckpoint?.().catch(() => null)) ?? new Uint8Array(0)) : null;
        const bytes = await g.broadcast(0, stored);
        const err = bytes.length > 0 ? st.restore(bytes) : null;
        if (err)
          deps.emit({ type: 'checkpoint', step: 0, bytes: bytes.length, error: `not restored: ${err.message}; starting from the seed` });
        source = bytes.length > 0 && !err ? 'checkpoint' : 'seed';
      } else {
        source = senderOf(m, g.epoch);
        const bytes = await adoptChosen(g, m, states[mine]?.bytes ?? null, st.step);
        // Unless it is this peer's committed state: its previous one, or another peer's.
        const err = mine !== 0 && st.restore(bytes);
        if (err) throw err;
      }
      st.agreed = true;
      // Residuals are this peer's own; factors restart from the seed: the same on every peer of the group.
      compressor?.reset(st.step);
      // `auto` measures the new group afresh (every member starts its probe at the same step).
      if (auto) {
        compressor = null;
        probe = { from: st.step + 1, until: st.step + 1 + AUTO_PROBE_STEPS, commMs: 0, computeMs: 0 };
      }
      // A fresh order of this peer's (possibly new) shard, the same on every run of this schedule.
      if (!order) sampler = new Sampler(shard.train, cfg.seed * 7919 + g.rank + 1 + 104_729 * st.step);
      // A new group starts from the even split until its speeds are measured.
      shares = null;
      deps.emit({ type: 'sync', step: st.step, epoch: g.epoch, size: g.size, source });
    };
    const checkpoint = async (): Promise<void> => {
      if (!deps.saveCheckpoint || g.rank !== 0) return;
      const bytes = await st.encode();
      const step = st.step;
      // Stored in the background: the next step does not wait for the upload.
      deps.saveCheckpoint(bytes).then(
        () => deps.emit({ type: 'checkpoint', step, bytes: bytes.length }),
        (e: unknown) => deps.emit({ type: 'checkpoint', step, bytes: bytes.length, error: (e as Error).message }),
      );
    };
    /** Holds the room after the current step while any peer asks to pause (and none to stop). */
    const holdWhilePaused = async (): Promise<void> => {
      if (room.pause === 0 || room.stop > 0) return;
      deps.emit({ type: 'control', step: st.step, state: 'paused' });
      while (room.pause > 0 && room.stop === 0) {
        await delay(PAUSE_POLL_MS, deps.signal);
        await sum(new Float32Array(0));
      }
      if (room.stop === 0) deps.emit({ type: 'control', step: st.step, state: 'resumed' });
    };
    /** This peer's part of the global batch per rank (sgd with `balance`); null = the even split. */
    let shares: number[] | null = null;
    /** DP-SGD: every peer's training examples together (agreed with the group), and the ε spent so far. */
    let trainTotal = 0;
    let epsilon: number | undefined;
    // What this peer's ring neighbours have seen of its data: the steps it contributed to, each at
    // that step's room size (see ml/dp.ts).
    const neighbour = cfg.dp && !cfg.secureAggregation ? new RdpAccountant() : null;
    /** DP's sampling rate: the global batch over every peer's training examples (1 for full-batch GD). */
    const samplingRate = (): number => (cfg.algorithm === 'gd' ? 1 : Math.min(1, cfg.batch / trainTotal));
    /** This peer's compute speed, samples per ms (moving average). */
    let speed = 0;
    /** One global step on the current group; commits (st.step + 1) only when its allreduce completed. */
    const step = async (): Promise<void> => {
      const before = await st.snapshot();
      const t0 = performance.now();
      let r;
      let local: number;
      if (cfg.algorithm === 'fedavg') {
        // Local steps change the weights before the allreduce: roll back to the committed state.
        try {
          r = await federatedRound(
            model,
            st.opt,
            lossKind,
            sum,
            Array.from({ length: cfg.localSteps ?? 5 }, () => sampler!.next(cfg.batch)),
          );
        } catch (e) {
          st.rollBack(before);
          throw e;
        }
        local = cfg.batch * (cfg.localSteps ?? 5);
      } else {
        const full = cfg.algorithm === 'gd';
        let batch;
        if (full) {
          // Full-batch GD: this rank's part of the whole split (served), or its whole shard (held).
          const part = served ? partOf(evenSplit(shard.train.n), g.rank) : { from: 0, count: shard.train.n };
          batch = sliceOf(shard.train, part.from, part.count);
        } else if (order) {
          // This rank's slice of the step's global batch.
          const part = partOf(shares ?? evenSplit(cfg.batch), g.rank);
          batch = order.slice(st.step + 1, cfg.batch, part.from, part.count);
        } else batch = sampler!.next(shares?.[g.rank] ?? localBatchSize(cfg.batch, g.size, g.rank));
        const dp = cfg.dp;
        r = await synchronousStep(
          model,
          st.opt,
          lossKind,
          gradientSum(),
          batch,
          full ? 256 : undefined,
          dp
            ? (b) => {
                // Counted when made, not when committed: a step that fails after sending was seen.
                if (b.count > 0) neighbour?.add(samplingRate(), dp.noiseMultiplier / Math.sqrt(g.size));
                return privateGradients(model, b.x, b.y, b.count, lossKind, dp, g.size);
              }
            : undefined,
        );
        local = batch.count;
      }
      st.commit(before);
      const rate = local / Math.max(r.timings.computeMs, 0.01);
      if (local > 0) speed = speed === 0 ? rate : 0.7 * speed + 0.3 * rate;
      const secs = (performance.now() - t0) / 1000;
      if (cfg.dp) {
        const delta = cfg.dp.delta ?? 1e-5;
        epsilon = dpEpsilon(samplingRate(), cfg.dp.noiseMultiplier, st.step, delta);
        deps.emit({ type: 'privacy', step: st.step, epsilon, ...(neighbour ? { neighbourEpsilon: neighbour.epsilon(delta) } : {}), delta });
      }
      deps.emit({
        type: 'step',
        step: st.step,
        steps: cfg.steps,
        loss: r.loss,
        samples: r.samples,
        localSamples: local,
        samplesPerSec: r.samples / secs,
        epoch: g.epoch,
        size: g.size,
        ...r.timings,
      });
      if (auto && !compressor && st.step > probe.from) await chooseAuto(r.timings);
    };
    /** `auto`: adds a step's timings to the probe and, at its last step, picks the codec with the whole group. */
    const chooseAuto = async (t: StepTimings): Promise<void> => {
      probe.commMs += t.allreduceMs;
      probe.computeMs += t.computeMs + t.readbackMs + t.applyMs;
      if (st.step < probe.until) return;
      // The links' latency: the quickest of a few 1-float allreduces (every peer makes the same calls).
      let latency = Infinity;
      for (let i = 0; i < 3; i++) {
        const t = performance.now();
        await sum(new Float32Array(1));
        latency = Math.min(latency, performance.now() - t);
      }
      // Every peer's compute time at its rank, so all know the slowest.
      const mine = new Float32Array(3 + g.size);
      mine.set([probe.commMs, probe.computeMs, latency]);
      mine[3 + g.rank] = probe.computeMs;
      const total = await sum(mine);
      const steps = probe.until - probe.from;
      const computeMs = total[1]! / steps / g.size;
      const slowest = Math.max(...total.subarray(3)) / steps;
      const choice = chooseCodec(
        { commMs: total[0]! / steps / g.size, computeMs, latencyMs: total[2]! / g.size, waitMs: slowest - computeMs },
        weightLayout(model),
      );
      compressor = choice.spec && new Compressor(choice.spec, weightLayout(model), cfg.seed);
      compressor?.reset(st.step);
      deps.emit({ type: 'codec', step: st.step, codec: choice.name, reason: choice.reason });
      // Decided for this group (with no codec too): the next group measures again.
      probe.until = Infinity;
    };
    /** The step's sum, leaving out NaN/Inf and over-large contributions (and poisoning this one in a drill). */
    const gradientSum = (): SumAllPeers => {
      const poison = deps.control?.().poison;
      const stepNo = st.step + 1;
      const secure = cfg.secureAggregation;
      // Every masked sum of a step (PowerSGD makes two) draws its own masks: a mask is never reused.
      let call = 0;
      const masked: SumAllPeers = secure
        ? async (v) => {
            if (!g.maskKeys)
              throw new RingError('protocol', "secure aggregation needs the peers' public keys, which this group does not have");
            // A packed vector ends with its sample count, which stays a whole number (unmasked);
            // PowerSGD's second sum (the Q factors) has none.
            const n = call++;
            const counted = n === 0 || compressor?.spec.kind !== 'powersgd';
            return maskedSum(sum, g.rank, await g.maskKeys(), stepNo * 16 + n, secure.scale, counted ? 1 : 0)(v);
          }
        : sum;
      const robust = cfg.robust;
      const aggregate = robust
        ? robustSum(allGather, robust, (ranks) => {
            deps.emit({ type: 'rejected', step: stepNo, ranks, self: false });
            g.reportInvalid?.(
              stepNo,
              ranks.filter((r) => r !== g.rank),
            );
          })
        : null;
      const guarded = guardedSum({
        sum: aggregate ?? (compressor ? compressor.sum(masked) : masked),
        attribute: !secure,
        broadcast: (root, data) => g.broadcast(root, data),
        rank: g.rank,
        size: g.size,
        maxNorm: cfg.maxGradNorm ?? Infinity,
        selfCheck: !poison,
        onReject: (ranks, self) => {
          if (ranks.length === 0) return;
          deps.emit({ type: 'rejected', step: stepNo, ranks, self });
          if (!self)
            g.reportInvalid?.(
              stepNo,
              ranks.filter((r) => r !== g.rank),
            );
        },
      });
      if (!poison) return guarded;
      return (v) => {
        const bad = v.slice();
        if (poison === 'nan') bad[0] = NaN;
        else for (let i = 0; i < bad.length - 2; i++) bad[i]! *= poison === 'huge' ? 1e6 : -100;
        return guarded(bad);
      };
    };
    /** sgd with `balance`: every peer reports its speed and all take the same proportional split. */
    const rebalance = async (): Promise<void> => {
      const v = new Float32Array(g.size);
      v[g.rank] = speed;
      shares = proportionalSplit(cfg.batch, await sum(v));
    };

    /** The result at the current committed step (what a finished run returns, what a failed run keeps). */
    const resultNow = async (checksum?: string): Promise<TrainResult> => {
      const weights = await getFlatWeights(model);
      return {
        steps: st.step,
        stopped,
        ...last,
        checksum: checksum ?? checksumHex(weights),
        backend: tf.getBackend(),
        params,
        recoveries,
        weights,
        spec,
        ...(epsilon !== undefined ? { epsilon } : {}),
        ...(neighbour && cfg.dp ? { neighbourEpsilon: neighbour.epsilon(cfg.dp.delta ?? 1e-5) } : {}),
      };
    };
    /** Ends the run with `e`, leaving the model of the last committed step to the caller. */
    const fail = async (e: unknown): Promise<never> => {
      if (deps.keepFailed && st.agreed) deps.keepFailed(await resultNow());
      throw e;
    };

    for (;;) {
      try {
        shard = (await loadShards(shard)) ?? shard;
        await agree();
        // With periodic evaluation, also measure the starting point: decided by the agreed step
        // alone, so a newcomer and the others call the same collectives.
        if (cfg.evalEvery && st.step === 0) await evalAll();
        while (st.step < cfg.steps && !stopped) {
          if (deps.signal?.aborted) throw deps.signal.reason;
          await step();
          if (st.step === cfg.steps) break;
          await holdWhilePaused();
          if (room.stop > 0) {
            deps.emit({ type: 'control', step: st.step, state: 'stopping' });
            stopped = true;
            break;
          }
          if (cfg.evalEvery && st.step % cfg.evalEvery === 0) await evalAll();
          if (cfg.checksumEvery && st.step % cfg.checksumEvery === 0) await verify();
          if (cfg.checkpointEvery && st.step % cfg.checkpointEvery === 0) await checkpoint();
          if (cfg.balance && cfg.algorithm === 'sgd' && st.step % BALANCE_EVERY === 0) await rebalance();
        }
        await evalAll();
        if (cfg.checkpointEvery) await checkpoint();
        // The trained model is the averaged one where the optimizer averages.
        const final = st.opt.averagedWeights();
        if (final) setFlatWeights(model, final);
        return await resultNow(await verify());
      } catch (e) {
        if (st.step > stepAtFault) failedInARow = 0;
        stepAtFault = st.step;
        if (!recoverable(e) || ++failedInARow > MAX_RECOVERIES) return fail(e);
        recoveries++;
        deps.emit({ type: 'fault', step: st.step, epoch: g.epoch, reason: e.message });
        g = await deps.group(g.epoch).catch(fail);
      }
    }
  } finally {
    model.dispose();
  }
}
