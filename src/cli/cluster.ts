/**
 * A local training cluster: the RingTrain server on a free port plus N headless Chromium tabs
 * joined to one room. Used by the benchmarks and the CLI; the e2e page objects share `joinPage`.
 */
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { View } from '../core/membership/view.ts';
import { startServer, type RunningServer } from '../server/app.ts';
import { launchBrowser, newPeerContext } from './browser.ts';

export interface ClusterOptions {
  peers: number;
  room?: string;
  /** Project root (default: two levels above this file). */
  root?: string;
  /** Build the app first (default true); the cluster serves the built assets. */
  build?: boolean;
  /** Heartbeat settings handed to the coordinator and the peers. */
  heartbeatMs?: number;
  deadAfterMs?: number;
  /** URL options for every tab, e.g. `{ backend: 'wasm' }`. */
  query?: Record<string, string>;
}

export interface Cluster {
  server: RunningServer;
  browser: Browser;
  pages: Page[];
  room: string;
  /** Opens one more tab (same URL options) and joins it to the room; it is not added to `pages`. */
  addPeer(): Promise<Page>;
  close(): Promise<void>;
}

/** Opens the app in `page` (already bound to the server's origin) and joins `room`; `query` adds URL options such as backend=webgpu. */
export async function joinPage(page: Page, room: string, query: Record<string, string> = {}): Promise<string> {
  await page.goto(`/?${new URLSearchParams({ room, autojoin: '0', ...query }).toString()}`);
  await page.waitForFunction(() => typeof window.ringtrain?.join === 'function');
  return (await page.evaluate((room) => window.ringtrain.join({ room }), room)).peerId;
}

/** Waits until the page's view has `n` members. */
export function waitForMembers(page: Page, n: number, timeoutMs = 30_000): Promise<View> {
  return page.evaluate(([n, t]) => window.ringtrain.waitForView(n, t), [n, timeoutMs] as const);
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const root = o.root ?? path.resolve(import.meta.dirname, '../..');
  if (o.build !== false) {
    const { build } = await import('vite');
    await build({ root, configFile: path.join(root, 'vite.config.ts'), logLevel: 'warn' });
  }
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    mode: 'prod',
    root,
    ...(o.heartbeatMs ? { heartbeatMs: o.heartbeatMs } : {}),
    ...(o.deadAfterMs ? { deadAfterMs: o.deadAfterMs } : {}),
  });
  const browser = await launchBrowser();
  const close = async (): Promise<void> => {
    await browser.close();
    await server.close();
  };
  try {
    const ctx = await newPeerContext(browser, server.url);
    const room = o.room ?? `cluster-${Math.random().toString(36).slice(2, 8)}`;
    const pages: Page[] = [];
    for (let i = 0; i < o.peers; i++) {
      const page = await ctx.newPage();
      await joinPage(page, room, o.query);
      pages.push(page);
    }
    await Promise.all(pages.map((p) => waitForMembers(p, o.peers)));
    const addPeer = async (): Promise<Page> => {
      const page = await ctx.newPage();
      await joinPage(page, room, o.query);
      return page;
    };
    return { server, browser, pages, room, addPeer, close };
  } catch (e) {
    await close();
    throw e;
  }
}
