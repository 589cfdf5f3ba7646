/**
 * `npm run bench -- faults`: 4 headless tabs train softmax regression on Fashion-MNIST while, every
 * few steps, one random tab is closed or crashed at a random point of a step (while it computes, or
 * mid-allreduce); once the survivors commit a step again, a fresh tab joins to keep 4 peers. Per
 * fault: detection time, time from the fault to the next committed step, and steps lost. At the end,
 * the test accuracy against a fault-free run of the same length.
 */
import type { Page } from 'playwright-core';
import { DRILL_CONFIG, FAULTS, reach, startTraining, stepProblems, type FaultKind, type Kept, type Outcome, type Point } from '../src/cli/drills.ts';
import { startCluster } from '../src/cli/cluster.ts';
import { mulberry32 } from '../src/core/random.ts';
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

export async function benchFaults(o: FaultBenchOptions, log: (s: string) => void): Promise<{ faults: FaultRow[]; summary: FaultSummary }> {
  const steps = (o.faults + 1) * o.every;
  const rand = mulberry32(o.seed);
  log(`fault-free run: ${PEERS} peers, ${steps} steps ...`);
  let accuracyFaultFree: number;
  {
    const cluster = await startCluster({ peers: PEERS, query: { backend: 'wasm' } });
    try {
      const runs = settled(await Promise.all(startTraining(cluster.pages, config(steps))));
      accuracyFaultFree = runs[0]!.accuracy;
    } finally {
      await cluster.close();
    }
  }
  log(`fault-free accuracy ${accuracyFaultFree.toFixed(4)}; now ${o.faults} faults, one every ${o.every} steps ...`);
  const cluster = await startCluster({ peers: PEERS, build: false, query: { backend: 'wasm' } });
  const rows: FaultRow[] = [];
  try {
    let live = [...cluster.pages];
    const runs = startTraining(live, config(steps));
    for (let i = 0; i < o.faults; i++) {
      const victim = live[Math.floor(rand() * live.length)]!;
      const fault: FaultKind = rand() < 0.5 ? 'close' : 'crash';
      const point: Point = rand() < 0.5 ? 'compute' : 'allreduce';
      const at = (i + 1) * o.every + Math.floor(rand() * 3);
      await reach(victim, at, point);
      const survivors = live.filter((p) => p !== victim);
      const before = Math.max(...(await Promise.all(survivors.map(events))).map((ev) => Math.max(0, ...ev.filter((e) => e.type === 'step' || e.type === 'sync').map((e) => e.step))));
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
      const ev = await Promise.all(survivors.map(events));
      const after = ev.map((xs) => xs.filter((e) => e.t >= t0));
      const detect = Math.min(...after.map((xs) => xs.find((e) => e.type === 'fault')?.t ?? Infinity)) - t0;
      const resume = Math.min(...after.map((xs) => xs.find((e, k) => e.type === 'step' && xs.slice(0, k).some((x) => x.type === 'sync'))?.t ?? Infinity)) - t0;
      const syncStep = Math.min(...after.map((xs) => xs.find((e) => e.type === 'sync')?.step ?? Infinity));
      const row: FaultRow = { fault, point, step: before, detect_ms: detect, resume_ms: resume, lost_steps: Math.max(0, before - syncStep) };
      rows.push(row);
      log(`fault ${i + 1}: ${fault} during ${point} after step ${before}: detected in ${detect} ms, next step committed ${resume} ms after the fault, ${row.lost_steps} step(s) lost`);
      // A volunteer takes the free seat.
      const fresh = await cluster.addPeer();
      runs.push(...startTraining([fresh], config(steps)));
      live.push(fresh);
    }
    const outcomes = settled(await Promise.all(runs));
    const finished = outcomes.filter((x) => x.steps === steps);
    const accuracy = finished[0]!.accuracy;
    const summary: FaultSummary = {
      faults: rows.length,
      steps,
      p90_resume_ms: quantile(rows.map((r) => r.resume_ms), 0.9),
      median_detect_ms: quantile(rows.map((r) => r.detect_ms), 0.5),
      total_lost_steps: rows.reduce((a, r) => a + r.lost_steps, 0),
      accuracy: Math.round(accuracy * 1e4) / 1e4,
      accuracy_fault_free: Math.round(accuracyFaultFree * 1e4) / 1e4,
      accuracy_delta_pp: Math.round((accuracy - accuracyFaultFree) * 1e4) / 1e2,
      histories_ok: finished.length === PEERS && finished.every((x) => stepProblems(x.events).length === 0 && x.checksum === finished[0]!.checksum),
    };
    return { faults: rows, summary };
  } finally {
    await cluster.close();
  }
}
