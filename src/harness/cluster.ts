/**
 * A local training cluster: the RingTrain server on a free port plus N headless Chromium tabs
 * joined to one room. Used by the benchmarks and the CLI; the e2e page objects share `joinPage`.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { View } from '../core/membership/view.ts';
import type { SessionOptions } from '../net/session.ts';
import { startServer, type RunningServer } from '../server/app.ts';
import type { TurnOptions } from '../server/turn.ts';
import { launchBrowser, newPeerContext, openApp } from './browser.ts';

export interface ClusterOptions {
  peers: number;
  room?: string;
  /** Project root (default: two levels above this file). */
  root?: string;
  /** Build the app first (default true; 'if-stale': only when a source is newer than the build); the cluster serves the built assets. */
  build?: boolean | 'if-stale';
  /** Heartbeat settings handed to the coordinator and the peers. */
  heartbeatMs?: number;
  deadAfterMs?: number;
  /** URL options for every tab, e.g. `{ backend: 'wasm' }`. */
  query?: Record<string, string>;
  /** Address the server listens on and the tabs load the app from (default 127.0.0.1). */
  host?: string;
  /**
   * Launches the browser of peer `i` (0-based; peers added later continue the count) for the app at
   * `origin`. Default: all tabs share one browser from `launchBrowser`.
   */
  launch?: (i: number, origin: string) => Promise<Browser>;
  /** Scripts every page runs before the app (Playwright's `addInitScript`), e.g. probes for a bench. */
  initScripts?: string[];
  /** Serve over HTTPS/WSS with these PEM files; the tabs accept the certificate (e.g. a self-signed one made for the run). */
  tls?: { cert: string; key: string };
  /** The server's log lines (joins, evictions, views), e.g. for a bench to count them. */
  log?: (line: string) => void;
  /** A TURN server sharing a secret with the server, which mints each admitted tab a credential for it. */
  turn?: TurnOptions;
}

export interface Cluster {
  server: RunningServer;
  /** The first (with the default `launch`, the only) browser. */
  browser: Browser;
  pages: Page[];
  room: string;
  /** Opens one more tab (same URL options) and joins it to the room; it is not added to `pages`. */
  addPeer(): Promise<Page>;
  close(): Promise<void>;
}

/**
 * Opens the app in `page` (already bound to the server's origin) and joins `room`; `query` adds URL
 * options such as backend=webgpu, `session` options of the join (e.g. a fault drill's).
 */
export async function joinPage(
  page: Page,
  room: string,
  query: Record<string, string> = {},
  session: Partial<SessionOptions> = {},
): Promise<string> {
  await openApp(
    page,
    `/?${new URLSearchParams({ room, autojoin: '0', ...query }).toString()}`,
    () => typeof window.ringtrain?.join === 'function',
  );
  return (await page.evaluate((o) => window.ringtrain.join(o), { ...session, room })).peerId;
}

/** Waits until the page's view has `n` members. */
export function waitForMembers(page: Page, n: number, timeoutMs = 30_000): Promise<View> {
  return page.evaluate(([n, t]) => window.ringtrain.waitForView(n, t), [n, timeoutMs] as const);
}

/** The project root (where index.html and dist/ live). */
export const PROJECT_ROOT = path.resolve(import.meta.dirname, '../..');

/** Newest modification time under `dir` (files only), ms. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Builds the app into dist/ (with `ifStale`, only when index.html or a file under src/ is newer than the last build). */
export async function buildApp(root = PROJECT_ROOT, ifStale = false): Promise<boolean> {
  const built = path.join(root, 'dist', 'index.html');
  if (
    ifStale &&
    existsSync(built) &&
    statSync(built).mtimeMs >= Math.max(newest(path.join(root, 'src')), statSync(path.join(root, 'index.html')).mtimeMs)
  )
    return false;
  const { build } = await import('vite');
  await build({ root, configFile: path.join(root, 'vite.config.ts'), logLevel: 'warn' });
  return true;
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const root = o.root ?? PROJECT_ROOT;
  if (o.build !== false) await buildApp(root, o.build === 'if-stale');
  const server = await startServer({
    host: o.host ?? '127.0.0.1',
    port: 0,
    mode: 'prod',
    root,
    ...(o.heartbeatMs ? { heartbeatMs: o.heartbeatMs } : {}),
    ...(o.deadAfterMs ? { deadAfterMs: o.deadAfterMs } : {}),
    ...(o.tls ? { tls: o.tls } : {}),
    ...(o.log ? { log: o.log } : {}),
    ...(o.turn ? { turn: o.turn } : {}),
  });
  const browsers: Browser[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(browsers.map((b) => b.close()));
    await server.close();
  };
  try {
    // One shared browser and context, or one of each per peer.
    let shared: Promise<BrowserContext> | null = null;
    const contextFor = async (i: number): Promise<BrowserContext> => {
      const open = async (): Promise<BrowserContext> => {
        const b = await (o.launch ? o.launch(i, server.url) : launchBrowser());
        browsers.push(b);
        const ctx = await newPeerContext(b, server.url, { trustCertificate: !!o.tls });
        for (const script of o.initScripts ?? []) await ctx.addInitScript(script);
        return ctx;
      };
      return o.launch ? open() : (shared ??= open());
    };
    const room = o.room ?? `cluster-${Math.random().toString(36).slice(2, 8)}`;
    const pages: Page[] = [];
    let opened = 0;
    const addPeer = async (): Promise<Page> => {
      const page = await (await contextFor(opened++)).newPage();
      await joinPage(page, room, o.query);
      return page;
    };
    for (let i = 0; i < o.peers; i++) pages.push(await addPeer());
    await Promise.all(pages.map((p) => waitForMembers(p, o.peers)));
    return { server, browser: browsers[0]!, pages, room, addPeer, close };
  } catch (e) {
    await close();
    throw e;
  }
}
