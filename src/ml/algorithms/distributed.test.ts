import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Communicator } from '../../core/collectives/communicator.ts';
import { memoryRing, ringExchange } from '../../test/helpers.ts';
import { mulberry32 } from '../../core/random.ts';
import { checksumHex, getFlatWeights, paramCount } from '../flat.ts';
import { createModel, type ModelSpec } from '../models.ts';
import { createOptimizer, type OptimizerSpec } from '../optimizer.ts';
import { federatedRound, synchronousStep, type Batch } from './distributed.ts';

/**
 * The algorithms over the real ring code (Communicators on the in-memory transport), on tfjs's cpu
 * backend: N peers must agree bit for bit, and sync SGD must match one peer on the whole batch.
 */
beforeAll(async () => {
  await tf.setBackend('cpu');
});

const SPEC: ModelSpec = { kind: 'mlp', inputShape: [6], numClasses: 3, hidden: [8], seed: 5 };
const ADAM: OptimizerSpec = { kind: 'adam', lr: 0.02 };

const ring = (n: number): Communicator[] => memoryRing(n, { chunkBytes: 256, timeoutMs: 10_000 });

/** Global batch of step `s`, cut into consecutive parts of the given sizes. */
function batches(s: number, sizes: number[]): Batch[] {
  const rand = mulberry32(1000 + s);
  return sizes.map((count) => {
    const x = Float32Array.from({ length: count * 6 }, () => rand() * 2 - 1);
    const y = Int32Array.from({ length: count }, (_, i) => (x[i * 6]! > 0 ? 1 : 0) + (x[i * 6 + 1]! > 0.5 ? 1 : 0));
    return { x, y, count };
  });
}

function concat(parts: Batch[]): Batch {
  const count = parts.reduce((a, b) => a + b.count, 0);
  const x = new Float32Array(count * 6);
  const y = new Int32Array(count);
  let off = 0;
  for (const p of parts) {
    x.set(p.x, off * 6);
    y.set(p.y as Int32Array, off);
    off += p.count;
  }
  return { x, y, count };
}

describe('distributed algorithms over the ring', () => {
  it('sync SGD: 3 peers (one with an empty batch) end bit-identical and match 1 peer on the whole batch', async () => {
    const sizes = [9, 0, 7];
    const comms = ring(3);
    const peers = comms.map(() => {
      const model = createModel(SPEC);
      return { model, opt: createOptimizer(ADAM, paramCount(model)) };
    });
    const solo = createModel(SPEC);
    const soloOpt = createOptimizer(ADAM, paramCount(solo));
    const before = tf.memory().numTensors;
    for (let s = 0; s < 10; s++) {
      const parts = batches(s, sizes);
      const results = await Promise.all(
        peers.map((p, r) => synchronousStep(p.model, p.opt, 'crossentropy', ringExchange(comms[r]!).sum, parts[r]!)),
      );
      const alone = await synchronousStep(solo, soloOpt, 'crossentropy', async (c) => c, concat(parts));
      for (const r of results) {
        expect(r.samples).toBe(16);
        expect(r.loss).toBeCloseTo(alone.loss, 4);
      }
    }
    expect(tf.memory().numTensors).toBe(before);
    const weights = await Promise.all(peers.map((p) => getFlatWeights(p.model)));
    expect(new Set(weights.map(checksumHex)).size).toBe(1);
    const ref = await getFlatWeights(solo);
    const scale = Math.max(...ref.map(Math.abs));
    for (let i = 0; i < ref.length; i++) expect(Math.abs(weights[0]![i]! - ref[i]!)).toBeLessThan(1e-4 * scale);
    for (const m of [...peers.map((p) => p.model), solo]) m.dispose();
  });

  it('FedAvg: after a round every peer holds the sample-weighted mean of the local models', async () => {
    const comms = ring(3);
    const counts = [4, 8, 12];
    const peers = comms.map(() => {
      const model = createModel(SPEC);
      return { model, opt: createOptimizer({ kind: 'sgd', lr: 0.1 }, paramCount(model)) };
    });
    // The same local work done alone, to build the expected weighted mean.
    const local = await Promise.all(
      counts.map(async (c, r) => {
        const m = createModel(SPEC);
        const opt = createOptimizer({ kind: 'sgd', lr: 0.1 }, paramCount(m));
        await federatedRound(m, opt, 'crossentropy', async (own) => own, batches(r, [c, c]));
        const w = await getFlatWeights(m);
        m.dispose();
        return w;
      }),
    );
    const results = await Promise.all(
      peers.map((p, r) =>
        federatedRound(p.model, p.opt, 'crossentropy', ringExchange(comms[r]!).sum, batches(r, [counts[r]!, counts[r]!])),
      ),
    );
    for (const r of results) expect(r.samples).toBe(2 * (4 + 8 + 12));
    const weights = await Promise.all(peers.map((p) => getFlatWeights(p.model)));
    expect(new Set(weights.map(checksumHex)).size).toBe(1);
    const total = counts.reduce((a, b) => a + b, 0);
    for (let i = 0; i < weights[0]!.length; i += 7) {
      const expected = local.reduce((a, w, r) => a + w[i]! * counts[r]!, 0) / total;
      expect(weights[0]![i]).toBeCloseTo(expected, 5);
    }
    for (const p of peers) p.model.dispose();
  });
});
