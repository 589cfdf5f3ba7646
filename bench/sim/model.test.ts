import { describe, expect, it } from 'vitest';
import {
  dedicatedCpu,
  drawUnits,
  groupSize,
  NO_HOP_CPU,
  ringMs,
  type Scenario,
  seeded,
  sharedCpu,
  Sim,
  simulateChurn,
  simulateStep,
  type StepInput,
  twoLevelMs,
  wireOf,
} from './model.ts';

const wire = { alphaMs: 5, bytesPerMs: 1000 };
const uniform = (n: number, computeMs: number, o: Partial<StepInput> = {}): StepInput => ({
  n,
  computeMs: new Array<number>(n).fill(computeMs),
  afterMs: new Array<number>(n).fill(0),
  bytes: 80_000,
  topology: 'ring',
  wire,
  hop: NO_HOP_CPU,
  cores: Infinity,
  ...o,
});

describe('one step', () => {
  it('a ring of 8 takes compute + 2(N−1)(α + S/(Nβ)) exactly', () => {
    // 14 hops of 10 000 bytes: 14 × (5 + 10) = 210 ms after 100 ms of compute.
    expect(ringMs(8, 80_000, wire)).toBe(210);
    expect(simulateStep(uniform(8, 100)).ms).toBeCloseTo(310, 9);
  });

  it('the ring waits for its slowest peer: one straggler delays every peer by its lateness', () => {
    const s = uniform(8, 100);
    s.computeMs[3] = 200;
    const out = simulateStep(s);
    expect(out.computeMs).toBe(200);
    expect(out.ms).toBeCloseTo(200 + 210, 9);
  });

  it('the per-hop CPU cost adds to every hop, the after-step work once', () => {
    const out = simulateStep(uniform(4, 10, { hop: { hopMs: 1, bytesPerMs: 2000 }, afterMs: [3, 3, 3, 3] }));
    // 6 hops × (5 + 20 000/1000 wire + 1 + 20 000/2000 CPU) = 6 × 36 = 216, + 10 + 3.
    expect(out.ms).toBeCloseTo(229, 9);
  });

  it('two-level on 16 peers (groups of 4): 2(g−1)(α + S/(gβ)) + 2(G−1)(α + S/(Nβ)) + compute', () => {
    expect(groupSize(16)).toBe(4);
    // In the groups: 6 × (5 + 20) = 150; across: 6 × (5 + 5) = 60.
    expect(twoLevelMs(16, 80_000, wire)).toBe(210);
    expect(simulateStep(uniform(16, 100, { topology: 'two-level' })).ms).toBeCloseTo(310, 9);
    // The ring of 16 on the same bytes: 30 × (5 + 5) = 300.
    expect(simulateStep(uniform(16, 100)).ms).toBeCloseTo(400, 9);
  });

  it('group sizes: the divisor nearest √N', () => {
    expect([4, 8, 12, 32, 64, 1024].map(groupSize)).toEqual([2, 2, 3, 4, 8, 32]);
  });

  it('one peer: no collective, compute and the after-step work only', () => {
    expect(simulateStep(uniform(1, 40, { afterMs: [2] })).ms).toBe(42);
  });
});

describe('CPU', () => {
  const finish = (cores: number, works: number[]): number[] => {
    const sim = new Sim();
    const cpu = cores === Infinity ? dedicatedCpu(sim) : sharedCpu(sim, cores);
    const ends: number[] = [];
    works.forEach((w, i) => cpu.run(i, w, () => (ends[i] = sim.now)));
    sim.run();
    return ends;
  };

  it('processor sharing: 3 tasks of 10 ms on 2 cores all end at 15 ms; 10 and 20 ms on 1 core end at 20 and 30', () => {
    for (const [got, want] of [
      [finish(2, [10, 10, 10]), [15, 15, 15]],
      [finish(1, [10, 20]), [20, 30]],
      [finish(Infinity, [10, 20]), [10, 20]],
    ] as const)
      got.forEach((t, i) => expect(t).toBeCloseTo(want[i]!, 9));
  });

  it('16 peers on 2 cores: compute takes 8× as long as on a core each', () => {
    const shared = simulateStep(uniform(16, 10, { cores: 2, bytes: 0, wire: { alphaMs: 0, bytesPerMs: Infinity } }));
    expect(shared.computeMs).toBeCloseTo(80, 9);
  });
});

describe('units', () => {
  const base: Scenario = {
    n: 8,
    strategy: { topology: 'ring', algorithm: 'sync' },
    localBatch: 10,
    params: 1000,
    dilocoH: 5,
    dilocoBytesPerValue: 2,
    device: { c0Ms: 1, c1Ms: 2, afterMs: 4 },
    deviceSigma: 0,
    jitterSigma: 0,
    wire,
    hop: NO_HOP_CPU,
    cores: Infinity,
  };

  it('sync: compute(b) + ring of params·4 + 8 bytes + after-step work; samples N·b', () => {
    const [u] = drawUnits(base, 1, seeded(1));
    // 21 ms compute, 14 × (5 + 4008/8/1000) ring, 4 ms after.
    expect(u!.ms).toBeCloseTo(21 + 14 * (5 + 0.501) + 4, 9);
    expect(u!.samples).toBe(80);
  });

  it('DiLoCo: H local steps, then one ring of params·2 bytes; samples N·b·H', () => {
    const [u] = drawUnits({ ...base, strategy: { topology: 'ring', algorithm: 'diloco' } }, 1, seeded(1));
    // 5 × 21 compute + 4 × 4 local updates, ring of 2000 bytes, the outer update.
    expect(u!.ms).toBeCloseTo(105 + 16 + 14 * (5 + 0.25) + 4, 9);
    expect(u!.samples).toBe(400);
  });

  it('heterogeneous devices are drawn from the seed: the same seed gives the same units, another seed others', () => {
    const s = { ...base, deviceSigma: 0.5, jitterSigma: 0.1 };
    const a = drawUnits(s, 3, seeded(7)).map((u) => u.ms);
    expect(drawUnits(s, 3, seeded(7)).map((u) => u.ms)).toEqual(a);
    expect(drawUnits(s, 3, seeded(8)).map((u) => u.ms)).not.toEqual(a);
    // Stragglers only slow a synchronous step down.
    for (const ms of a) expect(ms).toBeGreaterThan(0.5 * (21 + 14 * 5.501 + 4));
  });
});

describe('churn', () => {
  const unit = [{ ms: 100, computeMs: 40, samples: 50 }];

  it('without failures goodput equals throughput: samples per unit / unit time', () => {
    const out = simulateChurn(
      16,
      unit,
      { sessionMin: Infinity, crashPerHour: 0, recoveryMs: 500, horizonMs: 60_000, maxEvents: 1e6 },
      seeded(1),
    );
    expect(out.throughput).toBeCloseTo(500, 9);
    expect(out.goodput).toBeCloseTo(500, 9);
    expect(out.aborted).toBe(0);
  });

  it('with Poisson failures at total rate λ, a unit of T ms costs (e^{λT} − 1)(1/λ + R) on average', () => {
    // 16 peers, 10 min sessions and 2 crashes per hour each: λ = 16 × (1/600 000 + 2/3 600 000) per ms.
    const lambda = 16 * (1 / 600_000 + 2 / 3_600_000);
    const recoveryMs = 300;
    // A 10 s unit: λT ≈ 0.36, so about 30% of the time is lost (5 samples/s without failures).
    const long = [{ ms: 10_000, computeMs: 4000, samples: 50 }];
    const out = simulateChurn(
      16,
      long,
      { sessionMin: 10, crashPerHour: 2, recoveryMs, horizonMs: 48 * 3_600_000, maxEvents: 1e7 },
      seeded(3),
    );
    const expected = (50 / ((Math.exp(lambda * 10_000) - 1) * (1 / lambda + recoveryMs))) * 1000;
    expect(expected).toBeCloseTo(4.12, 2);
    expect(out.goodput / expected).toBeGreaterThan(0.97);
    expect(out.goodput / expected).toBeLessThan(1.03);
    expect(out.throughput).toBeGreaterThan(out.goodput);
    // Aborted units' samples count for throughput, at most at the compute phase's rate (50 per 4 s).
    expect(out.throughput).toBeLessThan(12.5);
    expect(out.failures).toBeGreaterThan(5000);
  });

  it('the loop is bounded by maxEvents', () => {
    const out = simulateChurn(
      4,
      unit,
      { sessionMin: Infinity, crashPerHour: 0, recoveryMs: 0, horizonMs: 1e12, maxEvents: 1000 },
      seeded(1),
    );
    expect(out.committed).toBe(1000);
  });
});

describe('links', () => {
  it('a profile gives α = its delay and β = its rate, or the Mathis bound under loss', () => {
    expect(wireOf({ delayMs: 20, rateMbit: 50 })).toEqual({ alphaMs: 20, bytesPerMs: 6250 });
    // 80 ms one way, 0.1% loss: 1.22 × 1200 B / (160 ms × √0.001) ≈ 289 B/ms, below 10 Mbit/s (1250 B/ms).
    const far = wireOf({ delayMs: 80, rateMbit: 10, lossPct: 0.1 });
    expect(far.alphaMs).toBe(80);
    expect(far.bytesPerMs).toBeCloseTo(1464 / (160 * Math.sqrt(0.001)), 9);
  });
});
