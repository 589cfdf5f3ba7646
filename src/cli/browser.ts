/**
 * Finds a Chromium for headless peers and builds its launch options. Shared by the e2e tests,
 * the benchmarks and the CLI. Flags are the ones measured in ../shared/chromium.md.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

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

/**
 * Lookup order: `$RINGTRAIN_CHROMIUM`, Debian's /usr/bin/chromium (or chromium-browser,
 * google-chrome), then the browser bundled by the npm package @sparticuz/chromium. Throws an
 * Error naming the install command when none is found.
 */
export async function findChromium(env: NodeJS.ProcessEnv = process.env): Promise<BrowserChoice> {
  const fromEnv = env[BROWSER_ENV];
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`${BROWSER_ENV}=${fromEnv}: no such file; unset it or point it at a Chromium binary`);
    return { executablePath: fromEnv, source: 'env', args: BASE_FLAGS };
  }
  const system = SYSTEM_PATHS.find((p) => existsSync(p));
  if (system) return { executablePath: system, source: 'system', args: BASE_FLAGS };
  try {
    const mod = (await import('@sparticuz/chromium')).default;
    return { executablePath: await mod.executablePath(), source: 'npm', args: [...BASE_FLAGS, ...NPM_CHROMIUM_FLAGS] };
  } catch (e) {
    throw new Error(
      `No Chromium found (${(e as Error).message}). Install one: "sudo apt-get install -y chromium" on Debian/Ubuntu, ` +
        `or "npm install" to get @sparticuz/chromium, or set ${BROWSER_ENV} to a Chromium binary.`,
    );
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
 * A browser context for peers of the server at `origin`: the media permission lets Chromium
 * offer loopback ICE candidates when the machine has no network card.
 */
export async function newPeerContext(browser: Browser, origin: string): Promise<BrowserContext> {
  const ctx = await browser.newContext({ baseURL: origin });
  await ctx.grantPermissions(['microphone'], { origin });
  return ctx;
}
