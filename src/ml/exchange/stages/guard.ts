/**
 * The guard stage (ml/algorithms/guard.ts): NaN/Inf and over-norm contributions are left out by
 * every peer alike. Adds nothing to the wire on a good step; a bad one costs a round of N
 * broadcasts (or, under secure aggregation, where no peer can be named, ends the run).
 */
import { guardedSum } from '../../algorithms/guard.ts';
import { withSum, type Exchange, type Stage, type StepScope, type WireAdditions } from '../stage.ts';

export class GuardStage implements Stage {
  readonly name = 'guard';
  readonly adds: WireAdditions = { tail: [], rounds: 0 };

  constructor(
    /** Largest norm of a contribution's mean gradient (Infinity: finiteness only). */
    private readonly maxNorm: number,
    /** False when contributions are private (secure aggregation): a bad sum cannot be traced. */
    private readonly attribute: boolean,
  ) {}

  wrap(inner: Exchange, scope: StepScope): Exchange {
    return withSum(
      inner,
      guardedSum({
        sum: inner.sum,
        attribute: this.attribute,
        broadcast: (root, data) => scope.broadcast(root, data),
        rank: scope.rank,
        size: scope.size,
        maxNorm: this.maxNorm,
        selfCheck: scope.selfCheck,
        onReject: (ranks, self) => scope.reject(ranks, self),
      }),
    );
  }
}
