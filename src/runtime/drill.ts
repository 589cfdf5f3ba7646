/**
 * The one place where the fault drills of the page API (`ringtrain.debug.poison`, `.slow`) reach a
 * run: the runtime keeps the drills in force (read at every step, so a drill can start or end
 * mid-run) and this turns them into the trainer's injected drill (training/drills.ts).
 */
import { NO_DRILL, poisonDrill, type Poison } from '../training/drills.ts';
import type { TrainControl, TrainerDeps } from '../training/trainer.ts';

export type { Poison };

/** This peer's pause/stop requests. */
export type Requests = Pick<TrainControl, 'pause' | 'stop'>;

/** The drills in force: a poisoned peer (null: honest) and a slow device (1: full speed). */
export interface Drills {
  poison: Poison | null;
  slowdown: number;
}

/** The trainer's fields for `ctl` (pause/stop) and the drills `drills()` names (none: null). */
export function controlDeps(ctl: Requests, drills: () => Drills): Pick<TrainerDeps, 'control' | 'drill'> {
  return {
    control: () => ctl,
    drill: () => {
      const { poison, slowdown } = drills();
      if (!poison && slowdown === 1) return null;
      return { ...(poison ? poisonDrill(poison) : NO_DRILL), slowdown };
    },
  };
}
