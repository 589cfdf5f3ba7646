/**
 * The robust-aggregation stage (rules/rule.ts): the step's sum becomes an all-gather (signed by
 * the group, ml/algorithms/signed.ts) and a coordinate-wise rule (rules/*.ts) over the peers' mean
 * gradients. Contributions left out are reported as the guard's are.
 */
import { robustSum, type BoundRule } from '../rules/rule.ts';
import { withSum, type Exchange, type Stage, type StepScope, type WireAdditions } from '../stage.ts';

export class RobustStage implements Stage {
  readonly adds: WireAdditions = { tail: [], rounds: 0, collective: 'allGather' };

  constructor(
    /** The rule's name (the registry's). */
    readonly name: string,
    private readonly rule: BoundRule,
  ) {}

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
