/**
 * `npm run bench -- chaos [--seeds 1-2000]`: the chaos harness (src/test/chaos.ts) over more seeds
 * than `npm test` runs, in Node on tfjs's cpu backend. Per schedule: its one-line description, the
 * survivors, the most recoveries, its time and the broken invariants; then how many passed.
 */
import * as tf from '@tensorflow/tfjs';
import { describeSchedule, reproduce, runChaos } from '../src/test/chaos.ts';

export interface ChaosRow {
  seed: number;
  schedule: string;
  survivors: number;
  recoveries: number;
  ms: number;
  problems: string[];
}

/** Schedules run side by side (they wait on timers far more than they compute). */
const PARALLEL = 10;

export async function benchChaos(
  seeds: number[],
  log: (s: string) => void,
): Promise<{ rows: ChaosRow[]; summary: { schedules: number; passed: number; p90_ms: number; max_recoveries: number } }> {
  await tf.setBackend('cpu');
  const rows: ChaosRow[] = [];
  for (let i = 0; i < seeds.length; i += PARALLEL) {
    for (const o of await Promise.all(seeds.slice(i, i + PARALLEL).map(runChaos))) {
      rows.push({
        seed: o.schedule.seed,
        schedule: describeSchedule(o.schedule),
        survivors: o.survivors,
        recoveries: o.recoveries,
        ms: o.ms,
        problems: o.problems,
      });
      if (o.problems.length)
        log(`FAILED ${describeSchedule(o.schedule)}\n  ${o.problems.join('\n  ')}\n  again: ${reproduce(o.schedule.seed)}`);
    }
    log(`${rows.length}/${seeds.length} schedules, ${rows.filter((r) => r.problems.length === 0).length} passed`);
  }
  const ms = rows.map((r) => r.ms).sort((a, b) => a - b);
  return {
    rows,
    summary: {
      schedules: rows.length,
      passed: rows.filter((r) => r.problems.length === 0).length,
      p90_ms: ms[Math.min(ms.length - 1, Math.ceil(0.9 * ms.length) - 1)] ?? 0,
      max_recoveries: Math.max(0, ...rows.map((r) => r.recoveries)),
    },
  };
}
