/**
 * The catalogs (protocol/registry.ts): every model, dataset, optimizer, algorithm, codec and
 * aggregation rule a run config may name, with its description and its options. The run-config
 * schema, the dashboard's choices (ui/choices.ts) and the CLI's usage (cli/usage.ts) are derived
 * from these; factories are attached by name where things are made (ml/models.ts,
 * ml/optimizer.ts, training/datasets.ts, training/job.ts; codecs and rules in
 * ml/exchange/registry.ts).
 */
import { z } from 'zod';
import { catalog, type Name, type SpecOf } from './registry.ts';

const none = z.strictObject({});

/** The transformer's shape where the config does not give it: 2 blocks, d 128, 4 heads (and the dataset's whole window). */
export const TRANSFORMER_DEFAULTS = { layers: 2, dModel: 128, heads: 4 } as const;
const whole = (min: number, max: number): z.ZodNumber => z.number().int().min(min).max(max);
const lr = z.number().positive().max(10).describe('learning rate');
const beta = z.number().min(0).lt(1);

/** Neural and linear models (the `train` job's `model`); their options are top-level config fields. */
export const MODELS = catalog({
  softmax: { label: 'softmax regression', description: 'softmax (multinomial logistic) regression', options: none },
  mlp: {
    label: 'MLP (784-128-10)',
    description: 'a multi-layer perceptron, relu (hidden widths: `hidden`, default [128])',
    options: z.strictObject({ hidden: z.array(whole(1, 4096)).min(1).max(8).optional().describe('hidden layer widths') }),
  },
  cnn: {
    label: 'CNN',
    description: 'a small CNN: conv 32 and 64 3x3 relu + maxpool blocks, dense 128 relu, then the output',
    options: none,
  },
  svm: { label: 'linear SVM', description: 'a linear multi-class SVM (Crammer–Singer hinge loss), trained with pegasos', options: none },
  transformer: {
    label: 'transformer LM (text)',
    description: `a small decoder-only transformer language model on characters (layers ${TRANSFORMER_DEFAULTS.layers}, dModel ${TRANSFORMER_DEFAULTS.dModel}, heads ${TRANSFORMER_DEFAULTS.heads} by default)`,
    options: z.strictObject({
      transformer: z
        .strictObject({
          layers: whole(1, 48).optional(),
          dModel: whole(4, 2048).optional(),
          heads: whole(1, 64).optional(),
          context: whole(1, 4096).optional(),
        })
        .refine(({ dModel = TRANSFORMER_DEFAULTS.dModel, heads = TRANSFORMER_DEFAULTS.heads }) => dModel % heads === 0, {
          path: ['heads'],
          message: 'the heads must divide dModel (each head reads dModel / heads of it): pick a divisor, e.g. 4',
        })
        .optional()
        .describe("the transformer's shape (context: positions read, default the whole window)"),
    }),
  },
});
export type ModelName = Name<typeof MODELS>;

/** Tree models (the `trees` job's `model`). */
export const TREE_MODELS = catalog({
  tree: { label: 'decision tree', description: 'one classification tree (Gini)', options: none },
  gbdt: { label: 'boosted trees', description: 'gradient-boosted trees', options: none },
});
export type TreeModelName = Name<typeof TREE_MODELS>;

/**
 * Datasets by name. `source`: served by the server from `public/datasets/` (built in), generated
 * in every peer from a seed (synthetic: the CLI loads them as the tab's own data), or the tab's
 * own data (`local`, loaded from the page's form). A config may also name a dataset of another
 * server's catalog, so the schema's `dataset` stays an open name.
 */
export const DATASETS = catalog({
  'fashion-mnist': {
    label: 'Fashion-MNIST (built in)',
    description: 'Fashion-MNIST, 28x28 grey images of 10 kinds of clothing (built in)',
    options: none,
    source: 'builtin',
  },
  'moby-dick': {
    label: 'Moby-Dick, text (built in)',
    description: "Melville's Moby-Dick (public domain), windows of 129 characters for the transformer language model (built in)",
    options: none,
    source: 'builtin',
  },
  blobs: {
    label: 'Gaussian blobs (synthetic)',
    description: '2000 points in 4 Gaussian blobs, 8 dimensions (small synthetic set)',
    options: none,
    source: 'synthetic',
  },
  spirals: {
    label: 'two spirals (synthetic)',
    description: 'two interleaved spirals, 2000 points (small synthetic set)',
    options: none,
    source: 'synthetic',
  },
  linear: {
    label: 'linear regression (synthetic)',
    description: '2000 points of a noisy linear function of 8 features (small synthetic regression set)',
    options: none,
    source: 'synthetic',
  },
  local: {
    label: 'Your own data (load it below)',
    description: "the tab's own data (a CSV or IDX file loaded in the page)",
    options: none,
    source: 'local',
  },
});
export type DatasetName = Name<typeof DATASETS>;
/** The datasets of text (samples are windows of token ids), for the transformer language model only. */
export const TEXT_DATASETS: readonly string[] = ['moby-dick'];
export type DatasetSource = (typeof DATASETS)[DatasetName]['source'];

/** Every gradient optimizer's: the largest global norm of the mean gradient it applies (larger ones are scaled down to it). */
const clipNorm = z.number().positive().max(1e12).optional().describe('global gradient-norm clipping');

/** Optimizers (the config's `optimizer.kind`), in the order the form offers them. */
export const OPTIMIZERS = catalog({
  adam: {
    label: 'Adam',
    description: 'Adam with bias correction (beta1 0.9, beta2 0.999, eps 1e-8 by default); `weightDecay`: decoupled, as AdamW',
    options: z.strictObject({
      lr,
      beta1: beta.optional(),
      beta2: beta.optional(),
      eps: z.number().positive().max(1e12).optional(),
      weightDecay: z.number().min(0).max(1).optional().describe('decoupled weight decay (AdamW)'),
      clipNorm,
    }),
  },
  sgd: { label: 'SGD', description: 'plain SGD', options: z.strictObject({ lr, clipNorm }) },
  momentum: {
    label: 'momentum',
    description: 'heavy-ball momentum (beta 0.9 by default)',
    options: z.strictObject({ lr, beta: beta.optional(), clipNorm }),
  },
  /** Pegasos for the hinge loss (ml/optimizer.ts): no learning rate; `average` (default true) returns the averaged iterate. */
  pegasos: {
    label: "Pegasos (the SVM's)",
    description: 'Pegasos for the linear SVM (step 1/(lambda t), no learning rate; the SVM always uses it)',
    options: z.strictObject({ lambda: z.number().min(1e-9).max(10), average: z.boolean().optional() }),
  },
});
export type OptimizerName = Name<typeof OPTIMIZERS>;
/** The config's `optimizer`: a name and its options. */
export type OptimizerConfig = SpecOf<typeof OPTIMIZERS, 'kind'>;

/** Local steps per round (H) of FedAvg and DiLoCo. */
const localSteps = whole(1, 1000).optional().describe('local steps per round (H)');
/** DiLoCo's outer optimizer by default: the paper's (arXiv 2311.08105, section 3: Nesterov, lr 0.7, momentum 0.9). */
export const OUTER_DEFAULTS = { lr: 0.7, momentum: 0.9 } as const;

/** Learning-rate schedules (the config's `schedule.kind`): a factor of the optimizer's lr at each global step, after a linear warm-up. */
export const SCHEDULES = catalog({
  constant: {
    label: 'constant',
    description: 'the same lr throughout (after the warm-up)',
    options: z.strictObject({ warmupSteps: whole(0, 1e7).optional() }),
  },
  cosine: {
    label: 'cosine',
    description: 'cosine decay from lr to `minFactor` x lr (default 0) at the last step, after the warm-up',
    options: z.strictObject({ warmupSteps: whole(0, 1e7).optional(), minFactor: z.number().min(0).max(1).optional() }),
  },
  step: {
    label: 'step decay',
    description: 'lr times `gamma` every `every` steps after the warm-up',
    options: z.strictObject({ warmupSteps: whole(0, 1e7).optional(), every: whole(1, 1e7), gamma: z.number().positive().max(1) }),
  },
});
export type ScheduleName = Name<typeof SCHEDULES>;
/** The config's `schedule`. */
export type ScheduleConfig = SpecOf<typeof SCHEDULES, 'kind'>;

/** Training algorithms (the config's `algorithm`); their options are top-level config fields. */
export const ALGORITHMS = catalog({
  sgd: { label: 'mini-batch SGD', description: 'synchronous mini-batch SGD: one global batch per step, split across peers', options: none },
  gd: { label: 'full-batch GD', description: 'full-batch gradient descent: the whole training set per step', options: none },
  fedavg: {
    label: 'federated averaging',
    description:
      'federated averaging: `localSteps` local batches per peer, then the weights are averaged (DiLoCo with outer lr 1 and no momentum)',
    options: z.strictObject({ localSteps }),
  },
  diloco: {
    label: 'DiLoCo (local steps, outer Nesterov)',
    description:
      'DiLoCo: `localSteps` inner steps of the optimizer on each peer (a number, or auto: from the measured compute/communication ratio), then an outer Nesterov step (`outerLr`, `outerMomentum`) on the averaged weight change; `compression` fp16 or int8 shrinks the deltas on the wire',
    options: z.strictObject({
      localSteps: localSteps.or(z.literal('auto')),
      outerLr: z.number().positive().max(10).optional().describe(`outer learning rate (default ${OUTER_DEFAULTS.lr})`),
      outerMomentum: beta.optional().describe(`outer Nesterov momentum (default ${OUTER_DEFAULTS.momentum})`),
    }),
  },
});
export type AlgorithmName = Name<typeof ALGORITHMS>;

/** Gradient codecs on the wire (the config's `compression.kind`; the form's `compression`). */
export const CODECS = catalog({
  auto: {
    label: 'auto (measure, then pick)',
    description: "measures the group's steps, then picks none, fp16, PowerSGD or int8 (ml/algorithms/auto.ts)",
    options: none,
  },
  fp16: { label: 'fp16', description: 'half-precision floats on the wire', options: none },
  int8: { label: 'int8', description: '8-bit quantisation on the wire', options: none },
  powersgd: {
    label: 'PowerSGD',
    description: 'PowerSGD low-rank compression with error feedback (`rank`)',
    options: z.strictObject({ rank: whole(1, 64) }),
    presets: {
      'powersgd-r1': { label: 'PowerSGD rank 1', options: { rank: 1 } },
      'powersgd-r2': { label: 'PowerSGD rank 2', options: { rank: 2 } },
      'powersgd-r4': { label: 'PowerSGD rank 4', options: { rank: 4 } },
    },
  },
  randomk: {
    label: 'random-k',
    description: 'random-k sparsification, the same coordinates on every peer (`ratio`)',
    options: z.strictObject({ ratio: z.number().positive().max(1) }),
    presets: { 'randomk-1%': { label: 'random-k 1%', options: { ratio: 0.01 } } },
  },
});
export type CodecName = Name<typeof CODECS>;
/** The config's `compression`. */
export type CodecConfig = SpecOf<typeof CODECS, 'kind'>;
/** The form's and the CLI's choice for no codec. */
export const NO_CODEC = { value: 'none', label: 'none' } as const;

/** Robust aggregation rules over a signed all-gather (the config's `robust.rule`; the form's `aggregation`). */
export const AGGREGATION_RULES = catalog({
  median: { label: 'median (untrusted peers)', description: 'coordinate-wise median (robust to untrusted peers)', options: none },
  'trimmed-mean': {
    label: 'trimmed mean (untrusted peers)',
    description: 'coordinate-wise trimmed mean, `trim` of each end left out (robust to untrusted peers)',
    options: z.strictObject({ trim: z.number().min(0).lt(0.5, 'trim must be in [0, 0.5)') }),
    presets: { 'trimmed-mean': { label: 'trimmed mean 25% (untrusted peers)', options: { trim: 0.25 } } },
  },
});
export type AggregationRuleName = Name<typeof AGGREGATION_RULES>;
/** The config's `robust`. */
export type AggregationRuleConfig = SpecOf<typeof AGGREGATION_RULES, 'rule'>;
/** The form's and the CLI's choice for the plain sum on the ring (no robust rule). */
export const PLAIN_SUM = { value: 'sum', label: 'sum on the ring' } as const;
