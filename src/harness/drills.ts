/**
 * Driving training runs in headless tabs, for the fault drills of the e2e suite and
 * `npm run bench -- faults`: start the same run in many tabs, wait on their training events, strike
 * a tab at a chosen point of a step, and check the step history of each peer.
 */
import type { Page } from 'playwright-core';
import type { TrainConfig, TrainEvent } from '../training/trainer.ts';

export { stepProblems } from '../training/history.ts';

/** The events a drill keeps, stamped with the tab's wall clock (ms, comparable across tabs of one machine). */
export type Kept = Extract<TrainEvent, { type: 'step' | 'sync' | 'fault' | 'checkpoint' }> & { t: number };

/** What the harness keeps in its pages (drills' events, recorded connections, soak hooks). */
declare global {
  interface Window {
    __events: Kept[];
    __rtPcs?: RTCPeerConnection[];
    __soakEvent?(e: TrainEvent): void;
  }
}

/** The MLP on Fashion-MNIST that the codec, aggregation and WAN benchmarks train, and the WAN and TURN e2e tests. */
export const MLP_CONFIG: TrainConfig = {
  dataset: 'fashion-mnist',
  partition: { scheme: 'iid', seed: 1 },
  model: 'mlp',
  algorithm: 'sgd',
  optimizer: { kind: 'adam', lr: 0.002 },
  batch: 128,
  steps: 150,
  seed: 3,
};

/** The drills' run: softmax regression by sync SGD on IID Fashion-MNIST shards (about 100 ms a step with 4 wasm tabs here). */
export const DRILL_CONFIG: TrainConfig = {
  dataset: 'fashion-mnist',
  partition: { scheme: 'iid', seed: 1 },
  model: 'softmax',
  algorithm: 'sgd',
  optimizer: { kind: 'adam', lr: 0.005 },
  batch: 128,
  steps: 40,
  seed: 7,
};

/** What a tab reports when its run ends. */
export interface Outcome {
  steps: number;
  checksum: string;
  accuracy: number;
  finite: boolean;
  recoveries: number;
  /** The final weights (for comparing runs). */
  weights: number[];
  events: Kept[];
}

/** Starts `config` in every tab; each keeps its step/sync/fault/checkpoint events in `window.__events`. A tab that dies resolves to its Error. */
export function startTraining(pages: Page[], config: TrainConfig): Promise<Outcome | Error>[] {
  return pages.map((page) =>
    page
      .evaluate(async (config) => {
        window.__events = [];
        const r = await window.ringtrain.train(config, (e) => {
          if (e.type === 'step' || e.type === 'sync' || e.type === 'fault' || e.type === 'checkpoint')
            window.__events.push({ ...e, t: Date.now() });
        });
        return {
          steps: r.steps,
          checksum: r.checksum,
          accuracy: r.accuracy,
          finite: r.weights.every(Number.isFinite),
          recoveries: r.recoveries,
          weights: Array.from(r.weights),
          events: window.__events,
        };
      }, config)
      .catch((e: unknown) => e as Error),
  );
}

/** Resolves when `page` has committed `step` (by its own step or a sync). */
export function waitForStep(page: Page, step: number, timeoutMs = 120_000): Promise<unknown> {
  return page.waitForFunction((s) => (window.__events ?? []).some((e) => (e.type === 'step' || e.type === 'sync') && e.step >= s), step, {
    timeout: timeoutMs,
  });
}

/** Where in a step a fault strikes: while the tab computes, or once it has sent frames of the allreduce. */
export type Point = 'compute' | 'allreduce';

/** Resolves at `point` of the step after `step`. */
export async function reach(page: Page, step: number, point: Point): Promise<void> {
  await waitForStep(page, step);
  if (point === 'compute') return;
  const sent = await page.evaluate(() => window.ringtrain.stats().framesSent);
  await page.waitForFunction((n) => window.ringtrain.stats().framesSent > n, sent, { timeout: 60_000 });
}

/** How a tab is struck down. */
export const FAULTS = {
  close: (p: Page): Promise<void> => p.close(),
  crash: async (p: Page): Promise<void> => {
    const cdp = await p.context().newCDPSession(p);
    // The renderer dies at once; the reply never comes.
    void cdp.send('Page.crash').catch(() => undefined);
  },
};
export type FaultKind = keyof typeof FAULTS;
