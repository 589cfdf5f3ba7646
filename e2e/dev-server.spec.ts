import path from 'node:path';
import { startServer, type RunningServer } from '../src/server/app.ts';
import { expect, newContext, openPeers, roomName, test } from './peers.ts';

// `npm start` serves the app through Vite on the same port as signaling and the coordinator.
// This checks that path end to end: HMR and PeerServer share the HTTP server without breaking tabs.
let server: RunningServer;
test.beforeAll(async () => {
  server = await startServer({ host: '127.0.0.1', port: 0, mode: 'dev', root: path.resolve(import.meta.dirname, '..') });
});
test.afterAll(async () => {
  await server.close();
});

test('dev server (npm start): two tabs join, show their ring position and allreduce exactly', async ({ ringBrowser }) => {
  const ctx = await newContext(ringBrowser, server.url);
  const peers = await openPeers(ctx, 2, roomName('dev'));
  const views = await Promise.all(peers.map((p) => p.waitForMembers(2)));
  const sums = await Promise.all(
    peers.map((p, i) =>
      p.page.evaluate(async (i) => Array.from(await window.ringtrain.allreduce(new Float32Array([i + 1, 10 * (i + 1), -3]))), i),
    ),
  );
  for (const s of sums) expect(s).toEqual([3, 30, -6]);
  // Ranks follow join order, and the status panel shows the live state, not just the API.
  for (const [i, p] of peers.entries()) {
    expect(views[i]!.members[i]!.peerId).toBe(await p.page.evaluate(() => window.ringtrain.peerId()));
    await expect(p.page.getByTestId('status')).toHaveText('ready');
    await expect(p.page.locator('#status-panel')).toContainText(`${i} of 2`);
  }
  await ctx.close();
});
