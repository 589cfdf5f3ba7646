/**
 * Training over an emulated WAN: 3 peers, each its own Chromium in its own network namespace,
 * joined by a bridge whose links are shaped as the `home` profile (50 Mbit/s by the kernel's tbf,
 * 20 ms one way: netem where the kernel has it, else held back by the app). The MLP trains with
 * fp16 on the wire and with PowerSGD: every peer ends with the same weights, and the model learns.
 * With compression `auto`, every peer's dashboard says which codec the group picked and why. The
 * app is served over HTTPS and WSS with a certificate made for the run: the first test of TLS.
 * Needs root (namespaces): CI runs the suite as root.
 */
import { MLP_CONFIG } from '../src/harness/drills.ts';
import { icePairs, secureApis, startWanCluster } from '../src/harness/netns.ts';
import type { CodecConfig } from '../src/protocol/catalogs.ts';
import { expect, test } from './peers.ts';

test('3 namespaced peers on a home link train the MLP with fp16 and with PowerSGD: identical weights, accuracy up', async () => {
  test.skip(process.getuid?.() !== 0, 'needs root to create network namespaces');
  test.setTimeout(300_000);
  const cluster = await startWanCluster({
    profile: 'home',
    peers: 3,
    query: { backend: 'wasm' },
    build: false,
    deadAfterMs: 30_000,
    log: () => undefined,
  });
  try {
    // Served over HTTPS/WSS with the run's own certificate: a secure context in any Chromium.
    expect(cluster.server.url).toMatch(/^https:\/\/10\.77\.0\.1:\d+$/);
    for (const page of cluster.pages) expect(await secureApis(page)).toEqual({ secure: true, gpu: true, subtle: true });
    for (const compression of [{ kind: 'fp16' }, { kind: 'powersgd', rank: 2 }] satisfies CodecConfig[]) {
      const rs = await Promise.all(
        cluster.pages.map((p) =>
          p.evaluate(
            async (c) => {
              const acc: number[] = [];
              const r = await window.ringtrain.train(c, (e) => e.type === 'eval' && acc.push(e.accuracy));
              return { checksum: r.checksum, first: acc[0]!, last: r.accuracy };
            },
            { ...MLP_CONFIG, steps: 60, evalEvery: 60, compression },
          ),
        ),
      );
      for (const r of rs) expect(r.checksum).toBe(rs[0]!.checksum);
      expect(rs[0]!.first).toBeLessThan(0.3);
      expect(rs[0]!.last).toBeGreaterThan(0.65);
    }
    // auto: the same pick on every peer, shown in each dashboard with its figures.
    const picks = await Promise.all(
      cluster.pages.map((p) =>
        p.evaluate(
          async (c) => {
            let picked = '';
            await window.ringtrain.train(c, (e) => e.type === 'codec' && (picked = e.codec));
            return picked;
          },
          { ...MLP_CONFIG, steps: 8, compression: { kind: 'auto' as const } },
        ),
      ),
    );
    expect(new Set(picks).size).toBe(1);
    for (const page of cluster.pages) {
      await expect(page.locator('#status-panel')).toContainText(
        new RegExp(`auto picked ${picks[0]!} at step 5: allreduce \\d+ of a \\d+ ms step, \\d+ ms of it latency`),
      );
    }
    // The data channels ran over the bridge between namespaces, not over loopback.
    for (const page of cluster.pages) {
      const pairs = (await icePairs(page)).filter((p) => p.state === 'succeeded');
      expect(pairs.length).toBeGreaterThanOrEqual(1);
      for (const p of pairs) expect(p.remote).toMatch(/^10\.77\.0\.\d+:\d+$/);
    }
  } finally {
    await cluster.close();
  }
});
