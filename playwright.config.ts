import { defineConfig } from '@playwright/test';

/** Port of the server the e2e suite starts (one process: app, signaling, coordinator). */
export const E2E_PORT = Number(process.env.E2E_PORT ?? 5199);

export default defineConfig({
  testDir: 'e2e',
  // Peers are CPU-bound on 2 cores: one scenario at a time.
  workers: 1,
  fullyParallel: false,
  timeout: 180_000,
  expect: { timeout: 30_000 },
  // One retry, reported as "flaky" in the output: on this 2-core machine a fresh data channel
  // between two tabs now and then stays silent for the link detector's 12 s, and a test that calls
  // one collective through the page API (which, unlike training, does not recover) fails. Seen in
  // about one full run in three, nearly always the suite's first test, while 4 tabs start at once
  // on 2 cores. Training survives it (a failed link is one more view); the soak issue's note has
  // the measurements. A test that fails twice fails.
  retries: 1,
  reporter: [['list']],
  outputDir: 'test-results',
  webServer: {
    // The built app: a dev server would re-optimise dependencies and reload tabs mid-test.
    command: `npm run build --silent && node --import tsx src/server/main.ts --prod --port ${E2E_PORT} --dead-after-ms 6000`,
    url: `http://127.0.0.1:${E2E_PORT}/api/config`,
    reuseExistingServer: false,
    timeout: 120_000,
    stdout: 'pipe',
    stderr: 'pipe',
  },
  use: { baseURL: `http://127.0.0.1:${E2E_PORT}` },
});
