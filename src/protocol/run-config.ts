/**
 * The run config: one schema for a training run and one for trees, the only door a config comes
 * through. The dashboard form and the CLI build one (training/job.ts), the page API and the
 * trainer parse it, the coordinator validates every `start` with it before handing the run to the
 * room, and a checkpoint's run key is read back through it. Unknown fields are refused, and so are
 * options that cannot work together, once, with a message naming both.
 */
import { z } from 'zod';
import { ALGORITHMS, AGGREGATION_RULES, CODECS, DATASETS, MODELS, OPTIMIZERS, SCHEDULES, TEXT_DATASETS, TREE_MODELS } from './catalogs.ts';
import { listed, nameSchema, namesOf, specSchema } from './registry.ts';

const u32 = z.number().int().min(0).max(0xffff_ffff);
const whole = (min: number, max: number): z.ZodNumber => z.number().int().min(min).max(max);
const positive = z.number().positive().max(1e12);

export const partitionSchema = z.strictObject({
  scheme: z.enum(['iid', 'label-shards', 'dirichlet']),
  seed: u32,
  /** dirichlet: the concentration α. */
  alpha: z.number().min(0.001).max(1000).optional(),
  /** label-shards: shards per peer. */
  shardsPerPart: whole(1, 100).optional(),
});

/**
 * A dataset's name: one of the catalog's (protocol/catalogs.ts), or one that another server's
 * catalog serves, so any short name passes here; the server and the page refuse names they lack.
 */
const datasetSchema = z
  .string()
  .min(1)
  .max(64)
  .describe(`a dataset's name: ${listed(namesOf(DATASETS))}, or one another server serves`);

export const trainConfigSchema = z
  .strictObject({
    dataset: datasetSchema,
    partition: partitionSchema,
    model: nameSchema(MODELS),
    /** mlp: hidden layer widths. */
    hidden: MODELS.mlp.options.shape.hidden,
    /** transformer: layers, dModel, heads, context. */
    transformer: MODELS.transformer.options.shape.transformer,
    algorithm: nameSchema(ALGORITHMS),
    optimizer: specSchema(OPTIMIZERS, 'kind'),
    /** Images: each sample of a batch shifted by up to `shift` pixels and (`flip`) mirrored, drawn from the seed, the step and its place in the global batch. */
    augment: z.strictObject({ shift: whole(0, 8), flip: z.boolean() }).optional(),
    /** Softmax, MLP and CNN: label smoothing ε of the cross-entropy's targets. */
    labelSmoothing: z.number().min(0).lt(1).optional(),
    /** The optimizer's lr over the run: warm-up, then constant, cosine or step decay, by global step (default: constant). */
    schedule: specSchema(SCHEDULES, 'kind').optional(),
    /** sgd and diloco: the global batch, split across peers (diloco: per inner step); fedavg: each peer's local batch; gd: unused. */
    batch: whole(0, 65_536),
    /** sgd/gd: steps; diloco: inner steps (global batches), in rounds of `localSteps`; fedavg: rounds. */
    steps: whole(1, 10_000_000),
    /** fedavg and diloco: local steps per round (H); diloco also takes 'auto'. */
    localSteps: ALGORITHMS.diloco.options.shape.localSteps,
    /** diloco: the outer optimizer's learning rate and Nesterov momentum. */
    outerLr: ALGORITHMS.diloco.options.shape.outerLr,
    outerMomentum: ALGORITHMS.diloco.options.shape.outerMomentum,
    /** Evaluate on the test set every this many steps (and at the end); 0 = only at the end. */
    evalEvery: whole(0, 10_000_000).optional(),
    /** Compare weight checksums every this many steps (and at the end). */
    checksumEvery: whole(0, 10_000_000).optional(),
    /** Store a checkpoint every this many steps (and at the end); 0 or absent = never. */
    checkpointEvery: whole(0, 10_000_000).optional(),
    /** Seed of the initial weights and of batch order. */
    seed: u32,
    /** Quorum: with fewer peers in the room, training waits (after a failure, or before it starts). */
    minPeers: whole(1, 1024).optional(),
    /** Train on random Fourier features of the inputs (an approximate RBF kernel; with the SVM, a kernel SVM), drawn from `seed`. */
    rff: z.strictObject({ features: whole(1, 100_000), gamma: positive }).optional(),
    /** sgd: split the global batch by each peer's measured speed (then not bit-for-bit repeatable). */
    balance: z.boolean().optional(),
    /** sgd and gd: the largest norm a peer's mean gradient may have (default Infinity: only NaN/Inf are left out). */
    maxGradNorm: positive.optional(),
    /** sgd and gd: gradients compressed on the wire. */
    compression: specSchema(CODECS, 'kind').optional(),
    /** sgd and gd: coordinate-wise median or trimmed mean over an all-gather, for untrusted peers. */
    robust: specSchema(AGGREGATION_RULES, 'rule').optional(),
    /** sgd and gd: pairwise masks that cancel exactly (fixed point modulo 2^32); `scale`: the fixed point's S, values round to 1/S and a sum must stay within ±2^31/S (default 4096; ml/algorithms/secure.ts). */
    secureAggregation: z.strictObject({ scale: positive.optional() }).optional(),
    /** sgd and gd: DP-SGD, per-example clipping to `clip` and Gaussian noise of noiseMultiplier x clip; ε for `delta` (default 1e-5). */
    dp: z
      .strictObject({ clip: positive, noiseMultiplier: z.number().min(0).max(100), delta: z.number().positive().lt(1).optional() })
      .optional(),
  })
  .superRefine((c, ctx) => {
    for (const [path, message] of conflicts(c)) ctx.addIssue({ code: 'custom', path: [path], message });
  });

export type TrainConfig = z.infer<typeof trainConfigSchema>;

/** Option pairs that cannot work together: [the field to point at, the message naming both]. */
function conflicts(c: TrainConfig): [keyof TrainConfig, string][] {
  const out: [keyof TrainConfig, string][] = [];
  const gradientOnly: (keyof TrainConfig)[] = ['compression', 'robust', 'secureAggregation', 'dp', 'maxGradNorm'];
  if (c.algorithm === 'fedavg') {
    for (const f of gradientOnly)
      if (c[f] !== undefined)
        out.push([
          f,
          `${f} and algorithm fedavg: ${f} acts on each step's gradient sum, which FedAvg does not make: pick sgd or gd, or drop ${f}`,
        ]);
  }
  if (c.algorithm === 'diloco') {
    for (const f of gradientOnly.filter((f) => f !== 'compression'))
      if (c[f] !== undefined)
        out.push([
          f,
          `${f} and algorithm diloco: ${f} acts on each step's gradient sum, and DiLoCo sums weight changes once a round: pick sgd or gd, or drop ${f}`,
        ]);
    if (c.compression?.kind === 'auto')
      out.push([
        'compression',
        'compression auto and algorithm diloco: auto measures per-step exchanges: name the codec for the deltas (fp16 or int8)',
      ]);
  } else {
    for (const f of ['outerLr', 'outerMomentum'] as const)
      if (c[f] !== undefined)
        out.push([f, `${f} and algorithm ${c.algorithm}: ${f} sets DiLoCo's outer optimizer: pick diloco or drop ${f}`]);
    if (c.localSteps === 'auto')
      out.push([
        'localSteps',
        `localSteps auto and algorithm ${c.algorithm}: only DiLoCo chooses its local steps: pick diloco or give a number`,
      ]);
  }
  if (c.balance && c.algorithm !== 'sgd' && c.algorithm !== 'diloco')
    out.push([
      'balance',
      `balance and algorithm ${c.algorithm}: balancing splits the global batch of mini-batch SGD or DiLoCo: pick sgd or diloco, or drop balance`,
    ]);
  if ((c.algorithm === 'sgd' || c.algorithm === 'fedavg' || c.algorithm === 'diloco') && c.batch < 1)
    out.push(['batch', `batch and algorithm ${c.algorithm}: ${c.algorithm} needs a batch of at least 1`]);
  if (c.robust && c.compression)
    out.push([
      'robust',
      'robust and compression: a median or trimmed mean needs every contribution in the clear: turn compression off, or pick the plain sum',
    ]);
  if (c.robust && c.secureAggregation)
    out.push([
      'robust',
      'robust and secureAggregation: a median or trimmed mean needs every contribution in the clear: turn secure aggregation off, or pick the plain sum',
    ]);
  if (c.robust && c.dp)
    out.push([
      'robust',
      'robust and dp: DP-SGD calibrates its noise for a sum of all peers: a median or trimmed mean voids its ε, so pick the plain sum with DP',
    ]);
  if (c.secureAggregation && (c.compression?.kind === 'fp16' || c.compression?.kind === 'int8')) {
    out.push([
      'secureAggregation',
      `secureAggregation and compression ${c.compression.kind}: the masks are too large for fp16/int8 on the wire: pick PowerSGD or random-k, or no compression`,
    ]);
  }
  if (c.labelSmoothing && (c.model === 'svm' || c.dp))
    out.push([
      'labelSmoothing',
      c.dp
        ? 'labelSmoothing and dp: DP-SGD clips per-example gradients of the plain cross-entropy: drop one of them'
        : 'labelSmoothing and model svm: label smoothing is for the cross-entropy of softmax, MLP and CNN',
    ]);
  if (c.schedule && c.optimizer.kind === 'pegasos')
    out.push(['schedule', 'schedule and optimizer pegasos: Pegasos sets its own step sizes (1/(lambda t)): drop the schedule']);
  if (c.optimizer.kind === 'pegasos' && c.model !== 'svm')
    out.push(['optimizer', `optimizer pegasos and model ${c.model}: pegasos is for the linear SVM: pick sgd, momentum or adam`]);
  if (c.rff && c.model === 'cnn')
    out.push(['rff', 'rff and model cnn: random Fourier features flatten the images the CNN needs: pick softmax, mlp or svm with rff']);
  if (c.hidden && c.model !== 'mlp') out.push(['hidden', `hidden and model ${c.model}: hidden layer widths are for the MLP`]);
  if (c.transformer && c.model !== 'transformer')
    out.push(['transformer', `transformer and model ${c.model}: the transformer's shape is for the transformer model`]);
  const text = TEXT_DATASETS.includes(c.dataset);
  if (
    c.model === 'transformer' &&
    !text &&
    Object.hasOwn(DATASETS, c.dataset) &&
    DATASETS[c.dataset as keyof typeof DATASETS].source !== 'local'
  )
    out.push(['model', `model transformer and dataset ${c.dataset}: the language model reads text: pick ${listed(TEXT_DATASETS)}`]);
  if (text && c.model !== 'transformer')
    out.push([
      'model',
      `model ${c.model} and dataset ${c.dataset}: ${c.dataset} is text, for the transformer language model: pick transformer`,
    ]);
  if (c.model === 'transformer')
    for (const f of ['rff', 'dp'] as const)
      if (c[f] !== undefined)
        out.push([
          f,
          `${f} and model transformer: ${f === 'rff' ? 'random Fourier features' : 'DP-SGD'} is for the classifiers of images and tables: drop ${f}`,
        ]);
  return out;
}

/**
 * The fields that change a run's trajectory: a checkpoint restores only into a run that agrees on
 * all of them. The rest only say how long it runs and what it reports, so a run can be continued
 * for more steps from its checkpoint.
 */
export const TRAJECTORY_FIELDS = [
  'dataset',
  'partition',
  'model',
  'hidden',
  'transformer',
  'algorithm',
  'optimizer',
  'schedule',
  'labelSmoothing',
  'augment',
  'batch',
  'localSteps',
  'outerLr',
  'outerMomentum',
  'seed',
  'rff',
  'balance',
  'maxGradNorm',
  'compression',
  'robust',
  'secureAggregation',
  'dp',
] as const satisfies readonly (keyof TrainConfig)[];

/** The fields that only schedule a run (how long, what it reports, when it starts). */
export const SCHEDULE_FIELDS = [
  'steps',
  'evalEvery',
  'checksumEvery',
  'checkpointEvery',
  'minPeers',
] as const satisfies readonly (keyof TrainConfig)[];

/** What identifies a run: a checkpoint of another run key is never restored. */
export function runKey(cfg: TrainConfig): string {
  return JSON.stringify(Object.fromEntries(TRAJECTORY_FIELDS.map((f) => [f, cfg[f]])));
}

export const treeConfigSchema = z.strictObject({
  dataset: datasetSchema,
  partition: partitionSchema,
  /** One classification tree (Gini), or gradient-boosted trees. */
  model: nameSchema(TREE_MODELS),
  maxDepth: whole(1, 16),
  /** Bins per feature. */
  bins: whole(2, 256),
  /** Default 1. */
  minSamplesLeaf: whole(1, 1_000_000).optional(),
  /** gbdt: rounds (default 10), shrinkage (0.3), λ (1), γ (0), min child weight (1e-3), share of features (1) and of rows (1) per round. */
  rounds: whole(1, 1000).optional(),
  learningRate: z.number().positive().max(10).optional(),
  lambda: z.number().min(0).max(1e6).optional(),
  gamma: z.number().min(0).max(1e6).optional(),
  minChildWeight: z.number().min(0).max(1e6).optional(),
  colSample: z.number().positive().max(1).optional(),
  subsample: z.number().positive().max(1).optional(),
  seed: u32,
});

export type TreeTrainConfig = z.infer<typeof treeConfigSchema>;

/** A run started from one peer's dashboard for the whole room: which trainer, and its config. */
export const jobSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('train'), config: trainConfigSchema }),
  z.strictObject({ kind: z.literal('trees'), config: treeConfigSchema }),
]);
export type Job = z.infer<typeof jobSchema>;

/** A config that the schema refused; `message` names the field(s) and says what is allowed. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    /** The first offending field's path, e.g. `optimizer.lr`. */
    readonly field: string,
    /** What is wrong with it, without the path (for a message next to a form field). */
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** One line per issue: `path: message`. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`).join('; ');
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const first = r.error.issues[0];
  throw new ConfigError(first?.path.join('.') ?? '', first?.message ?? 'invalid', `${what}: ${describeIssues(r.error.issues)}`);
}

/** The training config in `value`, or a ConfigError saying what is wrong. */
export const parseTrainConfig = (value: unknown): TrainConfig => parseWith(trainConfigSchema, value, 'run config');
/** The tree config in `value`, or a ConfigError saying what is wrong. */
export const parseTreeConfig = (value: unknown): TreeTrainConfig => parseWith(treeConfigSchema, value, 'tree config');
/** The job in `value`, or a ConfigError saying what is wrong. */
export const parseJob = (value: unknown): Job => parseWith(jobSchema, value, 'job');
