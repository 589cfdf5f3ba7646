/**
 * A headless peer: joins a room (net/), trains the room's runs with the trainer or the tree
 * trainer, keeps the last model (results, predictions, export, checkpoints), and tells what
 * happens through a typed event stream. No DOM: the page's dashboard and facade sit on top of it,
 * and a later issue runs the same runtime in Node.
 */
import * as tf from '@tensorflow/tfjs';
import type { View } from '../core/membership/view.ts';
import type { Dataset } from '../data/dataset.ts';
import type { LocalData } from '../data/local.ts';
import { loadUserData, type PickedFile, type UserDataInput } from '../data/user-files.ts';
import type { BackendReport } from '../ml/backend.ts';
import type { ModelSpec } from '../ml/models.ts';
import type { Job, PeerStats } from '../protocol/index.ts';
import { CheckpointClient } from '../net/checkpoints.ts';
import { RingSession, type SessionEvent, type SessionOptions } from '../net/session.ts';
import { jobFromFields, type SetupFields } from '../training/job.ts';
import { train, type TrainConfig, type TrainEvent, type TrainResult } from '../training/trainer.ts';
import { trainTrees, type TreeEvent, type TreeResult, type TreeTrainConfig } from '../training/trees.ts';
import { checkpointFile, continuation, type CheckpointFile, type Continuation } from './checkpoints.ts';
import { controlDeps, type Drills, type Poison, type Requests } from './drill.ts';
import { EventStream, type Phase, type RuntimeEvent, type Subscriber } from './events.ts';
import { groupOf, PeerKeys } from './group.ts';
import { classResults, measureImported, modelFiles, treeResults, type ImportedModel, type ModelFile, type RunModel } from './model.ts';
import { loadShard, type ShardConfig } from './shards.ts';
import { runJob } from './room-runs.ts';

export interface RuntimeOptions {
  /** The room `join` takes when given none. */
  room: string;
  /** WebCrypto is there (private rooms, signed gathers and secure aggregation need it). */
  webCrypto: boolean;
  /**
   * What picks and activates the tfjs backend for a model (the page: the browser backends and
   * `?backend=`); asked at the start of each run, it may throw to refuse the run (a bad `?backend=`).
   */
  backendSelector(): (spec: ModelSpec) => Promise<BackendReport>;
  /** Emulated one-way latency of every data channel, ms (0: none). */
  linkDelayMs?: number;
  /** The server's origin for the session, checkpoints and shards (default: the page's). */
  origin?: string;
  /** Between two reports of this peer's stats to the room, ms (default 1000). */
  statsEveryMs?: number;
}

/** What `useData` loaded. */
export interface DataSummary {
  source: string;
  train: number;
  test: number;
  shape: number[];
  /** 0 for regression. */
  classes: number;
}

/** Why a private room cannot be joined here, when it cannot. */
export const NO_PRIVATE_ROOMS =
  'private rooms need WebCrypto, which this page lacks (not a secure context): open the app over https or on localhost';

/** The peer state the room's stats report, by phase. */
const STATS_STATES: Partial<Record<Phase, PeerStats['state']>> = {
  training: 'training',
  paused: 'paused',
  recovering: 'recovering',
  done: 'done',
  stopped: 'done',
  failed: 'failed',
  'waiting for quorum': 'loading',
};

export class PeerRuntime {
  private readonly events = new EventStream<RuntimeEvent>();
  private readonly keys: PeerKeys;
  private current: RingSession | null = null;
  /** The room this peer is in, or was last in (or is to join by default). */
  room: string;
  private localData: LocalData | null = null;
  /** This peer's pause/stop requests for the training in progress (null when none runs). */
  private control: Requests | null = null;
  /** The drills in force: a poisoned peer (null: honest), a slow device (1: full speed). */
  private drill: Drills = { poison: null, slowdown: 1 };
  private phaseNow: Phase = 'not in a room';
  /** The room's run this peer takes part in (null when none). */
  run: { id: number; job: Job } | null = null;
  private shardSize = 0;
  private backendName = '';
  private lastStep: Extract<TrainEvent, { type: 'step' }> | null = null;
  /** The last finished run's model, for export and the results. */
  private lastModel: RunModel | null = null;

  constructor(private readonly opts: RuntimeOptions) {
    this.room = opts.room;
    this.keys = PeerKeys.make(opts.webCrypto);
  }

  subscribe(fn: Subscriber<RuntimeEvent>): () => void {
    return this.events.subscribe(fn);
  }

  unsubscribe(fn: Subscriber<RuntimeEvent>): void {
    this.events.unsubscribe(fn);
  }

  /** @internal For the runtime's own modules. */
  emit(e: RuntimeEvent): void {
    this.events.emit(e);
  }

  get session(): RingSession | null {
    return this.current;
  }

  need(): RingSession {
    if (!this.current) throw new Error('ringtrain: call join() first');
    return this.current;
  }

  get phase(): Phase {
    return this.phaseNow;
  }

  setPhase(p: Phase): void {
    this.phaseNow = p;
    this.emit({ type: 'phase', phase: p, running: this.run !== null, inRoom: this.current !== null });
  }

  /** The last run's model (a failed run's last committed step), or null. */
  get model(): RunModel | null {
    return this.lastModel;
  }

  /** Joins `opts.room` (a private one with `opts.secret`); resolves at once when already in a room. */
  async join(opts: SessionOptions): Promise<{ peerId: string; view: View | null }> {
    if (this.current) return { peerId: this.current.peerId, view: this.current.view };
    const { room, secret } = opts;
    if (secret && !this.opts.webCrypto) {
      this.emit({ type: 'join-failed', error: `Could not join: ${NO_PRIVATE_ROOMS}.` });
      throw new Error(NO_PRIVATE_ROOMS);
    }
    this.room = room;
    this.emit({ type: 'joining', room });
    try {
      const keys = await this.keys.publicKeys();
      this.current = await RingSession.join({
        ...(this.opts.linkDelayMs ? { linkDelayMs: this.opts.linkDelayMs } : {}),
        ...(this.opts.origin ? { origin: this.opts.origin } : {}),
        ...opts,
        ...(keys ? { keys } : {}),
      });
    } catch (e) {
      const msg = (e as Error).message;
      // A refusal says what to do itself; anything else is most likely an unreachable server.
      const hint = /refused/.test(msg) ? '' : '. Check that the RingTrain server is running, then try again.';
      this.emit({ type: 'join-failed', error: `Could not join: ${msg}${hint}`, status: 'idle' });
      throw e;
    }
    const s = this.current;
    this.emit({ type: 'joined', room, ...(secret ? { secret } : {}), peerId: s.peerId, view: s.view, status: s.status });
    s.events.on((e) => this.onSession(s, e));
    this.setPhase(s.status === 'ready' ? 'ready' : `connecting (${s.status})`);
    this.startStatsReports(s);
    return { peerId: s.peerId, view: s.view };
  }

  private onSession(s: RingSession, e: SessionEvent): void {
    this.emit({ type: 'session', event: e });
    if (e.type === 'status') {
      if (!this.run && this.phaseNow.startsWith('connecting')) this.setPhase(e.status === 'ready' ? 'ready' : `connecting (${e.status})`);
    } else if (e.type === 'run') {
      void runJob(this, s, e.run.run, e.run.by, e.run.job);
    }
  }

  leave(): void {
    this.current?.leave();
    this.current = null;
    this.emit({ type: 'left' });
  }

  /** Loads data into this peer (a CSV/IDX file's bytes, or a synthetic set) for `dataset: "local"`. */
  async useData(input: UserDataInput): Promise<DataSummary> {
    const d = await loadUserData(input);
    this.localData = d;
    return { source: d.source, train: d.train.n, test: d.test.n, shape: [...d.train.shape], classes: d.train.numClasses };
  }

  /** Trains with every peer of the current view (each must call it with the same config). */
  async train(config: TrainConfig, onEvent?: (e: TrainEvent) => void): Promise<TrainResult> {
    if (this.control) throw new Error('ringtrain: a training run is already in progress in this tab; stop() it first');
    const s = this.need();
    const selectBackend = this.opts.backendSelector();
    const ctl: Requests = { pause: false, stop: false };
    this.control = ctl;
    const checkpoints = this.checkpoints(s);
    try {
      const result = await train(config, {
        group: (failedEpoch) => this.group(s, config.minPeers, failedEpoch),
        ...controlDeps(ctl, () => this.drill),
        loadShard: (split, rank, size) => this.loadShardShown(config, split, rank, size),
        saveCheckpoint: (bytes) => checkpoints.save(bytes),
        loadCheckpoint: () => checkpoints.load(),
        selectBackend,
        emit: (e) => {
          this.onTrainEvent(e);
          onEvent?.(e);
        },
        // A run that fails still leaves the model of its last committed step to export.
        keepFailed: (committed) => (this.lastModel = { kind: 'train', result: committed, config }),
      });
      this.lastModel = { kind: 'train', result, config };
      return result;
    } finally {
      this.control = null;
    }
  }

  private onTrainEvent(e: TrainEvent): void {
    if (e.type === 'backend') this.backendName = e.report.name;
    else if (e.type === 'step') {
      this.lastStep = e;
      if (this.phaseNow !== 'paused') this.setPhase('training');
    } else if (e.type === 'control') this.setPhase(e.state === 'paused' ? 'paused' : 'training');
    else if (e.type === 'fault') this.setPhase('recovering');
    else if (e.type === 'sync') this.setPhase('training');
    this.emit({ type: 'train', event: e });
  }

  /** Trains a decision tree or boosted trees by histogram allreduce (every peer, same config). */
  async trainTrees(config: TreeTrainConfig, onEvent?: (e: TreeEvent) => void): Promise<TreeResult> {
    const s = this.need();
    const result = await trainTrees(config, {
      group: (failedEpoch) => this.group(s, undefined, failedEpoch),
      loadShard: (split, rank, size) => this.loadShardShown(config, split, rank, size),
      keepFailed: (grown) => (this.lastModel = { kind: 'trees', result: grown, config }),
      emit: (e) => {
        if (e.type === 'fault') this.setPhase('recovering');
        else if (e.type === 'round' || e.type === 'data') this.setPhase('training');
        this.emit({ type: 'trees', event: e });
        onEvent?.(e);
      },
    });
    this.lastModel = { kind: 'trees', result, config };
    return result;
  }

  /** Asks the room to pause after the current step (it stays paused while any peer asks). */
  pause(): void {
    if (this.control) this.control.pause = true;
  }

  resume(): void {
    if (this.control) this.control.pause = false;
  }

  stop(): void {
    if (this.control) this.control.stop = true;
  }

  /** Fault drill: from now on this peer sends poisoned gradients (null: honest again). */
  poison(kind: Poison | null): void {
    this.drill = { ...this.drill, poison: kind };
  }

  /** Fault drill: from now on this peer computes `factor` times slower (1: full speed). */
  slow(factor: number): void {
    if (!(Number.isFinite(factor) && factor >= 1 && factor <= 1000))
      throw new RangeError(`slow: factor must be from 1 to 1000, got ${factor}`);
    this.drill = { ...this.drill, slowdown: factor };
  }

  /** Starts `job` for the whole room. */
  start(job: Job): void {
    this.need().startRun(job);
  }

  /** The job the setup form's `fields` name (throws a SetupError naming the field to fix). */
  jobFromFields(fields: SetupFields): Job {
    return jobFromFields(fields, this.localData?.train.n);
  }

  /** The last trained model as files; throws when there is none. */
  exportFiles(): Promise<ModelFile[]> {
    const model = this.lastModel;
    if (!model) return Promise.reject(new Error('no model yet: train one first'));
    return modelFiles(model);
  }

  /** The room's newest checkpoint (the server's, or this peer's copy when newer) as a file. */
  async checkpointFile(): Promise<CheckpointFile> {
    const room = this.room;
    return checkpointFile(room, await this.checkpoints(this.need()).load());
  }

  /**
   * Continues the run checkpoint file `name` belongs to: stores it as the room's newest, then
   * starts that run for `fields`' number of epochs more.
   */
  async continueFrom(name: string, bytes: Uint8Array<ArrayBuffer>, fields: SetupFields): Promise<Continuation> {
    const c = continuation(name, bytes, fields, this.localData?.train.n);
    await this.checkpoints(this.need()).save(bytes);
    this.need().startRun(c.job);
    return c;
  }

  /** Measures an exported model on the whole test split of `dataset`. */
  importModel(files: PickedFile[], dataset: string): Promise<ImportedModel> {
    return measureImported(files, dataset, () => this.loadShard({ dataset, partition: { scheme: 'iid', seed: 1 } }, 'test', 0, 1));
  }

  /** Tensors held, and what the session holds (null when not in a room). */
  memory(): { tensors: number; tensorBytes: number; session: ReturnType<RingSession['holdings']> | null } {
    const m = tf.memory();
    return { tensors: m.numTensors, tensorBytes: m.numBytes, session: this.current?.holdings() ?? null };
  }

  /** @internal For room-runs.ts: a new run clears the previous run's last step. */
  resetStep(): void {
    this.lastStep = null;
  }

  /** Confusion matrix and sample predictions on this peer's test shard; a tree's top levels. */
  async showResults(): Promise<void> {
    const model = this.lastModel;
    if (!model) return;
    const view = this.current?.view ?? null;
    const size = view?.members.length ?? 1;
    const rank = Math.max(0, view?.members.findIndex((m) => m.peerId === this.current?.peerId) ?? 0);
    const test = await this.loadShard(model.config, 'test', rank, size);
    if (model.kind === 'trees') this.emit({ type: 'results', results: treeResults(model, test) });
    const results = await classResults(model, test);
    if (results) this.emit({ type: 'results', results });
  }

  private checkpoints(s: RingSession): CheckpointClient {
    return new CheckpointClient(this.room, s.roomKey, () => s.membership(), this.opts.origin);
  }

  private group(s: RingSession, minPeers: number | undefined, failedEpoch?: number) {
    return groupOf(
      s,
      {
        keys: this.keys,
        minPeers,
        onQuorumWait: (have, need) => {
          this.emit({ type: 'quorum', have, need });
          this.setPhase('waiting for quorum');
        },
      },
      failedEpoch,
    );
  }

  private loadShard(config: ShardConfig, split: 'train' | 'test', rank: number, size: number): Promise<Dataset> {
    return loadShard(
      {
        local: this.localData,
        origin: this.opts.origin,
        onProgress: (sp, loaded, total) => this.emit({ type: 'loading', split: sp, loaded, ...(total ? { total } : {}) }),
        onDone: () => this.emit({ type: 'loaded' }),
      },
      config,
      split,
      rank,
      size,
    );
  }

  /** This peer's shard, as training loads it: its training shard goes to the subscribers. */
  private async loadShardShown(config: ShardConfig, split: 'train' | 'test', rank: number, size: number): Promise<Dataset> {
    const ds = await this.loadShard(config, split, rank, size);
    if (split === 'train') {
      this.shardSize = ds.n;
      this.emit({ type: 'shard', data: ds });
    }
    return ds;
  }

  /** Tells the room about this peer every `statsEveryMs`: its state, backend and last step's split. */
  private startStatsReports(s: RingSession): void {
    let sent = s.stats.payloadBytesSent;
    let at = performance.now();
    const timer = setInterval(() => {
      if (this.current !== s) {
        clearInterval(timer);
        return;
      }
      const now = performance.now();
      const rate = ((s.stats.payloadBytesSent - sent) * 1000) / Math.max(1, now - at);
      sent = s.stats.payloadBytesSent;
      at = now;
      const last = this.lastStep;
      s.reportStats({
        state: STATS_STATES[this.phaseNow] ?? 'idle',
        backend: this.backendName || tf.getBackend() || 'none',
        step: last?.step ?? 0,
        samplesPerSec: last ? last.localSamples / Math.max(0.001, last.computeMs / 1000) : 0,
        computeMs: last?.computeMs ?? 0,
        readbackMs: last?.readbackMs ?? 0,
        allreduceMs: last?.allreduceMs ?? 0,
        applyMs: last?.applyMs ?? 0,
        sendBytesPerSec: rate,
        shard: this.shardSize,
      });
    }, this.opts.statsEveryMs ?? 1000);
  }
}
