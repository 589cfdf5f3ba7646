/**
 * The dashboard as a person uses it: one tab creates a room, a second opens the shared link, a run
 * is started from the form, the plots, ring and table fill in, and the exported model, imported
 * again, measures the accuracy the page showed.
 */
import { createRoomFromForm, expect, newContext, openShared, runFromForm, summary, test } from './peers.ts';

test('two tabs join by the shared link, train from the form, fill plots and ring; the exported model measures what the page showed', async ({
  ringBrowser,
  baseURL,
}, testInfo) => {
  test.setTimeout(240_000);
  const ctx = await newContext(ringBrowser, baseURL!);
  const { page: a, link: shared } = await createRoomFromForm(ctx, 'dashboard', 'wasm');
  expect(await a.locator('#share-qr').evaluate((c: HTMLCanvasElement) => c.toDataURL().length)).toBeGreaterThan(1000);

  const b = await openShared(ctx, shared, 'wasm');
  for (const p of [a, b]) {
    await expect(p.locator('#ring svg')).toHaveAttribute('data-peers', '2');
    await expect(p.locator('#peers-table tbody tr')).toHaveCount(2);
  }

  // 0.2 epoch of softmax regression from the form, started in tab A for the room.
  await a.getByLabel('Epochs').fill('0.2');
  const ra = await runFromForm(a, [a, b]);
  expect(ra.accuracy).toBeGreaterThan(60);
  for (const p of [a, b]) {
    const points = await p.evaluate(() => window.ringtrain.debug.chartPoints());
    // 94 steps (0.2 x 60000 / 128, rounded up); evaluations every 5 steps and at the end.
    expect(points['loss']).toBe(94);
    expect(points['time']).toBe(94);
    expect(points['accuracy']).toBeGreaterThanOrEqual(19);
    // Both ring links carry a rate reported by their sender.
    await expect(p.locator('#ring text[data-link]')).toHaveCount(2);
    await expect(p.locator('#ring text[data-link]').first()).toHaveText(/MB\/s/);
    await expect(p.locator('#peers-table tbody tr').first()).toContainText('wasm');
  }
  // The confusion matrix covers this tab's half of the 10000 test samples.
  const cells = await a.locator('table.confusion tbody td').allTextContents();
  expect(cells).toHaveLength(100);
  expect(cells.reduce((s, c) => s + Number(c), 0)).toBe(5000);
  await expect(a.locator('.samples li')).toHaveCount(12);

  // Export from A, import into B: measured on the whole test split, it matches the run's accuracy.
  const downloads: string[] = [];
  const waitTwo = new Promise<void>((resolve) => {
    a.on('download', async (d) => {
      const file = testInfo.outputPath(d.suggestedFilename());
      await d.saveAs(file);
      downloads.push(file);
      if (downloads.length === 2) resolve();
    });
  });
  await a.getByRole('button', { name: 'Export the model' }).click();
  await waitTwo;
  expect(downloads.map((f) => f.split('/').pop()).sort()).toEqual(['ringtrain-softmax.json', 'ringtrain-softmax.weights.bin']);
  await b.locator('#import').setInputFiles(downloads);
  await expect(b.getByTestId('import-summary')).toContainText('on all 10000 test samples');
  const imported = Number(/test accuracy ([\d.]+)%/.exec((await b.getByTestId('import-summary').textContent())!)![1]);
  expect(Math.abs(imported - ra.accuracy)).toBeLessThanOrEqual(0.02);

  // The room's checkpoint, downloaded from A, continues the run from B for another 0.2 epoch.
  const saved = a.waitForEvent('download', (d) => d.suggestedFilename().endsWith('.rtck'));
  await a.getByRole('button', { name: "Download the room's checkpoint" }).click();
  const ckpt = await saved;
  expect(ckpt.suggestedFilename()).toMatch(/-step94\.rtck$/);
  const ckptFile = testInfo.outputPath(ckpt.suggestedFilename());
  await ckpt.saveAs(ckptFile);
  await b.getByLabel('Epochs').fill('0.2');
  await b.locator('#continue').setInputFiles(ckptFile);
  await expect(b.getByTestId('import-summary')).toContainText('from step 94 to step 188');
  for (const p of [a, b]) await expect(p.getByTestId('result-summary')).toContainText('after 188 steps', { timeout: 180_000 });
  // Only the new steps ran: 95..188.
  expect((await b.evaluate(() => window.ringtrain.debug.chartPoints()))['loss']).toBe(94);
  expect((await summary(a)).checksum).toBe((await summary(b)).checksum);

  for (const [name, width] of [
    ['narrow', 420],
    ['wide', 1440],
  ] as const) {
    await a.setViewportSize({ width, height: 900 });
    await a.screenshot({ path: testInfo.outputPath(`dashboard-${name}.png`), fullPage: true });
  }
  // Narrow: nothing wider than the window.
  await a.setViewportSize({ width: 420, height: 900 });
  expect(await a.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(420);
  await ctx.close();
});

test("DiLoCo from the form (after a model's defaults filled it): two tabs pick H from their measured timings (auto), train in rounds and end with the same model", async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(240_000);
  const ctx = await newContext(ringBrowser, baseURL!);
  const { page: a, link: shared } = await createRoomFromForm(ctx, 'diloco', 'wasm');
  const b = await openShared(ctx, shared, 'wasm');
  await expect(a.locator('#ring svg')).toHaveAttribute('data-peers', '2');
  // A model's own defaults fill the form when it is picked, and go back with the model.
  await a.locator('select[name="model"]').selectOption('mlp');
  await expect(a.getByLabel('Learning rate')).toHaveValue('0.002');
  await expect(a.getByLabel('Epochs')).toHaveValue('15');
  await expect(a.getByLabel('Label smoothing')).toHaveValue('0.1');
  await expect(a.getByLabel(/^Schedule/)).toHaveValue('cosine');
  await a.locator('select[name="model"]').selectOption('softmax');
  await expect(a.getByLabel('Learning rate')).toHaveValue('0.005');
  await expect(a.getByLabel(/^Schedule/)).toHaveValue('cosine');
  await expect(a.getByLabel('Label smoothing')).toHaveValue('0');
  await a.getByLabel('Algorithm').selectOption('diloco');
  await a.getByLabel(/Local steps/).fill('auto');
  await a.getByLabel('Epochs').fill('0.2');
  expect((await runFromForm(a, [a, b])).accuracy).toBeGreaterThan(60);
  // Both tabs logged the same choice of H, and the loss plot has a point per round, not per step.
  const picked = await Promise.all(
    [a, b].map((p) =>
      p
        .getByTestId('event-log')
        .getByText(/DiLoCo: \d+ local steps per round/)
        .textContent(),
    ),
  );
  const h = Number(/DiLoCo: (\d+)/.exec(picked[0]!)![1]);
  expect(/DiLoCo: (\d+)/.exec(picked[1]!)![1]).toBe(String(h));
  const rounds = 1 + Math.ceil((94 - 1) / h);
  expect((await a.evaluate(() => window.ringtrain.debug.chartPoints()))['loss']).toBe(rounds);
  await ctx.close();
});
