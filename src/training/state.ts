/**
 * What a peer holds of a run: the model, its optimizer and the last committed step, what it claims
 * in an agreement (consensus.ts), and what a checkpoint or a newcomer receives.
 */
import type * as tf from '@tensorflow/tfjs';
import { getFlatWeights, setFlatWeights } from '../ml/flat.ts';
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
