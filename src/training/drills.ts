/**
 * Fault drills: test-only behaviours injected into the loop through {@link Drill} (TrainerDeps.drill),
 * never as branches of the production path. The loop runs every step's contribution through the
 * drill in force, and the guard skips this peer's own check where the drill says so.
 */
import type { Contribution } from '../ml/exchange/contribution.ts';

export type Poison = 'nan' | 'huge' | 'flip';

/** A fault drill: alters this peer's contribution before it enters the exchange, or slows its compute (tests and the drill page API only). */
export interface Drill {
  alter(c: Contribution): Contribution;
  /** false: this peer does not check its own contribution */
  selfCheck: boolean;
  /** Every gradient computation takes this many times as long (1: as it is): a slow device. */
  slowdown: number;
}

/** No drill: the contribution as it is, checked, at full speed. */
export const NO_DRILL: Drill = { alter: (c) => c, selfCheck: true, slowdown: 1 };

/**
 * A poisoned peer: it sends NaN, gradients 1e6 times too large, or (`flip`) its gradient times
 * -100 (a byzantine peer pushing the model uphill), and does not check itself.
 */
export function poisonDrill(kind: Poison): Drill {
  return {
    selfCheck: false,
    slowdown: 1,
    alter: (c) => {
      const bad = c.copy();
      const grad = bad.body;
      if (kind === 'nan') bad.data[0] = Number.NaN;
      else for (let i = 0; i < grad.length; i++) grad[i]! *= kind === 'huge' ? 1e6 : -100;
      return bad;
    },
  };
}

/** A straggler: every gradient computation of this peer waits (factor − 1) times its own duration more. */
export function slowDrill(factor: number): Drill {
  return { ...NO_DRILL, slowdown: factor };
}
