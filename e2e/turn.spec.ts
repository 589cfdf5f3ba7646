/**
 * A real relay: 2 peers, each its own Chromium in its own network namespace with no route to the
 * other (its address as a /32, one route: to the host), both able to reach the RingTrain server
 * and a coturn TURN server (Debian's `coturn`, started here with `use-auth-secret`) on the host.
 * The server shares coturn's secret and mints each admitted peer its own credential; the peers
 * train through the relay and end with the same weights. Every data channel's selected ICE pair
 * has a relay candidate, and coturn granted allocations to exactly the peers' ids: with a direct
 * path, the host pair would win; with static or wrong credentials, coturn would refuse.
 *
 * coturn: `turnserver` from PATH, else fetched from Debian's mirror without a system install
 * (src/harness/coturn.ts); a machine where neither works fails this test, saying what to do.
 * Needs root (namespaces): CI runs the suite as root.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { MLP_CONFIG } from '../src/harness/drills.ts';
import { icePairs, startWanCluster, WAN_HOST_ADDRESS } from '../src/harness/netns.ts';
import { findTurnserver, startCoturn, type Coturn } from '../src/harness/coturn.ts';
import { expect, test } from './peers.ts';

test('2 peers with no route between them train through coturn, with TURN credentials the server minted for each', async () => {
  test.skip(process.getuid?.() !== 0, 'needs root to create network namespaces: run the e2e suite as root (CI does)');
  test.setTimeout(120_000);
  // Fails (does not skip) when coturn cannot be had: the message says how to get it.
  const turnserver = findTurnserver(console.log);
  const secret = randomBytes(32).toString('hex');
  const port = 20_000 + Math.floor(Math.random() * 10_000);
  let coturn: Coturn | null = null;
  try {
    const cluster = await startWanCluster({
      profile: 'lan',
      peers: 2,
      isolate: true,
      query: { backend: 'wasm' },
      build: false,
      deadAfterMs: 30_000,
      log: () => undefined,
      turn: { urls: [`turn:${WAN_HOST_ADDRESS}:${port}?transport=udp`], secret, ttlSeconds: 600 },
      onWan: async (wan) => {
        coturn = await startCoturn(turnserver, { ip: wan.hostAddress, port, secret });
      },
    });
    try {
      // No route from one namespace to the other; both reach the host.
      const [a, b] = cluster.wan.peers;
      expect(() => execFileSync('ip', ['-n', a!.netns, 'route', 'get', b!.address], { stdio: 'pipe' })).toThrow(/unreachable/i);
      expect(execFileSync('ip', ['-n', a!.netns, 'route', 'get', WAN_HOST_ADDRESS], { encoding: 'utf8' })).toContain(WAN_HOST_ADDRESS);
      // No stranger's /api/config carries a TURN credential.
      const cfg = await cluster.pages[0]!.evaluate(() => fetch('/api/config').then((r) => r.text()));
      expect(JSON.parse(cfg)).toMatchObject({ iceServers: [] });
      expect(cfg).not.toContain(secret);

      const rs = await Promise.all(
        cluster.pages.map((p) => p.evaluate((c) => window.ringtrain.train(c), { ...MLP_CONFIG, steps: 20, evalEvery: 20 })),
      );
      expect(rs[0]!.checksum).toMatch(/^[0-9a-f]{8}$/);
      for (const r of rs) expect(r.checksum).toBe(rs[0]!.checksum);

      // Every link ran through the relay: each side's selected pair has a relay candidate, and carried the run.
      for (const page of cluster.pages) {
        const pairs = (await icePairs(page)).filter((p) => p.state === 'succeeded');
        expect(pairs.length, JSON.stringify(pairs)).toBeGreaterThanOrEqual(1);
        for (const p of pairs) {
          expect([p.localType, p.remoteType], JSON.stringify(p)).toContain('relay');
          expect(p.bytesSent).toBeGreaterThan(100_000);
        }
      }
      // coturn granted allocations only to credentials "<expiry>:<peer id>" of this room's peers (at
      // least one: a relay on one side of a pair is enough, so the other may not allocate).
      const ids = (await cluster.pages[0]!.evaluate(() => window.ringtrain.view()))!.members.map((m) => m.peerId).sort();
      const users = coturn!.allocations();
      const now = Date.now() / 1000;
      for (const u of users) {
        const [expiry] = u.split(':');
        expect(Number(expiry)).toBeGreaterThan(now + 400);
        expect(Number(expiry)).toBeLessThan(now + 601);
      }
      const allocated = [...new Set(users.map((u) => u.split(':')[1]))];
      expect(allocated.length).toBeGreaterThanOrEqual(1);
      for (const id of allocated) expect(ids).toContain(id);
    } finally {
      await cluster.close();
    }
  } finally {
    await (coturn as Coturn | null)?.stop();
  }
});
