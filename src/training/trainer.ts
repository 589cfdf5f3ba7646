/**
 * The training loop every peer of a view runs with the same config: loads its shard, builds the
 * model from the shared seed, then steps (synchronous SGD, full-batch GD, or federated averaging)
 * with the ring doing the sums. It reports typed events, evaluates on the peers' slices of the
 * test set, and checks that all weights are identical (resynchronising from rank 0 if not).
 */
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset.ts';
import { featureSize } from '../data/dataset.ts';
import type { PartitionScheme } from '../data/partition.ts';
import { mulberry32 } from '../core/random.ts';
import { federatedRound, synchronousStep, type Batch, type StepTimings } from '../ml/algorithms/distributed.ts';
import type { BackendReport } from '../ml/backend.ts';
import { checksumHex, getFlatWeights, paramCount, setFlatWeights } from '../ml/flat.ts';
import { createModel, lossKindFor, type ModelKind, type ModelSpec } from '../ml/models.ts';
import { createOptimizer, type OptimizerSpec } from '../ml/optimizer.ts';
import { evaluate } from '../ml/step.ts';

export type Algorithm = 'sgd' | 'gd' | 'fedavg';

export interface TrainConfig {
  dataset: string;
  partition: { scheme: PartitionScheme; seed: number; alpha?: number; shardsPerPart?: number };
  model: ModelKind;
  hidden?: number[];
  algorithm: Algorithm;
  optimizer: OptimizerSpec;
  /** sgd: the global batch, split across peers; fedavg: each peer's local batch. */
  batch: number;
  /** sgd/gd: steps; fedavg: rounds. */
  steps: number;
  /** fedavg: local steps per round (H). */
  localSteps?: number;
  /** Evaluate on the test set every this many steps (and at the end); 0 = only at the end. */
  evalEvery?: number;
  /** Compare weight checksums every this many steps (and at the end). */
  checksumEvery?: number;
  /** Seed of the initial weights and of batch order. */
  seed: number;
}

export type TrainEvent =
  | { type: 'backend'; report: BackendReport }
  | { type: 'data'; train: number; test: number }
  | ({ type: 'step'; step: number; steps: number; loss: number; samples: number; samplesPerSec: number } & StepTimings)
  | { type: 'eval'; step: number; accuracy: number; loss: number; count: number }
  | { type: 'checksum'; step: number; checksum: string; resynced: boolean }
  /** The room paused (some peer asked), resumed (no peer asks any more), or is stopping after `step`. */
  | { type: 'control'; step: number; state: 'paused' | 'resumed' | 'stopping' };

export interface TrainResult {
  /** Steps completed: `config.steps`, or fewer when a peer stopped the run. */
  steps: number;
  stopped: boolean;
  accuracy: number;
  loss: number;
  checksum: string;
  backend: string;
  params: number;
  /** The final weights, identical on every peer. */
  weights: Float32Array;
}

/** What this peer asks of the room; read at every collective sum. */
export interface TrainControl {
  pause: boolean;
  stop: boolean;
}

/** While paused, how often the peers exchange their control flags (ms). */
export const PAUSE_POLL_MS = 200;

/** What the loop needs from its surroundings (the page wires the session and the server). */
export interface TrainerDeps {
  rank: number;
  size: number;
  /** Elementwise sum over the view (ring allreduce). */
  sum(v: Float32Array): Promise<Float32Array>;
  /** Bytes of rank `root` to every peer. */
  broadcast(root: number, data: Uint8Array | null): Promise<Uint8Array>;
  /** This peer's shard of a split. */
  loadShard(split: 'train' | 'test'): Promise<Dataset>;
  /** Picks and activates the tfjs backend for the model. */
  selectBackend(spec: ModelSpec): Promise<BackendReport>;
  emit(e: TrainEvent): void;
  /**
   * This peer's pause/stop requests. Every sum the loop makes carries them, so all peers learn the
   * room's requests from the same sums and pause, resume or stop at the same step.
   */
  control?: () => TrainControl;
  signal?: AbortSignal;
}

/** Samples of a local batch for `rank` when a global batch of `global` is split over `size` peers. */
export function localBatchSize(global: number, size: number, rank: number): number {
  return Math.floor(global / size) + (rank < global % size ? 1 : 0);
}

/** Cycles through a shard in a seeded order, reshuffled each pass. */
class Sampler {
  private order: Int32Array;
  private pos = 0;
  private readonly rand: () => number;
  constructor(private readonly ds: Dataset, seed: number) {
    this.rand = mulberry32(seed);
    this.order = this.shuffle();
  }
  private shuffle(): Int32Array {
    const o = Int32Array.from({ length: this.ds.n }, (_, i) => i);
    for (let i = o.length - 1; i > 0; i--) {
      const j = Math.floor(this.rand() * (i + 1));
      [o[i], o[j]] = [o[j]!, o[i]!];
    }
    return o;
  }
  next(count: number): Batch {
    const per = featureSize(this.ds.shape);
    const n = Math.min(count, this.ds.n);
    const x = new Float32Array(n * per);
    const targets = this.ds.targets;
    const y = targets ? new Float32Array(n) : new Int32Array(n);
    for (let k = 0; k < n; k++) {
      if (this.pos === this.order.length) {
        this.order = this.shuffle();
        this.pos = 0;
      }
      const i = this.order[this.pos++]!;
      x.set(this.ds.x.subarray(i * per, (i + 1) * per), k * per);
      y[k] = (targets ?? this.ds.y)[i]!;
    }
    return { x, y, count: n };
  }
}

/** The room's pause/stop requests as the last sum reported them: how many peers ask for each. */
interface RoomControl {
  pause: number;
  stop: number;
}

/**
 * `deps.sum` with this peer's control flags appended to every vector; the room's totals land in
 * `room` after each sum. Every peer makes the same sums in the same order, so all see the same totals.
 */
function controlledSum(deps: TrainerDeps, room: RoomControl): (v: Float32Array) => Promise<Float32Array> {
  return async (v) => {
    const mine = deps.control?.() ?? { pause: false, stop: false };
    const ext = new Float32Array(v.length + 2);
    ext.set(v);
    ext[v.length] = mine.pause ? 1 : 0;
    ext[v.length + 1] = mine.stop ? 1 : 0;
    const total = await deps.sum(ext);
    room.pause = total[v.length]!;
    room.stop = total[v.length + 1]!;
    return total.subarray(0, v.length);
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

/** Runs the whole training on this peer. Rejects with the first RingError / MlError / DataError. */
export async function train(cfg: TrainConfig, deps: TrainerDeps): Promise<TrainResult> {
  const [trainSet, testSet] = [await deps.loadShard('train'), await deps.loadShard('test')];
  deps.emit({ type: 'data', train: trainSet.n, test: testSet.n });
  const spec: ModelSpec = { kind: cfg.model, inputShape: [...trainSet.shape], numClasses: trainSet.numClasses, seed: cfg.seed, ...(cfg.hidden ? { hidden: cfg.hidden } : {}) };
  const report = await deps.selectBackend(spec);
  deps.emit({ type: 'backend', report });
  const model = createModel(spec);
  const room: RoomControl = { pause: 0, stop: 0 };
  const sum = controlledSum(deps, room);
  try {
    const lossKind = lossKindFor(spec);
    const params = paramCount(model);
    const opt = createOptimizer(cfg.optimizer, params);
    const sampler = new Sampler(trainSet, cfg.seed * 7919 + deps.rank + 1);
    const full: Batch = { x: trainSet.x, y: trainSet.targets ?? trainSet.y, count: trainSet.n };
    let last = { accuracy: 0, loss: 0 };
    const evalAll = async (step: number): Promise<void> => {
      const r = await evaluate(model, testSet.x, testSet.targets ?? testSet.y);
      const s = await sum(new Float32Array([r.correct, r.count, r.lossSum]));
      last = { accuracy: s[0]! / s[1]!, loss: s[2]! / s[1]! };
      deps.emit({ type: 'eval', step, accuracy: last.accuracy, loss: last.loss, count: s[1]! });
    };
    const verify = async (step: number): Promise<string> => {
      const mine = checksumHex(await getFlatWeights(model));
      const ref = new TextDecoder().decode(await deps.broadcast(0, deps.rank === 0 ? new TextEncoder().encode(mine) : null));
      const mismatches = (await sum(new Float32Array([mine === ref ? 0 : 1])))[0]!;
      let resynced = false;
      if (mismatches > 0) {
        const w = await getFlatWeights(model);
        const bytes = await deps.broadcast(0, deps.rank === 0 ? new Uint8Array(w.buffer, w.byteOffset, w.byteLength) : null);
        setFlatWeights(model, new Float32Array(bytes.slice().buffer));
        resynced = true;
      }
      deps.emit({ type: 'checksum', step, checksum: ref, resynced });
      return ref;
    };
    /** Holds the room at the end of `step` while any peer asks to pause (and none to stop). */
    const holdWhilePaused = async (step: number): Promise<void> => {
      if (room.pause === 0 || room.stop > 0) return;
      deps.emit({ type: 'control', step, state: 'paused' });
      while (room.pause > 0 && room.stop === 0) {
        await delay(PAUSE_POLL_MS, deps.signal);
        await sum(new Float32Array(0));
      }
      if (room.stop === 0) deps.emit({ type: 'control', step, state: 'resumed' });
    };
    // With periodic evaluation, also measure the starting point (step 0).
    if (cfg.evalEvery) await evalAll(0);
    let done = 0;
    for (let step = 1; step <= cfg.steps; step++) {
      if (deps.signal?.aborted) throw deps.signal.reason;
      const t0 = performance.now();
      const r =
        cfg.algorithm === 'fedavg'
          ? await federatedRound(model, opt, lossKind, sum, Array.from({ length: cfg.localSteps ?? 5 }, () => sampler.next(cfg.batch)))
          : await synchronousStep(model, opt, lossKind, sum, cfg.algorithm === 'gd' ? full : sampler.next(localBatchSize(cfg.batch, deps.size, deps.rank)), cfg.algorithm === 'gd' ? 256 : undefined);
      const secs = (performance.now() - t0) / 1000;
      done = step;
      deps.emit({ type: 'step', step, steps: cfg.steps, loss: r.loss, samples: r.samples, samplesPerSec: r.samples / secs, ...r.timings });
      if (step === cfg.steps) break;
      await holdWhilePaused(step);
      if (room.stop > 0) {
        deps.emit({ type: 'control', step, state: 'stopping' });
        break;
      }
      if (cfg.evalEvery && step % cfg.evalEvery === 0) await evalAll(step);
      if (cfg.checksumEvery && step % cfg.checksumEvery === 0) await verify(step);
    }
    await evalAll(done);
    const checksum = await verify(done);
    return { steps: done, stopped: done < cfg.steps, ...last, checksum, backend: tf.getBackend(), params, weights: await getFlatWeights(model) };
  } finally {
    model.dispose();
  }
}
