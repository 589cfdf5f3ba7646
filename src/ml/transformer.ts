import * as tf from '@tensorflow/tfjs';
import { mulberry32 } from '../core/random.ts';
import { MlError } from './errors.ts';

/**
 * A small decoder-only transformer language model (GPT-style, pre-LayerNorm), written with tfjs
 * ops as three custom layers so that it is a `tf.Sequential` like the other models: flat.ts,
 * the optimizers, checkpoints and the ring see nothing new.
 *
 * A sample is a window of `context + 1` token ids stored as floats (the text datasets of
 * data/builtin.ts); the model reads the first `context` of them and outputs logits
 * [batch, context, vocab], the prediction at position t of token t + 1. The loss ('lm' in
 * step.ts) is the cross-entropy against the window shifted by one, averaged over the positions, so
 * one sample's loss is nats per token and the trainer's sums and means keep their meaning.
 *
 * Weights start as the other models' do (models.ts initialWeights: Glorot-uniform kernels, zero
 * vectors), so a LayerNorm's gain is stored as an offset: the layer scales by (1 + g), and g = 0
 * is the usual gain of 1. Weight decay then pulls a gain toward 1, not 0.
 */

/** The shape of a transformer (the config's `transformer`, with defaults filled). */
export interface TransformerShape {
  /** Transformer blocks. */
  layers: number;
  /** Width of the residual stream. */
  dModel: number;
  /** Attention heads (dModel must be a multiple). */
  heads: number;
  /** Positions the model reads (<= the sample's window - 1). */
  context: number;
}

const EPS = 1e-5;
const zeros = (): ReturnType<typeof tf.initializers.zeros> => tf.initializers.zeros();

/** LayerNorm over the last axis with gain (1 + g) and bias b. */
function layerNorm(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, EPS))), tf.add(g, 1)), b);
}

/** GELU, tanh approximation (as GPT-2). */
function gelu(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

/** x [..., k] times w [k, n] plus b [n]. */
function affine(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const k = x.shape.at(-1)!;
  const lead = x.shape.slice(0, -1);
  return tf.reshape(tf.add(tf.matMul(tf.reshape(x, [-1, k]), w as tf.Tensor2D), b), [...lead, w.shape[1]!]);
}

/**
 * One-hot float32 of integer-valued floats, [..., vocab], built with `equal` (tfjs 4.22's wasm
 * OneHot kernel writes int32 bits into float32 outputs; see step.ts).
 */
export function oneHotTokens(tokens: tf.Tensor, vocab: number): tf.Tensor {
  return tf.cast(tf.equal(tf.expandDims(tf.round(tokens), -1), tf.range(0, vocab, 1, 'float32')), 'float32');
}

/**
 * A layer of named weights (all made zero here; createModel writes the initial values) whose
 * config is its constructor's arguments: the three layers of the transformer.
 */
abstract class WeightedLayer<A extends { name?: string; inputShape?: number[] }> extends tf.layers.Layer {
  private readonly w = new Map<string, tf.LayerVariable>();

  constructor(readonly args: A) {
    super(args);
  }

  /** The weights' names and shapes, in flat order. */
  protected abstract shapes(): [string, number[]][];
  protected abstract forward(x: tf.Tensor): tf.Tensor;

  override build(): void {
    for (const [name, shape] of this.shapes()) this.w.set(name, this.addWeight(name, shape, 'float32', zeros()));
    this.built = true;
  }

  protected v(name: string): tf.Tensor {
    return this.w.get(name)!.read();
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(Array.isArray(inputs) ? inputs[0]! : inputs));
  }

  override getConfig(): tf.serialization.ConfigDict {
    const { name: _, inputShape: __, ...own } = this.args;
    return { ...super.getConfig(), ...(own as tf.serialization.ConfigDict) };
  }
}

/** Token and learned position embeddings of the first `context` tokens of each window: [m, window] -> [m, context, d]. */
class TokenEmbedding extends WeightedLayer<{ vocab: number; dModel: number; context: number; inputShape: number[]; name: string }> {
  static readonly className = 'RingTrainTokenEmbedding';

  protected shapes(): [string, number[]][] {
    const { vocab, dModel, context } = this.args;
    return [
      ['tokens', [vocab, dModel]],
      ['positions', [context, dModel]],
    ];
  }

  override computeOutputShape(s: tf.Shape | tf.Shape[]): tf.Shape {
    return [(s as tf.Shape)[0] ?? null, this.args.context, this.args.dModel];
  }

  protected forward(x: tf.Tensor): tf.Tensor {
    const { vocab, dModel, context } = this.args;
    const m = x.shape[0]!;
    const hot = oneHotTokens(tf.slice(x, [0, 0], [m, context]), vocab);
    const emb = tf.reshape(tf.matMul(tf.reshape(hot, [m * context, vocab]), this.v('tokens') as tf.Tensor2D), [m, context, dModel]);
    return tf.add(emb, this.v('positions'));
  }
}

/** A pre-LN block: x + attention(LN(x)) with a causal mask (queries and values biased, keys not), then x + MLP(LN(x)), the MLP 4d wide with GELU. */
class TransformerBlock extends WeightedLayer<{ dModel: number; heads: number; name: string }> {
  static readonly className = 'RingTrainTransformerBlock';

  protected shapes(): [string, number[]][] {
    const d = this.args.dModel;
    return [
      ['ln1_gain', [d]],
      ['ln1_bias', [d]],
      ['qkv_kernel', [d, 3 * d]],
      // No key bias: it adds the same to every score of a query, which the softmax cancels, so its
      // gradient is 0 in exact arithmetic and rounding noise in floats, which Adam would turn into
      // steps of size lr that differ with the order of the sum (1 peer against 2).
      ['qv_bias', [2 * d]],
      ['proj_kernel', [d, d]],
      ['proj_bias', [d]],
      ['ln2_gain', [d]],
      ['ln2_bias', [d]],
      ['fc_kernel', [d, 4 * d]],
      ['fc_bias', [4 * d]],
      ['out_kernel', [4 * d, d]],
      ['out_bias', [d]],
    ];
  }

  override computeOutputShape(s: tf.Shape | tf.Shape[]): tf.Shape {
    return s as tf.Shape;
  }

  protected forward(x: tf.Tensor): tf.Tensor {
    const [m, t, d] = x.shape as [number, number, number];
    const h = this.args.heads;
    const dh = d / h;
    const [qb, vb] = tf.split(this.v('qv_bias'), 2);
    const qkv = affine(layerNorm(x, this.v('ln1_gain'), this.v('ln1_bias')), this.v('qkv_kernel'), tf.concat([qb!, tf.zeros([d]), vb!]));
    // [m, t, d] -> [m, h, t, dh] for each of q, k, v
    const heads = (i: number): tf.Tensor4D =>
      tf.transpose(tf.reshape(tf.slice(qkv, [0, 0, i * d], [m, t, d]), [m, t, h, dh]), [0, 2, 1, 3]) as tf.Tensor4D;
    const [q, k, val] = [heads(0), heads(1), heads(2)];
    const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)), causalMask(t));
    const att = tf.matMul(tf.softmax(scores), val);
    const merged = tf.reshape(tf.transpose(att, [0, 2, 1, 3]), [m, t, d]);
    const x1 = tf.add(x, affine(merged, this.v('proj_kernel'), this.v('proj_bias')));
    const hidden = gelu(affine(layerNorm(x1, this.v('ln2_gain'), this.v('ln2_bias')), this.v('fc_kernel'), this.v('fc_bias')));
    return tf.add(x1, affine(hidden, this.v('out_kernel'), this.v('out_bias')));
  }
}

/** [t, t]: 0 where position j <= i may be attended to, -1e9 above the diagonal (the future). */
function causalMask(t: number): tf.Tensor2D {
  return tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([t, t]), -1, 0)), -1e9) as tf.Tensor2D;
}

/** The final LayerNorm and the logits over the vocabulary: [m, t, d] -> [m, t, vocab]. */
class LmHead extends WeightedLayer<{ dModel: number; vocab: number; name: string }> {
  static readonly className = 'RingTrainLmHead';

  protected shapes(): [string, number[]][] {
    const { dModel: d, vocab } = this.args;
    return [
      ['ln_gain', [d]],
      ['ln_bias', [d]],
      ['kernel', [d, vocab]],
      ['bias', [vocab]],
    ];
  }

  override computeOutputShape(s: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = s as tf.Shape;
    return [shape[0] ?? null, shape[1] ?? null, this.args.vocab];
  }

  protected forward(x: tf.Tensor): tf.Tensor {
    return affine(layerNorm(x, this.v('ln_gain'), this.v('ln_bias')), this.v('kernel'), this.v('bias'));
  }
}

for (const c of [TokenEmbedding, TransformerBlock, LmHead]) tf.serialization.registerClass(c);

/** Throws MlError naming what does not fit: heads dividing dModel, a context within the window. */
export function checkTransformerShape(s: TransformerShape, window: number): void {
  const bad = (what: string): never => {
    throw new MlError('invalid-argument', `createModel: transformer ${what}`);
  };
  if (s.dModel % s.heads !== 0) bad(`dModel ${s.dModel} is not a multiple of heads ${s.heads}: pick heads that divide it`);
  if (s.context < 1 || s.context > window - 1)
    bad(`context ${s.context} does not fit the samples' windows of ${window} tokens: give 1 to ${window - 1}`);
}

/** Adds the transformer's layers to an empty Sequential: samples of `window` tokens, `vocab` token ids. */
export function addTransformer(model: tf.Sequential, s: TransformerShape, window: number, vocab: number): void {
  checkTransformerShape(s, window);
  model.add(new TokenEmbedding({ vocab, dModel: s.dModel, context: s.context, inputShape: [window], name: 'embedding' }));
  for (let i = 0; i < s.layers; i++) model.add(new TransformerBlock({ dModel: s.dModel, heads: s.heads, name: `block${i}` }));
  model.add(new LmHead({ dModel: s.dModel, vocab, name: 'head' }));
}

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** Softmax temperature (default 0.8); 0 picks the most likely token. */
  temperature?: number;
  /** Seed of the draws (default 1): the same weights and seed write the same text. */
  seed?: number;
}

/**
 * `length` tokens continuing `prompt` (token ids), one forward pass each over the last `context`
 * tokens (the causal mask makes the padding after them irrelevant). Returns the new tokens only.
 */
export async function generate(
  model: tf.LayersModel,
  prompt: readonly number[],
  length: number,
  o: GenerateOptions = {},
): Promise<number[]> {
  const window = model.inputs[0]!.shape[1]!;
  const [, context, vocab] = model.outputs[0]!.shape as [null, number, number];
  if (prompt.length === 0) throw new MlError('invalid-argument', 'generate: the prompt needs at least one token');
  const temperature = o.temperature ?? 0.8;
  const rand = mulberry32(o.seed ?? 1);
  const tokens = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < length; i++) {
    const recent = tokens.slice(-context);
    const x = new Float32Array(window);
    x.set(recent);
    const last = tf.tidy(() => {
      const logits = model.apply(tf.tensor2d(x, [1, window]), { training: false }) as tf.Tensor;
      return tf.reshape(tf.slice(logits, [0, recent.length - 1, 0], [1, 1, vocab]), [vocab]);
    });
    let logits: Float32Array;
    try {
      logits = (await last.data()) as Float32Array;
    } finally {
      last.dispose();
    }
    const next = temperature === 0 ? argmax(logits) : draw(logits, temperature, rand());
    tokens.push(next);
    out.push(next);
  }
  return out;
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/** A draw from softmax(logits / temperature) with the uniform `u` in [0, 1). */
function draw(logits: Float32Array, temperature: number, u: number): number {
  const top = logits[argmax(logits)]!;
  const p = Array.from(logits, (l) => Math.exp((l - top) / temperature));
  let left = u * p.reduce((a, b) => a + b, 0);
  for (let i = 0; i < p.length; i++) {
    left -= p[i]!;
    if (left < 0) return i;
  }
  return p.length - 1;
}
