/**
 * The secure-masks stage (ml/algorithms/secure.ts): fixed point plus pairwise AES-CTR masks,
 * added modulo 2^32 on a u32 wire, with a `broken` count (peers that held NaN/Inf) appended to the
 * exact tail. Every masked sum of a step (PowerSGD makes two) draws its own masks.
 */
import { RingError } from '../../../core/errors.ts';
import { maskedSum } from '../../algorithms/secure.ts';
import { withSum, type Exchange, type Stage, type StepScope, type WireAdditions } from '../stage.ts';

/** Masked sums a step may make (each draws masks numbered step · 16 + call). */
const CALLS_PER_STEP = 16;

export class SecureStage implements Stage {
  readonly name = 'secure';
  readonly adds: WireAdditions = { tail: ['broken'], wire: 'u32', rounds: 0 };

  /** `scale`: the fixed point's S (absent: SECURE_SCALE). */
  constructor(private readonly scale?: number) {}

  wrap(inner: Exchange, scope: StepScope): Exchange {
    // A mask is never reused: a new number for every masked sum of the step.
    let call = 0;
    return withSum(inner, async (c) => {
      if (!scope.maskKeys)
        throw new RingError('protocol', "secure aggregation needs the peers' public keys, which this group does not have");
      const n = call++;
      return maskedSum(inner.sum, scope.rank, await scope.maskKeys(), scope.step * CALLS_PER_STEP + n, this.scale)(c);
    });
  }
}
