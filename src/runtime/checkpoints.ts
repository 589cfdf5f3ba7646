/**
 * A room's checkpoint as a file: the newest one to download, and a downloaded one to continue its
 * run from (its config is in the checkpoint's run key; the setup's epochs say how far more).
 */
import { decodeCheckpoint } from '../protocol/checkpoint.ts';
import { parseTrainConfig, type Job } from '../protocol/index.ts';
import { jobFromFields, type SetupFields } from '../training/job.ts';

/** A checkpoint to save as a file. */
export interface CheckpointFile {
  name: string;
  step: number;
  bytes: Uint8Array<ArrayBuffer>;
}

/** The room's newest checkpoint (`bytes`, null when none) as the file `ringtrain-<room>-step<step>.rtck`. */
export function checkpointFile(room: string, bytes: Uint8Array | null): CheckpointFile {
  const c = bytes && decodeCheckpoint(bytes);
  if (!bytes || !c || c instanceof Error) throw new Error('this room has no checkpoint yet: a run saves one every few steps');
  return { name: `ringtrain-${room}-step${c.step}.rtck`, step: c.step, bytes: Uint8Array.from(bytes) };
}

/** The run a checkpoint continues: its job, from the checkpoint's step to `to`. */
export interface Continuation {
  job: Job & { kind: 'train' };
  model: string;
  dataset: string;
  from: number;
  to: number;
}

/**
 * The run that checkpoint file `name` (`bytes`) belongs to, for `fields`' number of epochs more
 * (and its schedule of evaluations and checkpoints). `localSamples`: the size of the data loaded
 * in this peer, if any.
 */
export function continuation(name: string, bytes: Uint8Array, fields: SetupFields, localSamples: number | undefined): Continuation {
  const c = decodeCheckpoint(bytes);
  if (c instanceof Error) throw new Error(`${name}: ${c.message}`);
  let key: unknown;
  try {
    key = JSON.parse(c.runKey);
  } catch {
    throw new Error(`${name}: its run key is not JSON; pick a checkpoint that RingTrain wrote`);
  }
  const run = parseTrainConfig({ ...(key as object), steps: 1 });
  const more = jobFromFields(
    { ...fields, dataset: run.dataset, algorithm: run.algorithm, batch: String(run.batch), model: 'softmax', optimizer: 'sgd' },
    localSamples,
  );
  if (more.kind !== 'train') throw new Error('the form names a tree model; a checkpoint continues a neural or SVM run');
  const steps = c.step + more.config.steps;
  const config = parseTrainConfig({ ...run, steps, evalEvery: more.config.evalEvery, checkpointEvery: more.config.checkpointEvery });
  return { job: { kind: 'train', config }, model: run.model, dataset: run.dataset, from: c.step, to: steps };
}
