import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Communicator } from '../../core/collectives/communicator.ts';
import { memoryRing, ringExchange } from '../../test/helpers.ts';
import { mulberry32 } from '../../core/random.ts';
import { checksumHex, getFlatWeights, paramCount } from '../flat.ts';
import { createModel, type ModelSpec } from '../models.ts';
import { createOptimizer, type OptimizerSpec } from '../optimizer.ts';
import { relativeDifference } from '../compare.ts';
import { synchronousStep, type Batch } from './distributed.ts';
import { FEDAVG_OUTER, localRound, OuterOptimizer, type OuterSpec } from './rounds.ts';

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
        await localRound(m, opt, new OuterOptimizer(FEDAVG_OUTER, 0), 'crossentropy', async (own) => own, batches(r, [c, c]));
        const w = await getFlatWeights(m);
        m.dispose();
        return w;
      }),
    );
    const results = await Promise.all(
      peers.map((p, r) =>
        localRound(
          p.model,
          p.opt,
          new OuterOptimizer(FEDAVG_OUTER, 0),
          'crossentropy',
          ringExchange(comms[r]!).sum,
          batches(r, [counts[r]!, counts[r]!]),
        ),
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

  /** `rounds` DiLoCo rounds on 3 peers (local batches of `counts`, `h` per round); each peer's weights. */
  async function diloco(outer: OuterSpec, inner: OptimizerSpec, counts: number[], h: number, rounds: number): Promise<Float32Array[]> {
    const comms = ring(counts.length);
    const peers = comms.map(() => {
      const model = createModel(SPEC);
      const n = paramCount(model);
      return { model, inner: createOptimizer(inner, n), outer: new OuterOptimizer(outer, n) };
    });
    for (let t = 0; t < rounds; t++) {
      await Promise.all(
        peers.map((p, r) =>
          localRound(
            p.model,
            p.inner,
            p.outer,
            'crossentropy',
            ringExchange(comms[r]!).sum,
            Array.from({ length: h }, (_, k) => batches(t * h + k, counts)[r]!),
          ),
        ),
      );
    }
    const out = await Promise.all(peers.map((p) => getFlatWeights(p.model)));
    for (const p of peers) p.model.dispose();
    return out;
  }

  it('DiLoCo on 3 peers: identical on every peer, the same bits when run again, and the outer Nesterov step taken exactly', async () => {
    const outer = { lr: 0.7, momentum: 0.9 };
    const counts = [5, 0, 9];
    const a = await diloco(outer, ADAM, counts, 4, 3);
    expect(new Set(a.map(checksumHex)).size).toBe(1);
    const b = await diloco(outer, ADAM, counts, 4, 3);
    expect(checksumHex(b[0]!)).toBe(checksumHex(a[0]!));
    // The outer step by hand from the same round sums: b = Δ; θ1 = θ0 − lr (Δ + μ b).
    const o = new OuterOptimizer(outer, 3);
    const t1 = o.step(Float32Array.of(1, 2, 3), Float32Array.of(0.5, -1, 0));
    expect(Array.from(t1)).toEqual(Array.from(Float32Array.of(1 - 0.7 * 0.5 * 1.9, 2 + 0.7 * 1.9, 3)));
    const t2 = o.step(t1, Float32Array.of(0.5, 0, 1));
    // b = 0.9·Δ1 + Δ2; θ2 = θ1 − lr (Δ2 + μ b).
    const b2 = [0.9 * 0.5 + 0.5, 0.9 * -1, 1];
    expect(Array.from(t2)).toEqual(Array.from(Float32Array.from([0.5, 0, 1], (d, i) => t1[i]! - 0.7 * (d + 0.9 * b2[i]!))));
    expect(Array.from(o.getState())).toEqual(Array.from(Float32Array.from(b2)));
  });

  it('DiLoCo with H = 1, outer lr 1 and no momentum is sync SGD (inner SGD): 1e-6 after 10 rounds', async () => {
    const counts = [6, 3, 7];
    const sgd: OptimizerSpec = { kind: 'sgd', lr: 0.3 };
    const [rounds] = await diloco(FEDAVG_OUTER, sgd, counts, 1, 10);
    const solo = createModel(SPEC);
    const opt = createOptimizer(sgd, paramCount(solo));
    for (let s = 0; s < 10; s++) await synchronousStep(solo, opt, 'crossentropy', async (c) => c, concat(batches(s, counts)));
    const ref = await getFlatWeights(solo);
    solo.dispose();
    // Not bit for bit: a round's Δ is a difference of float32 weights, the step's gradient is not.
    expect(relativeDifference(rounds!, ref)).toBeLessThan(1e-6);
    // …and a real step apart from a round with momentum.
    const [nesterov] = await diloco({ lr: 1, momentum: 0.9 }, sgd, counts, 1, 10);
    expect(relativeDifference(nesterov!, ref)).toBeGreaterThan(1e-2);
  });
});
