/**
 * The robust-aggregation stage (ml/algorithms/robust.ts): the step's sum becomes an all-gather
 * (signed by the group, ml/algorithms/signed.ts) and a coordinate-wise rule over the peers' mean
 * gradients. Contributions left out are reported as the guard's are.
 */
import { robustSum, type RobustRule } from '../../algorithms/robust.ts';
import { withSum, type Exchange, type Stage, type StepScope, type WireAdditions } from '../stage.ts';

export class RobustStage implements Stage {
  readonly name: string;
  readonly adds: WireAdditions = { tail: [], rounds: 0, collective: 'allGather' };

  constructor(private readonly rule: RobustRule) {
    this.name = rule.rule;
  }

  wrap(inner: Exchange, scope: StepScope): Exchange {
    return withSum(
      inner,
      robustSum(
        (c) => inner.allGather(c),
        this.rule,
        (ranks) => scope.reject(ranks, false),
      ),
    );
  }
}
