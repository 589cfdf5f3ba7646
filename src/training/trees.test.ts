import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { holdOut, localShard } from '../data/local.ts';
import { gaussianBlobs } from '../data/synthetic.ts';
import { TestRoom } from '../test/room.ts';
import { trainTrees, type TreeEvent, type TreeResult, type TreeTrainConfig } from './trees.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const DATA = holdOut(gaussianBlobs({ n: 900, classes: 3, dims: 4, spread: 0.3, seed: 8 }), 'blobs', 1);
const GBDT: TreeTrainConfig = {
  dataset: 'local',
  partition: { scheme: 'iid', seed: 2 },
  model: 'gbdt',
  maxDepth: 3,
  bins: 16,
  rounds: 6,
  seed: 3,
};

/** Trains `cfg` on the peers of `room` (ids `ids`); `onEvent` sees every peer's events. */
function run(
  room: TestRoom,
  ids: string[],
  cfg: TreeTrainConfig,
  onEvent: (id: string, e: TreeEvent) => void = () => undefined,
  kept = new Map<string, TreeResult>(),
): Promise<PromiseSettledResult<TreeResult>[]> {
  return Promise.allSettled(
    ids.map((id) =>
      trainTrees(cfg, {
        group: (failed) => room.group(id, failed),
        loadShard: async (split, rank, size) => localShard(DATA, split, { rank, size, ...cfg.partition }),
        emit: (e) => onEvent(id, e),
        keepFailed: (r) => kept.set(id, r),
      }),
    ),
  );
}

/** Every node's split, and its leaf values rounded to 1e-5 (sums over 2 or 3 peers round differently). */
function shape(r: TreeResult): unknown {
  return JSON.parse(r.json, (k, v: unknown) =>
    k === 'value' || k === 'base' ? (v as number[]).map((x) => Math.round(x * 1e5) / 1e5 + 0) : k === 'gain' ? undefined : v,
  );
}

const fulfilled = (rs: PromiseSettledResult<TreeResult>[]): TreeResult[] => rs.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));

describe('trees through faults (in-memory room)', () => {
  for (const model of ['gbdt', 'tree'] as const) {
    it(`${model}: a peer crashing mid-growth re-forms the group; the survivors end with the model of the fault-free run (splits, leaves to 1e-5)`, async () => {
      const cfg: TreeTrainConfig = model === 'gbdt' ? GBDT : { ...GBDT, model: 'tree', maxDepth: 5 };
      const clean = new TestRoom(DATA);
      for (const id of ['a', 'b']) clean.add(id);
      const [straight] = fulfilled(await run(clean, ['a', 'b'], cfg));

      const room = new TestRoom(DATA);
      const ids = ['p0', 'p1', 'p2'];
      for (const id of ids) room.add(id);
      const events = new Map<string, TreeEvent[]>(ids.map((id) => [id, []]));
      let crashed = false;
      const kept = new Map<string, TreeResult>();
      const results = await run(
        room,
        ids,
        cfg,
        (id, e) => {
          events.get(id)!.push(e);
          // p2 dies in the middle of growing (a tree: once the bins are agreed; boosting: after round 2).
          const at = model === 'gbdt' ? e.type === 'round' && e.round === 2 : e.type === 'bins';
          if (id === 'p2' && at && !crashed) {
            crashed = true;
            room.transport('p2').inject({ kind: 'crash', after: 3, detectMs: 20 });
          }
          if (e.type === 'fault' && room.members.includes('p2')) room.remove('p2');
        },
        kept,
      );
      expect(results[2]!.status).toBe('rejected');
      // The failed peer still leaves what it grew: boosting, its 2 rounds (the survivors' first 2
      // trees); a single tree has no partial model.
      const left = kept.get('p2');
      if (model === 'gbdt') {
        const trees = (shape(left!) as { gbdt: { trees: unknown[] } }).gbdt.trees;
        expect(trees).toHaveLength(2);
        expect(trees).toEqual((shape(straight!) as { gbdt: { trees: unknown[] } }).gbdt.trees.slice(0, 2));
      } else expect(left).toBeUndefined();
      const survivors = fulfilled(results.slice(0, 2));
      expect(survivors).toHaveLength(2);
      expect(survivors[0]!.checksum).toBe(survivors[1]!.checksum);
      for (const r of survivors) expect(shape(r)).toEqual(shape(straight!));
      for (const id of ['p0', 'p1']) {
        expect(events.get(id)!.some((e) => e.type === 'fault')).toBe(true);
        // Boosting goes on from the rounds it had: 2 of them, not from scratch.
        if (model === 'gbdt') expect(events.get(id)!.find((e) => e.type === 'sync')).toMatchObject({ size: 2, rounds: 2 });
      }
      expect(survivors[0]!.accuracy).toBeGreaterThan(0.8);
    });
  }
});
