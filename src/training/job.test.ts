import { describe, expect, it } from 'vitest';
import type { TrainConfig } from '../protocol/run-config.ts';
import { TRANSFORMER_DEFAULTS } from '../protocol/catalogs.ts';
import { jobFromFields, modelDefaults, SetupError } from './job.ts';

/** The training config of a train job (fails the test for a trees job). */
function trainConfig(fields: Record<string, string>, localSamples?: number): TrainConfig {
  const job = jobFromFields(fields, localSamples);
  if (job.kind !== 'train') throw new Error(`a ${job.kind} job`);
  return job.config;
}

describe('training setup form', () => {
  it('defaults to 10 epochs of softmax regression with Adam and a cosine decay on Fashion-MNIST', () => {
    const job = jobFromFields({});
    expect(job).toEqual({
      kind: 'train',
      config: {
        dataset: 'fashion-mnist',
        partition: { scheme: 'iid', seed: 1 },
        model: 'softmax',
        algorithm: 'sgd',
        optimizer: { kind: 'adam', lr: 0.005 },
        schedule: { kind: 'cosine' },
        batch: 128,
        // 10 epochs of the 60000 training images (the trainer trains on the whole split).
        steps: 4688,
        seed: 1,
        evalEvery: 234,
        checkpointEvery: 234,
        minPeers: 1,
      },
    });
  });

  it('turns epochs into steps per algorithm and keeps only the options that apply', () => {
    const fed = jobFromFields({ algorithm: 'fedavg', localSteps: '4', batch: '100', epochs: '2', partition: 'dirichlet', alpha: '0.1' });
    expect(fed.config).toMatchObject({ steps: 300, localSteps: 4, partition: { scheme: 'dirichlet', alpha: 0.1, seed: 1 } });
    expect(trainConfig({ algorithm: 'gd', epochs: '30' }).steps).toBe(30);
    const svm = jobFromFields({ model: 'svm', optimizer: 'adam', lambda: '0.001', balance: 'on' });
    expect(svm.config).toMatchObject({ optimizer: { kind: 'pegasos', lambda: 0.001 }, balance: true });
    expect(svm.config).not.toHaveProperty('rff');
    // The SVM's kernel fields make random Fourier features; the other models ignore them, as they do λ.
    expect(trainConfig({ model: 'svm', kernelFeatures: '4000', kernelGamma: '0.05' }).rff).toEqual({ features: 4000, gamma: 0.05 });
    expect(trainConfig({ model: 'mlp', kernelFeatures: '4000' })).not.toHaveProperty('rff');
    expect(() => jobFromFields({ model: 'svm', kernelFeatures: '2.5' })).toThrow(/kernelFeatures/);
    expect(() => jobFromFields({ model: 'svm', kernelFeatures: '10', kernelGamma: '0' })).toThrow(/kernelGamma/);
    expect(trainConfig({ dataset: 'local', epochs: '1', batch: '10' }, 95).steps).toBe(10);
    expect(trainConfig({ dpNoise: '1.1', dpClip: '0.5' }).dp).toEqual({ clip: 0.5, noiseMultiplier: 1.1 });
    expect(jobFromFields({}).config).not.toHaveProperty('dp');
    expect(trainConfig({ compression: 'powersgd-r2' }).compression).toEqual({ kind: 'powersgd', rank: 2 });
    expect(trainConfig({ compression: 'auto' }).compression).toEqual({ kind: 'auto' });
    expect(trainConfig({ aggregation: 'trimmed-mean' }).robust).toEqual({ rule: 'trimmed-mean', trim: 0.25 });
    expect(jobFromFields({}).config).not.toHaveProperty('compression');
    expect(jobFromFields({ algorithm: 'fedavg', compression: 'fp16', aggregation: 'median' }).config).not.toHaveProperty('robust');
    // DiLoCo counts inner steps (global batches): its epochs are sgd's; its deltas may be compressed.
    const diloco = trainConfig({
      algorithm: 'diloco',
      localSteps: 'auto',
      batch: '100',
      epochs: '2',
      compression: 'int8',
      aggregation: 'median',
    });
    expect(diloco).toMatchObject({ steps: 1200, localSteps: 'auto', outerLr: 0.7, outerMomentum: 0.9, compression: { kind: 'int8' } });
    expect(diloco).not.toHaveProperty('robust');
    expect(trainConfig({ algorithm: 'diloco', localSteps: '50', outerLr: '1', outerMomentum: '0' })).toMatchObject({
      localSteps: 50,
      outerLr: 1,
      outerMomentum: 0,
    });
    expect(trainConfig({ algorithm: 'sgd', outerLr: '0.3' })).not.toHaveProperty('outerLr');
    // Schedules, AdamW and clipping from the form; constant without warm-up is no schedule.
    expect(jobFromFields({ schedule: 'constant' }).config).not.toHaveProperty('schedule');
    expect(trainConfig({ schedule: 'cosine', warmupSteps: '20', weightDecay: '0.01', clipNorm: '1' })).toMatchObject({
      schedule: { kind: 'cosine', warmupSteps: 20 },
      optimizer: { kind: 'adam', lr: 0.005, weightDecay: 0.01, clipNorm: 1 },
    });
    expect(trainConfig({ schedule: 'step', epochs: '1' }).schedule).toEqual({ kind: 'step', every: 156, gamma: 0.1 });
    expect(trainConfig({ model: 'svm', schedule: 'cosine' })).not.toHaveProperty('schedule');
    expect(trainConfig({ labelSmoothing: '0.1' }).labelSmoothing).toBe(0.1);
    expect(trainConfig({ augment: 'shift-flip' }).augment).toEqual({ shift: 2, flip: true });
    // A model's own defaults fill what the fields leave out (the CLI's absent flags); given fields win.
    expect(trainConfig({ model: 'mlp' })).toMatchObject({
      steps: 7032,
      schedule: { kind: 'cosine' },
      optimizer: { lr: 0.002, weightDecay: 0.05 },
      labelSmoothing: 0.1,
    });
    expect(trainConfig({ model: 'softmax' })).not.toHaveProperty('labelSmoothing');
    expect(trainConfig({ model: 'mlp', epochs: '1', schedule: 'constant' })).not.toHaveProperty('schedule');
    expect(jobFromFields({}).config).not.toHaveProperty('augment');
    expect(trainConfig({ model: 'svm', labelSmoothing: '0.1' })).not.toHaveProperty('labelSmoothing');
  });

  it('the transformer defaults to one pass over Moby-Dick with AdamW, warm-up and cosine; the form changes a dataset that does not fit the model', () => {
    expect(trainConfig({ model: 'transformer' })).toMatchObject({
      dataset: 'moby-dick',
      batch: 32,
      steps: Math.ceil(8626 / 32),
      optimizer: { kind: 'adam', lr: 0.002, weightDecay: 0.01 },
      schedule: { kind: 'cosine', warmupSteps: 20 },
    });
    expect(modelDefaults('transformer', 'fashion-mnist')['dataset']).toBe('moby-dick');
    expect(modelDefaults('mlp', 'moby-dick')['dataset']).toBe('fashion-mnist');
    expect(modelDefaults('mlp', 'local')).not.toHaveProperty('dataset');
    // Back from the transformer, an image model's batch and warm-up come back too.
    expect(modelDefaults('softmax', 'moby-dick')).toMatchObject({
      dataset: 'fashion-mnist',
      batch: '128',
      warmupSteps: '0',
      weightDecay: '0',
    });
  });

  it("the transformer's shape comes from its fields, whose defaults are the model's; heads must divide the width", () => {
    expect(trainConfig({ model: 'transformer' }).transformer).toEqual({
      layers: TRANSFORMER_DEFAULTS.layers,
      dModel: TRANSFORMER_DEFAULTS.dModel,
      heads: TRANSFORMER_DEFAULTS.heads,
    });
    expect(trainConfig({ model: 'transformer', lmLayers: '3', lmWidth: '96', lmHeads: '6' }).transformer).toEqual({
      layers: 3,
      dModel: 96,
      heads: 6,
    });
    expect(trainConfig({ model: 'softmax', lmLayers: '3' })).not.toHaveProperty('transformer');
    const err = (() => {
      try {
        jobFromFields({ model: 'transformer', lmWidth: '100', lmHeads: '8' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(SetupError);
    expect((err as SetupError).field).toBe('lmHeads');
    expect((err as SetupError).message).toMatch(/heads must divide dModel/);
    expect(() => jobFromFields({ model: 'transformer', lmLayers: '49' })).toThrow(/<=48/);
  });

  it('gives tree jobs their own config', () => {
    expect(jobFromFields({ model: 'gbdt', depth: '4', rounds: '20', bins: '64', partition: 'label-shards', shards: '3' })).toEqual({
      kind: 'trees',
      config: {
        dataset: 'fashion-mnist',
        partition: { scheme: 'label-shards', seed: 1, shardsPerPart: 3 },
        model: 'gbdt',
        maxDepth: 4,
        bins: 64,
        rounds: 20,
        colSample: 0.5,
        seed: 1,
      },
    });
    expect(jobFromFields({ model: 'tree' }).config).not.toHaveProperty('rounds');
    expect(jobFromFields({ model: 'tree' }).config).not.toHaveProperty('colSample');
  });

  it("gives boosted trees the defaults of the accuracy table's row: 50 rounds of depth 6, 64 bins, half the features a round", () => {
    expect(jobFromFields({ model: 'gbdt' }).config).toMatchObject({ maxDepth: 6, rounds: 50, bins: 64, colSample: 0.5 });
    expect(jobFromFields({ model: 'gbdt', colSample: '1' }).config).toMatchObject({ colSample: 1 });
    let err: unknown;
    try {
      jobFromFields({ model: 'gbdt', colSample: '0' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SetupError);
    expect((err as SetupError).field).toBe('colSample');
  });

  it('names the field and the allowed range of a bad value', () => {
    const bad = (fields: Record<string, string>, field: string, msg: RegExp): void => {
      let err: unknown;
      try {
        jobFromFields(fields);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SetupError);
      expect((err as SetupError).field).toBe(field);
      expect((err as SetupError).message).toMatch(msg);
    };
    bad({ lr: 'fast' }, 'lr', /lr: "fast" must be a number from 1e-7 to 10/);
    bad({ batch: '12.5' }, 'batch', /whole number/);
    bad({ model: 'tree', depth: '40' }, 'depth', /from 1 to 16/);
    bad({ model: 'mlp', optimizer: 'pegasos' }, 'optimizer', /pegasos is for the linear SVM/);
    bad({ dataset: 'local' }, 'dataset', /load your own data first/);
    bad({ partition: 'random' }, 'partition', /not iid, label-shards or dirichlet/);
    bad({ compression: 'zip' }, 'compression', /"zip" is not one of none, auto, fp16/);
    bad({ aggregation: 'toString' }, 'aggregation', /"toString" is not one of sum, median, trimmed-mean/);
    // Conflicts come from the run-config schema, on the form field that set them.
    bad({ compression: 'fp16', aggregation: 'median' }, 'aggregation', /robust and compression: .*every contribution in the clear/);
    bad({ dpNoise: '1', aggregation: 'median' }, 'aggregation', /robust and dp: DP-SGD calibrates its noise/);
    bad({ algorithm: 'fedavg', localSteps: 'auto' }, 'localSteps', /localSteps: "auto" must be a whole number from 1 to 1000/);
    bad({ algorithm: 'diloco', outerMomentum: '1' }, 'outerMomentum', /from 0 to 0.999/);
  });
});
