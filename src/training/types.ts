/**
 * The training loop's types: what it reports, what it returns, and what it needs from its
 * surroundings (the page and the CLI implement {@link Group} and {@link TrainerDeps}). trainer.ts
 * re-exports all of them.
 */
import type { BackendReport } from '../ml/backend.ts';
import type { StepTimings } from '../ml/algorithms/distributed.ts';
import type { ModelSpec } from '../ml/models.ts';
import type { Dataset } from '../data/dataset.ts';
import type { TrainConfig } from '../protocol/run-config.ts';
import type { WireSpec } from '../protocol/wire.ts';
import type { Drill } from './drills.ts';

export type Algorithm = TrainConfig['algorithm'];

export type { TrainConfig } from '../protocol/run-config.ts';

export type TrainEvent =
  | { type: 'backend'; report: BackendReport }
  | { type: 'data'; train: number; test: number; rank: number; size: number }
  /** `samples`: the global batch (a round's: all its batches); `localSamples`: this peer's part of it; `span`: the global steps it committed (a DiLoCo round's inner steps; else 1). */
  | ({
      type: 'step';
      step: number;
      steps: number;
      span: number;
      loss: number;
      samples: number;
      localSamples: number;
      samplesPerSec: number;
      epoch: number;
      size: number;
    } & StepTimings)
  /** `accuracy`: a language model's share of next characters right; `bitsPerChar`: its validation loss in bits per character. */
  | { type: 'eval'; step: number; accuracy: number; loss: number; count: number; bitsPerChar?: number }
  /** A language model's text after `prompt` at `step` (the same prompt and seed at every evaluation). */
  | { type: 'sample'; step: number; prompt: string; text: string }
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
  | { type: 'codec'; step: number; codec: string; reason: string }
  /** `balance`: rank `rank` went on standby (its step took `stepMs` against a deadline of `deadlineMs`, repeatedly) or stepped back in; `self`: this peer. */
  | { type: 'straggler'; step: number; rank: number; state: 'standby' | 'active'; stepMs: number; deadlineMs: number; self: boolean }
  /** DiLoCo `localSteps: 'auto'`: the inner steps per round the group picked at `step` from its probe round's timings (ms). */
  | { type: 'rounds'; step: number; localSteps: number; computeMs: number; commMs: number };

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

/** What this peer asks of the room; read at every collective sum. */
export interface TrainControl {
  pause: boolean;
  stop: boolean;
}

/** While paused, how often the peers exchange their control flags (ms). */
export const PAUSE_POLL_MS = 200;
/** FedAvg and DiLoCo: local steps per round when the config names none. */
export const DEFAULT_LOCAL_STEPS = 5;
/** sgd with `balance`: steps between speed measurements (DiLoCo: every round). */
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
  /**
   * A fault drill for this peer (tests and the drill page API only), read at every step: it alters
   * this peer's contribution before the exchange. Absent or null: none.
   */
  drill?: () => Drill | null;
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
