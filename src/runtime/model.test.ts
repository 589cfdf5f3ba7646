import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { localShard } from '../data/local.ts';
import { getFlatWeights } from '../ml/flat.ts';
import { createModel, type ModelSpec } from '../ml/models.ts';
import { BLOBS, BLOBS_GD } from '../test/room.ts';
import type { TrainResult } from '../training/trainer.ts';
import { classResults, measureImported, modelFiles, predictions, type ModelFile, type RunModel } from './model.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const fromBase64 = (f: ModelFile) => ({ name: f.name, bytes: Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0)) });
const test = localShard(BLOBS, 'test', { rank: 0, size: 1, ...BLOBS_GD.partition });

async function softmaxRun(): Promise<RunModel> {
  const spec: ModelSpec = { kind: 'softmax', inputShape: [4], numClasses: 3, seed: 7 };
  const m = createModel(spec);
  const flat = await getFlatWeights(m);
  m.dispose();
  const result: TrainResult = {
    steps: 1,
    stopped: false,
    accuracy: 0.5,
    loss: 1,
    checksum: 'x',
    backend: 'cpu',
    params: flat.length,
    recoveries: 0,
    weights: flat,
    spec,
  };
  return { kind: 'train', result, config: BLOBS_GD };
}

describe('model files', () => {
  it('a neural model exported as tfjs files measures, from their bytes, what its predictions say', async () => {
    const run = await softmaxRun();
    const files = await modelFiles(run);
    expect(files.map((f) => f.name)).toEqual(['ringtrain-softmax.json', 'ringtrain-softmax.weights.bin']);
    const pred = await predictions(run, test);
    const correct = pred.reduce((n, p, i) => n + (p === test.y[i] ? 1 : 0), 0);
    const measured = await measureImported(files.map(fromBase64), 'local', async () => test);
    expect(measured).toEqual({ correct, n: test.n, dataset: 'local' });
  });

  it('refuses files that do not go together, as the browser loader would', async () => {
    const files = (await modelFiles(await softmaxRun())).map(fromBase64);
    const load = async () => test;
    await expect(measureImported([files[0]!], 'local', load)).rejects.toThrow('pick its weights file (.weights.bin)');
    await expect(measureImported([files[0]!, { ...files[1]!, name: 'other.weights.bin' }], 'local', load)).rejects.toThrow(
      "Weight file with basename 'ringtrain-softmax.weights.bin' is not provided.",
    );
    await expect(measureImported([files[1]!], 'local', load)).rejects.toThrow('pick the exported .json file');
    const notJson = { name: 'm.json', bytes: new TextEncoder().encode('{nope') };
    await expect(measureImported([notJson], 'local', load)).rejects.toThrow('m.json is not JSON');
  });

  it('the confusion matrix counts every test sample once; samples only for square inputs', async () => {
    const r = await classResults(await softmaxRun(), test);
    expect(r!.confusion!.matrix.reduce((a, b) => a + b, 0)).toBe(test.n);
    expect(r!.confusion!.classNames).toHaveLength(3);
    // 4 features: a 2x2 "image".
    expect(r!.samples).toHaveLength(Math.min(12, test.n));
  });
});
