import { mulberry32 } from '../core/random.ts';
import type { BackendName } from './backend.ts';
import { MlError } from './errors.ts';
import { paramCount } from './flat.ts';
import { createModel, lossKindFor, type ModelSpec } from './models.ts';
import { createOptimizer } from './optimizer.ts';
import { computeGradients } from './step.ts';

/** Options of {@link makeStepProbe}. */
export interface StepProbeOptions {
  /** Samples per probed step (default 64, the batch chromium.md's timings use). */
  batchSize?: number;
  /** Untimed steps first: shader compilation and uploads of the first steps (default 2). */
  warmup?: number;
  /** Timed steps; the probe reports their median (default 3). */
  steps?: number;
}

/**
 * A probe for `selectBackend`: on the active backend, builds the model of `spec`, runs `warmup`
 * then `steps` full training steps (gradient with readback, then an SGD apply) on seeded random
 * data, disposes everything, and resolves to the median ms per step. Pass `needsConv: spec.kind ===
 * 'cnn'` to selectBackend alongside it.
 */
export function makeStepProbe(spec: ModelSpec, options: StepProbeOptions = {}): (backend: BackendName) => Promise<number> {
  const batch = options.batchSize ?? 64;
  const warmup = options.warmup ?? 2;
  const steps = options.steps ?? 3;
  for (const [k, v, min] of [
    ['batchSize', batch, 1],
    ['warmup', warmup, 0],
    ['steps', steps, 1],
  ] as const) {
    if (!(Number.isInteger(v) && v >= min))
      throw new MlError('invalid-argument', `makeStepProbe: options.${k} must be an integer >= ${min}; got ${v}`);
  }
  const per = spec.inputShape.reduce((a, b) => a * b, 1);
  const rand = mulberry32(spec.seed ^ 0x5bd1e995);
  const x = Float32Array.from({ length: batch * per }, () => rand());
  const lossKind = lossKindFor(spec);
  const y =
    lossKind === 'mse'
      ? Float32Array.from({ length: batch }, () => rand())
      : Int32Array.from({ length: batch }, () => Math.floor(rand() * spec.numClasses));

  return async () => {
    const model = createModel(spec);
    try {
      const opt = createOptimizer({ kind: 'sgd', lr: 1e-3 }, paramCount(model));
      const times: number[] = [];
      for (let i = 0; i < warmup + steps; i++) {
        const t0 = performance.now();
        const g = await computeGradients(model, x, y, batch, lossKind);
        for (let j = 0; j < g.grad.length; j++) g.grad[j] = g.grad[j]! / batch;
        await opt.apply(model, g.grad);
        if (i >= warmup) times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      return times[Math.floor(times.length / 2)]!;
    } finally {
      model.dispose();
    }
  };
}
