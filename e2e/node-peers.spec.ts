import type { TrainConfig, TrainResult } from '../src/training/trainer.ts';
import { MLP_CONFIG } from '../src/harness/drills.ts';
import { startNodePeers, type NodePeer } from '../src/harness/node-peers.ts';
import { expect, newContext, openPeers, roomName, test } from './peers.ts';

/**
 * A room mixing 2 Chromium tabs and 2 Node peers (node-datachannel's WebRTC, the same runtime and
 * protocol): exact sums across all four, then sync SGD with equal checksums everywhere.
 */
test('2 tabs and 2 Node peers in one room: exact allreduce, then training with identical weights on all four', async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(240_000);
  const room = roomName('mixed-node');
  const ctx = await newContext(ringBrowser, baseURL!);
  const tabs = await openPeers(ctx, 2, room, { backend: 'wasm' });
  let nodes: NodePeer[] = [];
  try {
    nodes = await startNodePeers(2, { link: `${baseURL}/?room=${room}`, backend: 'wasm' });
    await Promise.all([...tabs.map((t) => t.waitForMembers(4, 60_000)), ...nodes.map((n) => n.call('waitForView', 4, 60_000))]);
    // Rank-distinct integers: the sums are exact, and any lost or doubled part shows.
    const vec = (r: number): Float32Array => Float32Array.from({ length: 50_000 }, (_, i) => ((i * (r + 2)) % 997) - 400);
    const ranks = [0, 1, 2, 3];
    const expected = Float32Array.from({ length: 50_000 }, (_, i) => ranks.reduce((a, r) => a + vec(r)[i]!, 0));
    const sums = await Promise.all([
      ...tabs.map((t, r) =>
        t.page.evaluate(
          async ([r, n]) => {
            const v = Float32Array.from({ length: n }, (_, i) => ((i * (r + 2)) % 997) - 400);
            return Array.from(await window.ringtrain.allreduce(v));
          },
          [r, 50_000] as const,
        ),
      ),
      ...nodes.map(async (p, i) => Array.from(await p.call<Float32Array>('allreduce', vec(i + 2)))),
    ]);
    for (const s of sums) expect(s).toEqual(Array.from(expected));

    const config: TrainConfig = { ...MLP_CONFIG, steps: 40, checksumEvery: 20 };
    const results = await Promise.all([
      ...tabs.map((t) => t.page.evaluate((c) => window.ringtrain.train(c), config)),
      ...nodes.map((p) => p.call<TrainResult>('train', config)),
    ]);
    expect(new Set(results.map((r) => r.checksum)).size).toBe(1);
    expect(results.map((r) => r.steps)).toEqual([40, 40, 40, 40]);
    // 40 steps of 128 reach well above chance (0.10) on the held-out split.
    for (const r of results) expect(r.accuracy).toBeGreaterThan(0.6);
    expect(results.slice(2).map((r) => r.backend)).toEqual(['wasm', 'wasm']);
  } finally {
    await Promise.all(nodes.map((n) => n.kill()));
    await ctx.close();
  }
});
