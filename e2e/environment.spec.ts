/**
 * The app never dies on its environment. A browser that reports the language `en-US@posix` (what
 * the npm-bundled Chromium says under LANG=C.UTF-8) and loads the app from a plain-http origin
 * that is not localhost (so no crypto.subtle and no WebGPU, for real): both tabs start, say what is
 * missing and what that disables, join an open room from the form and train from the dashboard to
 * the same weights.
 */
import { E2E_PORT } from '../playwright.config.ts';
import { openApp } from '../src/harness/browser.ts';
import { expect, launchBrowser, newContext, summary, test } from './peers.ts';

/** A host name that maps to this machine without being "localhost": not a secure context. */
const INSECURE_HOST = 'ringtrain.test';

test('a bad locale and an insecure origin: the page starts, says what is missing, and two tabs train in an open room', async () => {
  test.setTimeout(240_000);
  const browser = await launchBrowser((c) => ({ ...c, args: [...c.args, `--host-resolver-rules=MAP ${INSECURE_HOST} 127.0.0.1`] }));
  try {
    const origin = `http://${INSECURE_HOST}:${E2E_PORT}`;
    const ctx = await browser.newContext({ baseURL: origin, locale: 'en-US@posix' });
    await ctx.grantPermissions(['microphone'], { origin });
    const a = await ctx.newPage();
    const errors: string[] = [];
    a.on('pageerror', (e) => errors.push(e.message));
    await a.goto('/?backend=wasm');
    expect(
      await a.evaluate(() => ({ secure: isSecureContext, subtle: !!crypto.subtle, gpu: 'gpu' in navigator, lang: navigator.language })),
    ).toEqual({
      secure: false,
      subtle: false,
      gpu: false,
      lang: 'en-US',
    });
    const notes = a.getByTestId('environment');
    await expect(notes.locator('li[data-what=crypto]')).toContainText(
      'Private rooms and secure aggregation need it: open the app over https',
    );
    await expect(notes.locator('li[data-what=webgpu]')).toContainText('No WebGPU (it needs a secure context)');
    await expect(notes.locator('li[data-what=locale]')).toContainText('"en-US@posix"');

    // Join from the form: an open room (no secret in the link), since no key can be derived here.
    await a.getByLabel('Room name').fill(`insecure-${Math.random().toString(36).slice(2, 8)}`);
    await a.getByRole('button', { name: 'Join' }).click();
    const share = a.getByTestId('share-link');
    await expect(share).toHaveAttribute('href', new RegExp(`^${origin}/\\?room=insecure-[a-z0-9]+$`));
    const b = await ctx.newPage();
    b.on('pageerror', (e) => errors.push(e.message));
    await b.goto(`${(await share.getAttribute('href'))!}&backend=wasm`);
    for (const p of [a, b]) await expect(p.locator('#peers-table tbody tr')).toHaveCount(2);

    await a.getByLabel('Epochs').fill('0.1');
    await a.getByRole('button', { name: 'Start for the room' }).click();
    for (const p of [a, b]) await expect(p.getByTestId('phase')).toHaveText('done', { timeout: 180_000 });
    const [ra, rb] = [await summary(a), await summary(b)];
    expect(rb.checksum).toBe(ra.checksum);
    expect(ra.accuracy).toBeGreaterThan(60);
    // The event log's times are formatted in the repaired locale.
    await expect(a.getByTestId('event-log').locator('li').first()).toHaveText(/^\d\d:\d\d:\d\d( [AP]M)? /);
    expect(errors).toEqual([]);
  } finally {
    await browser.close();
  }
});

test("a page that dies while starting: the harness reports the page's own error, not a bare timeout", async ({ ringBrowser, baseURL }) => {
  const ctx = await newContext(ringBrowser, baseURL!);
  // The failure this issue began with: Intl refusing the locale kills the app's first module.
  await ctx.addInitScript(() => {
    // biome-ignore lint/complexity/useArrowFunction: the app calls it with `new`, which an arrow function refuses
    Intl.NumberFormat = function () {
      throw new RangeError('Invalid language tag: en-US@posix');
    } as unknown as typeof Intl.NumberFormat;
  });
  const page = await ctx.newPage();
  const failed = await openApp(page, '/?autojoin=0', () => typeof window.ringtrain?.join === 'function', 3_000).then(
    () => null,
    (e: unknown) => e as Error,
  );
  expect(failed?.message).toMatch(/did not start within 3 s .*the page said:\n {2}uncaught RangeError: Invalid language tag: en-US@posix/s);
  await ctx.close();
});
