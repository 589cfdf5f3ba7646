import { describe, expect, it } from 'vitest';
import { BLOBS_GD } from '../test/room.ts';
import {
  ConfigError,
  parseJob,
  parseTrainConfig,
  runKey,
  type SCHEDULE_FIELDS,
  type TRAJECTORY_FIELDS,
  type TrainConfig,
} from './run-config.ts';

const BASE: TrainConfig = BLOBS_GD;

/** The ConfigError `value` gets (fails the test when it parses). */
function refused(value: unknown): ConfigError {
  try {
    parseTrainConfig(value);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`parsed: ${JSON.stringify(value)}`);
}

describe('run config schema', () => {
  it('accepts a valid config as it is', () => {
    expect(parseTrainConfig(BASE)).toEqual(BASE);
    const full: TrainConfig = {
      ...BASE,
      algorithm: 'sgd',
      batch: 32,
      evalEvery: 5,
      checkpointEvery: 5,
      checksumEvery: 5,
      minPeers: 2,
      balance: true,
      maxGradNorm: 10,
      compression: { kind: 'powersgd', rank: 2 },
      secureAggregation: { scale: 100 },
      dp: { clip: 1, noiseMultiplier: 1.1, delta: 1e-5 },
    };
    expect(parseTrainConfig(full)).toEqual(full);
  });

  it('refuses unknown fields, at the top and nested, naming them', () => {
    expect(refused({ ...BASE, evalEvry: 3 }).message).toMatch(/Unrecognized key: "evalEvry"/);
    expect(refused({ ...BASE, optimizer: { kind: 'adam', lr: 0.1, momentum: 0.9 } }).message).toMatch(
      /optimizer: Unrecognized key: "momentum"/,
    );
    expect(refused({ ...BASE, dp: { clip: 1, noiseMultiplier: 1, epsilon: 3 } }).field).toBe('dp');
  });

  it('refuses bad values, naming the field', () => {
    expect(refused({ ...BASE, optimizer: { kind: 'adam', lr: -1 } }).field).toBe('optimizer.lr');
    expect(refused({ ...BASE, steps: 1.5 }).field).toBe('steps');
    expect(refused({ ...BASE, model: 'forest' }).field).toBe('model');
    expect(refused({ ...BASE, robust: { rule: 'trimmed-mean', trim: 0.5 } }).message).toMatch(/trim must be in \[0, 0.5\)/);
    expect(refused({ ...BASE, compression: { kind: 'zip' } }).field).toBe('compression.kind');
    expect(refused(null).message).toMatch(/^run config: /);
  });

  it('refuses options that cannot work together once, with a message naming both', () => {
    const cases: [Partial<TrainConfig>, string, RegExp][] = [
      [{ robust: { rule: 'median' }, compression: { kind: 'fp16' } }, 'robust', /robust and compression/],
      [{ robust: { rule: 'median' }, secureAggregation: {} }, 'robust', /robust and secureAggregation/],
      [{ robust: { rule: 'median' }, dp: { clip: 1, noiseMultiplier: 1 } }, 'robust', /robust and dp: .*voids its ε/],
      [{ secureAggregation: {}, compression: { kind: 'int8' } }, 'secureAggregation', /secureAggregation and compression int8/],
      [{ algorithm: 'fedavg', batch: 8, dp: { clip: 1, noiseMultiplier: 1 } }, 'dp', /dp and algorithm fedavg/],
      [{ algorithm: 'fedavg', batch: 8, compression: { kind: 'fp16' } }, 'compression', /compression and algorithm fedavg/],
      [{ algorithm: 'diloco', batch: 8, robust: { rule: 'median' } }, 'robust', /robust and algorithm diloco/],
      [{ algorithm: 'diloco', batch: 8, secureAggregation: {} }, 'secureAggregation', /secureAggregation and algorithm diloco/],
      [{ algorithm: 'diloco', batch: 8, compression: { kind: 'auto' } }, 'compression', /compression auto and algorithm diloco/],
      [{ algorithm: 'sgd', batch: 8, outerLr: 0.5 }, 'outerLr', /outerLr and algorithm sgd/],
      [{ algorithm: 'fedavg', batch: 8, localSteps: 'auto' }, 'localSteps', /localSteps auto and algorithm fedavg/],
      [{ balance: true }, 'balance', /balance and algorithm gd/],
      [{ labelSmoothing: 0.1, dp: { clip: 1, noiseMultiplier: 1 } }, 'labelSmoothing', /labelSmoothing and dp/],
      [{ algorithm: 'sgd', batch: 0 }, 'batch', /batch and algorithm sgd/],
      [{ optimizer: { kind: 'pegasos', lambda: 0.01 } }, 'optimizer', /optimizer pegasos and model softmax/],
      [{ model: 'cnn', rff: { features: 10, gamma: 1 } }, 'rff', /rff and model cnn/],
      [{ hidden: [8] }, 'hidden', /hidden and model softmax/],
      [
        { transformer: { layers: 1 } },
        'transformer',
        /transformer and model softmax: the transformer's shape is for the transformer model/,
      ],
      [
        { model: 'transformer', dataset: 'fashion-mnist' },
        'model',
        /model transformer and dataset fashion-mnist: the language model reads text: pick moby-dick/,
      ],
      [
        { dataset: 'moby-dick' },
        'model',
        /model softmax and dataset moby-dick: moby-dick is text, for the transformer language model: pick transformer/,
      ],
      [{ model: 'transformer', dataset: 'moby-dick', rff: { features: 10, gamma: 1 } }, 'rff', /rff and model transformer/],
      [{ model: 'transformer', dataset: 'moby-dick', dp: { clip: 1, noiseMultiplier: 1 } }, 'dp', /dp and model transformer/],
    ];
    for (const [change, field, msg] of cases) {
      const e = refused({ ...BASE, ...change });
      expect(e.field, JSON.stringify(change)).toBe(field);
      expect(e.message).toMatch(msg);
      // Said once: one issue for the pair (issues are joined by "; ").
      expect(e.message).not.toContain('; ');
    }
  });

  it('jobs: a train or trees config by kind, nothing else', () => {
    expect(parseJob({ kind: 'train', config: BASE })).toEqual({ kind: 'train', config: BASE });
    expect(
      parseJob({
        kind: 'trees',
        config: { dataset: 'x', partition: { scheme: 'iid', seed: 1 }, model: 'gbdt', maxDepth: 3, bins: 16, seed: 1 },
      }).kind,
    ).toBe('trees');
    expect(() => parseJob({ kind: 'trees', config: BASE })).toThrow(ConfigError);
    expect(() => parseJob({ kind: 'rm -rf', config: {} })).toThrow(/kind/);
  });
});

describe('runKey', () => {
  /** One change of each field that changes the trajectory. */
  const TRAJECTORY: Record<(typeof TRAJECTORY_FIELDS)[number], Partial<TrainConfig>> = {
    dataset: { dataset: 'fashion-mnist' },
    partition: { partition: { scheme: 'dirichlet', seed: 2, alpha: 0.5 } },
    model: { model: 'mlp' },
    hidden: { hidden: [16] },
    transformer: { transformer: { layers: 1 } },
    algorithm: { algorithm: 'sgd' },
    optimizer: { optimizer: { kind: 'momentum', lr: 0.3, beta: 0.8 } },
    schedule: { schedule: { kind: 'cosine', warmupSteps: 5 } },
    labelSmoothing: { labelSmoothing: 0.1 },
    augment: { augment: { shift: 2, flip: true } },
    batch: { batch: 64 },
    localSteps: { localSteps: 3 },
    outerLr: { outerLr: 0.5 },
    outerMomentum: { outerMomentum: 0.8 },
    seed: { seed: 6 },
    rff: { rff: { features: 10, gamma: 1 } },
    balance: { balance: true },
    maxGradNorm: { maxGradNorm: 5 },
    compression: { compression: { kind: 'fp16' } },
    robust: { robust: { rule: 'median' } },
    secureAggregation: { secureAggregation: {} },
    dp: { dp: { clip: 1, noiseMultiplier: 1 } },
  };
  /** A change of each field that only says how long a run lasts and what it reports. */
  const SCHEDULE: Record<(typeof SCHEDULE_FIELDS)[number], number> = {
    steps: 99,
    evalEvery: 3,
    checksumEvery: 2,
    checkpointEvery: 5,
    minPeers: 3,
  };
  // Every field of TrainConfig is one or the other: a new field fails the typecheck until it is placed.
  type Unplaced = Exclude<keyof TrainConfig, (typeof TRAJECTORY_FIELDS)[number] | (typeof SCHEDULE_FIELDS)[number]>;
  const everyFieldPlaced: [Unplaced] extends [never] ? true : never = true;

  it('changes with every field that changes the trajectory, and with no other', () => {
    expect(everyFieldPlaced).toBe(true);
    for (const [field, change] of Object.entries(TRAJECTORY)) expect(runKey({ ...BASE, ...change }), field).not.toBe(runKey(BASE));
    for (const [field, v] of Object.entries(SCHEDULE)) expect(runKey({ ...BASE, [field]: v }), field).toBe(runKey(BASE));
  });
});
