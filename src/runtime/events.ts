/**
 * What a peer runtime tells whoever watches it (the dashboard, a log, a test): the trainer's events
 * as they come, plus the runtime's own (phase, joins, membership, runs, results, errors). The
 * runtime never draws; a subscriber turns these into a page, or lines of text.
 */
import type { View } from '../core/membership/view.ts';
import { Listeners, type Unsubscribe } from '../core/transport.ts';
import type { Dataset } from '../data/dataset.ts';
import type { Tree } from '../ml/trees/tree.ts';
import type { Job } from '../protocol/index.ts';
import type { SessionEvent, SessionStatus } from '../net/session.ts';
import type { TrainEvent, TrainResult } from '../training/trainer.ts';
import type { TreeEvent, TreeResult } from '../training/trees.ts';

/** The room as this peer sees it. */
export type Phase =
  | 'not in a room'
  | 'ready'
  | `connecting (${SessionStatus})`
  | 'waiting for quorum'
  | 'training'
  | 'paused'
  | 'recovering'
  | 'done'
  | 'stopped'
  | 'failed';

/** How a run of the room ended in this peer. */
export type RunOutcome = { kind: 'train'; result: TrainResult } | { kind: 'trees'; result: TreeResult; model: string };

/** What a finished run shows: a tree's top levels, or the confusion matrix and sample predictions on this peer's test shard. */
export interface ModelResults {
  tree?: { tree: Tree; featureNames?: readonly string[]; classNames?: readonly string[] };
  /** `matrix[true * k + predicted]`. */
  confusion?: { matrix: Int32Array; classNames: string[] };
  /** A few test images (square feature vectors only) with their predicted and true class names. */
  samples?: { pixels: Float32Array; side: number; predicted: string; truth: string }[];
}

export type RuntimeEvent =
  /** `running`: a run of the room goes on in this peer; `inRoom`: this peer holds a session. */
  | { type: 'phase'; phase: Phase; running: boolean; inRoom: boolean }
  /** A join could not start or failed; `status`: what the peer's status is now, when it changed. */
  | { type: 'join-failed'; error: string; status?: 'idle' }
  | { type: 'joining'; room: string }
  | { type: 'joined'; room: string; secret?: string; peerId: string; view: View | null; status: SessionStatus }
  | { type: 'left' }
  /** The session's own events (status, views, room stats, refusals, links down), as they come. */
  | { type: 'session'; event: SessionEvent }
  | { type: 'train'; event: TrainEvent }
  | { type: 'trees'; event: TreeEvent }
  /** A run waits for `need` peers; `have` are in the room. */
  | { type: 'quorum'; have: number; need: number }
  /** A shard download in progress (bytes); `loaded` once it is done (or failed). */
  | { type: 'loading'; split: 'train' | 'test'; loaded: number; total?: number }
  | { type: 'loaded' }
  /** This peer's training shard, as a run loaded it. */
  | { type: 'shard'; data: Dataset }
  /** A run of the room starts in this peer; `self`: this peer started it. */
  | { type: 'run-started'; id: number; by: string; job: Job; self: boolean }
  /** A run of the room that this peer does not join: `current` still goes on here. */
  | { type: 'run-ignored'; id: number; by: string; current: number }
  | { type: 'run-finished'; id: number; outcome: RunOutcome }
  | { type: 'run-failed'; id: number; message: string }
  | { type: 'results'; results: ModelResults }
  /** Something went wrong outside a run (e.g. the results of a finished one); `what` names it. */
  | { type: 'error'; what: string; message: string };

/** The session's and the trainers' events, for subscribers that may import the runtime's types only. */
export type { SessionEvent, TrainEvent, TreeEvent };

export type Subscriber<E> = (e: E) => void;

/**
 * A typed event stream: `subscribe` returns its own unsubscribe; `unsubscribe` takes the same
 * function. A subscriber that throws does not keep the others from the event (core's Listeners
 * rethrows its error on a later microtask, where it is reported).
 */
export class EventStream<E> {
  private readonly listeners = new Listeners<[E]>();
  private readonly offs = new Map<Subscriber<E>, Unsubscribe>();

  subscribe(fn: Subscriber<E>): () => void {
    if (!this.offs.has(fn)) this.offs.set(fn, this.listeners.on(fn));
    return () => this.unsubscribe(fn);
  }

  unsubscribe(fn: Subscriber<E>): void {
    this.offs.get(fn)?.();
    this.offs.delete(fn);
  }

  /** Subscribers now. */
  get size(): number {
    return this.listeners.size;
  }

  emit(e: E): void {
    this.listeners.emit(e);
  }
}
