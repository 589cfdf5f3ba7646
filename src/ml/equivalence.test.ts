import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../core/random.ts';
import { relativeDifference } from './compare.ts';
import { checksum, getFlatWeights, paramCount } from './flat.ts';
import { createModel, lossKindFor, type ModelSpec } from './models.ts';
import { createOptimizer, type FlatOptimizer, type OptimizerSpec } from './optimizer.ts';
import { computeGradients, meanGradient, packGradient } from './step.ts';

/**
 * Synchronous data-parallel SGD in-process: each of N peers computes the summed gradient of its part
 * of a fixed global batch, the packed `[grad | count]` vectors are added (a stand-in for the ring
 * allreduce), every peer divides by the total count and applies the same update. After 20 steps the
 * weights must match one peer training on the whole global batch, to 1e-4 relative.
 */

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const STEPS = 20;
const GLOBAL_BATCH = 24;
const SPLITS: Record<number, number[]> = { 2: [13, 11], 3: [10, 7, 7] };

const OPTIMIZERS: OptimizerSpec[] = [
  { kind: 'sgd', lr: 0.1 },
  { kind: 'momentum', lr: 0.05, beta: 0.9 },
  { kind: 'adam', lr: 0.01 },
];

interface Peer {
  model: tf.Sequential;
  opt: FlatOptimizer;
}

function makePeer(spec: ModelSpec, o: OptimizerSpec): Peer {
  const model = createModel(spec);
  return { model, opt: createOptimizer(o, paramCount(model)) };
}

/** The global batch of step `s`: inputs in [-1, 1), labels from a fixed rule plus noise. */
function globalBatch(spec: ModelSpec, s: number): { x: Float32Array; y: Int32Array | Float32Array; per: number } {
  const r = mulberry32(1000 + s);
  const per = spec.inputShape.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: GLOBAL_BATCH * per }, () => 2 * r() - 1);
  const score = (i: number) => x[i * per]! - 0.5 * x[i * per + 1]! + 0.3 * r();
  const y =
    spec.numClasses === 0
      ? Float32Array.from({ length: GLOBAL_BATCH }, (_, i) => score(i))
      : Int32Array.from({ length: GLOBAL_BATCH }, (_, i) =>
          Math.min(spec.numClasses - 1, Math.max(0, Math.floor((score(i) + 1.5) * (spec.numClasses / 3)))),
        );
  return { x, y, per };
}

async function train(spec: ModelSpec, o: OptimizerSpec, split: number[]): Promise<{ weights: Float32Array[]; losses: number[] }> {
  const peers = split.map(() => makePeer(spec, o));
  const kind = lossKindFor(spec);
  const losses: number[] = [];
  try {
    for (let s = 0; s < STEPS; s++) {
      const { x, y, per } = globalBatch(spec, s);
      const packed: Float32Array[] = [];
      let start = 0;
      let loss = 0;
      for (let p = 0; p < peers.length; p++) {
        const c = split[p]!;
        const g = await computeGradients(
          peers[p]!.model,
          x.subarray(start * per, (start + c) * per),
          y.subarray(start, start + c),
          c,
          kind,
        );
        packed.push(packGradient(g.grad, g.count));
        loss += g.loss;
        start += c;
      }
      // The allreduce: an elementwise float32 sum, then the same vector on every peer.
      const sum = packed[0]!.slice();
      for (const v of packed.slice(1)) for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! + v[i]!;
      const { mean, count } = meanGradient(sum);
      expect(count).toBe(GLOBAL_BATCH);
      for (const peer of peers) await peer.opt.apply(peer.model, mean);
      losses.push(loss / GLOBAL_BATCH);
    }
    return { weights: await Promise.all(peers.map((p) => getFlatWeights(p.model, { fromDevice: true }))), losses };
  } finally {
    for (const p of peers) p.model.dispose();
  }
}

const MODELS: [string, ModelSpec][] = [
  ['mlp', { kind: 'mlp', inputShape: [6], numClasses: 3, hidden: [8], seed: 7 }],
  ['cnn', { kind: 'cnn', inputShape: [8, 8, 1], numClasses: 3, hidden: [3], seed: 7 }],
  ['regression', { kind: 'mlp', inputShape: [6], numClasses: 0, hidden: [8], seed: 7 }],
  ['svm', { kind: 'svm', inputShape: [6], numClasses: 3, seed: 7 }],
];

/** All three optimizers on the MLP; one each on the others keeps the suite fast. */
const OPTIMIZERS_OF: Record<string, OptimizerSpec[]> = {
  mlp: OPTIMIZERS,
  cnn: [OPTIMIZERS[2]!],
  regression: [OPTIMIZERS[1]!],
  svm: [{ kind: 'pegasos', lambda: 0.05 }],
};

describe('synchronous SGD over N peers equals one peer on the whole global batch', () => {
  for (const [name, spec] of MODELS) {
    for (const o of OPTIMIZERS_OF[name]!) {
      it(`${name}, ${o.kind}: 2 and 3 peers after ${STEPS} steps, to 1e-4 relative`, async () => {
        const before = tf.memory().numTensors;
        const single = await train(spec, o, [GLOBAL_BATCH]);
        const ref = single.weights[0]!;
        const init = createModel(spec);
        const w0 = await getFlatWeights(init);
        init.dispose();
        expect(relativeDifference(w0, ref)).toBeGreaterThan(1e-2); // training moved the weights
        if (spec.numClasses > 0) expect(single.losses[STEPS - 1]!).toBeLessThan(single.losses[0]!);
        for (const n of [2, 3]) {
          const multi = await train(spec, o, SPLITS[n]!);
          // Every peer holds bit-identical weights (same mean gradient, same JS update)...
          for (const w of multi.weights) expect(checksum(w)).toBe(checksum(multi.weights[0]!));
          // ...equal to the single peer's up to float32 summation order.
          // (Measured here: about 3e-8, since only the float32 summation order differs.)
          expect(relativeDifference(multi.weights[0]!, ref)).toBeLessThan(1e-4);
          for (let s = 0; s < STEPS; s++) expect(multi.losses[s]!).toBeCloseTo(single.losses[s]!, 4);
        }
        expect(tf.memory().numTensors).toBe(before);
      });
    }
  }
});
