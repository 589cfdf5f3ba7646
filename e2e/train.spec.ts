import type { TrainConfig, TrainResult } from '../src/training/trainer.ts';
import type { Browser } from '@playwright/test';
import { expect, newContext, openPeers, roomName, test, type RingPeer } from './peers.ts';

/** Opens `n` tabs (URL options `query`) in a fresh room, and trains `config` on all of them at once. */
async function trainRoom(
  browser: Browser,
  baseURL: string,
  n: number,
  query: Record<string, string>,
  config: TrainConfig,
): Promise<(TrainResult & { firstAccuracy: number; backendReason: string })[]> {
  const ctx = await newContext(browser, baseURL);
  const peers = await openPeers(ctx, n, roomName(`train-${config.algorithm}`), query);
  await Promise.all(peers.map((p) => p.waitForMembers(n)));
  const results = await trainAll(peers, config);
  await ctx.close();
  return results;
}

async function trainAll(
  peers: RingPeer[],
  config: TrainConfig,
): Promise<(TrainResult & { firstAccuracy: number; backendReason: string })[]> {
  return Promise.all(
    peers.map((p) =>
      p.page.evaluate(async (config) => {
        let firstAccuracy = -1;
        let backendReason = '';
        const r = await window.ringtrain.train(config, (e) => {
          if (e.type === 'eval' && firstAccuracy < 0) firstAccuracy = e.accuracy;
          if (e.type === 'backend') backendReason = `${e.report.reason} ${JSON.stringify(e.report.failures)}`;
        });
        return { ...r, firstAccuracy, backendReason };
      }, config),
    ),
  );
}

test('3 tabs on WebGPU train softmax regression on Fashion-MNIST shards to >= 0.80 with identical weights', async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(300_000);
  const results = await trainRoom(
    ringBrowser,
    baseURL!,
    3,
    { backend: 'webgpu' },
    {
      dataset: 'fashion-mnist',
      partition: { scheme: 'iid', seed: 1 },
      model: 'softmax',
      algorithm: 'sgd',
      optimizer: { kind: 'adam', lr: 0.005 },
      batch: 192,
      steps: 150,
      checksumEvery: 50,
      seed: 7,
    },
  );
  for (const r of results) {
    expect(r.backend, r.backendReason).toBe('webgpu');
    expect(r.accuracy).toBeGreaterThanOrEqual(0.8);
  }
  expect(new Set(results.map((r) => r.checksum)).size).toBe(1);
  expect(new Set(results.map((r) => r.accuracy)).size).toBe(1);
});

test('FedAvg on label-shard non-IID data across 3 tabs improves test accuracy and ends with identical weights', async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(300_000);
  const results = await trainRoom(
    ringBrowser,
    baseURL!,
    3,
    { backend: 'wasm' },
    {
      dataset: 'fashion-mnist',
      partition: { scheme: 'label-shards', seed: 3, shardsPerPart: 2 },
      model: 'mlp',
      hidden: [32],
      algorithm: 'fedavg',
      optimizer: { kind: 'sgd', lr: 0.05 },
      batch: 32,
      localSteps: 5,
      steps: 20,
      evalEvery: 10,
      seed: 11,
    },
  );
  for (const r of results) {
    expect(r.backend, r.backendReason).toBe('wasm');
    // The first evaluation is of the untrained model (step 0).
    expect(r.accuracy).toBeGreaterThan(r.firstAccuracy + 0.2);
  }
  expect(new Set(results.map((r) => r.checksum)).size).toBe(1);
});

test('2 tabs train the CNN on wasm (its conv gradients from ml/conv-grad.ts) to identical weights', async ({ ringBrowser, baseURL }) => {
  test.setTimeout(300_000);
  const results = await trainRoom(
    ringBrowser,
    baseURL!,
    2,
    { backend: 'wasm' },
    {
      dataset: 'fashion-mnist',
      partition: { scheme: 'iid', seed: 1 },
      model: 'cnn',
      algorithm: 'sgd',
      optimizer: { kind: 'adam', lr: 0.005 },
      batch: 64,
      steps: 60,
      evalEvery: 30,
      seed: 5,
    },
  );
  for (const r of results) {
    // Before conv-grad.ts, wasm had no Conv2DBackpropFilter and the CNN could not train on it.
    expect(r.backend, r.backendReason).toBe('wasm');
    expect(r.accuracy).toBeGreaterThan(r.firstAccuracy + 0.3);
  }
  expect(new Set(results.map((r) => r.checksum)).size).toBe(1);
});
