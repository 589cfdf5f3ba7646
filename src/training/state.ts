/**
 * What a peer holds of a run: the model, its optimizer and the last committed step, what it claims
 * in an agreement (consensus.ts), and what a checkpoint or a newcomer receives.
 */
import type * as tf from '@tensorflow/tfjs';
import { getFlatWeights, setFlatWeights } from '../ml/flat.ts';
import type { OuterOptimizer } from '../ml/algorithms/rounds.ts';
import type { FlatOptimizer } from '../ml/optimizer.ts';
import { decodeCheckpoint, encodeCheckpoint } from '../protocol/checkpoint.ts';
import type { HeldState } from './consensus.ts';

/** A state kept in memory: its step, weights and optimizer state. */
export interface Snapshot {
  step: number;
  weights: Float32Array;
  optimizer: Float32Array;
}

/** The model, its optimizer and the committed step: what a checkpoint or a newcomer receives. */
export class TrainingState {
  /** Last committed global step. */
  step = 0;
  /** False until this peer has agreed on a state with a group (a newcomer has nothing to offer). */
  agreed = false;
  /**
   * Rounds of local steps (FedAvg, DiLoCo): the inner optimizer's initial state. Each peer's inner
   * state is its own there, so agreement covers the weights and the outer state alone.
   */
  private readonly fresh: Float32Array | null;

  constructor(
    readonly model: tf.LayersModel,
    /** The optimizer of every step (in rounds: the inner one). */
    readonly opt: FlatOptimizer,
    /** Rounds of local steps: the outer optimizer (its state comes first in the optimizer state). */
    readonly outer: OuterOptimizer | null,
    readonly key: string,
  ) {
    this.fresh = outer ? opt.getState() : null;
  }

  /** The optimizer state: the outer one's (rounds: `outer`, default the current), then the inner one's. */
  private optimizerState(outer = this.outer?.getState(), inner = this.opt.getState()): Float32Array {
    if (!outer) return inner;
    const out = new Float32Array(outer.length + inner.length);
    out.set(outer);
    out.set(inner, outer.length);
    return out;
  }

  private setOptimizerState(s: Float32Array): void {
    const cut = this.outer?.stateSize ?? 0;
    this.outer?.setState(s.subarray(0, cut));
    this.opt.setState(s.subarray(cut));
  }

  async encode(): Promise<Uint8Array<ArrayBuffer>> {
    return encodeCheckpoint({
      step: this.step,
      runKey: this.key,
      weights: await getFlatWeights(this.model),
      optimizer: this.optimizerState(),
    });
  }

  /** The state before the last committed step (see consensus.ts). */
  private previous: Snapshot | null = null;

  /** The current state, to go back to if the next step does not commit. */
  async snapshot(): Promise<Snapshot> {
    return { step: this.step, weights: await getFlatWeights(this.model), optimizer: this.optimizerState() };
  }

  /** Commits the `steps` steps (a round's inner steps; default 1) taken from `before`. */
  commit(before: Snapshot, steps = 1): void {
    this.step += steps;
    this.previous = before;
  }

  /** Goes back to `before` (a step that did not commit). */
  rollBack(before: Snapshot): void {
    setFlatWeights(this.model, before.weights);
    this.setOptimizerState(before.optimizer);
  }

  /** What this peer claims in an agreement: its state, then the one before its last step. */
  async held(): Promise<HeldState[]> {
    if (!this.agreed) return [];
    const shared = (c: Snapshot): HeldState => ({
      held: c.step + 1,
      bytes: encodeCheckpoint({
        ...c,
        runKey: this.key,
        optimizer: this.fresh ? this.optimizerState(c.optimizer.subarray(0, this.outer!.stateSize), this.fresh) : c.optimizer,
      }),
    });
    const out = [shared(await this.snapshot())];
    if (this.previous) out.push(shared(this.previous));
    return out;
  }

  /** Restores encoded state; a CheckpointError or another run's key is an Error saying which. */
  restore(bytes: Uint8Array): Error | null {
    const c = decodeCheckpoint(bytes);
    if (c instanceof Error) return c;
    if (c.runKey !== this.key) return new Error(`the checkpoint belongs to another run (${c.runKey})`);
    setFlatWeights(this.model, c.weights);
    this.setOptimizerState(c.optimizer);
    this.step = c.step;
    this.previous = null;
    return null;
  }
}
