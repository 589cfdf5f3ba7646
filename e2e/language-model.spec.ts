/**
 * The transformer language model in tabs: trained over WebGPU by the page API with a small shape,
 * and from the dashboard's form with the model's defaults (Moby-Dick, AdamW, warm-up and cosine).
 */
import type { TrainConfig, TrainEvent, TrainResult } from '../src/training/trainer.ts';
import { createRoomFromForm, expect, newContext, openPeers, openShared, roomName, runFromForm, test } from './peers.ts';

test('2 tabs train the transformer on Moby-Dick over WebGPU: equal checksums, and the validation loss falls', async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(300_000);
  const ctx = await newContext(ringBrowser, baseURL!);
  const peers = await openPeers(ctx, 2, roomName('lm-webgpu'), { backend: 'webgpu' });
  await Promise.all(peers.map((p) => p.waitForMembers(2)));
  const config: TrainConfig = {
    dataset: 'moby-dick',
    partition: { scheme: 'iid', seed: 1 },
    model: 'transformer',
    // Small: a software WebGPU (no GPU here) takes about a second a step and 20 s an evaluation with its sample.
    transformer: { layers: 1, dModel: 32, heads: 2, context: 32 },
    algorithm: 'sgd',
    optimizer: { kind: 'adam', lr: 0.01, weightDecay: 0.01 },
    schedule: { kind: 'cosine', warmupSteps: 5 },
    batch: 16,
    steps: 20,
    evalEvery: 20,
    checksumEvery: 10,
    seed: 7,
  };
  const runs = await Promise.all(
    peers.map((p) =>
      p.page.evaluate(async (config) => {
        const seen: TrainEvent[] = [];
        let backend = '';
        const result: TrainResult = await window.ringtrain.train(config, (e) => {
          if (e.type === 'eval' || e.type === 'sample') seen.push(e);
          if (e.type === 'backend') backend = `${e.report.name}: ${e.report.reason}`;
        });
        return { result, seen, backend };
      }, config),
    ),
  );
  for (const { result, seen, backend } of runs) {
    expect(result.backend, backend).toBe('webgpu');
    const bits = seen.flatMap((e): [number, number][] => (e.type === 'eval' ? [[e.step, e.bitsPerChar!]] : []));
    expect(bits.map(([step]) => step)).toEqual([0, 20]);
    // Untrained: about log2(96) = 6.6 bits or more; 20 steps learn at least the letters' frequencies.
    expect(bits[0]![1]).toBeGreaterThan(6);
    expect(bits[1]![1]).toBeLessThan(bits[0]![1] - 1.5);
    const samples = seen.flatMap((e) => (e.type === 'sample' ? [e.text] : []));
    expect(samples).toHaveLength(2);
    expect(samples[1]).not.toBe(samples[0]);
  }
  expect(runs[1]!.result.checksum).toBe(runs[0]!.result.checksum);
  await ctx.close();
});

test("the transformer from the dashboard's form with its defaults: two tabs, bits per character plotted, samples of text shown, the same model", async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(300_000);
  const ctx = await newContext(ringBrowser, baseURL!);
  const { page: a, link } = await createRoomFromForm(ctx, 'lm-form', 'wasm');
  const b = await openShared(ctx, link, 'wasm');
  await expect(a.locator('#ring svg')).toHaveAttribute('data-peers', '2');
  await a.locator('select[name="model"]').selectOption('transformer');
  // The model's defaults: its text, batch and optimisation.
  await expect(a.getByLabel('Dataset')).toHaveValue('moby-dick');
  await expect(a.getByLabel('Global batch')).toHaveValue('32');
  await expect(a.getByLabel('Learning rate')).toHaveValue('0.002');
  await expect(a.getByLabel(/^Schedule/)).toHaveValue('cosine');
  // 0.015 epoch: 5 steps of 32 windows (the default run is a whole epoch, 270 steps).
  await a.getByLabel('Epochs').fill('0.015');
  const r = await runFromForm(a, [a, b]);
  expect(r.bitsPerChar).not.toBeNull();
  expect(r.bitsPerChar!).toBeLessThan(6.6);
  for (const p of [a, b]) {
    await expect(p.locator('figure[data-chart="bits"]')).toBeVisible();
    // An evaluation at step 0 and after each of the 5 steps, each with its sample, newest first.
    expect((await p.evaluate(() => window.ringtrain.debug.chartPoints()))['bits']).toBe(6);
    await expect(p.getByTestId('lm-samples').locator('li')).toHaveCount(6);
    await expect(p.getByTestId('lm-samples').locator('li').first()).toContainText(/^step 5: The whale .{120}$/s);
  }
  // Both tabs' model wrote the same text.
  expect(await b.getByTestId('lm-samples').textContent()).toBe(await a.getByTestId('lm-samples').textContent());
  await ctx.close();
});
