/**
 * Rounds of local steps (FedAvg, DiLoCo: ml/algorithms/rounds.ts). A round changes the weights
 * before its sum, so a round that fails is rolled back and runs again in the next view from the
 * agreed state. DiLoCo's `localSteps: 'auto'`: the first round of each view is a probe of one
 * inner step; from its timings the group picks H so that communication takes about
 * {@link AUTO_COMM_SHARE} of a round (a run keeps at least {@link AUTO_MIN_ROUNDS} rounds).
 */
import { localRound } from '../../ml/algorithms/rounds.ts';
import type { Batch, StepResult } from '../../ml/algorithms/distributed.ts';
import type { GradientResult } from '../../ml/step.ts';
import type { SumOf } from '../../ml/exchange/stage.ts';
import type { Run } from '../run.ts';
import type { Snapshot } from '../state.ts';

/** `localSteps: 'auto'`: the share of a round's time that communication may take. */
export const AUTO_COMM_SHARE = 0.1;
/** `localSteps: 'auto'`: the most inner steps a round takes. */
export const AUTO_MAX_LOCAL_STEPS = 500;
/** `localSteps: 'auto'`: a run of `steps` has rounds of at most steps / AUTO_MIN_ROUNDS (a short run still takes this many outer steps). */
export const AUTO_MIN_ROUNDS = 10;

/**
 * H for a round whose inner steps take `computeMs` each (the slowest peer's) and whose sum takes
 * `commMs`: the fewest steps for which communication is at most AUTO_COMM_SHARE of the round,
 * within AUTO_MAX_LOCAL_STEPS and a tenth of a run of `steps`.
 */
export function autoLocalSteps(computeMs: number, commMs: number, steps: number): number {
  const h = Math.ceil(((1 - AUTO_COMM_SHARE) * commMs) / (AUTO_COMM_SHARE * Math.max(computeMs, 1e-3)));
  return Math.max(1, Math.min(h, AUTO_MAX_LOCAL_STEPS, Math.floor(steps / AUTO_MIN_ROUNDS)));
}

/** One round; returns its result, this peer's samples, and the global steps it commits. */
export async function round(
  run: Run,
  before: Snapshot,
  sum: (step: number) => SumOf,
  gradients: (b: Batch) => Promise<GradientResult>,
): Promise<{ r: StepResult; local: number; steps: number }> {
  const { cfg, st } = run;
  const fedavg = cfg.algorithm === 'fedavg';
  // FedAvg counts rounds, of localSteps batches of `batch` per peer; DiLoCo counts global batches.
  const h = fedavg ? run.localSteps! : Math.min(run.localSteps ?? 1, cfg.steps - st.step);
  let local = 0;
  function* batches() {
    for (let k = 1; k <= h; k++) {
      const b = fedavg ? run.sampler!.next(cfg.batch) : run.batchOf(st.step + k);
      local += b.count;
      // DiLoCo's schedule runs over inner steps; FedAvg's over rounds.
      run.scheduleLr(fedavg ? st.step + 1 : st.step + k);
      yield b;
    }
  }
  try {
    const r = await localRound(run.model, st.opt, st.outer!, run.lossKind, sum(st.step + h), batches(), gradients);
    return { r, local, steps: fedavg ? 1 : h };
  } catch (e) {
    st.rollBack(before);
    throw e;
  }
}

/** DiLoCo `auto`, after a view's probe round: every peer's timings summed, and the same H chosen by all. */
export async function chooseLocalSteps(run: Run, r: StepResult): Promise<void> {
  const { g, deps, st } = run;
  const t = r.timings;
  const mine = new Float32Array(2 * g.size);
  mine[g.rank] = t.computeMs + t.readbackMs + t.applyMs;
  mine[g.size + g.rank] = t.allreduceMs;
  const all = await run.sum(mine);
  // The slowest peer's compute gates every round; the quickest peer's sum waited least for it.
  const computeMs = Math.max(...all.subarray(0, g.size));
  const commMs = Math.min(...all.subarray(g.size));
  run.localSteps = autoLocalSteps(computeMs, commMs, run.cfg.steps);
  deps.emit({ type: 'rounds', step: st.step, localSteps: run.localSteps, computeMs, commMs });
}
