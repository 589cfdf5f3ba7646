/**
 * The volunteer path, as a user meets it: a dashboard tab creates a room and starts a run with the
 * form's defaults (which evaluate and checkpoint on a schedule); volunteers join through
 * `ringtrain peer <link>`, each its own process and browser; one volunteer's browser is killed by
 * PID mid-run, and a new volunteer joins later. The run finishes on every survivor with the same
 * checksum. (Before the trainer agreed on its control flow, the joiner evaluated while the others
 * stepped and the run failed with "frame chunks is 1, expected 2".)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Page } from '@playwright/test';
import { descendants } from '../src/harness/procs.ts';
import { BIN, createRoomFromForm, expect, newContext, summary, test } from './peers.ts';

/** A `ringtrain peer` process: its output so far, and a wait for a line of it. */
class Volunteer {
  readonly child: ChildProcess;
  out = '';
  readonly exited: Promise<number | null>;
  private readonly waiters = new Set<() => void>();

  constructor(link: string) {
    this.child = spawn(process.execPath, [BIN, 'peer', link, '--backend', 'wasm'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const add = (b: Buffer): void => {
      this.out += b.toString();
      for (const w of [...this.waiters]) w();
    };
    this.child.stdout!.on('data', add);
    this.child.stderr!.on('data', add);
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  /** Resolves with the first match of `re` in the output (rejects after `timeoutMs`). */
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(this.out);
        if (!m) return;
        this.waiters.delete(check);
        clearTimeout(t);
        resolve(m);
      };
      const t = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no ${re} in the volunteer's output within ${timeoutMs} ms:\n${this.out}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** The browser process this volunteer launched (a direct child of the CLI). */
  browserPid(): number {
    const pid = this.child.pid!;
    const browser = descendants(pid).find((p) => p.ppid === pid && p.cmdline.includes('chromium'));
    if (!browser) throw new Error(`no browser process under the volunteer (pid ${pid})`);
    return browser.pid;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) this.child.kill('SIGINT');
    await this.exited;
  }
}

const step = (page: Page): Promise<number> => page.getByTestId('progress-run').evaluate((p: HTMLProgressElement) => p.value);
const members = (page: Page): Promise<number> => page.locator('#peers-table tbody tr').count();

test('a dashboard run with the defaults and volunteers through `ringtrain peer`: one killed by PID, one joining mid-run; every survivor ends with the same weights', async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(420_000);
  const ctx = await newContext(ringBrowser, baseURL!);
  const { page: dash, link } = await createRoomFromForm(ctx, 'elastic', 'wasm');
  const volunteers = [new Volunteer(link.toString()), new Volunteer(link.toString())];
  try {
    await Promise.all(volunteers.map((v) => v.waitFor(/1 volunteer peer\(s\) in room/, 60_000)));
    await expect.poll(() => members(dash), { timeout: 30_000 }).toBe(3);

    // The form as it comes (softmax, Adam with a cosine decay) but 1 epoch of Fashion-MNIST:
    // evaluation and checkpoints every 23 steps (469 steps).
    await dash.getByLabel('Epochs').fill('1');
    await dash.getByRole('button', { name: 'Start for the room' }).click();
    await expect.poll(() => step(dash), { timeout: 120_000 }).toBeGreaterThanOrEqual(60);

    // Kill one volunteer's browser by PID: its CLI says so and exits 1; the room re-forms without it.
    const [killed, kept] = volunteers as [Volunteer, Volunteer];
    process.kill(killed.browserPid(), 'SIGKILL');
    expect(await killed.exited).toBe(1);
    expect(killed.out).toContain("the volunteers' browser has gone");
    await expect.poll(() => members(dash), { timeout: 30_000 }).toBe(2);

    // Later, a new volunteer joins the running room and catches up.
    const before = await step(dash);
    await expect.poll(() => step(dash), { timeout: 120_000 }).toBeGreaterThanOrEqual(before + 40);
    const late = new Volunteer(link.toString());
    volunteers.push(late);
    await late.waitFor(/1 volunteer peer\(s\) in room/, 60_000);
    await expect.poll(() => members(dash), { timeout: 30_000 }).toBe(3);
    const joinedAt = await step(dash);
    expect(joinedAt).toBeLessThan(469);

    // Ends one way or the other; a failed run shows why.
    await expect(dash.getByTestId('phase')).toHaveText(/^(done|failed)$/, { timeout: 300_000 });
    expect(await dash.getByTestId('phase').textContent(), (await dash.locator('#setup-error').textContent()) ?? '').toBe('done');
    const ours = await summary(dash);
    expect(ours.accuracy).toBeGreaterThan(75);
    for (const v of [kept, late]) {
      const m = await v.waitFor(/peer 0: done: Run \d+: test accuracy ([\d.]+)% after 469 steps .*checksum ([0-9a-f]{8})/, 60_000);
      expect(m[2]).toBe(ours.checksum);
      expect(v.out).not.toMatch(/peer 0: failed/);
    }
    await expect(dash.getByTestId('event-log')).toContainText('recovered');
    // Ctrl-C: the volunteer leaves with 130 and does not report its own browser's close as a death.
    await kept.stop();
    expect(await kept.exited).toBe(130);
    expect(kept.out).toContain('leaving the room');
    expect(kept.out).not.toContain('has gone');
  } finally {
    await Promise.all(volunteers.map((v) => v.stop()));
    await ctx.close();
  }
});
