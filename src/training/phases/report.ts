/**
 * The phases that look at the model without training it: evaluation on the peers' slices of the
 * test set, the weight check (and resync), and checkpoints.
 */
import { decodeText, encodeText, TEXT_VOCABULARY } from '../../data/text.ts';
import { getFlatWeights, checksumHex, setFlatWeights } from '../../ml/flat.ts';
import { evaluate as evaluateModel } from '../../ml/step.ts';
import { generate } from '../../ml/transformer.ts';
import { adoptChosen, gatherClaims } from '../consensus.ts';
import type { Run } from '../run.ts';
import { partOf, sliceOf } from '../sampler.ts';

/** What a language model writes after each evaluation: this many characters after {@link SAMPLE_PROMPT}, drawn with the run's seed. */
export const SAMPLE_CHARS = 120;
export const SAMPLE_PROMPT = 'The whale ';
/** Windows a language model's validation scores, over all peers (of Moby-Dick's 850: 32 768 characters). */
export const LM_EVAL_WINDOWS = 256;

/**
 * Evaluates the optimizer's averaged weights where it keeps them (the iterate stays for training).
 * A language model also reports bits per character and a sample of its text, from the same prompt
 * and seed each time, so the samples show what training changed.
 */
export async function evaluate(run: Run): Promise<void> {
  const { st, model, shard, g } = run;
  const avg = st.opt.averagedWeights();
  const iterate = avg ? await getFlatWeights(model) : null;
  if (avg) setFlatWeights(model, avg);
  // Each peer scores its slice of the test set (the whole of its shard on held data); a language
  // model's validation reads the first LM_EVAL_WINDOWS windows, as GPT training scores a few batches.
  const lm = run.lossKind === 'lm';
  const n = lm ? Math.min(shard.test.n, run.served ? LM_EVAL_WINDOWS : Math.ceil(LM_EVAL_WINDOWS / g.size)) : shard.test.n;
  const part = run.served ? partOf(run.evenSplit(n), g.rank) : { from: 0, count: n };
  const test = sliceOf(shard.test, part.from, part.count);
  const r = await evaluateModel(model, test.x, test.y, { lossKind: run.lossKind }).finally(() => iterate && setFlatWeights(model, iterate));
  const s = await run.sum(new Float32Array([r.correct, r.count, r.lossSum]));
  run.last = { accuracy: s[0]! / s[1]!, loss: s[2]! / s[1]! };
  run.deps.emit({
    type: 'eval',
    step: st.step,
    accuracy: run.last.accuracy,
    loss: run.last.loss,
    count: s[1]!,
    ...(lm ? { bitsPerChar: run.last.loss / Math.LN2 } : {}),
  });
  if (lm) {
    const vocab = shard.train.classNames ?? TEXT_VOCABULARY;
    const written = await generate(model, Array.from(encodeText(SAMPLE_PROMPT, vocab)), SAMPLE_CHARS, { seed: run.cfg.seed });
    run.deps.emit({ type: 'sample', step: st.step, prompt: SAMPLE_PROMPT, text: decodeText(written, vocab) });
  }
}

/**
 * Checks that every peer holds the same weights. Where some do not, the weights most peers hold
 * (among those at least two hold) are sent by one of their holders and checked against their
 * digest on arrival, so neither one peer nor the sender can impose others (consensus.ts).
 * Returns the checksum.
 */
export async function verify(run: Run): Promise<string> {
  const { model, g, st } = run;
  const w = await getFlatWeights(model);
  const mine = new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
  const { chosen, mine: held } = await gatherClaims(run.allGather, [{ held: 1, bytes: mine }]);
  const resynced = chosen!.holders.length < g.size;
  if (resynced) {
    const bytes = await adoptChosen(g, chosen!, held === 0 ? mine : null, st.step);
    if (held !== 0) setFlatWeights(model, new Float32Array(bytes.slice().buffer));
  }
  const ref = checksumHex(await getFlatWeights(model));
  run.deps.emit({ type: 'checksum', step: st.step, checksum: ref, resynced });
  return ref;
}

/** Rank 0 stores a checkpoint, in the background: the next step does not wait for the upload. */
export async function checkpoint(run: Run): Promise<void> {
  const { deps } = run;
  if (!deps.saveCheckpoint || run.g.rank !== 0) return;
  const bytes = await run.st.encode();
  const step = run.st.step;
  deps.saveCheckpoint(bytes).then(
    () => deps.emit({ type: 'checkpoint', step, bytes: bytes.length }),
    (e: unknown) => deps.emit({ type: 'checkpoint', step, bytes: bytes.length, error: (e as Error).message }),
  );
}
