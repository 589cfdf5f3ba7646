/**
 * Only invited peers get in: a private room's link carries its secret in the fragment; a tab
 * without it, or with a wrong one, is refused with a message saying what to do; a peer outside
 * the view cannot keep a data channel to a member.
 */
import { createRoomFromForm, expect, newContext, roomName, test } from './peers.ts';

test('a private room admits holders of its link only; a stranger cannot open a data channel to a member', async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(120_000);
  const ctx = await newContext(ringBrowser, baseURL!);
  const { page: a, link } = await createRoomFromForm(ctx, 'private', 'cpu');

  const b = await ctx.newPage();
  await b.goto(link.toString());
  await expect(b.getByTestId('phase')).toHaveText('ready');
  await expect(a.locator('#ring svg')).toHaveAttribute('data-peers', '2');

  // No fragment, or another secret: refused, and told what to do.
  for (const [hash, msg] of [
    ['', /room .* is private: open the link its members share/],
    ['#k=AAAAAAAAAAAAAAAAAAAAAA', /wrong secret for room/],
  ] as const) {
    const c = await ctx.newPage();
    await c.goto(`${link.origin}${link.pathname}${link.search}${hash}`);
    await expect(c.locator('#status-panel [role=alert]')).toHaveText(msg);
    expect(await c.evaluate(() => window.ringtrain.peerId())).toBeNull();
    await c.close();
  }
  expect(await a.evaluate(() => window.ringtrain.view()?.members.length)).toBe(2);

  // A peer of another (open) room dials member A directly: A refuses it once it is not in A's view.
  const stranger = await ctx.newPage();
  await stranger.goto(`/?room=${roomName('elsewhere')}&backend=cpu`);
  await expect(stranger.getByTestId('phase')).toHaveText('ready');
  const target = (await a.evaluate(() => window.ringtrain.peerId()))!;
  // It sends 200 frames of 1 KiB while it waits: held aside, never queued with the members' frames.
  expect(await stranger.evaluate((id) => window.ringtrain.debug.dial(id, 40_000, { frames: 200, bytes: 1024 }), target)).toBe(false);
  expect(await a.evaluate(() => window.ringtrain.debug.refused())).toBe(1);
  expect((await a.evaluate(() => window.ringtrain.debug.memory())).session?.mailbox.slots).toBe(0);
  // One that sends more than a dialer may before it is in the view (1 MiB) is refused for that.
  expect(await stranger.evaluate((id) => window.ringtrain.debug.dial(id, 40_000, { frames: 100, bytes: 16 * 1024 }), target)).toBe(false);
  expect(await a.evaluate(() => window.ringtrain.debug.refused())).toBe(2);
  await expect(a.locator('#event-log')).toContainText('sent too much before it was a member of the view');
  expect((await a.evaluate(() => window.ringtrain.debug.memory())).session?.mailbox.slots).toBe(0);
  await ctx.close();
});
