import * as tf from '@tensorflow/tfjs';
import { mulberry32 } from '../core/random.ts';
import { MODELS, TRANSFORMER_DEFAULTS, type ModelName } from '../protocol/catalogs.ts';
import { namesOf } from '../protocol/registry.ts';
import { MlError } from './errors.ts';
import { setFlatWeights, trainableVariables } from './flat.ts';
import { addTransformer, type TransformerShape } from './transformer.ts';

/** The model families RingTrain trains (protocol/catalogs.ts's MODELS). `svm`: a linear multi-class SVM (Crammer–Singer hinge loss). */
export type ModelKind = ModelName;

/**
 * Loss of a model: softmax cross-entropy on logits (classification), squared error (regression), or
 * the multi-class hinge loss of Crammer and Singer `max(0, 1 + max_{c≠y} s_c − s_y)` (linear SVM:
 * one margin between the true class and the best other, so the classes' scores are trained
 * together; one-vs-rest's `sum_c max(0, 1 − t_c s_c)` levelled off at 0.835 on Fashion-MNIST,
 * this reaches 0.842), or next-token cross-entropy averaged over a window's positions (the
 * transformer language model; the targets are the window itself, shifted by one).
 */
export type LossKind = 'crossentropy' | 'mse' | 'hinge' | 'lm';

/** What {@link createModel} builds. Equal specs give bit-identical initial weights on every peer and backend. */
export interface ModelSpec {
  kind: ModelKind;
  /**
   * Shape of one sample, without the batch dimension: [784], [28, 28] or [28, 28, 1]. Dense models
   * flatten it; the CNN reshapes [h*w] (a perfect square) or [h, w] to [h, w, 1].
   */
  inputShape: number[];
  /** Number of classes (>= 2), or 0 for regression: one linear output trained with squared error. */
  numClasses: number;
  /**
   * mlp: hidden layer widths (default [128], i.e. 784-128-10 relu). cnn: filters of each
   * conv 3x3 relu + maxpool 2x2 block (default {@link DEFAULT_CNN_FILTERS}). softmax: must be absent or empty.
   */
  hidden?: number[];
  /** cnn: widths of the dense relu layers between the conv blocks and the output (default {@link DEFAULT_CNN_DENSE}; [] for none). */
  dense?: number[];
  /** transformer: its shape; absent fields take {@link TRANSFORMER_DEFAULTS} and the whole window as context. */
  transformer?: Partial<TransformerShape>;
  /** Seed of the initial weights (any finite number; used as a uint32). */
  seed: number;
}

/** Default hidden widths of the MLP. */
export const DEFAULT_MLP_HIDDEN: readonly number[] = [128];
/** Default conv filters of the CNN: conv 32 3x3 relu, maxpool, conv 64 3x3 relu, maxpool. */
export const DEFAULT_CNN_FILTERS: readonly number[] = [32, 64];
/** Default dense relu layers of the CNN after its conv blocks, before the output. */
export const DEFAULT_CNN_DENSE: readonly number[] = [128];

/** The loss a spec trains with: 'hinge' for the SVM, 'mse' when numClasses is 0, else 'crossentropy'. */
export function lossKindFor(spec: Pick<ModelSpec, 'numClasses' | 'kind'>): LossKind {
  if (spec.kind === 'svm') return 'hinge';
  if (spec.kind === 'transformer') return 'lm';
  return spec.numClasses === 0 ? 'mse' : 'crossentropy';
}

/** Number of outputs: numClasses logits, or 1 for regression. */
export function outputSize(spec: Pick<ModelSpec, 'numClasses'>): number {
  return spec.numClasses === 0 ? 1 : spec.numClasses;
}

function isPositiveInt(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n > 0;
}

/** Throws MlError('invalid-argument') naming the field when `spec` is malformed. */
export function validateModelSpec(spec: ModelSpec): void {
  const bad = (what: string): never => {
    throw new MlError('invalid-argument', `createModel: spec.${what}`);
  };
  if (!Object.hasOwn(MODEL_FACTORIES, spec.kind)) bad(`kind must be one of ${namesOf(MODELS).join(', ')}; got ${String(spec.kind)}`);
  if (!Array.isArray(spec.inputShape) || spec.inputShape.length === 0 || !spec.inputShape.every(isPositiveInt)) {
    bad(`inputShape must be a non-empty array of positive integers; got ${JSON.stringify(spec.inputShape)}`);
  }
  if (!(spec.numClasses === 0 || (Number.isInteger(spec.numClasses) && spec.numClasses >= 2))) {
    bad(`numClasses must be 0 (regression) or an integer >= 2; got ${spec.numClasses}`);
  }
  for (const f of ['hidden', 'dense'] as const)
    if (spec[f] !== undefined && !(Array.isArray(spec[f]) && spec[f].every(isPositiveInt)))
      bad(`${f} must be an array of positive integers; got ${JSON.stringify(spec[f])}`);
  if (spec.dense !== undefined && spec.kind !== 'cnn') bad(`dense is only for the CNN; got kind ${spec.kind}`);
  if ((spec.kind === 'softmax' || spec.kind === 'svm') && spec.hidden !== undefined && spec.hidden.length > 0) {
    bad(
      `hidden must be empty for ${spec.kind === 'svm' ? 'the linear SVM' : 'softmax regression'} (one dense layer); got ${JSON.stringify(spec.hidden)}`,
    );
  }
  if (spec.kind === 'svm' && spec.numClasses < 2) bad(`numClasses must be >= 2 for the SVM (a classifier); got ${spec.numClasses}`);
  if (!Number.isFinite(spec.seed)) bad(`seed must be a finite number; got ${spec.seed}`);
  if (spec.kind === 'cnn') cnnImageShape(spec.inputShape);
  if (spec.transformer !== undefined && spec.kind !== 'transformer')
    bad(`transformer is only for the transformer model; got kind ${spec.kind}`);
  if (spec.kind === 'transformer') {
    if (spec.inputShape.length !== 1 || spec.inputShape[0]! < 2)
      bad(`inputShape must be [window] with window >= 2 token ids for the transformer; got ${JSON.stringify(spec.inputShape)}`);
    if (spec.numClasses < 2) bad(`numClasses must be the vocabulary size (>= 2) for the transformer; got ${spec.numClasses}`);
  }
}

/** A transformer spec's shape, with the defaults filled in. */
export function transformerShape(spec: Pick<ModelSpec, 'inputShape' | 'transformer'>): TransformerShape {
  return { ...TRANSFORMER_DEFAULTS, context: spec.inputShape[0]! - 1, ...spec.transformer };
}

/** [h, w, c] for the CNN's input, or throws. */
function cnnImageShape(shape: number[]): [number, number, number] {
  if (shape.length === 3) return shape as [number, number, number];
  if (shape.length === 2) return [shape[0]!, shape[1]!, 1];
  const side = Math.round(Math.sqrt(shape[0]!));
  if (shape.length === 1 && side * side === shape[0]) return [side, side, 1];
  throw new MlError(
    'invalid-argument',
    `createModel: spec.inputShape ${JSON.stringify(shape)} does not fit a CNN; give [h, w, c], [h, w] or [n] with n a perfect square`,
  );
}

/** Adds a model's layers to an empty Sequential, for a validated spec. */
type ModelFactory = (model: tf.Sequential, spec: ModelSpec) => void;

const INIT = { kernelInitializer: 'zeros', biasInitializer: 'zeros' } as const;

/** Dense relu layers of `widths`, then the linear output layer (no widths: one linear layer). */
function dense(model: tf.Sequential, spec: ModelSpec, widths: readonly number[]): void {
  const first = { inputShape: spec.inputShape };
  if (spec.inputShape.length > 1) model.add(tf.layers.flatten(first));
  const firstArgs = spec.inputShape.length > 1 ? {} : first;
  widths.forEach((w, i) => model.add(tf.layers.dense({ units: w, activation: 'relu', ...INIT, ...(i === 0 ? firstArgs : {}) })));
  model.add(tf.layers.dense({ units: outputSize(spec), activation: 'linear', ...INIT, ...(widths.length === 0 ? firstArgs : {}) }));
}

/** Conv 3x3 relu + maxpool 2x2 blocks of `spec.hidden` filters, dense relu layers of `spec.dense`, then the linear output layer. */
function cnn(model: tf.Sequential, spec: ModelSpec): void {
  const first = { inputShape: spec.inputShape };
  const img = cnnImageShape(spec.inputShape);
  const needsReshape = spec.inputShape.length !== 3;
  if (needsReshape) model.add(tf.layers.reshape({ ...first, targetShape: img }));
  (spec.hidden ?? DEFAULT_CNN_FILTERS).forEach((f, i) => {
    const args = { filters: f, kernelSize: 3, activation: 'relu', padding: 'valid', ...INIT } as const;
    model.add(tf.layers.conv2d(i === 0 && !needsReshape ? { ...args, ...first } : args));
    model.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }));
  });
  model.add(tf.layers.flatten());
  for (const units of spec.dense ?? DEFAULT_CNN_DENSE) model.add(tf.layers.dense({ units, activation: 'relu', ...INIT }));
  model.add(tf.layers.dense({ units: outputSize(spec), activation: 'linear', ...INIT }));
}

/** The layers of each model of the catalog: a model without a factory does not compile. */
export const MODEL_FACTORIES = {
  softmax: (model, spec) => dense(model, spec, []),
  mlp: (model, spec) => dense(model, spec, spec.hidden ?? DEFAULT_MLP_HIDDEN),
  cnn,
  svm: (model, spec) => dense(model, spec, []),
  transformer: (model, spec) => addTransformer(model, transformerShape(spec), spec.inputShape[0]!, spec.numClasses),
} as const satisfies Record<ModelKind, ModelFactory>;

/**
 * Builds the model with linear outputs (logits for classification; the loss applies the softmax),
 * then writes its initial weights from {@link initialWeights}: He-uniform for kernels followed by
 * relu, Glorot-uniform for the others, zero biases, drawn in JS from the seed. The numbers never
 * depend on the backend or on tfjs's RNG, so every peer with the same spec starts bit-identical.
 * The model is not compiled: step.ts computes losses and gradients itself. Dispose it with
 * `model.dispose()`.
 */
export function createModel(spec: ModelSpec): tf.Sequential {
  validateModelSpec(spec);
  const model = tf.sequential({ name: `ringtrain_${spec.kind}` });
  MODEL_FACTORIES[spec.kind](model, spec);
  try {
    setFlatWeights(model, initialWeights(model, spec.seed));
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * Seeded initial weights for `model` in flat order (flat.ts): kernels uniform in ±limit with
 * limit = sqrt(6 / fanIn) before relu (He) and sqrt(6 / (fanIn + fanOut)) otherwise (Glorot);
 * biases zero. One mulberry32 stream over all kernels in order; float64 draws rounded to float32.
 */
export function initialWeights(model: tf.LayersModel, seed: number): Float32Array {
  const rand = mulberry32(seed);
  const n = trainableVariables(model).reduce((s, v) => s + v.size, 0);
  const flat = new Float32Array(n);
  let off = 0;
  for (const layer of model.layers) {
    const cfg = layer.getConfig();
    const relu = cfg['activation'] === 'relu';
    for (const w of layer.trainableWeights) {
      const shape = w.shape as number[];
      const size = shape.reduce((a, b) => a * b, 1);
      if (shape.length >= 2) {
        const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
        const fanIn = receptive * shape[shape.length - 2]!;
        const fanOut = receptive * shape[shape.length - 1]!;
        const limit = relu ? Math.sqrt(6 / fanIn) : Math.sqrt(6 / (fanIn + fanOut));
        for (let i = 0; i < size; i++) flat[off + i] = (2 * rand() - 1) * limit;
      }
      off += size;
    }
  }
  if (off !== n) throw new Error(`initialWeights: covered ${off} of ${n} parameters (layer order differs from trainableWeights)`);
  return flat;
}

/** True when the model has conv layers (pass as `needsConv` to selectBackend). */
export function hasConv(model: tf.LayersModel): boolean {
  return model.layers.some((l) => l.getClassName().startsWith('Conv'));
}
