import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Communicator } from '../core/collectives/communicator.ts';
import { Mailbox } from '../core/collectives/mailbox.ts';
import { makeView } from '../core/membership/view.ts';
import { MemoryNetwork } from '../core/memory-transport.ts';
import { holdOut, localShard } from '../data/local.ts';
import { gaussianBlobs } from '../data/synthetic.ts';
import { relativeDifference } from '../ml/compare.ts';
import { train, type TrainConfig, type TrainControl, type TrainEvent, type TrainResult } from './trainer.ts';

/**
 * The whole training loop over the real ring code (Communicators on the in-memory transport) and
 * tfjs's cpu backend, on seeded Gaussian blobs held in memory.
 */
beforeAll(async () => {
  await tf.setBackend('cpu');
});

const DATA = holdOut(gaussianBlobs({ n: 240, classes: 3, dims: 4, spread: 0.25, seed: 3 }), 'blobs', 1);

const BASE: TrainConfig = {
  dataset: 'local',
  partition: { scheme: 'iid', seed: 2 },
  model: 'softmax',
  algorithm: 'gd',
  optimizer: { kind: 'momentum', lr: 0.3, beta: 0.9 },
  batch: 0,
  steps: 20,
  seed: 5,
};

/** Runs `cfg` on `n` peers of one in-memory ring; `control(rank)` and `onEvent(rank, e)` hook each peer. */
function trainRing(
  n: number,
  cfg: TrainConfig,
  hooks: { control?: (rank: number) => TrainControl; onEvent?: (rank: number, e: TrainEvent) => void } = {},
): Promise<TrainResult[]> {
  const net = new MemoryNetwork();
  const ids = Array.from({ length: n }, (_, i) => `p${i}`);
  const view = makeView('r', 1, ids);
  return Promise.all(
    ids.map((id, rank) => {
      const t = net.endpoint(id);
      const comm = new Communicator({ transport: t, mailbox: new Mailbox(t), view, chunkBytes: 512, timeoutMs: 10_000 });
      return train(cfg, {
        rank,
        size: n,
        sum: (v) => comm.allreduce(v),
        broadcast: (root, data) => comm.broadcast(root, data),
        loadShard: async (split) => localShard(DATA, split, { rank, size: n, ...cfg.partition }),
        selectBackend: async () => ({ name: 'cpu', reason: 'test', failures: {} }),
        emit: (e) => hooks.onEvent?.(rank, e),
        ...(hooks.control ? { control: () => hooks.control!(rank) } : {}),
      });
    }),
  );
}

describe('train', () => {
  it('full-batch GD on 2 and 3 peers matches 1 peer on the whole training set after 20 steps', async () => {
    const [solo] = await trainRing(1, BASE);
    expect(solo!.accuracy).toBeGreaterThan(0.9);
    for (const n of [2, 3]) {
      const rs = await trainRing(n, BASE);
      for (const r of rs) {
        expect(r.steps).toBe(20);
        expect(r.weights).toEqual(rs[0]!.weights);
        expect(relativeDifference(r.weights, solo!.weights)).toBeLessThan(1e-4);
        expect(r.accuracy).toBe(solo!.accuracy);
      }
    }
  });

  it('pauses the whole room at the step a peer asks, resumes when it lets go, and stops together', async () => {
    const ctl: TrainControl[] = [0, 1, 2].map(() => ({ pause: false, stop: false }));
    const control: { rank: number; e: Extract<TrainEvent, { type: 'control' }> }[] = [];
    const steps = [0, 0, 0];
    const results = await trainRing(3, { ...BASE, algorithm: 'sgd', batch: 30, steps: 1000 }, {
      control: (rank) => ctl[rank]!,
      onEvent: (rank, e) => {
        if (e.type === 'step') {
          steps[rank] = e.step;
          if (rank === 1 && e.step === 3) ctl[1]!.pause = true;
        }
        if (e.type === 'control') {
          control.push({ rank, e });
          // Rank 1 asks after step 3, so the room pauses after step 4 (its request rides on that
          // step's sums) and no step runs until it lets go.
          if (e.state === 'paused' && rank === 0) {
            expect(steps).toEqual([4, 4, 4]);
            ctl[1]!.pause = false;
          }
        }
        if (e.type === 'step' && rank === 2 && e.step === 8) ctl[2]!.stop = true;
      },
    });
    const states = (s: string): number[] => control.filter((c) => c.e.state === s).map((c) => c.e.step);
    expect(states('paused')).toEqual([4, 4, 4]);
    expect(states('resumed')).toEqual([4, 4, 4]);
    // Rank 2's request rides on the sums of step 9, so every peer stops after step 9.
    expect(states('stopping')).toEqual([9, 9, 9]);
    for (const r of results) {
      expect(r.stopped).toBe(true);
      expect(r.steps).toBe(9);
      expect(r.checksum).toBe(results[0]!.checksum);
    }
  });
});
