/**
 * The training loop every peer of a room runs with the same config: loads its shard, builds the
 * model from the shared seed, then steps (synchronous SGD, full-batch GD, or rounds of local
 * steps: federated averaging and DiLoCo)
 * with the ring doing the sums. It reports typed events, evaluates on the peers' slices of the
 * test set, and checks that all weights are identical (resynchronising if not).
 *
 * Elastic and transactional: a step is numbered globally, and weights and optimizer state change
 * only once the step's allreduce has completed. When a collective fails (a peer died, the view
 * changed, a timeout), the step is abandoned, the loop waits for the next view, re-cuts its shard
 * for its new rank, and the group agrees on the corroborated state with most steps (consensus.ts: a
 * newcomer, a peer whose last allreduce did not complete, or a lone peer that completed a step the
 * others did not, takes it over by broadcast, checked against its digest). Then the next step
 * number runs: no step is lost beyond the aborted one, none is applied twice. When no peer has any
 * state yet, the newest stored checkpoint of the same run is restored.
 */
import { RingError } from '../core/errors.ts';
import { setFlatWeights } from '../ml/flat.ts';
import { createModel } from '../ml/models.ts';
import { parseTrainConfig, type TrainConfig } from '../protocol/run-config.ts';
import { agree } from './phases/agree.ts';
import { chooseAutoCodec } from './phases/codec.ts';
import { checkpoint, evaluate, verify } from './phases/report.ts';
import { balanceDue, holdWhilePaused, rebalance } from './phases/room.ts';
import { step } from './phases/step.ts';
import { loadShards, modelSpec, Run } from './run.ts';
import { MAX_RECOVERIES, type TrainerDeps, type TrainResult } from './types.ts';

export * from './types.ts';
export { servedData } from './run.ts';
export { poisonDrill, slowDrill, type Drill, type Poison } from './drills.ts';

/** Failures a new view can cure; anything else ends the run. */
export function recoverable(e: unknown): e is RingError {
  return e instanceof RingError && e.code !== 'aborted';
}

/** Whether a multiple of `every` (a config's period, 0 or absent: never) lies in (from, to]: a round may take many steps at once. */
const due = (every: number | undefined, from: number, to: number): boolean => !!every && Math.floor(to / every) > Math.floor(from / every);

/** The steps of one view, until the run ends, stops or the view fails. */
async function stepsOfView(run: Run): Promise<void> {
  const { cfg, st, deps } = run;
  while (st.step < cfg.steps && !run.stopped) {
    if (deps.signal?.aborted) throw deps.signal.reason;
    const from = st.step;
    await chooseAutoCodec(run, await step(run));
    if (st.step === cfg.steps) break;
    await holdWhilePaused(run);
    if (run.room.stop > 0) {
      deps.emit({ type: 'control', step: st.step, state: 'stopping' });
      run.stopped = true;
      break;
    }
    if (due(cfg.evalEvery, from, st.step)) await evaluate(run);
    if (due(cfg.checksumEvery, from, st.step)) await verify(run);
    if (due(cfg.checkpointEvery, from, st.step)) await checkpoint(run);
    if (balanceDue(run)) await rebalance(run);
  }
}

/** The end of a run: the last evaluation and checkpoint, the averaged weights where kept, the checked result. */
async function finish(run: Run): Promise<TrainResult> {
  await evaluate(run);
  if (run.cfg.checkpointEvery) await checkpoint(run);
  // The trained model is the averaged one where the optimizer averages.
  const final = run.st.opt.averagedWeights();
  if (final) setFlatWeights(run.model, final);
  return run.result(await verify(run));
}

/** Runs the whole training on this peer. Rejects with the first unrecoverable RingError / MlError / DataError. */
export async function train(config: TrainConfig, deps: TrainerDeps): Promise<TrainResult> {
  // The one door: whatever the caller built, the loop runs only a config the schema accepts.
  const cfg = parseTrainConfig(config);
  const g = await deps.group();
  const shard = (await loadShards(cfg, deps, g))!;
  const spec = modelSpec(cfg, shard);
  deps.emit({ type: 'backend', report: await deps.selectBackend(spec) });
  const model = createModel(spec);
  try {
    const run = new Run(cfg, deps, g, shard, model, spec);
    /** Ends the run with `e`, leaving the model of the last committed step to the caller. */
    const fail = async (e: unknown): Promise<never> => {
      if (deps.keepFailed && run.st.agreed) deps.keepFailed(await run.result());
      throw e;
    };
    for (;;) {
      try {
        run.shard = (await loadShards(cfg, deps, run.g, run.shard)) ?? run.shard;
        await agree(run);
        // With periodic evaluation, also measure the starting point: decided by the agreed step
        // alone, so a newcomer and the others call the same collectives.
        if (cfg.evalEvery && run.st.step === 0) await evaluate(run);
        await stepsOfView(run);
        return await finish(run);
      } catch (e) {
        if (run.st.step > run.stepAtFault) run.failedInARow = 0;
        run.stepAtFault = run.st.step;
        if (!recoverable(e) || ++run.failedInARow > MAX_RECOVERIES) return fail(e);
        run.recoveries++;
        deps.emit({ type: 'fault', step: run.st.step, epoch: run.g.epoch, reason: e.message });
        run.g = await deps.group(run.g.epoch).catch(fail);
      }
    }
  } finally {
    model.dispose();
  }
}
