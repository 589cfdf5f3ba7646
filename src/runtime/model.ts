/**
 * What a finished run leaves: its model, class predictions with it, the results a dashboard shows
 * (confusion matrix, sample predictions, a tree's top levels), the model as files (tfjs layers
 * format, or a tree's JSON), and an exported model measured again from its files' bytes.
 */
import { toBase64 } from '../protocol/base64.ts';
import * as tf from '@tensorflow/tfjs';
import { featureSize, type Dataset } from '../data/dataset.ts';
import type { PickedFile } from '../data/user-files.ts';
import { setFlatWeights } from '../ml/flat.ts';
import { createModel } from '../ml/models.ts';
import { rffTransform } from '../ml/rff.ts';
import { evaluate, predict } from '../ml/step.ts';
import type { TrainConfig, TrainResult } from '../training/trainer.ts';
import { scoresOf, type TreeModel, type TreeResult, type TreeTrainConfig } from '../training/trees.ts';
import type { ModelResults } from './events.ts';

/** A run's model: the last finished run's, or the last committed step of a run that failed. */
export type RunModel =
  | { kind: 'train'; result: TrainResult; config: TrainConfig }
  | { kind: 'trees'; result: TreeResult; config: TreeTrainConfig };

/** One file of an exported model. */
export interface ModelFile {
  name: string;
  base64: string;
}

/** Class predictions of a tree model for `ds`. */
export function treePredictions(tm: TreeModel, ds: Dataset): Int32Array {
  const d = featureSize(ds.shape);
  return Int32Array.from({ length: ds.n }, (_, i) => {
    const sc = scoresOf(tm, ds.x, i * d);
    return sc.indexOf(Math.max(...sc));
  });
}

/** Class predictions of `model` for `ds` (a neural/SVM result, or trees). */
export async function predictions(model: RunModel, ds: Dataset): Promise<Int32Array> {
  if (model.kind === 'trees') return treePredictions(JSON.parse(model.result.json) as TreeModel, ds);
  const { spec, weights } = model.result;
  const rff = model.config.rff;
  const x = rff ? await rffTransform(ds.x, ds.n, featureSize(ds.shape), { ...rff, seed: model.config.seed }) : ds.x;
  const m = createModel(spec);
  try {
    setFlatWeights(m, weights);
    return (await predict(m, x)).classes ?? new Int32Array(ds.n);
  } finally {
    m.dispose();
  }
}

/** A tree model's first tree (of a boosted model, the first round's), with the names to label it. */
export function treeResults(model: RunModel & { kind: 'trees' }, test: Dataset): ModelResults {
  const tm = JSON.parse(model.result.json) as TreeModel;
  const tree = tm.kind === 'tree' ? tm.tree : tm.gbdt.trees[0]![0]!;
  return {
    tree: {
      tree,
      ...(test.featureNames ? { featureNames: test.featureNames } : {}),
      ...(test.classNames ? { classNames: test.classNames } : {}),
    },
  };
}

/** The confusion matrix of `model` on `test` and up to 12 sample predictions (square images only); null for regression and language models. */
export async function classResults(model: RunModel, test: Dataset): Promise<ModelResults | null> {
  // Regression has no classes; a language model shows its samples of text instead (report.ts).
  if (test.numClasses === 0 || (model.kind === 'train' && model.config.model === 'transformer')) return null;
  const pred = await predictions(model, test);
  const k = test.numClasses;
  const matrix = new Int32Array(k * k);
  for (let i = 0; i < test.n; i++) matrix[test.y[i]! * k + pred[i]!]!++;
  const names = test.classNames ? [...test.classNames] : Array.from({ length: k }, (_, c) => String(c));
  const out: ModelResults = { confusion: { matrix, classNames: names } };
  const d = featureSize(test.shape);
  const side = Math.round(Math.sqrt(d));
  if (side * side === d) {
    out.samples = Array.from({ length: Math.min(12, test.n) }, (_, i) => ({
      pixels: test.x.subarray(i * d, (i + 1) * d),
      side,
      predicted: names[pred[i]!]!,
      truth: names[test.y[i]!]!,
    }));
  }
  return out;
}

/** `model` as files: tfjs layers format (model JSON + weights) for neural models and the SVM, JSON for trees. */
export async function modelFiles(model: RunModel): Promise<ModelFile[]> {
  const enc = new TextEncoder();
  if (model.kind === 'trees') return [{ name: `ringtrain-${model.config.model}.json`, base64: toBase64(enc.encode(model.result.json)) }];
  const name = `ringtrain-${model.result.spec.kind}`;
  const m = createModel(model.result.spec);
  try {
    setFlatWeights(m, model.result.weights);
    let files: ModelFile[] = [];
    await m.save(
      tf.io.withSaveHandler(async (a) => {
        const weights = new Uint8Array(a.weightData as ArrayBuffer);
        const json = {
          modelTopology: a.modelTopology,
          format: 'layers-model',
          generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
          convertedBy: null,
          // Random Fourier features: the model takes the mapped features; the map comes from this seed.
          userDefinedMetadata: {
            ringtrain: {
              config: model.config,
              checksum: model.result.checksum,
              accuracy: model.result.accuracy,
              steps: model.result.steps,
            },
          },
          weightsManifest: [{ paths: [`${name}.weights.bin`], weights: a.weightSpecs }],
        };
        files = [
          { name: `${name}.json`, base64: toBase64(enc.encode(JSON.stringify(json))) },
          { name: `${name}.weights.bin`, base64: toBase64(weights) },
        ];
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.byteLength } };
      }),
    );
    return files;
  } finally {
    m.dispose();
  }
}

const basename = (path: string): string => path.split('/').pop() ?? path;

/**
 * A tfjs layers model from its JSON file and one weights file (what the Export button writes),
 * checked as tf.io.browserFiles checks picked files.
 */
function layersModelFrom(json: PickedFile, text: string, bin: PickedFile): Promise<tf.LayersModel> {
  return tf.loadLayersModel({
    load: async () => {
      const modelJSON = JSON.parse(text) as tf.io.ModelJSON;
      if (modelJSON.modelTopology == null) throw new Error(`modelTopology field is missing from file ${json.name}`);
      if (modelJSON.weightsManifest == null) throw new Error(`weightManifest field is missing from file ${json.name}`);
      return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const paths = manifest.flatMap((g) => g.paths.map(basename));
        for (const [i, p] of paths.entries()) {
          if (paths.indexOf(p) !== i) throw new Error(`Duplicate file basename found in weights manifest: '${p}'`);
          if (p !== basename(bin.name)) throw new Error(`Weight file with basename '${p}' is not provided.`);
        }
        if (paths.length !== 1)
          throw new Error(
            `Mismatch in the number of files in weights manifest (${paths.length}) and the number of weight files provided (1).`,
          );
        return [manifest.flatMap((g) => g.weights), bin.bytes.slice().buffer];
      });
    },
  });
}

/** What an imported model measured: `correct` of all `n` test samples of `dataset`. */
export interface ImportedModel {
  correct: number;
  n: number;
  dataset: string;
}

/**
 * Measures an exported model (its `.json` file, and for a neural model its `.weights.bin`) on
 * `test`, the whole test split of `dataset`.
 */
export async function measureImported(files: PickedFile[], dataset: string, test: () => Promise<Dataset>): Promise<ImportedModel> {
  const json = files.find((f) => f.name.endsWith('.json'));
  if (!json) throw new Error('pick the exported .json file (and, for a neural model, its .weights.bin)');
  const ds = await test();
  const text = new TextDecoder().decode(json.bytes);
  let pred: Int32Array;
  if (text.includes('"modelTopology"')) {
    const bin = files.find((f) => f.name.endsWith('.bin'));
    if (!bin) throw new Error(`${json.name} is a tfjs model: pick its weights file (.weights.bin) together with it`);
    const m = await layersModelFrom(json, text, bin);
    try {
      const want = featureSize(m.inputs[0]!.shape.slice(1) as number[]);
      if (want !== featureSize(ds.shape))
        throw new Error(
          `the model takes ${want} features per sample; ${dataset} has ${featureSize(ds.shape)} (a model on random Fourier features cannot be measured here)`,
        );
      // A language model's accuracy: the share of next characters it gets right, window by window.
      if (m.outputs[0]!.shape.length === 3)
        return { correct: (await evaluate(m, ds.x, ds.y, { lossKind: 'lm' })).correct, n: ds.n, dataset };
      pred = (await predict(m, ds.x)).classes ?? new Int32Array(ds.n);
    } finally {
      m.dispose();
    }
  } else {
    let tm: TreeModel;
    try {
      tm = JSON.parse(text) as TreeModel;
    } catch {
      throw new Error(`${json.name} is not JSON; pick a file the Export button wrote`);
    }
    if (tm.kind !== 'tree' && tm.kind !== 'gbdt') throw new Error(`${json.name} is neither a tfjs model nor a RingTrain tree model`);
    pred = treePredictions(tm, ds);
  }
  let correct = 0;
  for (let i = 0; i < ds.n; i++) if (pred[i] === ds.y[i]) correct++;
  return { correct, n: ds.n, dataset };
}
