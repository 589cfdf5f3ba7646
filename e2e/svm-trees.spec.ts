import type { TreeTrainConfig } from '../src/training/trees.ts';
import type { TrainConfig } from '../src/training/trainer.ts';
import { expect, newContext, openPeers, roomName, test } from './peers.ts';

/** 3 tabs train on their Fashion-MNIST shards through the real ring; every tab ends with the same model. */

test('3 tabs grow the same boosted trees by histogram allreduce on Fashion-MNIST shards', async ({ ringBrowser, baseURL }) => {
  test.setTimeout(240_000);
  const ctx = await newContext(ringBrowser, baseURL!);
  const peers = await openPeers(ctx, 3, roomName('gbdt'));
  await Promise.all(peers.map((p) => p.waitForMembers(3)));
  const config: TreeTrainConfig = {
    dataset: 'fashion-mnist',
    partition: { scheme: 'iid', seed: 1 },
    model: 'gbdt',
    rounds: 2,
    maxDepth: 3,
    bins: 16,
    seed: 1,
  };
  const results = await Promise.all(peers.map((p) => p.page.evaluate((c) => window.ringtrain.trainTrees(c), config)));
  await ctx.close();
  for (const r of results) {
    expect(r.checksum).toBe(results[0]!.checksum);
    expect(r.accuracy).toBe(results[0]!.accuracy);
    // The subtraction trick: one child of each split is summed, the other derived.
    expect(r.floatsSummed).toBeLessThan(r.floatsWithoutSubtraction);
  }
  const model = JSON.parse(results[0]!.json) as { kind: string; gbdt: { trees: unknown[][] } };
  expect(model.kind).toBe('gbdt');
  expect(model.gbdt.trees.map((r) => r.length)).toEqual([10, 10]);
  expect(results[0]!.accuracy).toBeGreaterThan(0.65);
});

test('3 tabs train a linear SVM (hinge loss, Pegasos steps) on Fashion-MNIST shards to identical weights', async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(240_000);
  const ctx = await newContext(ringBrowser, baseURL!);
  const peers = await openPeers(ctx, 3, roomName('svm'), { backend: 'wasm' });
  await Promise.all(peers.map((p) => p.waitForMembers(3)));
  const config: TrainConfig = {
    dataset: 'fashion-mnist',
    partition: { scheme: 'iid', seed: 1 },
    model: 'svm',
    algorithm: 'sgd',
    optimizer: { kind: 'pegasos', lambda: 1e-3 },
    batch: 128,
    steps: 150,
    evalEvery: 75,
    seed: 3,
  };
  const results = await Promise.all(
    peers.map((p) =>
      p.page.evaluate(async (c) => {
        const losses: number[] = [];
        const r = await window.ringtrain.train(c, (e) => e.type === 'step' && losses.push(e.loss));
        return {
          checksum: r.checksum,
          accuracy: r.accuracy,
          first: losses.slice(0, 10).reduce((a, b) => a + b) / 10,
          last: losses.slice(-10).reduce((a, b) => a + b) / 10,
        };
      }, config),
    ),
  );
  await ctx.close();
  for (const r of results) {
    expect(r.checksum).toBe(results[0]!.checksum);
    // The hinge loss falls, and the model beats chance (0.1) by far.
    expect(r.last).toBeLessThan(r.first);
    expect(r.accuracy).toBeGreaterThan(0.65);
  }
});
