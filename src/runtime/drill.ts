/**
 * The one place where the poisoned-peer drill (`ringtrain.debug.poison`) reaches a run: the
 * runtime keeps the kind in force (read at every step, so a drill can start or end mid-run) and
 * this turns it into the trainer's injected drill (training/drills.ts).
 */
import { poisonDrill, type Poison } from '../training/drills.ts';
import type { TrainControl, TrainerDeps } from '../training/trainer.ts';

export type { Poison };

/** This peer's pause/stop requests. */
export type Requests = Pick<TrainControl, 'pause' | 'stop'>;

/** The trainer's fields for `ctl` (pause/stop) and the drill `poison()` names (null: honest). */
export function controlDeps(ctl: Requests, poison: () => Poison | null): Pick<TrainerDeps, 'control' | 'drill'> {
  return {
    control: () => ctl,
    drill: () => {
      const p = poison();
      return p ? poisonDrill(p) : null;
    },
  };
}
