/**
 * Learning-rate schedules: the factor of the optimizer's lr at a global step, a pure function of
 * the step (the agreed one), so every peer uses the same lr and a run restored from a checkpoint
 * goes on where it stopped. A linear warm-up over `warmupSteps` (lr · step / warmupSteps), then
 * constant, cosine decay to `minFactor` at the run's last step, or step decay by `gamma` every
 * `every` steps.
 */
import type { ScheduleConfig, ScheduleName } from '../protocol/catalogs.ts';

type After<K extends ScheduleName> = (s: Extract<ScheduleConfig, { kind: K }>, after: number, span: number) => number;

/** Each schedule's factor `after` steps past the warm-up, of `span` such steps in the run: one without does not compile. */
const AFTER_WARMUP: { [K in ScheduleName]: After<K> } = {
  constant: () => 1,
  cosine: (s, after, span) => {
    const min = s.minFactor ?? 0;
    return min + (1 - min) * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, after / span)));
  },
  step: (s, after) => s.gamma ** Math.floor(after / s.every),
};

/** The factor of the lr at global step `step` (1 = the first) of a run of `steps`; no schedule: 1. */
export function lrFactor(s: ScheduleConfig | undefined, step: number, steps: number): number {
  if (!s) return 1;
  const warm = s.warmupSteps ?? 0;
  if (step <= warm) return step / warm;
  return (AFTER_WARMUP[s.kind] as After<ScheduleName>)(s as never, step - warm, Math.max(1, steps - warm));
}
