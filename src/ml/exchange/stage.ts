/**
 * A stage of the gradient exchange: something that wraps the collectives below it (a guard, a
 * codec, masks, a robust rule, the control flags) and declares what it adds to the wire. The
 * builder (builder.ts) stacks the stages the config asks for over the group's collectives.
 */
import type { Wire, WireSpec } from '../../protocol/wire.ts';
import { Contribution, type TailSlot } from './contribution.ts';

/** A sum over every peer of the view; every peer gets the same result. */
export type SumOf = (c: Contribution) => Promise<Contribution>;

/** The collectives a stage wraps and offers. */
export interface Exchange {
  sum: SumOf;
  /** Every rank's contribution, in rank order. */
  allGather(c: Contribution): Promise<Contribution[]>;
}

/** What a stage adds to what crosses the wire. */
export interface WireAdditions {
  /** Exact values it appends to the tail of every vector it sends. */
  tail: readonly TailSlot[];
  /** The values' type it puts on the wire (absent: it leaves the wire as it is). */
  wire?: Wire;
  /** Collective rounds it adds to a step (PowerSGD: its second sum). */
  rounds: number;
  /** The collective a step's sum becomes: an all-gather for robust rules (absent: it stays a sum). */
  collective?: 'allGather';
}

/** What a stage may use of the step it runs in and of the peers of its view. */
export interface StepScope {
  /** The step being made (the committed one + 1). */
  step: number;
  rank: number;
  size: number;
  /** Ring broadcast from `root` (bytes to every peer). */
  broadcast(root: number, data: Uint8Array | null): Promise<Uint8Array>;
  /** Secure aggregation: the key shared with each rank (null at this peer's own). */
  maskKeys?(): Promise<(CryptoKey | null)[]>;
  /** False: this peer does not check its own contribution (a fault drill). */
  selfCheck: boolean;
  /** The ranks whose contribution this step's sum left out; `self`: this peer's own. */
  reject(ranks: number[], self: boolean): void;
}

export interface Stage {
  /** Its registry name: `guard`, `secure`, a codec's or a rule's name, `control`. */
  readonly name: string;
  readonly adds: WireAdditions;
  /** This stage around `inner`, for one step. */
  wrap(inner: Exchange, scope: StepScope): Exchange;
}

/** The raw collectives of a group (vectors in, vectors out), as the Group interface offers them. */
export interface RawCollectives {
  sum(v: Float32Array, wire?: WireSpec): Promise<Float32Array>;
  allGather(v: Float32Array): Promise<Float32Array[]>;
}

/**
 * Contributions over raw collectives: the vector goes as it is (no copy here), with a wire spec
 * only when a stage set a wire (the exact part: the whole tail), as before the stages existed.
 */
export function overRaw(raw: () => RawCollectives): Exchange {
  return {
    sum: async (c) => c.like(await raw().sum(c.data, c.wire ? { wire: c.wire, exact: c.tail.length } : undefined)),
    allGather: async (c) => (await raw().allGather(c.data)).map((p) => (p.length === c.length ? c.like(p) : Contribution.over(p))),
  };
}

/** `inner` with only its sum replaced. */
export function withSum(inner: Exchange, sum: SumOf): Exchange {
  return { sum, allGather: (c) => inner.allGather(c) };
}
