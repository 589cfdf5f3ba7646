import type { BrowserContext } from '@playwright/test';
import type { UserDataInput } from '../src/data/user-files.ts';
import { relativeDifference } from '../src/ml/compare.ts';
import type { TrainConfig } from '../src/training/trainer.ts';
import { expect, newContext, openPeers, roomName, test, type RingPeer } from './peers.ts';

/** Data every tab loads for itself (the same seeded set, so the shards are disjoint and cover it). */
const BLOBS: UserDataInput = { kind: 'blobs', n: 600, classes: 4, dims: 8, spread: 0.5, seed: 21 };

const GD: TrainConfig = {
  dataset: 'local',
  partition: { scheme: 'iid', seed: 4 },
  model: 'softmax',
  algorithm: 'gd',
  optimizer: { kind: 'momentum', lr: 0.5, beta: 0.9 },
  batch: 0,
  steps: 20,
  seed: 9,
};

/** Opens a room of `n` tabs that each load `data` and train `config`; resolves to every tab's final weights. */
async function trainLocal(
  ctx: BrowserContext,
  n: number,
  query: Record<string, string>,
  config: TrainConfig,
): Promise<{ weights: number[]; backend: string; accuracy: number }[]> {
  const peers = await openPeers(ctx, n, roomName(`local-${n}-${query.backend}`), query);
  await Promise.all(peers.map((p) => p.waitForMembers(n)));
  return Promise.all(
    peers.map((p) =>
      p.page.evaluate(
        async ([data, config]) => {
          await window.ringtrain.useData(data);
          const r = await window.ringtrain.train(config);
          return { weights: Array.from(r.weights), backend: r.backend, accuracy: r.accuracy };
        },
        [BLOBS, config] as const,
      ),
    ),
  );
}

for (const backend of ['cpu', 'webgpu']) {
  test(`full-batch GD on ${backend}: 2 and 3 tabs end with the weights of 1 tab on the whole set (1e-4 relative)`, async ({
    ringBrowser,
    baseURL,
  }) => {
    test.setTimeout(240_000);
    const ctx = await newContext(ringBrowser, baseURL!);
    const [solo, two, three] = await Promise.all([1, 2, 3].map((n) => trainLocal(ctx, n, { backend }, GD)));
    await ctx.close();
    const ref = solo![0]!;
    expect(ref.backend).toBe(backend);
    expect(ref.accuracy).toBeGreaterThan(0.9);
    for (const room of [two!, three!]) {
      for (const r of room) {
        expect(r.backend).toBe(backend);
        expect(r.weights).toEqual(room[0]!.weights);
        expect(relativeDifference(r.weights, ref.weights)).toBeLessThan(1e-4);
      }
    }
  });
}

/** Picks `files` in the page's data form and returns the summary it shows. */
async function pickFiles(peer: RingPeer, files: { name: string; text: string }[], label = ''): Promise<{ text: string; isError: boolean }> {
  const page = peer.page;
  const section = page.locator('#data-section');
  if ((await section.getAttribute('open')) === null) await section.locator('summary').click();
  await page.getByLabel('CSV label column').fill(label);
  await page
    .getByLabel('CSV file, or IDX images + labels files')
    .setInputFiles(files.map((f) => ({ name: f.name, mimeType: 'text/csv', buffer: Buffer.from(f.text) })));
  const summary = page.getByTestId('data-summary');
  const before = await summary.textContent();
  await page.getByRole('button', { name: 'Load', exact: true }).click();
  await expect(summary).not.toHaveText(before ?? '');
  await expect(summary).not.toHaveText(/^Reading /);
  return { text: (await summary.textContent()) ?? '', isError: await summary.evaluate((e) => e.classList.contains('error')) };
}

const IRIS_LIKE = [
  'petal,sepal,colour,species',
  ...Array.from(
    { length: 90 },
    (_, i) =>
      `${(i % 3) + 0.1 * (i % 7)},${(i % 3) * 2 - 0.05 * (i % 5)},${['red', 'blue'][i % 2]},${['setosa', 'versicolor', 'virginica'][i % 3]}`,
  ),
].join('\n');

test('a CSV picked in the page trains across 2 tabs; a bad cell is named by row and column; pause and stop act on the whole room', async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(120_000);
  const ctx = await newContext(ringBrowser, baseURL!);
  const peers = await openPeers(ctx, 2, roomName('csv'), { backend: 'cpu' });
  await Promise.all(peers.map((p) => p.waitForMembers(2)));

  // Row 10 of the file (the header is row 1) gets a typo in its "sepal" cell.
  const lines = IRIS_LIKE.split('\n');
  lines[9] = lines[9]!.replace(/^([^,]*),[^,]*,/, '$1,2x,');
  const bad = await pickFiles(peers[0]!, [{ name: 'flowers.csv', text: lines.join('\n') }], 'species');
  expect(bad.isError).toBe(true);
  expect(bad.text).toMatch(/^flowers\.csv: row 10, column "sepal": "2x" is not a number/);
  for (const p of peers) {
    const ok = await pickFiles(p, [{ name: 'flowers.csv', text: IRIS_LIKE }]);
    expect(ok.isError).toBe(false);
    expect(ok.text).toContain('Loaded flowers.csv: 72 training and 18 test samples, 4 features, 3 classes');
  }

  // Rank 0 pauses after step 3 and lets go once the room is paused; rank 1 stops after step 10.
  const results = await Promise.all(
    peers.map((p, i) =>
      p.page.evaluate(
        async ([i, config]) => {
          const control: string[] = [];
          const r = await window.ringtrain.train(config, (e) => {
            if (e.type === 'step' && i === 0 && e.step === 3) window.ringtrain.pause();
            if (e.type === 'step' && i === 1 && e.step === 10) window.ringtrain.stop();
            if (e.type === 'control') {
              control.push(`${e.state}@${e.step}`);
              if (e.state === 'paused' && i === 0) window.ringtrain.resume();
            }
          });
          return { steps: r.steps, stopped: r.stopped, checksum: r.checksum, accuracy: r.accuracy, control };
        },
        [i, { ...GD, algorithm: 'sgd', batch: 16, steps: 500, optimizer: { kind: 'adam', lr: 0.05 } } as TrainConfig] as const,
      ),
    ),
  );
  await ctx.close();
  for (const r of results) {
    expect(r.control).toEqual(['paused@4', 'resumed@4', 'stopping@11']);
    expect(r.stopped).toBe(true);
    expect(r.steps).toBe(11);
    expect(r.checksum).toBe(results[0]!.checksum);
    expect(r.accuracy).toBeGreaterThan(0.6);
  }
});
