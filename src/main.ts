/**
 * Composition root: joins a room from the page, wires session events to the UI, and exposes the
 * page-level API `window.ringtrain` that tests, benchmarks and later features use.
 */
// First: repairs an invalid navigator.language before any library formats with it (uPlot does at import).
import { clockTime, repairedLocale } from './ui/locale.ts';
import * as tf from '@tensorflow/tfjs';
import QRCode from 'qrcode';
import { DEFAULT_TIMEOUT_MS, type CollectiveOptions } from './core/collectives/communicator.ts';
import { RingError } from './core/errors.ts';
import type { TrafficStats } from './core/collectives/context.ts';
import type { View } from './core/membership/view.ts';
import { fetchShard, shardPath } from './data/shard-client.ts';
import { DataError, featureSize, labelHistogram, type Dataset } from './data/dataset.ts';
import { LOCAL_DATASET, localShard, type LocalData } from './data/local.ts';
import { loadUserData, type UserDataInput } from './data/user-files.ts';
import { parseBackendPreference } from './ml/backend.ts';
import { selectBrowserBackend } from './ml/backends-browser.ts';
import { setFlatWeights } from './ml/flat.ts';
import { createModel } from './ml/models.ts';
import { makeStepProbe } from './ml/probe.ts';
import { rffTransform } from './ml/rff.ts';
import { maskKeyPair, pairKey } from './ml/algorithms/secure.ts';
import { signedAllGather, signingKeyPair, verifyingKey } from './ml/algorithms/signed.ts';
import { predict } from './ml/step.ts';
import { newSecret } from './protocol/auth.ts';
import { decodeCheckpoint } from './protocol/checkpoint.ts';
import { parseTrainConfig, type Job, type PeerStats } from './protocol/index.ts';
import { CheckpointClient } from './net/checkpoints.ts';
import { RingSession, type SessionOptions, type SessionStatus } from './net/session.ts';
import {
  train,
  type Group,
  poisonDrill,
  type Poison,
  type TrainConfig,
  type TrainControl,
  type TrainEvent,
  type TrainResult,
} from './training/trainer.ts';
import { scoresOf, trainTrees, type TreeEvent, type TreeModel, type TreeResult, type TreeTrainConfig } from './training/trees.ts';
import { Charts } from './ui/charts.ts';
import { renderPeersTable, renderRing } from './ui/cluster.ts';
import { bindDataForm } from './ui/data-form.ts';
import { environmentNotes, probeEnvironment, renderEnvironment } from './ui/environment.ts';
import { renderConfusion, renderSamples, renderTree } from './ui/results.ts';
import { jobFromFields, SetupError, type SetupFields } from './training/job.ts';
import { describePrivacy, renderStatus, type PanelState } from './ui/status-panel.ts';

export interface RingTrainApi {
  /** Joins a room (default: the `room` URL parameter, else "demo"). */
  join(opts?: Partial<SessionOptions>): Promise<{ peerId: string; view: View | null }>;
  leave(): void;
  peerId(): string | null;
  status(): SessionStatus | 'idle';
  view(): View | null;
  /** Resolves when the view has `n` members (or satisfies `pred`). */
  waitForView(n: number | ((v: View) => boolean), timeoutMs?: number): Promise<View>;
  allreduce(data: Float32Array, o?: CollectiveOptions): Promise<Float32Array>;
  allreduceMean(data: Float32Array, count: number, o?: CollectiveOptions): Promise<{ mean: Float32Array; count: number }>;
  broadcast(root: number, data: Uint8Array | null, o?: CollectiveOptions): Promise<Uint8Array>;
  barrier(o?: CollectiveOptions): Promise<void>;
  /** Benchmark: concurrent ring shift of `bytes` per peer. */
  shift(bytes: number, o?: CollectiveOptions): Promise<void>;
  /** Baseline: naive all-to-all sum (opens links to every member first). */
  allToAllSum(data: Float32Array, o?: CollectiveOptions): Promise<Float32Array>;
  stats(): TrafficStats;
  /**
   * Loads data into this tab (a CSV/IDX file's bytes, or a synthetic set) for training with
   * `dataset: "local"`; the same as the "Your own data" form.
   */
  useData(input: UserDataInput): Promise<DataSummary>;
  /**
   * Trains with every peer of the current view (each must call it with the same config). The
   * backend is `?backend=` from the URL (webgpu, webgl, wasm, cpu), else chosen by a probe.
   */
  train(config: TrainConfig, onEvent?: (e: TrainEvent) => void): Promise<TrainResult>;
  /** Trains a decision tree or boosted trees by histogram allreduce (every peer, same config). */
  trainTrees(config: TreeTrainConfig, onEvent?: (e: TreeEvent) => void): Promise<TreeResult>;
  /** Asks the room to pause after the current step (it stays paused while any peer asks). */
  pause(): void;
  /** Withdraws this peer's pause request. */
  resume(): void;
  /** Asks the room to stop after the current step; `train` then resolves with `stopped: true`. */
  stop(): void;
  /** Starts a run for the whole room, as the dashboard's Start button does. */
  start(job: Job): void;
  /**
   * The last trained model as files (base64): tfjs layers format (`<name>.json` + `<name>.weights.bin`)
   * for neural models and the SVM, `<name>.json` for trees. What the Export button downloads. After
   * a run that failed, the model of its last committed step (its metadata names the step).
   */
  exportFiles(): Promise<ModelFile[]>;
  /** Fault drills and dashboard probes. */
  debug: {
    /** Closes this tab's data channel to `peerId` as a network cut would; false when there is none. */
    cutLink(peerId: string): boolean;
    /** Points each plot holds. */
    chartPoints(): Record<string, number>;
    /** What this tab holds that could grow over a long run: tensors, plot points, log entries, buffers, connections. */
    memory(): MemoryProbe;
    /** Dials `peerId` outside the ring (a stranger's attempt): true if the link stayed open for `holdMs`. */
    dial(peerId: string, holdMs: number, flood?: { frames: number; bytes: number }): Promise<boolean>;
    /** Data connections this tab refused from peers outside its view. */
    refused(): number;
    /** From now on this tab sends NaN, 1e6-times or -100-times gradients and skips its own check (a poisoned peer); null: honest again. */
    poison(kind: Poison | null): void;
  };
}

/** One sample of what a tab holds (`ringtrain.debug.memory()`): each figure must stay bounded however long a run lasts. */
export interface MemoryProbe {
  tensors: number;
  tensorBytes: number;
  /** JS heap in use (Chromium's performance.memory), or null where the browser does not say. */
  heapBytes: number | null;
  chartPoints: number;
  eventLog: number;
  /** Null when not in a room. */
  session: ReturnType<RingSession['holdings']> | null;
}

/** One file of an exported model. */
export interface ModelFile {
  name: string;
  base64: string;
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

declare global {
  interface Window {
    ringtrain: RingTrainApi;
  }
}

const panel = document.getElementById('status-panel')!;
const form = document.getElementById('join-form') as HTMLFormElement;
const roomInput = document.getElementById('room-input') as HTMLInputElement;
const params = new URLSearchParams(location.search);
let session: RingSession | null = null;
let localData: LocalData | null = null;
/** This peer's pause/stop requests for the training in progress (null when none runs). */
let control: TrainControl | null = null;
/** The poisoned-peer drill in force, if any. */
let poisonKind: Poison | undefined;
if (params.has('room')) roomInput.value = params.get('room')!;
const state: PanelState = { room: roomInput.value, peerId: null, status: 'idle', view: null };
const draw = (): void => renderStatus(panel, state);
const byId = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const charts = new Charts(byId('plots'));
/** What this browser lacks (no WebCrypto outside a secure context, no WebGPU, ...), shown above the dashboard. */
const env = probeEnvironment(repairedLocale);
renderEnvironment(byId('environment'), environmentNotes(env));
/** Why a private room cannot be joined here, when it cannot. */
const NO_PRIVATE_ROOMS =
  'private rooms need WebCrypto, which this page lacks (not a secure context): open the app over https or on localhost';

function need(): RingSession {
  if (!session) throw new Error('ringtrain: call join() first');
  return session;
}

/** A private room's secret from the link's fragment (`#k=...`), never sent to the server. */
const linkSecret = new URLSearchParams(location.hash.slice(1)).get('k') ?? undefined;
/** `?linkDelayMs=`: emulated one-way latency of every data channel (the WAN benchmark, src/harness/netns.ts). */
const linkDelayMs = Math.max(0, Number(params.get('linkDelayMs')) || 0);

async function join(opts: Partial<SessionOptions> = {}): Promise<{ peerId: string; view: View | null }> {
  if (session) return { peerId: session.peerId, view: session.view };
  const room = opts.room ?? state.room;
  const secret = opts.secret ?? (room === params.get('room') ? linkSecret : undefined);
  if (secret && !env.subtle) {
    state.error = `Could not join: ${NO_PRIVATE_ROOMS}.`;
    draw();
    throw new Error(NO_PRIVATE_ROOMS);
  }
  state.room = room;
  state.status = 'connecting';
  delete state.error;
  draw();
  try {
    session = await RingSession.join({
      ...(linkDelayMs ? { linkDelayMs } : {}),
      ...opts,
      room,
      ...(secret ? { secret } : {}),
      ...(maskPair && signPair ? { keys: { pub: (await maskPair).pub, sig: (await signPair).pub } } : {}),
    });
  } catch (e) {
    state.status = 'idle';
    const msg = (e as Error).message;
    // A refusal says what to do itself; anything else is most likely an unreachable server.
    state.error = `Could not join: ${msg}${/refused/.test(msg) ? '' : '. Check that the RingTrain server is running, then try again.'}`;
    draw();
    throw e;
  }
  const s = session;
  state.peerId = s.peerId;
  state.view = s.view;
  state.status = s.status;
  s.events.on((e) => {
    if (e.type === 'status') {
      state.status = e.status;
      if (e.detail) state.detail = e.detail;
      if (!run && phase.startsWith('connecting')) setPhase(e.status === 'ready' ? 'ready' : `connecting (${e.status})`);
    } else if (e.type === 'view') {
      state.view = e.view;
      logEvent(`view ${e.view.epoch}: ${e.view.members.length} peer(s)`);
      drawCluster();
    } else if (e.type === 'run') {
      void runJob(s, e.run.run, e.run.by, e.run.job);
    } else if (e.type === 'room-stats') {
      roomStats = new Map(e.peers.map((p) => [p.peerId, p.stats]));
      drawCluster();
    } else if (e.type === 'refused') {
      showSetupError(e.message);
    } else if (e.type === 'link-down') {
      logEvent(`link to ${e.peer.slice(0, 6)} down: ${e.reason}`);
    }
    draw();
  });
  form.hidden = true;
  setPhase(s.status === 'ready' ? 'ready' : `connecting (${s.status})`);
  showShare(room, secret);
  startStatsReports(s);
  byId<HTMLButtonElement>('start').disabled = false;
  logEvent(`joined room ${room} as ${s.peerId}`);
  drawCluster();
  draw();
  return { peerId: s.peerId, view: s.view };
}

window.ringtrain = {
  join,
  leave: () => {
    session?.leave();
    session = null;
    form.hidden = false;
  },
  peerId: () => session?.peerId ?? null,
  status: () => session?.status ?? 'idle',
  view: () => session?.view ?? null,
  waitForView: (n, timeoutMs = 30_000) => need().waitForView(typeof n === 'number' ? (v) => v.members.length === n : n, timeoutMs),
  allreduce: async (data, o) => (await need().communicator()).allreduce(data, o),
  allreduceMean: async (data, count, o) => (await need().communicator()).allreduceMean(data, count, o),
  broadcast: async (root, data, o) => (await need().communicator()).broadcast(root, data, o),
  barrier: async (o) => (await need().communicator()).barrier(o),
  shift: async (bytes, o) => (await need().communicator()).shift(bytes, o),
  allToAllSum: async (data, o) => {
    const s = need();
    const comm = await s.communicator();
    await s.transport.connect(
      comm.view.members.map((m) => m.peerId),
      15_000,
    );
    return comm.allToAllSum(data, o);
  },
  stats: () => ({ ...need().stats }),
  useData: async (input) => {
    const d = await loadUserData(input);
    localData = d;
    return { source: d.source, train: d.train.n, test: d.test.n, shape: [...d.train.shape], classes: d.train.numClasses };
  },
  train: async (config, onEvent) => {
    if (control) throw new Error('ringtrain: a training run is already in progress in this tab; stop() it first');
    const s = need();
    const prefer = parseBackendPreference(params.get('backend'));
    const ctl: TrainControl = { pause: false, stop: false };
    control = ctl;
    const checkpoints = new CheckpointClient(state.room, s.roomKey, () => s.membership());
    try {
      const result = await train(config, {
        group: (failedEpoch) => groupOf(s, config.minPeers, failedEpoch),
        control: () => ctl,
        drill: () => (poisonKind ? poisonDrill(poisonKind) : null),
        loadShard: (split, rank, size) => loadShardShown(config, split, rank, size),
        saveCheckpoint: (bytes) => checkpoints.save(bytes),
        loadCheckpoint: () => checkpoints.load(),
        selectBackend: (spec) =>
          selectBrowserBackend({
            prefer,
            // A forced backend gets longer to start: the first WebGPU device of a browser on
            // SwiftShader can take over 10 s while other tabs start too.
            ...(params.has('backend') ? { forcedBy: '?backend= in the URL', initTimeoutMs: 30_000 } : {}),
            needsConv: spec.kind === 'cnn',
            probe: makeStepProbe(spec),
          }),
        emit: (e) => {
          showTraining(e);
          onEvent?.(e);
        },
        // A run that fails still leaves the model of its last committed step to export.
        keepFailed: (committed) => (lastModel = { kind: 'train', result: committed, config }),
      });
      lastModel = { kind: 'train', result, config };
      return result;
    } finally {
      control = null;
    }
  },
  trainTrees: async (config, onEvent) => {
    const s = need();
    const result = await trainTrees(config, {
      group: (failedEpoch) => groupOf(s, undefined, failedEpoch),
      loadShard: (split, rank, size) => loadShardShown(config, split, rank, size),
      keepFailed: (grown) => (lastModel = { kind: 'trees', result: grown, config }),
      emit: (e) => {
        if (e.type === 'fault') {
          setPhase('recovering');
          logEvent(`fault: ${e.reason}`);
        } else if (e.type === 'sync') {
          logEvent(`recovered: ${e.size} peer(s) go on from ${e.rounds} round(s) of rank ${e.source}`);
        } else if (e.type === 'round') {
          state.training = `tree round ${e.round}/${e.rounds} (${(e.floatsSummed * 4e-6).toFixed(1)} MB of histograms summed)`;
          setProgress(e.round, e.rounds, `round ${e.round} of ${e.rounds}`);
          setPhase('training');
        } else if (e.type === 'eval') {
          state.accuracy =
            e.rmse !== undefined
              ? `RMSE ${e.rmse.toPrecision(4)} on ${e.count} test samples`
              : `${(e.accuracy * 100).toFixed(2)}% on ${e.count} test samples`;
        } else if (e.type === 'data') {
          setPhase('training');
        }
        draw();
        onEvent?.(e);
      },
    });
    lastModel = { kind: 'trees', result, config };
    return result;
  },
  pause: () => {
    if (control) control.pause = true;
  },
  resume: () => {
    if (control) control.pause = false;
  },
  stop: () => {
    if (control) control.stop = true;
  },
  start: (job) => need().startRun(job),
  exportFiles: () => modelFiles(),
  debug: {
    cutLink: (peerId) => need().transport.cut(peerId),
    chartPoints: () => charts.counts(),
    memory: () => {
      const m = tf.memory();
      const heap = (performance as Performance & { memory?: { usedJSHeapSize: number } }).memory;
      return {
        tensors: m.numTensors,
        tensorBytes: m.numBytes,
        heapBytes: heap?.usedJSHeapSize ?? null,
        chartPoints: Object.values(charts.counts()).reduce((a, b) => a + b, 0),
        eventLog: byId('event-log').children.length,
        session: session?.holdings() ?? null,
      };
    },
    dial: (peerId, holdMs, flood) => need().transport.dial(peerId, holdMs, flood),
    poison: (kind) => {
      poisonKind = kind ?? undefined;
    },
    refused: () => need().transport.refused,
  },
};

/**
 * The group of a view newer than `failedEpoch` with at least `minPeers` members (showing the wait for
 * quorum in the panel).
 */
async function groupOf(s: RingSession, minPeers: number | undefined, failedEpoch?: number): Promise<Group> {
  const min = minPeers ?? 1;
  if ((s.view?.members.length ?? 0) < min) {
    state.training = `waiting for quorum: ${s.view?.members.length ?? 0} of ${min} peers in the room; open another peer to go on`;
    setPhase('waiting for quorum');
    draw();
  }
  const comm = await s.nextCommunicator(failedEpoch, { minPeers: min, timeoutMs: minPeers ? QUORUM_TIMEOUT_MS : GROUP_TIMEOUT_MS });
  let maskKeysOf: Promise<(CryptoKey | null)[]> | undefined;
  let gatherOf: Promise<(v: Float32Array) => Promise<Float32Array[]>> | undefined;
  const gather = (v: Float32Array): Promise<Float32Array[]> =>
    comm.allGather(v, { timeoutMs: SUM_TIMEOUT_MS + (v.byteLength * comm.size) / 250 });
  return {
    epoch: comm.view.epoch,
    rank: comm.rank,
    size: comm.size,
    // Large vectors (tree histograms run to tens of MB) get time in proportion: 4 s per MB on top
    // (4 tabs on 2 cores move a 34 MB histogram round in over a minute).
    sum: (v, wire) => comm.allreduce(v, { timeoutMs: SUM_TIMEOUT_MS + v.byteLength / 250, ...(wire ? { wire } : {}) }),
    allGather: async (v) => (await (gatherOf ??= signedGatherFor(s, comm.view, comm.rank, gather)))(v),
    broadcast: (root, data) => comm.broadcast(root, data, { timeoutMs: SUM_TIMEOUT_MS + (data?.byteLength ?? 0) / 250 }),
    reportInvalid: (step, ranks) => {
      for (const r of ranks) s.reportInvalid(comm.view.epoch, step, comm.view.members[r]!.peerId);
    },
    maskKeys: () => (maskKeysOf ??= pairKeysFor(s, comm.view)),
  };
}

/** This tab's key pairs for secure aggregation and for signing (the public halves go to the coordinator on join); null without WebCrypto. */
const maskPair = env.subtle ? maskKeyPair() : null;
const signPair = env.subtle ? signingKeyPair() : null;

/** `gather` with every contribution signed and checked (ml/algorithms/signed.ts), with the keys of `view`. */
async function signedGatherFor(
  s: RingSession,
  view: View,
  rank: number,
  gather: (v: Float32Array) => Promise<Float32Array[]>,
): Promise<(v: Float32Array) => Promise<Float32Array[]>> {
  const keys = await s.keysOf(view.epoch);
  const publicKeys = await Promise.all(view.members.map((m) => keys.get(m.peerId)?.sig).map((sig) => (sig ? verifyingKey(sig) : null)));
  return signedAllGather(gather, {
    rank,
    context: `${view.room}|${view.epoch}`,
    privateKey: (await signPair)?.privateKey ?? null,
    publicKeys,
  });
}

/** Keys shared with every other member of `view` (null at this tab's rank), from the members' public keys. */
async function pairKeysFor(s: RingSession, view: View): Promise<(CryptoKey | null)[]> {
  if (!maskPair)
    throw new Error(
      'secure aggregation needs WebCrypto, which this page lacks (not a secure context): open the app over https or on localhost on every peer',
    );
  const pubs = await s.keysOf(view.epoch);
  const { privateKey } = await maskPair;
  return Promise.all(
    view.members.map((m) => {
      if (m.peerId === s.peerId) return null;
      const pub = pubs.get(m.peerId)?.pub;
      if (!pub) throw new RingError('protocol', `peer ${m.peerId} sent no public key; it cannot take part in secure aggregation`);
      return pairKey(privateKey, pub, view.room, view.epoch);
    }),
  );
}

/** Base timeout of a training collective, ms (the communicator's default). */
const SUM_TIMEOUT_MS = DEFAULT_TIMEOUT_MS;

/** How long a training run waits for a usable view after a failure before giving up, ms. */
const GROUP_TIMEOUT_MS = 120_000;
/** How long a run with a quorum waits for enough peers, ms. */
const QUORUM_TIMEOUT_MS = 30 * 60_000;

/** This peer's shard of a split: from the tab's own data, or downloaded from the server. */
async function loadShard(
  config: Pick<TrainConfig, 'dataset' | 'partition'>,
  split: 'train' | 'test',
  rank: number,
  size: number,
): Promise<Dataset> {
  if (config.dataset === LOCAL_DATASET) {
    if (!localData)
      throw new DataError(
        'not-found',
        'dataset "local": no data is loaded in this tab; pick a file under "Your own data" (or call ringtrain.useData) on every peer first',
      );
    return localShard(localData, split, { rank, size, ...config.partition });
  }
  const path = shardPath(config.dataset, { split, rank, size, ...config.partition });
  const bar = byId<HTMLProgressElement>('progress-data');
  const ds = await fetchShard(path, {
    onProgress: (loaded, total) => {
      state.loading = { label: `Loading this peer's ${split} shard`, loaded, ...(total ? { total } : {}) };
      bar.max = total ?? loaded;
      bar.value = loaded;
      draw();
    },
  });
  delete state.loading;
  draw();
  if (ds instanceof DataError) throw ds;
  return ds;
}

/** This peer's shard, as training loads it: counts and its label histogram in the panel. */
async function loadShardShown(
  config: Pick<TrainConfig, 'dataset' | 'partition'>,
  split: 'train' | 'test',
  rank: number,
  size: number,
): Promise<Dataset> {
  const ds = await loadShard(config, split, rank, size);
  if (split === 'train') {
    shardSize = ds.n;
    drawHistogram(ds);
  }
  return ds;
}

function showTraining(e: TrainEvent): void {
  if (e.type === 'backend') {
    const a = e.report.adapter;
    state.backend = `${e.report.name} (${e.report.reason})${a ? `; GPU adapter: ${[a.vendor, a.architecture, a.description].filter(Boolean).join(' ')}` : ''}`;
    backendName = e.report.name;
  } else if (e.type === 'step') {
    state.training = `step ${e.step}/${e.steps}, loss ${e.loss.toFixed(4)}, ${Math.round(e.samplesPerSec)} samples/s`;
    lastStep = e;
    charts.point('loss', e.step, e.loss);
    charts.point('throughput', e.step, e.samplesPerSec);
    charts.point('time', e.step, e.computeMs, e.readbackMs, e.allreduceMs, e.applyMs);
    setProgress(e.step, e.steps, `step ${e.step} of ${e.steps}`);
    if (phase !== 'paused') setPhase('training');
  } else if (e.type === 'control') {
    state.training = `${e.state} after step ${e.step}`;
    setPhase(e.state === 'paused' ? 'paused' : 'training');
    logEvent(`room ${e.state} after step ${e.step}`);
  } else if (e.type === 'fault') {
    state.training = `recovering after step ${e.step}: ${e.reason}`;
    setPhase('recovering');
    logEvent(`fault after step ${e.step}: ${e.reason}`);
  } else if (e.type === 'sync') {
    state.training = `at step ${e.step} with ${e.size} peers (state from ${typeof e.source === 'number' ? `rank ${e.source}` : `the ${e.source}`})`;
    setPhase('training');
    logEvent(
      `recovered: ${e.size} peer(s) at step ${e.step}, state from ${typeof e.source === 'number' ? `rank ${e.source}` : `the ${e.source}`}`,
    );
  } else if (e.type === 'checkpoint') {
    state.checkpoint = e.error ? `step ${e.step}: ${e.error}` : `step ${e.step} saved on the server (${(e.bytes / 1024).toFixed(0)} KiB)`;
    logEvent(e.error ? `checkpoint at step ${e.step} failed: ${e.error}` : `checkpoint saved at step ${e.step}`);
  } else if (e.type === 'privacy') {
    state.privacy = describePrivacy(e);
  } else if (e.type === 'codec') {
    state.codec = `auto picked ${e.codec} at step ${e.step}: ${e.reason}`;
    logEvent(`compression: ${state.codec}`);
  } else if (e.type === 'rejected') {
    logEvent(
      e.self
        ? `step ${e.step}: this peer's gradient was invalid (NaN/Inf or too large) and was left out`
        : `step ${e.step}: left out the invalid gradients of rank(s) ${e.ranks.join(', ')}`,
    );
  } else if (e.type === 'eval') {
    state.accuracy = `${(e.accuracy * 100).toFixed(2)}% on ${e.count} test samples (step ${e.step})`;
    charts.point('accuracy', e.step, e.accuracy);
  } else return;
  draw();
}

// ---- Dashboard: phase, progress, events, cluster, runs started by any peer, results. ----

/** The room as this tab sees it: not in a room, connecting, ready, waiting for quorum, training, paused, recovering, done, stopped, failed. */
let phase = 'not in a room';
/** The run this tab takes part in (null when none). */
let run: { id: number; job: Job } | null = null;
let roomStats = new Map<string, PeerStats>();
let shardSize = 0;
let backendName = '';
let lastStep: Extract<TrainEvent, { type: 'step' }> | null = null;
/** The last finished run's model, for export and the results. */
let lastModel:
  | { kind: 'train'; result: TrainResult; config: TrainConfig }
  | { kind: 'trees'; result: TreeResult; config: TreeTrainConfig }
  | null = null;

function setPhase(p: string): void {
  phase = p;
  const badge = byId('phase');
  badge.textContent = p;
  badge.dataset.phase = p;
  const training = run !== null;
  byId<HTMLButtonElement>('pause').disabled = !training || p === 'paused';
  byId<HTMLButtonElement>('resume').disabled = !training || p !== 'paused';
  byId<HTMLButtonElement>('stop').disabled = !training;
  byId<HTMLButtonElement>('start').disabled = training || !session;
}

function setProgress(done: number, total: number, text: string): void {
  const bar = byId<HTMLProgressElement>('progress-run');
  bar.max = total;
  bar.value = done;
  byId('progress-run-text').textContent = text;
}

function logEvent(text: string): void {
  const list = byId('event-log');
  const li = document.createElement('li');
  li.textContent = `${clockTime(new Date())} ${text}`;
  list.prepend(li);
  while (list.children.length > 200) list.lastElementChild!.remove();
}

function drawCluster(): void {
  const members = state.view?.members.map((m) => m.peerId) ?? [];
  renderRing(byId('ring'), members, session?.peerId ?? null, roomStats);
  renderPeersTable(byId('peers-table'), members, session?.peerId ?? null, roomStats);
}

function drawHistogram(ds: Dataset): void {
  const root = byId('label-histogram');
  if (ds.numClasses === 0) {
    root.textContent = `Shard: ${ds.n} training samples (regression)`;
    return;
  }
  const h = labelHistogram(ds);
  const max = Math.max(1, ...h);
  const bars = document.createElement('div');
  bars.className = 'hist';
  bars.setAttribute('role', 'img');
  bars.setAttribute('aria-label', `labels in this shard: ${Array.from(h, (c, k) => `${ds.classNames?.[k] ?? k}: ${c}`).join(', ')}`);
  h.forEach((c, k) => {
    const bar = document.createElement('span');
    bar.style.height = `${(100 * c) / max}%`;
    bar.title = `${ds.classNames?.[k] ?? k}: ${c}`;
    bars.append(bar);
  });
  const caption = document.createElement('p');
  caption.textContent = `Shard: ${ds.n} training samples; labels:`;
  root.replaceChildren(caption, bars);
}

/** The room's link (with its secret in the fragment for a private room) as text, anchor and QR code. */
function showShare(room: string, secret: string | undefined): void {
  const fragment = secret ? `#k=${secret}` : '';
  const link = `${location.origin}${location.pathname}?room=${encodeURIComponent(room)}${fragment}`;
  history.replaceState(
    null,
    '',
    `?room=${encodeURIComponent(room)}${params.has('backend') ? `&backend=${params.get('backend')}` : ''}${fragment}`,
  );
  const a = byId<HTMLAnchorElement>('share-link');
  a.href = link;
  a.textContent = link;
  byId('share').hidden = false;
  void QRCode.toCanvas(byId<HTMLCanvasElement>('share-qr'), link, { width: 148, margin: 1 }).catch(() => undefined);
}

/** Tells the room about this peer once a second: its state, backend and last step's split. */
function startStatsReports(s: RingSession): void {
  let sent = s.stats.payloadBytesSent;
  let at = performance.now();
  const timer = setInterval(() => {
    if (session !== s) {
      clearInterval(timer);
      return;
    }
    const now = performance.now();
    const rate = ((s.stats.payloadBytesSent - sent) * 1000) / Math.max(1, now - at);
    sent = s.stats.payloadBytesSent;
    at = now;
    const states: Record<string, PeerStats['state']> = {
      training: 'training',
      paused: 'paused',
      recovering: 'recovering',
      done: 'done',
      stopped: 'done',
      failed: 'failed',
      'waiting for quorum': 'loading',
    };
    s.reportStats({
      state: states[phase] ?? 'idle',
      backend: backendName || tf.getBackend() || 'none',
      step: lastStep?.step ?? 0,
      samplesPerSec: lastStep ? lastStep.localSamples / Math.max(0.001, lastStep.computeMs / 1000) : 0,
      computeMs: lastStep?.computeMs ?? 0,
      readbackMs: lastStep?.readbackMs ?? 0,
      allreduceMs: lastStep?.allreduceMs ?? 0,
      applyMs: lastStep?.applyMs ?? 0,
      sendBytesPerSec: rate,
      shard: shardSize,
    });
  }, 1000);
}

function showSetupError(message: string): void {
  byId('setup-error').textContent = message;
}

/** Trains run `id` (started by `by`) with the room, then shows and keeps the result. */
async function runJob(s: RingSession, id: number, by: string, job: Job): Promise<void> {
  if (run) {
    if (run.id !== id) logEvent(`run ${id} from ${by.slice(0, 6)} ignored: run ${run.id} is still going in this tab`);
    return;
  }
  run = { id, job };
  lastStep = null;
  // Rows that describe the previous run.
  for (const k of ['privacy', 'codec', 'checkpoint'] as const) delete state[k];
  charts.reset();
  showSetupError('');
  setProgress(0, 1, '');
  setPhase('training');
  logEvent(`run ${id} (${job.config.model}) started by ${by === s.peerId ? 'this tab' : by.slice(0, 6)}`);
  try {
    if (job.kind === 'train') {
      const config = job.config;
      const result = await window.ringtrain.train(config);
      setPhase(result.stopped ? 'stopped' : 'done');
      byId('result-summary').textContent =
        `Run ${id}: test accuracy ${(result.accuracy * 100).toFixed(2)}% after ${result.steps} steps (${result.params} parameters, ${result.backend}); weights checksum ${result.checksum}, the same on every peer.`;
    } else {
      const config = job.config;
      const result = await window.ringtrain.trainTrees(config);
      setPhase('done');
      const score =
        result.rmse !== undefined ? `test RMSE ${result.rmse.toPrecision(4)}` : `test accuracy ${(result.accuracy * 100).toFixed(2)}%`;
      byId('result-summary').textContent =
        `Run ${id}: ${config.model}, ${score}; model checksum ${result.checksum}, the same on every peer.`;
    }
    byId<HTMLButtonElement>('export').disabled = false;
    byId<HTMLButtonElement>('download-checkpoint').disabled = job.kind !== 'train';
    logEvent(`run ${id} finished`);
    await showResults().catch((e: unknown) => logEvent(`results: ${(e as Error).message}`));
  } catch (e) {
    setPhase('failed');
    const msg = (e as Error).message;
    showSetupError(`Run ${id} failed: ${msg}`);
    logEvent(`run ${id} failed: ${msg}`);
  } finally {
    run = null;
    s.finishRun(id);
    setPhase(phase);
  }
}

/** Class predictions of a tree model for `ds`. */
function treePredictions(tm: TreeModel, ds: Dataset): Int32Array {
  const d = featureSize(ds.shape);
  return Int32Array.from({ length: ds.n }, (_, i) => {
    const sc = scoresOf(tm, ds.x, i * d);
    return sc.indexOf(Math.max(...sc));
  });
}

/** Class predictions of `model` for `ds` (a neural/SVM result, or trees). */
async function predictions(model: NonNullable<typeof lastModel>, ds: Dataset): Promise<Int32Array> {
  if (model.kind === 'trees') return treePredictions(JSON.parse(model.result.json) as TreeModel, ds);
  const { spec, weights } = model.result;
  const rff = model.config.rff;
  const x = rff ? await rffTransform(ds.x, ds.n, featureSize(ds.shape), { ...rff, seed: model.config.seed }) : ds.x;
  const m = createModel(spec);
  try {
    setFlatWeights(m, weights);
    return (await predict(m, x)).classes ?? new Int32Array(ds.n);
  } finally {
    m.dispose();
  }
}

/** Confusion matrix and sample predictions on this peer's test shard; a tree's top levels. */
async function showResults(): Promise<void> {
  const model = lastModel;
  if (!model) return;
  const size = state.view?.members.length ?? 1;
  const rank = Math.max(0, state.view?.members.findIndex((m) => m.peerId === session?.peerId) ?? 0);
  const test = await loadShard(model.config, 'test', rank, size);
  if (model.kind === 'trees') {
    const tm = JSON.parse(model.result.json) as TreeModel;
    const tree = tm.kind === 'tree' ? tm.tree : tm.gbdt.trees[0]![0]!;
    const names = test.featureNames;
    renderTree(
      byId('tree-view'),
      tree,
      (f) => names?.[f] ?? `pixel ${f}`,
      (v) => (v.length > 1 ? (test.classNames?.[v.indexOf(Math.max(...v))] ?? String(v.indexOf(Math.max(...v)))) : v[0]!.toPrecision(3)),
    );
  }
  if (test.numClasses === 0) return;
  const pred = await predictions(model, test);
  const k = test.numClasses;
  const matrix = new Int32Array(k * k);
  for (let i = 0; i < test.n; i++) matrix[test.y[i]! * k + pred[i]!]!++;
  const names = test.classNames ?? Array.from({ length: k }, (_, c) => String(c));
  renderConfusion(byId('confusion'), matrix, names);
  const d = featureSize(test.shape);
  const side = Math.round(Math.sqrt(d));
  if (side * side === d) {
    const count = Math.min(12, test.n);
    renderSamples(
      byId('samples'),
      Array.from({ length: count }, (_, i) => ({
        pixels: test.x.subarray(i * d, (i + 1) * d),
        side,
        predicted: names[pred[i]!]!,
        truth: names[test.y[i]!]!,
      })),
    );
  }
}

const toBase64 = (bytes: Uint8Array): string => {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
};

/** The last model as files: tfjs layers format (model JSON + weights) for neural models and the SVM, JSON for trees. */
async function modelFiles(): Promise<ModelFile[]> {
  const model = lastModel;
  if (!model) throw new Error('no model yet: train one first');
  const enc = new TextEncoder();
  if (model.kind === 'trees') return [{ name: `ringtrain-${model.config.model}.json`, base64: toBase64(enc.encode(model.result.json)) }];
  const name = `ringtrain-${model.result.spec.kind}`;
  const m = createModel(model.result.spec);
  try {
    setFlatWeights(m, model.result.weights);
    let files: ModelFile[] = [];
    await m.save(
      tf.io.withSaveHandler(async (a) => {
        const weights = new Uint8Array(a.weightData as ArrayBuffer);
        const json = {
          modelTopology: a.modelTopology,
          format: 'layers-model',
          generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
          convertedBy: null,
          // Random Fourier features: the model takes the mapped features; the map comes from this seed.
          userDefinedMetadata: {
            ringtrain: {
              config: model.config,
              checksum: model.result.checksum,
              accuracy: model.result.accuracy,
              steps: model.result.steps,
            },
          },
          weightsManifest: [{ paths: [`${name}.weights.bin`], weights: a.weightSpecs }],
        };
        files = [
          { name: `${name}.json`, base64: toBase64(enc.encode(JSON.stringify(json))) },
          { name: `${name}.weights.bin`, base64: toBase64(weights) },
        ];
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.byteLength } };
      }),
    );
    return files;
  } finally {
    m.dispose();
  }
}

/** Offers `bytes` as a download named `name`. */
function download(name: string, bytes: Uint8Array<ArrayBuffer>): void {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes]));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/** Downloads the last model's files. */
async function exportModel(): Promise<void> {
  for (const f of await modelFiles())
    download(
      f.name,
      Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0)),
    );
  logEvent('model exported');
}

/** Downloads the room's newest checkpoint (the server's, or this browser's copy when newer). */
async function downloadCheckpoint(): Promise<void> {
  const bytes = await new CheckpointClient(state.room, need().roomKey, () => need().membership()).load();
  const c = bytes && decodeCheckpoint(bytes);
  if (!c || c instanceof Error) throw new Error('this room has no checkpoint yet: a run saves one every few steps');
  download(`ringtrain-${state.room}-step${c.step}.rtck`, Uint8Array.from(bytes));
  logEvent(`checkpoint of step ${c.step} downloaded`);
}

/**
 * Continues the run a checkpoint file belongs to: stores it as the room's newest, then starts that
 * run (its config is in the checkpoint's run key) for the form's number of epochs more.
 */
async function continueFrom(file: File): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const c = decodeCheckpoint(bytes);
  if (c instanceof Error) throw new Error(`${file.name}: ${c.message}`);
  let key: unknown;
  try {
    key = JSON.parse(c.runKey);
  } catch {
    throw new Error(`${file.name}: its run key is not JSON; pick a checkpoint that RingTrain wrote`);
  }
  // The form's epochs (and its schedule of evaluations and checkpoints) for the checkpoint's run.
  const run = parseTrainConfig({ ...(key as object), steps: 1 });
  const more = jobFromFields(
    { ...setupFields(), dataset: run.dataset, algorithm: run.algorithm, batch: String(run.batch), model: 'softmax', optimizer: 'sgd' },
    localData?.train.n,
  );
  if (more.kind !== 'train') throw new Error('the form names a tree model; a checkpoint continues a neural or SVM run');
  const steps = c.step + more.config.steps;
  const config = parseTrainConfig({ ...run, steps, evalEvery: more.config.evalEvery, checkpointEvery: more.config.checkpointEvery });
  await new CheckpointClient(state.room, need().roomKey, () => need().membership()).save(bytes);
  need().startRun({ kind: 'train', config });
  return `Continuing ${run.model} on ${run.dataset} from step ${c.step} to step ${steps}.`;
}

/** Loads an exported model and measures it on the whole test split of the dataset picked in the setup. */
async function importModel(files: File[]): Promise<string> {
  const fields = setupFields();
  const dataset = fields['dataset'] ?? 'fashion-mnist';
  const json = files.find((f) => f.name.endsWith('.json'));
  if (!json) throw new Error('pick the exported .json file (and, for a neural model, its .weights.bin)');
  const test = await loadShard({ dataset, partition: { scheme: 'iid', seed: 1 } }, 'test', 0, 1);
  const text = await json.text();
  let pred: Int32Array;
  if (text.includes('"modelTopology"')) {
    const bin = files.find((f) => f.name.endsWith('.bin'));
    if (!bin) throw new Error(`${json.name} is a tfjs model: pick its weights file (.weights.bin) together with it`);
    const m = await tf.loadLayersModel(tf.io.browserFiles([json, bin]));
    try {
      const want = featureSize(m.inputs[0]!.shape.slice(1) as number[]);
      if (want !== featureSize(test.shape))
        throw new Error(
          `the model takes ${want} features per sample; ${dataset} has ${featureSize(test.shape)} (a model on random Fourier features cannot be measured here)`,
        );
      pred = (await predict(m, test.x)).classes ?? new Int32Array(test.n);
    } finally {
      m.dispose();
    }
  } else {
    let tm: TreeModel;
    try {
      tm = JSON.parse(text) as TreeModel;
    } catch {
      throw new Error(`${json.name} is not JSON; pick a file the Export button wrote`);
    }
    if (tm.kind !== 'tree' && tm.kind !== 'gbdt') throw new Error(`${json.name} is neither a tfjs model nor a RingTrain tree model`);
    pred = treePredictions(tm, test);
  }
  let correct = 0;
  for (let i = 0; i < test.n; i++) if (pred[i] === test.y[i]) correct++;
  return `Imported model: test accuracy ${((100 * correct) / test.n).toFixed(2)}% on all ${test.n} test samples of ${dataset}.`;
}

function setupFields(): SetupFields {
  const f = byId<HTMLFormElement>('setup-form');
  const out: SetupFields = {};
  for (const el of Array.from(f.elements) as HTMLInputElement[]) {
    if (!el.name) continue;
    out[el.name] = el.type === 'checkbox' ? (el.checked ? 'on' : '') : el.value;
  }
  return out;
}

byId<HTMLFormElement>('setup-form').addEventListener('submit', (e) => {
  e.preventDefault();
  try {
    const job = jobFromFields(setupFields(), localData?.train.n);
    showSetupError('');
    need().startRun(job);
  } catch (err) {
    showSetupError((err as Error).message);
    if (err instanceof SetupError) (byId<HTMLFormElement>('setup-form').elements.namedItem(err.field) as HTMLElement | null)?.focus();
  }
});
byId('pause').addEventListener('click', () => window.ringtrain.pause());
byId('resume').addEventListener('click', () => window.ringtrain.resume());
byId('stop').addEventListener('click', () => window.ringtrain.stop());
byId('export').addEventListener(
  'click',
  () => void exportModel().catch((e: unknown) => logEvent(`export failed: ${(e as Error).message}`)),
);
function showImport(text: string, error: boolean): void {
  const out = byId('import-summary');
  out.textContent = text;
  out.classList.toggle('error', error);
}
byId<HTMLInputElement>('import').addEventListener('change', (e) => {
  const files = Array.from((e.target as HTMLInputElement).files ?? []);
  showImport('Measuring the imported model ...', false);
  importModel(files).then(
    (text) => showImport(text, false),
    (err: unknown) => showImport(`Could not import: ${(err as Error).message}`, true),
  );
});
byId('download-checkpoint').addEventListener(
  'click',
  () => void downloadCheckpoint().catch((e: unknown) => showImport(`Could not download: ${(e as Error).message}`, true)),
);
byId<HTMLInputElement>('continue').addEventListener('change', (e) => {
  const file = (e.target as HTMLInputElement).files?.[0];
  if (file)
    continueFrom(file).then(
      (text) => showImport(text, false),
      (err: unknown) => showImport(`Could not continue: ${(err as Error).message}`, true),
    );
});
byId('open-peer').addEventListener('click', () => window.open(byId<HTMLAnchorElement>('share-link').href, '_blank'));
byId('copy-link').addEventListener(
  'click',
  () => void navigator.clipboard?.writeText(byId<HTMLAnchorElement>('share-link').href).then(() => logEvent('link copied')),
);
byId('new-room').addEventListener('click', () => {
  roomInput.value = `room-${Math.random().toString(36).slice(2, 10)}`;
  form.requestSubmit();
});

// Join from the form: the link's room with its secret, or a new private room (this tab makes its
// secret); without WebCrypto, an open room (the notice above the dashboard says why).
form.addEventListener('submit', (e) => {
  e.preventDefault();
  state.room = roomInput.value;
  const fromLink = state.room === params.get('room') && linkSecret;
  join(fromLink || !env.subtle ? {} : { secret: newSecret(), createRoom: true }).catch(() => undefined);
});
bindDataForm(document.getElementById('data-form') as HTMLFormElement, document.getElementById('data-summary')!, async (input) => {
  const d = await window.ringtrain.useData(input);
  const what = d.classes > 0 ? `${d.classes} classes` : 'regression';
  return `Loaded ${d.source}: ${d.train} training and ${d.test} test samples, ${d.shape.join(' x ')} features, ${what}. Train with dataset "${LOCAL_DATASET}".`;
});
draw();
if (params.has('room') && params.get('autojoin') !== '0') join().catch(() => undefined);
