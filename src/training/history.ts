/**
 * Checks on a peer's step history, as its training events tell it.
 */
import type { TrainEvent } from './trainer.ts';

/**
 * Where a peer's step history goes wrong: every step (or round of `span` steps) it ran must
 * start from the state it held (its own, or one it took over in a sync), and a sync goes back at
 * most one step or round (one this peer committed but most of the group did not is the aborted
 * one, run again by all). Empty = no step lost beyond an aborted one, none applied twice.
 */
export function stepProblems(events: readonly TrainEvent[]): string[] {
  const out: string[] = [];
  let at = 0;
  let last = 1;
  for (const e of events) {
    if (e.type === 'sync') {
      if (e.step < at - last) out.push(`sync back from ${at} to ${e.step}`);
      at = e.step;
    } else if (e.type === 'step') {
      if (e.step !== at + e.span) out.push(`step ${e.step} (of ${e.span}) after ${at}`);
      at = e.step;
      last = e.span;
    }
  }
  return out;
}
