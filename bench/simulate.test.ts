import { describe, expect, it } from 'vitest';
import { type AllreduceRow, fitRing, type RingFit } from './allreduce.ts';
import type { RunMeasure } from './sim/measure.ts';
import { fitDevice, validationRow } from './simulate.ts';

const run = (o: Partial<RunMeasure>): RunMeasure => ({
  peers: 1,
  batch: 128,
  steps: 20,
  warmup: 5,
  params: 1000,
  step_ms: 0,
  compute_ms: 0,
  allreduce_ms: 0,
  apply_ms: 0,
  cpu_ms_per_step: null,
  background_cores: null,
  step_ms_runs: [],
  idle_cores: null,
  ...o,
});

const ringFit = (alpha: number, mbPerS: number): RingFit => ({ runtime: 'node', alpha_ms: alpha, beta_mb_per_s: mbPerS, r2: 1, rows: 8 });

describe('fitRing with shared cores', () => {
  it('recovers α and β on a dedicated core from rings whose N peers shared 2 cores', () => {
    // T = 2(N−1)·max(1, N/2)·(0.5 + (M/N)/28 000): α 0.5 ms, β 28 MB/s.
    const rows = [4, 8, 16, 32].flatMap((n) =>
      [1 << 20, 4 << 20].map(
        (bytes) => ({ runtime: 'node', peers: n, bytes, ring_ms: 2 * (n - 1) * (n / 2) * (0.5 + bytes / n / 28_000) }) as AllreduceRow,
      ),
    );
    const f = fitRing(rows, 'node', 2)!;
    expect(f.alpha_ms).toBeCloseTo(0.5, 3);
    expect(f.beta_mb_per_s).toBe(28);
    expect(f.r2).toBe(1);
    expect(f.cores).toBe(2);
    // Without the sharing the same rows fit worse.
    expect(fitRing(rows, 'node')!.r2).toBeLessThan(1);
  });
});

describe('calibration', () => {
  it('compute = c0 + c1·b by least squares over the one-peer runs; after = the rest of the step', () => {
    const runs = [8, 32, 128].map((b) => run({ batch: b, compute_ms: 2 + 0.5 * b, step_ms: 6 + 0.5 * b }));
    const d = fitDevice(runs, 'cpu');
    expect([d.c0Ms, d.c1Ms, d.afterMs, d.bytes]).toEqual([2, 0.5, 4, 4008]);
  });
});

describe('validation rows', () => {
  it('two peers (a core each): compute + 2 hops of (α + S/2/β) + after, against the measurement', () => {
    const row = validationRow(
      run({ peers: 2, batch: 64, step_ms: 15, idle_cores: 0 }),
      { compute_ms: 10, step_ms: 14 },
      ringFit(0.5, 10),
      ringFit(3, 2),
      2,
    );
    // 4008 bytes: 2 hops × (0.5 + 2004/10 000) = 1.4008 ms; the first model: 2 × (3 + 2004/2000) = 8.004 ms.
    expect(row.predicted_ms).toBe(15.4);
    expect(row.naive_ms).toBe(22);
    expect(row.error).toBe(0.027);
    expect(row.within_20pct).toBe(true);
    expect(row.local_batch).toBe(32);
  });

  it('four peers on 2 cores take twice their compute and after-step work; the idle load of the cluster takes cores away', () => {
    const free = ringFit(0, Infinity);
    const row = validationRow(run({ peers: 4, step_ms: 100, idle_cores: 1 }), { compute_ms: 10, step_ms: 14 }, free, free, 2);
    expect(row.all_cores_ms).toBeCloseTo(28, 6);
    expect(row.predicted_ms).toBeCloseTo(56, 6);
    expect(row.predicted_cpu_ms_per_step).toBe(56);
    expect(row.within_20pct).toBe(false);
  });
});
