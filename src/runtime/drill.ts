/**
 * The one place where the poisoned-peer drill (`ringtrain.debug.poison`) reaches a run: the
 * runtime keeps the kind in force (read at every sum, so a drill can start or end mid-run) and
 * this turns it into what the trainer reads.
 *
 * When training/drills.ts lands (`TrainerDeps.drill?: () => Drill | null`, `poisonDrill(kind)`),
 * only this function changes: return `{ control: () => ctl, drill: () => { const p = poison();
 * return p ? poisonDrill(p) : null; } }` typed `Pick<TrainerDeps, 'control' | 'drill'>`.
 */
import type { Poison, TrainControl, TrainerDeps } from '../training/trainer.ts';

export type { Poison };

/** This peer's pause/stop requests, without the drill. */
export type Requests = Pick<TrainControl, 'pause' | 'stop'>;

/** The trainer's fields for `ctl` (pause/stop) and the drill `poison()` names (null: honest). */
export function controlDeps(ctl: Requests, poison: () => Poison | null): Pick<TrainerDeps, 'control'> {
  return {
    control: () => {
      const p = poison();
      return p ? { ...ctl, poison: p } : ctl;
    },
  };
}
