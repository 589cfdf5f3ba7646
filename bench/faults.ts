/**
 * `npm run bench -- faults`: 4 headless tabs train softmax regression on Fashion-MNIST while, every
 * few steps, one random tab is closed or crashed at a random point of a step (while it computes, or
 * mid-allreduce); once the survivors commit a step again, a fresh tab joins to keep 4 peers. Per
 * fault: detection time, time from the fault to the next committed step, and steps lost. At the end,
 * the weights and test accuracy against a fault-free run of the same length: the drill trains on
 * served data (Fashion-MNIST, IID), where each step's global batch is fixed, so the weights should
 * agree to float summation order. Resuming downloads no shard (every tab holds the whole split).
 */
import type { Page } from 'playwright-core';
import {
  DRILL_CONFIG,
  FAULTS,
  reach,
  startTraining,
  stepProblems,
  waitForStep,
  type FaultKind,
  type Kept,
  type Outcome,
  type Point,
} from '../src/harness/drills.ts';
import { startCluster } from '../src/harness/cluster.ts';
import { mulberry32 } from '../src/core/random.ts';
import { relativeDifference } from '../src/ml/compare.ts';
import type { TrainConfig } from '../src/training/trainer.ts';

export interface FaultRow {
  fault: FaultKind;
  point: Point;
  /** The step after which the victim was struck. */
  step: number;
  /** Fault to the first survivor's failed collective, ms. */
  detect_ms: number;
  /** Fault to the survivors' next committed step, ms. */
  resume_ms: number;
  /** Steps committed before the fault that the group did not keep (0 = only the aborted one). */
  lost_steps: number;
}

export interface FaultSummary {
  faults: number;
  steps: number;
  p90_resume_ms: number;
  median_detect_ms: number;
  total_lost_steps: number;
  accuracy: number;
  accuracy_fault_free: number;
  accuracy_delta_pp: number;
  /** ‖w − w_fault_free‖ / ‖w_fault_free‖: the faulted run's weights against the fault-free run's. */
  weights_rel_diff: number;
  /**
   * The same fault-free run with another seed: how far two runs differ without any fault (a
   * scale for accuracy_delta_pp).
   */
  accuracy_fault_free_other_seed: number;
  /** Every peer's step history was free of gaps and repeats. */
  histories_ok: boolean;
}

export interface FaultBenchOptions {
  faults: number;
  /** Steps between faults. */
  every: number;
  seed: number;
}

const PEERS = 4;

const config = (steps: number): TrainConfig => ({ ...DRILL_CONFIG, steps });

const events = (p: Page): Promise<Kept[]> => p.evaluate(() => window.__events);

function settled(xs: (Outcome | Error)[]): Outcome[] {
  return xs.filter((x): x is Outcome => !(x instanceof Error));
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
}

/** The highest step any of `pages` has committed. */
async function progress(pages: Page[]): Promise<number> {
  const all = await Promise.all(pages.map((p) => events(p).catch(() => [] as Kept[])));
  return Math.max(
    0,
    ...all
      .flat()
      .filter((e) => e.type === 'step' || e.type === 'sync')
      .map((e) => e.step),
  );
}

export async function benchFaults(o: FaultBenchOptions, log: (s: string) => void): Promise<{ faults: FaultRow[]; summary: FaultSummary }> {
  const rand = mulberry32(o.seed);
  // Open-ended: the run is stopped (room-wide, by ringtrain.stop) once the last fault is behind it.
  const openEnded = config(1_000_000);
  const cluster = await startCluster({ peers: PEERS, query: { backend: 'wasm' } });
  const rows: FaultRow[] = [];
  let steps: number;
  let accuracy: number;
  let weights: number[];
  let historiesOk: boolean;
  try {
    let live = [...cluster.pages];
    const runs = startTraining(live, openEnded);
    for (let i = 0; i < o.faults; i++) {
      const victim = live[Math.floor(rand() * live.length)]!;
      const fault: FaultKind = rand() < 0.5 ? 'close' : 'crash';
      const point: Point = rand() < 0.5 ? 'compute' : 'allreduce';
      await reach(victim, (await progress(live)) + o.every + Math.floor(rand() * 3), point);
      const survivors = live.filter((p) => p !== victim);
      const before = await progress(survivors);
      const t0 = Date.now();
      await FAULTS[fault](victim);
      live = survivors;
      // The survivors' next committed step after a sync that follows the fault.
      await Promise.all(
        survivors.map((p) =>
          p.waitForFunction(
            (t0) => {
              const sync = window.__events.findIndex((e) => e.type === 'sync' && e.t >= t0);
              return sync >= 0 && window.__events.slice(sync).some((e) => e.type === 'step');
            },
            t0,
            { timeout: 120_000 },
          ),
        ),
      );
      const after = (await Promise.all(survivors.map(events))).map((xs) => xs.filter((e) => e.t >= t0));
      const detect = Math.min(...after.map((xs) => xs.find((e) => e.type === 'fault')?.t ?? Infinity)) - t0;
      const resume =
        Math.min(
          ...after.map((xs) => xs.find((e, k) => e.type === 'step' && xs.slice(0, k).some((x) => x.type === 'sync'))?.t ?? Infinity),
        ) - t0;
      const syncStep = Math.min(...after.map((xs) => xs.find((e) => e.type === 'sync')?.step ?? Infinity));
      const row: FaultRow = {
        fault,
        point,
        step: before,
        detect_ms: detect,
        resume_ms: resume,
        lost_steps: Math.max(0, before - syncStep),
      };
      rows.push(row);
      log(
        `fault ${i + 1}: ${fault} during ${point} after step ${before}: detected in ${detect} ms, next step committed ${resume} ms after the fault, ${row.lost_steps} step(s) lost`,
      );
      // A volunteer takes the free seat.
      const fresh = await cluster.addPeer();
      runs.push(...startTraining([fresh], openEnded));
      live.push(fresh);
    }
    await waitForStep(live[0]!, (await progress(live)) + o.every);
    await live[0]!.evaluate(() => window.ringtrain.stop());
    const finished = settled(await Promise.all(runs)).filter((x) => x.steps > 0);
    steps = finished[0]!.steps;
    accuracy = finished[0]!.accuracy;
    weights = finished[0]!.weights;
    historiesOk =
      finished.length === PEERS &&
      finished.every((x) => x.steps === steps && stepProblems(x.events).length === 0 && x.checksum === finished[0]!.checksum);
  } finally {
    await cluster.close();
  }
  log(`stopped after step ${steps}, test accuracy ${accuracy.toFixed(4)}; now the same ${steps} steps without faults ...`);
  const clean = await startCluster({ peers: PEERS, build: false, query: { backend: 'wasm' } });
  let accuracyFaultFree: number;
  let weightsFaultFree: number[];
  let accuracyOtherSeed: number;
  try {
    const faultFree = settled(await Promise.all(startTraining(clean.pages, config(steps))))[0]!;
    accuracyFaultFree = faultFree.accuracy;
    weightsFaultFree = faultFree.weights;
    accuracyOtherSeed = settled(await Promise.all(startTraining(clean.pages, { ...config(steps), seed: DRILL_CONFIG.seed + 1 })))[0]!
      .accuracy;
  } finally {
    await clean.close();
  }
  const r4 = (x: number): number => Math.round(x * 1e4) / 1e4;
  const summary: FaultSummary = {
    faults: rows.length,
    steps,
    p90_resume_ms: quantile(
      rows.map((r) => r.resume_ms),
      0.9,
    ),
    median_detect_ms: quantile(
      rows.map((r) => r.detect_ms),
      0.5,
    ),
    total_lost_steps: rows.reduce((a, r) => a + r.lost_steps, 0),
    accuracy: r4(accuracy),
    accuracy_fault_free: r4(accuracyFaultFree),
    accuracy_delta_pp: Math.round((accuracy - accuracyFaultFree) * 1e4) / 1e2,
    weights_rel_diff: Number(relativeDifference(weights, weightsFaultFree).toPrecision(3)),
    accuracy_fault_free_other_seed: r4(accuracyOtherSeed),
    histories_ok: historiesOk,
  };
  return { faults: rows, summary };
}
