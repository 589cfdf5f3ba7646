import type { Page } from '@playwright/test';
import { expect, launchBrowser, newContext, openPeers, roomName, test, type RingPeer } from './peers.ts';

interface Outcome {
  ok: boolean;
  code?: string;
  message?: string;
  /** Elements that differ from the exact expected sum. */
  bad?: number;
  /** FNV-1a of the result's bytes, to compare peers bit for bit. */
  hash?: number;
  peers?: number;
}

/**
 * Runs one allreduce of `len` integer-valued floats in the page and checks the exact sum there
 * (no 4 MB result crosses back). Each rank contributes f(r, i) = ((7i + 13r) mod 1000) + r.
 */
function allreduceInPage(page: Page, len: number): Promise<Outcome> {
  return page.evaluate(async (len) => {
    const api = window.ringtrain;
    const view = api.view()!;
    const n = view.members.length;
    const rank = view.members.findIndex((m) => m.peerId === api.peerId());
    const f = (r: number, i: number): number => ((i * 7 + r * 13) % 1000) + r;
    const x = new Float32Array(len);
    for (let i = 0; i < len; i++) x[i] = f(rank, i);
    const w = window as unknown as { framesSeen: number; settled: boolean };
    w.framesSeen = 0;
    w.settled = false;
    try {
      const y = await api.allreduce(x, { onFrame: () => w.framesSeen++ });
      let bad = y.length === len ? 0 : len;
      for (let i = 0; i < len && bad < len; i++) {
        let e = 0;
        for (let r = 0; r < n; r++) e += f(r, i);
        if (y[i] !== e) bad++;
      }
      let h = 0x811c9dc5;
      const b = new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
      for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193) >>> 0;
      return { ok: true, bad, hash: h, peers: n };
    } catch (e) {
      w.settled = true;
      const err = e as { code?: string; message: string };
      return { ok: false, code: err.code ?? 'untyped', message: err.message };
    }
  }, len);
}

async function expectExactSum(peers: RingPeer[], len: number): Promise<void> {
  const results = await Promise.all(peers.map((p) => allreduceInPage(p.page, len)));
  for (const r of results) expect(r, JSON.stringify(r)).toMatchObject({ ok: true, bad: 0, peers: peers.length });
  expect(new Set(results.map((r) => r.hash)).size).toBe(1);
}

const MILLION = 1 << 20;

test('4 tabs in one browser form a ring and allreduce 1M floats exactly', async ({ ringBrowser, baseURL }) => {
  const ctx = await newContext(ringBrowser, baseURL!);
  const peers = await openPeers(ctx, 4, roomName('four-tabs'));
  const views = await Promise.all(peers.map((p) => p.waitForMembers(4)));
  // Every tab holds the same view: same epoch, same ring order.
  expect(new Set(views.map((v) => JSON.stringify(v))).size).toBe(1);
  await expectExactSum(peers, MILLION);
  await ctx.close();
});

test('peers in two separate browser processes allreduce exactly', async ({ ringBrowser, baseURL }) => {
  const other = await launchBrowser();
  const room = roomName('two-browsers');
  const ctxA = await newContext(ringBrowser, baseURL!);
  const ctxB = await newContext(other, baseURL!);
  const peers = [...(await openPeers(ctxA, 2, room)), ...(await openPeers(ctxB, 2, room))];
  await Promise.all(peers.map((p) => p.waitForMembers(4)));
  await expectExactSum(peers, MILLION);
  await ctxA.close();
  await other.close();
});

test('a tab closed mid-allreduce: survivors reject with a typed error, get a new view, and the next allreduce is exact', async ({
  ringBrowser,
  baseURL,
}) => {
  const ctx = await newContext(ringBrowser, baseURL!);
  const peers = await openPeers(ctx, 4, roomName('tab-closed'));
  const views = await Promise.all(peers.map((p) => p.waitForMembers(4)));
  const epoch = views[0]!.epoch;
  const [victim, ...survivors] = [peers[2]!, peers[0]!, peers[1]!, peers[3]!];
  const running = survivors.map((p) => allreduceInPage(p.page, 4 * MILLION));
  const victimRun = allreduceInPage(victim.page, 4 * MILLION).catch(() => null);
  // Wait until every survivor is inside the collective (frames flowing), then close the tab.
  for (const p of survivors) {
    await p.page.waitForFunction(() => {
      const w = window as unknown as { framesSeen: number; settled: boolean };
      return w.framesSeen > 0 || w.settled;
    });
  }
  await victim.page.close();
  await victimRun;
  const outcomes = await Promise.all(running);
  for (const o of outcomes) {
    expect(o.ok).toBe(false);
    expect(['view-changed', 'peer-down']).toContain(o.code);
  }
  const after = await Promise.all(survivors.map((p) => p.waitForMembers(3)));
  for (const v of after) {
    expect(v.epoch).toBeGreaterThan(epoch);
    expect(v.members.map((m) => m.peerId)).not.toContain(views[0]!.members[2]!.peerId);
  }
  await expectExactSum(survivors, MILLION);
  await ctx.close();
});
