/**
 * A volunteer whose tab sends NaN gradients (a broken GPU, or a poisoned peer) must not spoil the
 * model: its contributions are left out of every sum it would have spoilt, the others report it,
 * and after 3 strikes the coordinator removes it for good. The others finish with equal weights.
 */
import { DRILL_CONFIG } from '../src/harness/drills.ts';
import type { TrainConfig, TrainEvent } from '../src/training/trainer.ts';
import { expect, newContext, openPeers, roomName, test } from './peers.ts';

declare global {
  interface Window {
    __rejected: Extract<TrainEvent, { type: 'rejected' }>[];
  }
}

test('a tab sending NaN gradients in a 4-tab run is left out, then removed; the other 3 finish with equal, finite weights', async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(180_000);
  const ctx = await newContext(ringBrowser, baseURL!);
  const peers = await openPeers(ctx, 4, roomName('poison'), { backend: 'wasm' });
  await Promise.all(peers.map((p) => p.waitForMembers(4)));
  const bad = peers[3]!;
  const badId = (await bad.page.evaluate(() => window.ringtrain.peerId()))!;
  await bad.page.evaluate(() => window.ringtrain.debug.poison('nan'));
  const config: TrainConfig = { ...DRILL_CONFIG, steps: 30, evalEvery: 0 };
  const run = (p: (typeof peers)[number]) =>
    p.page.evaluate(async (c) => {
      window.__rejected = [];
      const r = await window.ringtrain.train(c, (e) => e.type === 'rejected' && window.__rejected.push(e));
      return {
        checksum: r.checksum,
        accuracy: r.accuracy,
        steps: r.steps,
        finite: Array.from(r.weights).every(Number.isFinite),
        members: window.ringtrain.view()!.members.map((m) => m.peerId),
      };
    }, config);
  // The poisoned tab's own run ends when it is shut out; only the honest ones are awaited.
  void run(bad).catch(() => undefined);
  const honest = await Promise.all(peers.slice(0, 3).map(run));
  for (const r of honest) {
    expect(r.steps).toBe(30);
    expect(r.finite).toBe(true);
    expect(r.checksum).toBe(honest[0]!.checksum);
    expect(r.members).toHaveLength(3);
    expect(r.members).not.toContain(badId);
    expect(r.accuracy).toBeGreaterThan(0.6);
  }
  // Rank 3 was left out of the 3 steps that earned its strikes (a peer still checking the third
  // step when the removal came saw that step abandoned instead).
  const steps = new Set<number>();
  for (const p of peers.slice(0, 3)) {
    const rejected = await p.page.evaluate(() => window.__rejected);
    expect(rejected.length).toBeGreaterThanOrEqual(2);
    for (const e of rejected) {
      expect(e).toMatchObject({ ranks: [3], self: false });
      steps.add(e.step);
    }
  }
  expect(steps.size).toBeGreaterThanOrEqual(3);
  await ctx.close();
});
