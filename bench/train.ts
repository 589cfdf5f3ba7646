/**
 * `npm run bench -- train`: synchronous SGD on Fashion-MNIST across N headless Chromium tabs, per
 * forced tfjs backend: ms/step split into compute / readback / allreduce / apply, samples/s and
 * time to a target test accuracy. (The accuracy table is bench/accuracy.ts.)
 *
 * It drives `window.ringtrain.train` in every tab with the same config and collects its typed
 * events, each stamped with the tab's `performance.now()`.
 */
import type { Page } from 'playwright-core';
import { startCluster } from '../src/harness/cluster.ts';
import type { BackendName } from '../src/ml/backend.ts';
import type { ModelKind } from '../src/ml/models.ts';
import type { TrainConfig, TrainEvent, TrainResult } from '../src/training/trainer.ts';

/** Fashion-MNIST's training set size, for epochs = samples seen / TRAIN_SIZE. */
export const TRAIN_SIZE = 60_000;

/** A step or eval event as the bench keeps it, with the tab's clock (ms) when it was emitted. */
type Stamped = Extract<TrainEvent, { type: 'step' | 'eval' }> & { t: number };

/** What one tab reports back from one training run. */
interface PeerRun {
  result: TrainResult;
  /** The backend the tab actually ran on, and why (a forced backend that fails falls back). */
  backend: string;
  reason: string;
  events: Stamped[];
}

export interface TrainRow {
  backend: BackendName;
  peers: number;
  model: ModelKind;
  compute_ms: number;
  readback_ms: number;
  allreduce_ms: number;
  apply_ms: number;
  step_ms: number;
  samples_per_sec: number;
  time_to_target_s: number | null;
  target: number;
  final_accuracy: number;
}

export interface TrainBenchOptions {
  peers: number[];
  backends: BackendName[];
  models: ModelKind[];
  steps: number;
  /** Steps left out of the medians (backend warm-up, fresh data channels). */
  warmup: number;
  /** Global batch, split across the peers. */
  batch: number;
  lr: number;
  evalEvery: number;
  target: number;
}

function config(model: ModelKind, steps: number, batch: number, lr: number, evalEvery: number): TrainConfig {
  return {
    dataset: 'fashion-mnist',
    partition: { scheme: 'iid', seed: 1 },
    model,
    algorithm: 'sgd',
    optimizer: { kind: 'adam', lr },
    batch,
    steps,
    evalEvery,
    checksumEvery: 0,
    seed: 7,
  };
}

/** Runs the same training in every tab at once; resolves to each tab's result and events. */
function trainAll(pages: Page[], cfg: TrainConfig): Promise<PeerRun[]> {
  return Promise.all(
    pages.map((p) =>
      p.evaluate(async (cfg) => {
        const events: Stamped[] = [];
        let backend = '?';
        let reason = '';
        const result = await window.ringtrain.train(cfg, (e) => {
          if (e.type === 'backend') {
            backend = e.report.name;
            reason = e.report.reason;
          } else if (e.type === 'step' || e.type === 'eval') events.push({ ...e, t: performance.now() });
        });
        return { result, backend, reason, events };
      }, cfg),
    ),
  );
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

type StepEvent = Extract<Stamped, { type: 'step' }>;
const stepsOf = (r: PeerRun): StepEvent[] => r.events.filter((e): e is StepEvent => e.type === 'step');

/**
 * Medians over the steps after `warmup`. Per step, each phase is the mean over the peers; the
 * step's wall time is the slowest peer's (a synchronous step ends for everyone together).
 */
function summarise(runs: PeerRun[], warmup: number, target: number): Omit<TrainRow, 'backend' | 'peers' | 'model'> {
  const perPeer = runs.map(stepsOf);
  const steps = perPeer[0]!.length;
  const phase = {
    compute: [] as number[],
    readback: [] as number[],
    allreduce: [] as number[],
    apply: [] as number[],
    wall: [] as number[],
    sps: [] as number[],
  };
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  for (let i = Math.min(warmup, steps - 1); i < steps; i++) {
    const at = perPeer.map((s) => s[i]!);
    phase.compute.push(mean(at.map((e) => e.computeMs)));
    phase.readback.push(mean(at.map((e) => e.readbackMs)));
    phase.allreduce.push(mean(at.map((e) => e.allreduceMs)));
    phase.apply.push(mean(at.map((e) => e.applyMs)));
    phase.wall.push(Math.max(...at.map((e) => (e.samples / e.samplesPerSec) * 1000)));
    phase.sps.push(Math.min(...at.map((e) => e.samplesPerSec)));
  }
  // Time to target on rank 0's clock: from the end of the step-0 evaluation (data loaded, backend
  // chosen, untrained model scored) to the first evaluation at or above the target, evaluations included.
  const evals = runs[0]!.events.filter((e) => e.type === 'eval');
  const start = evals.find((e) => e.step === 0)?.t ?? runs[0]!.events[0]!.t;
  const hit = evals.find((e) => e.step > 0 && e.accuracy >= target);
  return {
    compute_ms: round(median(phase.compute)),
    readback_ms: round(median(phase.readback)),
    allreduce_ms: round(median(phase.allreduce)),
    apply_ms: round(median(phase.apply)),
    step_ms: round(median(phase.wall)),
    samples_per_sec: round(median(phase.sps), 1),
    time_to_target_s: hit ? round((hit.t - start) / 1000, 2) : null,
    target,
    final_accuracy: round(runs[0]!.result.accuracy, 4),
  };
}

/**
 * Tabs on software WebGL/WebGPU can block their main thread (and so their heartbeats) for many
 * seconds when 4 share 2 cores; 10 s still evicted a live webgl peer here. A benchmark has no
 * failures to detect, so the deadline is generous.
 */
const DEAD_AFTER_MS = 30_000;

/** `onRows` gets the rows so far after each new one (so a run cut short still leaves its results). */
export async function benchTrain(o: TrainBenchOptions, log: (s: string) => void, onRows?: (rows: TrainRow[]) => void): Promise<TrainRow[]> {
  const rows: TrainRow[] = [];
  let built = false;
  for (const backend of o.backends) {
    for (const n of o.peers) {
      log(`starting ${n} headless peers with ?backend=${backend} ...`);
      let absent = false;
      try {
        const cluster = await startCluster({ peers: n, build: !built, deadAfterMs: DEAD_AFTER_MS, query: { backend } });
        built = true;
        try {
          for (const model of o.models) {
            const runs = await trainAll(cluster.pages, config(model, o.steps, o.batch, o.lr, o.evalEvery));
            const got = runs.find((r) => r.backend !== backend);
            if (got) {
              // A forced backend that fails to start falls back; such a run does not measure `backend`.
              log(`${backend}: not present (ran on ${got.backend}: ${got.reason}); skipped`);
              absent = true;
              break;
            }
            const row: TrainRow = { backend, peers: n, model, ...summarise(runs, o.warmup, o.target) };
            rows.push(row);
            onRows?.(rows);
            log(formatTrainRow(row));
          }
        } finally {
          await cluster.close();
        }
      } catch (e) {
        // One failed configuration (e.g. a peer evicted under load) does not end the benchmark.
        log(`${backend} x${n}: failed, no row: ${(e as Error).message.split('\n')[0]}`);
      }
      if (absent) break;
    }
  }
  return rows;
}

export const TRAIN_HEADER =
  'backend  peers  model    compute_ms  readback_ms  allreduce_ms  apply_ms  step_ms  samples/s  to_target_s  final_acc';

const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');

export function formatTrainRow(r: TrainRow): string {
  return [
    r.backend.padEnd(7),
    String(r.peers).padStart(6),
    ` ${r.model.padEnd(7)}`,
    ms(r.compute_ms).padStart(11),
    ms(r.readback_ms).padStart(12),
    ms(r.allreduce_ms).padStart(13),
    ms(r.apply_ms).padStart(9),
    ms(r.step_ms).padStart(8),
    r.samples_per_sec.toFixed(0).padStart(10),
    (r.time_to_target_s === null ? `null(<${r.target})` : r.time_to_target_s.toFixed(1)).padStart(12),
    r.final_accuracy.toFixed(4).padStart(10),
  ].join(' ');
}
