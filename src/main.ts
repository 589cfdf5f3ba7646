/**
 * Composition root: joins a room from the page, wires session events to the UI, and exposes the
 * page-level API `window.ringtrain` that tests, benchmarks and later features use.
 */
import { DEFAULT_TIMEOUT_MS, type CollectiveOptions } from './core/collectives/communicator.ts';
import type { TrafficStats } from './core/collectives/context.ts';
import type { View } from './core/membership/view.ts';
import { fetchShard, shardPath } from './data/shard-client.ts';
import { DataError, type Dataset } from './data/dataset.ts';
import { LOCAL_DATASET, localShard, type LocalData } from './data/local.ts';
import { loadUserData, type UserDataInput } from './data/user-files.ts';
import { parseBackendPreference } from './ml/backend.ts';
import { selectBrowserBackend } from './ml/backends-browser.ts';
import { makeStepProbe } from './ml/probe.ts';
import { CheckpointClient } from './net/checkpoints.ts';
import { RingSession, type SessionOptions, type SessionStatus } from './net/session.ts';
import { train, type Group, type TrainConfig, type TrainControl, type TrainEvent, type TrainResult } from './training/trainer.ts';
import { trainTrees, type TreeEvent, type TreeResult, type TreeTrainConfig } from './training/trees.ts';
import { bindDataForm } from './ui/data-form.ts';
import { renderStatus, type PanelState } from './ui/status-panel.ts';

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
  /** Fault drills. */
  debug: {
    /** Closes this tab's data channel to `peerId` as a network cut would; false when there is none. */
    cutLink(peerId: string): boolean;
  };
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
const state: PanelState = { room: params.get('room') ?? roomInput.value, peerId: null, status: 'idle', view: null };
const draw = (): void => renderStatus(panel, state);

function need(): RingSession {
  if (!session) throw new Error('ringtrain: call join() first');
  return session;
}

async function join(opts: Partial<SessionOptions> = {}): Promise<{ peerId: string; view: View | null }> {
  if (session) return { peerId: session.peerId, view: session.view };
  const room = opts.room ?? state.room;
  state.room = room;
  state.status = 'connecting';
  delete state.error;
  draw();
  try {
    session = await RingSession.join({ ...opts, room });
  } catch (e) {
    state.status = 'idle';
    state.error = `Could not join: ${(e as Error).message}. Check that the RingTrain server is running, then try again.`;
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
    } else if (e.type === 'view') {
      state.view = e.view;
    }
    draw();
  });
  form.hidden = true;
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
    await s.transport.connect(comm.view.members.map((m) => m.peerId), 15_000);
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
    const checkpoints = new CheckpointClient(state.room);
    try {
      return await train(config, {
        group: (failedEpoch) => groupOf(s, config.minPeers, failedEpoch),
        control: () => ctl,
        loadShard: (split, rank, size) => loadShard(config, split, rank, size),
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
      });
    } finally {
      control = null;
    }
  },
  trainTrees: async (config, onEvent) => {
    const s = need();
    return trainTrees(config, {
      group: () => groupOf(s, undefined),
      loadShard: (split, rank, size) => loadShard(config, split, rank, size),
      emit: (e) => {
        if (e.type === 'round') state.training = `tree round ${e.round}/${e.rounds} (${(e.floatsSummed * 4e-6).toFixed(1)} MB of histograms summed)`;
        else if (e.type === 'eval') state.accuracy = `${(e.accuracy * 100).toFixed(2)}% on ${e.count} test samples`;
        draw();
        onEvent?.(e);
      },
    });
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
  debug: {
    cutLink: (peerId) => need().transport.cut(peerId),
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
    draw();
  }
  const comm = await s.nextCommunicator(failedEpoch, { minPeers: min, timeoutMs: minPeers ? QUORUM_TIMEOUT_MS : GROUP_TIMEOUT_MS });
  return {
    epoch: comm.view.epoch,
    rank: comm.rank,
    size: comm.size,
    // Large vectors (tree histograms run to tens of MB) get time in proportion: 1 s per MB on top.
    sum: (v) => comm.allreduce(v, { timeoutMs: SUM_TIMEOUT_MS + v.byteLength / 1000 }),
    broadcast: (root, data) => comm.broadcast(root, data, { timeoutMs: SUM_TIMEOUT_MS + (data?.byteLength ?? 0) / 1000 }),
  };
}

/** Base timeout of a training collective, ms (the communicator's default). */
const SUM_TIMEOUT_MS = DEFAULT_TIMEOUT_MS;

/** How long a training run waits for a usable view after a failure before giving up, ms. */
const GROUP_TIMEOUT_MS = 120_000;
/** How long a run with a quorum waits for enough peers, ms. */
const QUORUM_TIMEOUT_MS = 30 * 60_000;

/** This peer's shard of a split: from the tab's own data, or downloaded from the server. */
async function loadShard(config: Pick<TrainConfig, 'dataset' | 'partition'>, split: 'train' | 'test', rank: number, size: number): Promise<Dataset> {
  if (config.dataset === LOCAL_DATASET) {
    if (!localData) throw new DataError('not-found', 'dataset "local": no data is loaded in this tab; pick a file under "Your own data" (or call ringtrain.useData) on every peer first');
    return localShard(localData, split, { rank, size, ...config.partition });
  }
  const path = shardPath(config.dataset, { split, rank, size, ...config.partition });
  const ds = await fetchShard(path, {
    onProgress: (loaded, total) => {
      state.loading = { label: `Loading this peer's ${split} shard`, loaded, ...(total ? { total } : {}) };
      draw();
    },
  });
  delete state.loading;
  draw();
  if (ds instanceof DataError) throw ds;
  return ds;
}

function showTraining(e: TrainEvent): void {
  if (e.type === 'backend') state.backend = `${e.report.name} (${e.report.reason})`;
  else if (e.type === 'step') state.training = `step ${e.step}/${e.steps}, loss ${e.loss.toFixed(4)}, ${Math.round(e.samplesPerSec)} samples/s`;
  else if (e.type === 'control') state.training = `${e.state} after step ${e.step}`;
  else if (e.type === 'fault') state.training = `recovering after step ${e.step}: ${e.reason}`;
  else if (e.type === 'sync') state.training = `at step ${e.step} with ${e.size} peers (state from ${typeof e.source === 'number' ? `rank ${e.source}` : `the ${e.source}`})`;
  else if (e.type === 'checkpoint') state.checkpoint = e.error ? `step ${e.step}: ${e.error}` : `step ${e.step} saved on the server (${(e.bytes / 1024).toFixed(0)} KiB)`;
  else if (e.type === 'eval') state.accuracy = `${(e.accuracy * 100).toFixed(2)}% on ${e.count} test samples (step ${e.step})`;
  else return;
  draw();
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  state.room = roomInput.value;
  history.replaceState(null, '', `?room=${encodeURIComponent(state.room)}`);
  join().catch(() => undefined);
});
bindDataForm(document.getElementById('data-form') as HTMLFormElement, document.getElementById('data-summary')!, async (input) => {
  const d = await window.ringtrain.useData(input);
  const what = d.classes > 0 ? `${d.classes} classes` : 'regression';
  return `Loaded ${d.source}: ${d.train} training and ${d.test} test samples, ${d.shape.join(' x ')} features, ${what}. Train with dataset "${LOCAL_DATASET}".`;
});
draw();
if (params.has('room') && params.get('autojoin') !== '0') join().catch(() => undefined);
