/**
 * Secure aggregation between real tabs: with pairwise masks (keys agreed by ECDH through the
 * coordinator, masks modulo 2³² over fixed point), 4 tabs train to the weights the plain ring gives, up to the fixed-point step, and
 * identical on every tab. With DP-SGD on top (each tab adds its share of the noise under the
 * masks), the tabs still agree, report ε, and learn.
 */
import { DRILL_CONFIG } from '../src/harness/drills.ts';
import { relativeDifference } from '../src/ml/compare.ts';
import type { TrainConfig } from '../src/training/trainer.ts';
import { expect, newContext, openPeers, roomName, test } from './peers.ts';

test('4 tabs with secure aggregation end with the weights of the plain ring (1e-3 relative), the same on every tab; with DP-SGD too they agree and learn', async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(240_000);
  const ctx = await newContext(ringBrowser, baseURL!);
  const train = async (config: TrainConfig): Promise<{ weights: number[]; checksum: string; accuracy: number; epsilon?: number }[]> => {
    const peers = await openPeers(ctx, 4, roomName(config.dp ? 'secure-dp' : config.secureAggregation ? 'secure' : 'plain'), {
      backend: 'cpu',
    });
    await Promise.all(peers.map((p) => p.waitForMembers(4)));
    const rs = await Promise.all(
      peers.map((p) =>
        p.page.evaluate(async (c) => {
          const r = await window.ringtrain.train(c);
          return { weights: Array.from(r.weights), checksum: r.checksum, accuracy: r.accuracy, epsilon: r.epsilon };
        }, config),
      ),
    );
    await Promise.all(peers.map((p) => p.page.close()));
    return rs;
  };
  const config: TrainConfig = { ...DRILL_CONFIG, steps: 20, optimizer: { kind: 'sgd', lr: 0.1 } };
  const plain = await train(config);
  const secure = await train({ ...config, secureAggregation: {} });
  for (const r of secure) expect(r.checksum).toBe(secure[0]!.checksum);
  const diff = relativeDifference(secure[0]!.weights, plain[0]!.weights);
  expect(diff).toBeGreaterThan(0);
  expect(diff).toBeLessThan(1e-3);
  expect(Math.abs(secure[0]!.accuracy - plain[0]!.accuracy)).toBeLessThan(0.01);
  // DP-SGD under the masks: the noise is in the sum, so the weights leave the plain ones, but the
  // tabs agree, ε is reported, and the model still learns (10 classes: chance is 0.1).
  const dp = await train({ ...config, optimizer: { kind: 'sgd', lr: 0.5 }, secureAggregation: {}, dp: { clip: 1, noiseMultiplier: 0.8 } });
  for (const r of dp) expect(r.checksum).toBe(dp[0]!.checksum);
  expect(relativeDifference(dp[0]!.weights, plain[0]!.weights)).toBeGreaterThan(1e-3);
  expect(dp[0]!.epsilon).toBeGreaterThan(0);
  expect(dp[0]!.epsilon).toBeLessThan(100);
  expect(dp[0]!.accuracy).toBeGreaterThan(0.4);
  await ctx.close();
});
