import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../core/random.ts';
import { encodeText, textWindows } from '../data/text.ts';
import { getFlatWeights, paramCount, setFlatWeights } from './flat.ts';
import { lossKindFor, type ModelSpec } from './models.ts';
import { createOptimizer } from './optimizer.ts';
import { computeGradients, evaluate, predict } from './step.ts';
import { generate } from './transformer.ts';
import { modelBuilder } from '../test/helpers.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const build = modelBuilder();

/** vocab 7, windows of 6 tokens (context 5), 2 blocks of width 8 with 2 heads. */
const TINY: ModelSpec = { kind: 'transformer', inputShape: [6], numClasses: 7, transformer: { layers: 2, dModel: 8, heads: 2 }, seed: 3 };

function tokens(count: number, window: number, vocab: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: count * window }, () => Math.floor(r() * vocab));
}

/** Logits [positions, vocab] of one window. */
async function logitsOf(m: tf.LayersModel, x: Float32Array): Promise<Float32Array> {
  const t = tf.tidy(() => m.apply(tf.tensor2d(x, [1, x.length]), { training: false }) as tf.Tensor);
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

describe('the transformer language model', () => {
  it('has the parameters of its shape, outputs [batch, context, vocab] and trains with the lm loss', () => {
    const m = build(TINY);
    const [d, v, ctx, L] = [8, 7, 5, 2];
    expect(paramCount(m)).toBe(v * d + ctx * d + L * (12 * d * d + 12 * d) + 2 * d + d * v + v);
    expect(m.outputs[0]!.shape).toEqual([null, ctx, v]);
    expect(lossKindFor(TINY)).toBe('lm');
    const shorter = build({ ...TINY, transformer: { ...TINY.transformer, context: 3 } });
    expect(shorter.outputs[0]!.shape).toEqual([null, 3, v]);
  });

  it('refuses heads that do not divide dModel and a context longer than the windows, saying what fits', () => {
    expect(() => build({ ...TINY, transformer: { dModel: 10, heads: 3 } })).toThrow(/dModel 10 is not a multiple of heads 3/);
    expect(() => build({ ...TINY, transformer: { context: 6 } })).toThrow(
      /context 6 does not fit the samples' windows of 6 tokens: give 1 to 5/,
    );
    expect(() => build({ ...TINY, inputShape: [28, 28, 1] })).toThrow(/inputShape must be \[window\]/);
  });

  it('matches central finite differences of the summed loss, LayerNorm gains and embeddings included', async () => {
    const m = build(TINY);
    const r = mulberry32(11);
    // Away from the zero vectors of the initial weights, so every path carries gradient.
    const w0 = Float32Array.from(await getFlatWeights(m), (w) => w + 0.2 * (2 * r() - 1));
    setFlatWeights(m, w0);
    const x = tokens(3, 6, 7, 5);
    const y = new Int32Array(3);
    const g = await computeGradients(m, x, y, 3, 'lm');
    const h = 1e-2;
    const lossAt = async (w: Float32Array): Promise<number> => {
      setFlatWeights(m, w);
      return (await computeGradients(m, x, y, 3, 'lm')).loss;
    };
    // Every 7th parameter: each weight of each layer is visited.
    for (let i = 0; i < w0.length; i += 7) {
      const plus = w0.slice();
      plus[i] = plus[i]! + h;
      const minus = w0.slice();
      minus[i] = minus[i]! - h;
      const fd = ((await lossAt(plus)) - (await lossAt(minus))) / (Math.fround(w0[i]! + h) - Math.fround(w0[i]! - h));
      expect(Math.abs(fd - g.grad[i]!)).toBeLessThan(3e-3 * Math.max(1, Math.abs(g.grad[i]!)));
    }
    // nats per token summed over 3 samples: about 3 ln 7 for a model that knows nothing.
    expect(g.loss / 3).toBeGreaterThan(1);
  });

  it('is causal: changing token t + 1 never changes the outputs at positions up to t, and changes the later ones', async () => {
    const m = build(TINY);
    const r = mulberry32(2);
    setFlatWeights(
      m,
      Float32Array.from(await getFlatWeights(m), (w) => w + 0.3 * (2 * r() - 1)),
    );
    const x = tokens(1, 6, 7, 9);
    const base = await logitsOf(m, x);
    for (let t = 0; t < 5; t++) {
      const changed = x.slice();
      changed[t + 1] = (changed[t + 1]! + 3) % 7;
      const out = await logitsOf(m, changed);
      // Positions <= t: exactly the same numbers (the masked weights are exactly 0).
      expect(Array.from(out.subarray(0, (t + 1) * 7))).toEqual(Array.from(base.subarray(0, (t + 1) * 7)));
      // Position t + 1 reads the changed token (the last input, x[5], is only ever a target).
      if (t + 1 < 5)
        expect(Math.max(...out.subarray((t + 1) * 7, (t + 2) * 7).map((v, k) => Math.abs(v - base[(t + 1) * 7 + k]!)))).toBeGreaterThan(
          1e-4,
        );
    }
  });

  it('learns a text: Adam drives the loss and the next-character accuracy of a repeated phrase to near perfect', async () => {
    const text = 'the whale! '.repeat(40);
    const ds = textWindows(encodeText(text), 9);
    const spec: ModelSpec = {
      kind: 'transformer',
      inputShape: [9],
      numClasses: ds.numClasses,
      transformer: { layers: 1, dModel: 16, heads: 2 },
      seed: 1,
    };
    const m = build(spec);
    const opt = createOptimizer({ kind: 'adam', lr: 0.02 }, paramCount(m));
    const before = await evaluate(m, ds.x, ds.y, { lossKind: 'lm' });
    for (let step = 0; step < 60; step++) {
      const g = await computeGradients(m, ds.x, ds.y, ds.n, 'lm');
      await opt.apply(
        m,
        g.grad.map((v) => v / ds.n),
      );
    }
    const after = await evaluate(m, ds.x, ds.y, { lossKind: 'lm' });
    expect(before.lossSum / before.count).toBeGreaterThan(3); // about ln 96
    expect(after.lossSum / after.count).toBeLessThan(0.3);
    expect(after.correct / after.count).toBeGreaterThan(0.9);
    // Greedy generation continues the phrase.
    const prompt = Array.from(encodeText('the wh'));
    const next = await generate(m, prompt, 5, { temperature: 0 });
    expect(String.fromCharCode(...next.map((t) => (t === 0 ? 10 : t + 31)))).toBe('ale! ');
  }, 90_000);

  it('generates the same text from the same seed, only tokens of the vocabulary, and refuses an empty prompt', async () => {
    const m = build(TINY);
    const a = await generate(m, [1, 2], 12, { seed: 4 });
    expect(a).toHaveLength(12);
    expect(a.every((t) => Number.isInteger(t) && t >= 0 && t < 7)).toBe(true);
    expect(await generate(m, [1, 2], 12, { seed: 4 })).toEqual(a);
    // Prompts longer than the context keep only its last tokens.
    expect(await generate(m, [3, 3, 3, 3, 3, 3, 3, 1, 2], 3, { seed: 4 })).toHaveLength(3);
    await expect(generate(m, [], 3)).rejects.toThrow(/at least one token/);
  });

  it('evaluate counts the share of next tokens right per sample, and predict refuses a language model', async () => {
    const m = build(TINY);
    const x = tokens(4, 6, 7, 1);
    const e = await evaluate(m, x, new Int32Array(4), { lossKind: 'lm' });
    expect(e.count).toBe(4);
    expect(e.correct).toBeGreaterThanOrEqual(0);
    expect(e.correct).toBeLessThanOrEqual(4);
    // The loss evaluate sums is the one the gradient descends.
    expect(e.lossSum).toBeCloseTo((await computeGradients(m, x, new Int32Array(4), 4, 'lm')).loss, 4);
    expect(e.lossSum / 4).toBeGreaterThan(1);
    await expect(predict(m, x)).rejects.toThrow(/language model/);
  });
});
