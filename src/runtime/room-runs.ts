/**
 * The room's runs as this peer takes part: a run any peer starts (through the coordinator) is
 * trained here unless another is still going, and its outcome and results go to the subscribers.
 */
import type { Job } from '../protocol/index.ts';
import type { RingSession } from '../net/session.ts';
import type { PeerRuntime } from './runtime.ts';

/** Trains run `id` (started by `by`) with the room, then tells its outcome and shows its results. */
export async function runJob(rt: PeerRuntime, s: RingSession, id: number, by: string, job: Job): Promise<void> {
  if (rt.run) {
    if (rt.run.id !== id) rt.emit({ type: 'run-ignored', id, by, current: rt.run.id });
    return;
  }
  rt.run = { id, job };
  rt.resetStep();
  rt.emit({ type: 'run-started', id, by, job, self: by === s.peerId });
  rt.setPhase('training');
  try {
    if (job.kind === 'train') {
      const result = await rt.train(job.config);
      rt.setPhase(result.stopped ? 'stopped' : 'done');
      rt.emit({ type: 'run-finished', id, outcome: { kind: 'train', result } });
    } else {
      const result = await rt.trainTrees(job.config);
      rt.setPhase('done');
      rt.emit({ type: 'run-finished', id, outcome: { kind: 'trees', result, model: job.config.model } });
    }
    await rt.showResults().catch((e: unknown) => rt.emit({ type: 'error', what: 'results', message: (e as Error).message }));
  } catch (e) {
    rt.setPhase('failed');
    rt.emit({ type: 'run-failed', id, message: (e as Error).message });
  } finally {
    rt.run = null;
    s.finishRun(id);
    rt.setPhase(rt.phase);
  }
}
