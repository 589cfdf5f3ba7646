/**
 * Page objects for e2e scenarios: a browser fixture on the project's Chromium lookup, and a
 * RingPeer per tab driving `window.ringtrain`.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test as base, expect, type Browser, type BrowserContext, type Page } from '@playwright/test';
import { launchBrowser, newPeerContext } from '../src/harness/browser.ts';
import { joinPage, waitForMembers } from '../src/harness/cluster.ts';
import type { View } from '../src/core/membership/view.ts';

export { launchBrowser, newPeerContext as newContext };

export class RingPeer {
  constructor(readonly page: Page) {
    // Uncaught errors in a peer are failures worth seeing in the test log.
    page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  }

  /** Opens the app in this tab and joins `room`. */
  join(room: string, query: Record<string, string> = {}): Promise<string> {
    return joinPage(this.page, room, query);
  }

  /** Waits until this peer's view has `n` members and returns it. */
  waitForMembers(n: number, timeoutMs = 30_000): Promise<View> {
    return waitForMembers(this.page, n, timeoutMs);
  }

  view(): Promise<View | null> {
    return this.page.evaluate(() => window.ringtrain.view());
  }
}

/** Opens `n` tabs in `ctx`, joins them to `room` one after another, and waits for a full view on all. */
export async function openPeers(ctx: BrowserContext, n: number, room: string, query: Record<string, string> = {}): Promise<RingPeer[]> {
  const peers: RingPeer[] = [];
  for (let i = 0; i < n; i++) {
    const p = new RingPeer(await ctx.newPage());
    await p.join(room, query);
    peers.push(p);
  }
  return peers;
}

/**
 * Opens the app in a new tab of `ctx` (with `backend`), creates a room named after `title` from
 * the form as a person would (private: its secret is in the link's fragment), and returns the tab
 * and the room's shareable link.
 */
export async function createRoomFromForm(ctx: BrowserContext, title: string, backend: string): Promise<{ page: Page; link: URL }> {
  const page = await ctx.newPage();
  await page.goto(`/?backend=${backend}`);
  await page.getByLabel('Room name').fill(roomName(title));
  await page.getByRole('button', { name: 'Join' }).click();
  const share = page.getByTestId('share-link');
  await expect(share).toHaveAttribute('href', new RegExp(`\\?room=${title}-.*#k=[A-Za-z0-9_-]{22}$`));
  return { page, link: new URL((await share.getAttribute('href'))!) };
}

/** The accuracy (percent) and checksum a finished run's summary shows. */
export async function summary(page: Page): Promise<{ accuracy: number; bitsPerChar: number | null; checksum: string }> {
  const text = (await page.getByTestId('result-summary').textContent()) ?? '';
  // A classifier's test accuracy, or a language model's bits per character and share of next characters right.
  const m =
    /(?:test accuracy ([\d.]+)%|validation loss ([\d.]+) bits\/char \(([\d.]+)% of next characters right\)).*checksum ([0-9a-f]{8})/.exec(
      text,
    );
  expect(m, `result summary: ${text}`).not.toBeNull();
  return { accuracy: Number(m![1] ?? m![3]), bitsPerChar: m![2] ? Number(m![2]) : null, checksum: m![4]! };
}

/** Opens the room's shared `link` in a new tab of `ctx` with `backend`. */
export async function openShared(ctx: BrowserContext, link: URL, backend: string): Promise<Page> {
  const page = await ctx.newPage();
  const url = new URL(link);
  url.searchParams.set('backend', backend);
  await page.goto(url.toString());
  return page;
}

/** Starts the form's run from `starter` for the room, waits until every tab of `pages` is done, and returns their (equal) summaries. */
export async function runFromForm(starter: Page, pages: Page[]): Promise<Awaited<ReturnType<typeof summary>>> {
  await starter.getByRole('button', { name: 'Start for the room' }).click();
  for (const p of pages) await expect(p.getByTestId('phase')).toHaveText('done', { timeout: 180_000 });
  const [first, ...rest] = await Promise.all(pages.map(summary));
  for (const r of rest) expect(r).toEqual(first);
  return first!;
}

/** The `ringtrain` command (src/cli/bin.mjs) as a user runs it. */
export const BIN = path.resolve(import.meta.dirname, '../src/cli/bin.mjs');

/** Runs the CLI to its end (killed after `timeoutMs`); resolves with its status and output. */
export function ringtrain(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 150_000,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
  });
}

/** `ringtrain train` flags for a run of seconds: synthetic blobs on the cpu backend. */
export const QUICK_RUN = ['--dataset', 'blobs', '--epochs', '8', '--lr', '0.05', '--backend', 'cpu'];

/** Room names unique per test, so scenarios never see each other's peers. */
export function roomName(title: string): string {
  return `${title.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 40)}-${Math.random().toString(36).slice(2, 8)}`;
}

export const test = base.extend<object, { ringBrowser: Browser }>({
  ringBrowser: [
    // biome-ignore lint/correctness/noEmptyPattern: Playwright's fixture signature: a worker fixture that uses no other
    async ({}, use) => {
      const b = await launchBrowser();
      await use(b);
      await b.close();
    },
    { scope: 'worker' },
  ],
});
export { expect };
