/**
 * Finds a Chromium for headless peers and builds its launch options. Shared by the e2e tests,
 * the benchmarks and the CLI. Flags are the ones measured in ../shared/chromium.md.
 */
import { existsSync, lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';

export interface BrowserChoice {
  executablePath: string;
  /** Where it came from: the env var, a system install, or the npm package. */
  source: 'env' | 'system' | 'npm';
  args: string[];
}

/** Playwright adds its own headless flag; a browser started by hand needs this one. */
export const HEADLESS_FLAG = '--headless=new';

const BASE_FLAGS = [
  '--no-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
  // WebGPU through SwiftShader when there is no GPU.
  '--enable-unsafe-webgpu',
  // WebRTC between tabs on one machine, without mDNS multicast on the network card.
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--allow-loopback-in-peer-connection',
  '--use-fake-ui-for-media-stream',
];

/** Extra flags @sparticuz/chromium needs (its own defaults break WebRTC, so they are not used). */
const NPM_CHROMIUM_FLAGS = ['--no-zygote', '--in-process-gpu', '--use-gl=angle', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'];

const SYSTEM_PATHS = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

export const BROWSER_ENV = 'RINGTRAIN_CHROMIUM';

/** `$RINGTRAIN_CHROMIUM=npm` picks the npm package's browser even where a system one exists (what CI tests). */
export const NPM_BROWSER = 'npm';

/**
 * Lookup order: `$RINGTRAIN_CHROMIUM` (a path, or `npm`), Debian's /usr/bin/chromium (or
 * chromium-browser, google-chrome), then the browser bundled by the npm package
 * @sparticuz/chromium. Throws an Error naming the install command when none is found.
 */
export async function findChromium(env: NodeJS.ProcessEnv = process.env): Promise<BrowserChoice> {
  const fromEnv = env[BROWSER_ENV];
  if (fromEnv && fromEnv !== NPM_BROWSER) {
    if (!existsSync(fromEnv))
      throw new Error(`${BROWSER_ENV}=${fromEnv}: no such file; unset it, set it to "${NPM_BROWSER}", or point it at a Chromium binary`);
    return { executablePath: fromEnv, source: 'env', args: BASE_FLAGS };
  }
  const system = fromEnv ? undefined : SYSTEM_PATHS.find((p) => existsSync(p));
  if (system) return { executablePath: system, source: 'system', args: BASE_FLAGS };
  try {
    return { executablePath: await (npmChromium ??= unpackNpmChromium()), source: 'npm', args: [...BASE_FLAGS, ...NPM_CHROMIUM_FLAGS] };
  } catch (e) {
    npmChromium = null;
    throw new Error(
      `No Chromium found (${(e as Error).message}). Install one: "sudo apt-get install -y chromium" on Debian/Ubuntu, ` +
        `or "npm install" to get @sparticuz/chromium, or set ${BROWSER_ENV} to a Chromium binary.`,
    );
  }
}

let npmChromium: Promise<string> | null = null;

/**
 * Unpacks @sparticuz/chromium's browser (once per version and user) and returns its path. The
 * package unpacks into `os.tmpdir()`, i.e. /tmp/chromium, which a second user cannot run (0700)
 * and a newer version would reuse; so it is pointed at `<tmp>/ringtrain-chromium-<version>-<uid>`.
 */
async function unpackNpmChromium(): Promise<string> {
  const require = createRequire(import.meta.url);
  const pkg = path.resolve(path.dirname(require.resolve('@sparticuz/chromium')), '../..');
  const { version } = JSON.parse(readFileSync(path.join(pkg, 'package.json'), 'utf8')) as { version: string };
  const dir = path.join(tmpdir(), `ringtrain-chromium-${version}-${process.getuid?.() ?? 'user'}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // In a shared /tmp another user could have made the folder first, with a browser of their own in it.
  const owner = lstatSync(dir);
  if (!owner.isDirectory() || (process.getuid && owner.uid !== process.getuid()))
    throw new Error(`${dir} belongs to another user; remove it, or set ${BROWSER_ENV} to a Chromium binary`);
  const mod = (await import('@sparticuz/chromium')).default;
  const before = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  try {
    return await mod.executablePath();
  } finally {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
  }
}

/**
 * Launches a fresh headless browser process with the flags WebRTC and WebGPU need here; `adjust`
 * may change the executable or the flags (e.g. to start it inside a network namespace).
 */
export async function launchBrowser(adjust: (c: BrowserChoice) => BrowserChoice = (c) => c): Promise<Browser> {
  const choice = adjust(await findChromium());
  return chromium.launch({ executablePath: choice.executablePath, args: choice.args, headless: true });
}

/**
 * The locale of every headless context: the npm browser's own under `LANG=C.UTF-8` is
 * `en-US@posix`, which Intl rejects (the app survives it; a harness should not depend on that).
 */
export const HARNESS_LOCALE = 'en-US';

/**
 * A browser context for peers of the server at `origin`: the media permission lets Chromium
 * offer loopback ICE candidates when the machine has no network card. `trustCertificate` accepts
 * the server's self-signed certificate (a harness's own, made for the run).
 */
export async function newPeerContext(browser: Browser, origin: string, o: { trustCertificate?: boolean } = {}): Promise<BrowserContext> {
  const ctx = await browser.newContext({
    baseURL: origin,
    locale: HARNESS_LOCALE,
    ...(o.trustCertificate ? { ignoreHTTPSErrors: true } : {}),
  });
  await ctx.grantPermissions(['microphone'], { origin });
  return ctx;
}

/** How long a page may take to start the app, ms. */
export const APP_START_TIMEOUT_MS = 30_000;

/**
 * Loads `url` in `page` and waits until `ready` (run in the page) is truthy. A page that does not
 * get there fails with its own uncaught errors and console errors, collected from before the load
 * (an app can die while its first modules run), instead of a bare timeout.
 */
export async function openApp(page: Page, url: string, ready: () => unknown, timeoutMs = APP_START_TIMEOUT_MS): Promise<void> {
  const problems: string[] = [];
  const onError = (e: Error): void => void problems.push(`uncaught ${e.name}: ${e.message}`);
  const onConsole = (m: ConsoleMessage): void => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  };
  page.on('pageerror', onError);
  page.on('console', onConsole);
  try {
    await page.goto(url);
    await page.waitForFunction(ready, undefined, { timeout: timeoutMs });
  } catch (e) {
    const said = problems.length
      ? `; the page said:\n  ${[...new Set(problems)].slice(0, 10).join('\n  ')}`
      : '; the page reported no error';
    throw new Error(`the app at ${page.url()} did not start within ${timeoutMs / 1000} s (${(e as Error).message.split('\n')[0]})${said}`);
  } finally {
    page.off('pageerror', onError);
    page.off('console', onConsole);
  }
}
