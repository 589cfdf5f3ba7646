/**
 * The page-level API `window.ringtrain` that tests, benchmarks, the CLI and later features drive:
 * a thin facade over the peer runtime (src/runtime/), plus the dashboard's probes.
 */
import type { CollectiveOptions } from './core/collectives/communicator.ts';
import type { TrafficStats } from './core/collectives/context.ts';
import type { View } from './core/membership/view.ts';
import type { UserDataInput } from './data/user-files.ts';
import type { Job } from './protocol/index.ts';
import type { RingSession, SessionOptions, SessionStatus } from './net/session.ts';
import type { Poison } from './runtime/drill.ts';
import type { ModelFile } from './runtime/model.ts';
import type { DataSummary, PeerRuntime } from './runtime/runtime.ts';
import type { TrainConfig, TrainEvent, TrainResult } from './training/trainer.ts';
import type { TreeEvent, TreeResult, TreeTrainConfig } from './training/trees.ts';

export type { DataSummary, ModelFile };

export interface RingTrainApi {
  /** Joins a room (default: the `room` URL parameter, else "demo"). */
  join(opts?: Partial<SessionOptions>): Promise<{ peerId: string; view: View | null }>;
  leave(): void;
  peerId(): string | null;
  status(): SessionStatus | 'idle';
  view(): View | null;
  /** Resolves when the view has `n` members (or satisfies `pred`). */
  waitForView(n: number | ((v: View) => boolean), timeoutMs?: number): Promise<View>;
  /** Sum over the view; with `o.topology` two-level, the links it needs are opened first. */
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
    /** From now on every gradient computation of this tab takes `factor` times as long (a slow device); 1: full speed again. */
    slow(factor: number): void;
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

declare global {
  interface Window {
    ringtrain: RingTrainApi;
  }
}

/** What the facade takes from the page around the runtime. */
export interface PageProbes {
  /** A private room's secret from the page's link (`#k=...`) when `room` is the link's room. */
  linkSecretFor(room: string): string | undefined;
  /** Points each plot holds. */
  chartPoints(): Record<string, number>;
  /** Entries of the dashboard's event log. */
  eventLogSize(): number;
}

/** What the facade uses of the runtime. */
export type FacadeRuntime = Pick<
  PeerRuntime,
  | 'room'
  | 'session'
  | 'need'
  | 'join'
  | 'leave'
  | 'useData'
  | 'train'
  | 'trainTrees'
  | 'pause'
  | 'resume'
  | 'stop'
  | 'start'
  | 'exportFiles'
  | 'memory'
  | 'poison'
  | 'slow'
>;

/** `window.ringtrain` over `rt`. */
export function pageApi(rt: FacadeRuntime, page: PageProbes): RingTrainApi {
  const need = (): RingSession => rt.need();
  const comm = () => need().communicator();
  return {
    join: (opts = {}) => {
      const room = opts.room ?? rt.room;
      const secret = opts.secret ?? page.linkSecretFor(room);
      return rt.join({ ...opts, room, ...(secret ? { secret } : {}) });
    },
    leave: () => rt.leave(),
    peerId: () => rt.session?.peerId ?? null,
    status: () => rt.session?.status ?? 'idle',
    view: () => rt.session?.view ?? null,
    waitForView: (n, timeoutMs = 30_000) => need().waitForView(typeof n === 'number' ? (v) => v.members.length === n : n, timeoutMs),
    allreduce: async (data, o) => {
      // The view's links are open (the ring's, and the two-level neighbours from 32 peers); a
      // per-call topology may talk to more peers: only then is there anything to open first.
      const s = need();
      const c = await s.communicator();
      const open = new Set([c.pos.prev, c.pos.next, ...c.allreducePeers()]);
      const more = c.allreducePeers(o).filter((p) => !open.has(p));
      if (more.length > 0) await s.transport.connect(more, 15_000);
      return c.allreduce(data, o);
    },
    allreduceMean: async (data, count, o) => (await comm()).allreduceMean(data, count, o),
    broadcast: async (root, data, o) => (await comm()).broadcast(root, data, o),
    barrier: async (o) => (await comm()).barrier(o),
    shift: async (bytes, o) => (await comm()).shift(bytes, o),
    allToAllSum: async (data, o) => {
      const s = need();
      const c = await s.communicator();
      await s.transport.connect(
        c.view.members.map((m) => m.peerId),
        15_000,
      );
      return c.allToAllSum(data, o);
    },
    stats: () => ({ ...need().stats }),
    useData: (input) => rt.useData(input),
    train: (config, onEvent) => rt.train(config, onEvent),
    trainTrees: (config, onEvent) => rt.trainTrees(config, onEvent),
    pause: () => rt.pause(),
    resume: () => rt.resume(),
    stop: () => rt.stop(),
    start: (job) => rt.start(job),
    exportFiles: () => rt.exportFiles(),
    debug: {
      cutLink: (peerId) => need().transport.cut(peerId),
      chartPoints: () => page.chartPoints(),
      memory: () => {
        const m = rt.memory();
        const heap = (globalThis.performance as Performance & { memory?: { usedJSHeapSize: number } }).memory;
        return {
          tensors: m.tensors,
          tensorBytes: m.tensorBytes,
          heapBytes: heap?.usedJSHeapSize ?? null,
          chartPoints: Object.values(page.chartPoints()).reduce((a, b) => a + b, 0),
          eventLog: page.eventLogSize(),
          session: m.session,
        };
      },
      dial: (peerId, holdMs, flood) => need().transport.dial(peerId, holdMs, flood),
      poison: (kind) => rt.poison(kind),
      slow: (factor) => rt.slow(factor),
      refused: () => need().transport.refused,
    },
  };
}
