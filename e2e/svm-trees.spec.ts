import type { TreeTrainConfig } from '../src/training/trees.ts';
import { createRoomFromForm, expect, newContext, openPeers, openShared, roomName, runFromForm, test } from './peers.ts';

/** Tabs train on their Fashion-MNIST shards through the real ring; every tab ends with the same model. */

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

test('from the dashboard: 2 tabs train a kernel SVM (random Fourier features, Pegasos steps) on Fashion-MNIST to identical weights', async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(240_000);
  const ctx = await newContext(ringBrowser, baseURL!);
  const { page: a, link } = await createRoomFromForm(ctx, 'kernel-svm', 'wasm');
  const b = await openShared(ctx, link, 'wasm');
  await expect(a.locator('#ring svg')).toHaveAttribute('data-peers', '2');
  await a.locator('select[name="model"]').selectOption('svm');
  await a.getByLabel('SVM λ').fill('0.01');
  await a.locator('select[name="model"]').selectOption('softmax');
  await a.locator('select[name="model"]').selectOption('svm');
  // Picking the SVM again restores its λ.
  await expect(a.getByLabel('SVM λ')).toHaveValue('0.0001');
  await a.getByLabel(/SVM kernel: random features/).fill('500');
  await a.getByLabel('Epochs').fill('0.3');
  const r = await runFromForm(a, [a, b]);
  await ctx.close();
  // 0.3 epoch: far above chance (10%), with the same checksum in both tabs (runFromForm).
  expect(r.accuracy).toBeGreaterThan(70);
});
