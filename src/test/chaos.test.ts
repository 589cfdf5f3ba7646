import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { chaosSchedule, describeSchedule, reproduce, runChaos } from './chaos.ts';

/**
 * 500 seeded chaos schedules against the training loop (src/test/chaos.ts says what they do and
 * which invariants hold). `CHAOS_SEEDS=17` or `CHAOS_SEEDS=1-2000` runs others.
 */
beforeAll(async () => {
  await tf.setBackend('cpu');
});

function seeds(): number[] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(process.env.CHAOS_SEEDS ?? '1-500');
  if (!m) throw new Error(`CHAOS_SEEDS="${process.env.CHAOS_SEEDS}": give a seed (17) or a range (1-500)`);
  const [lo, hi] = [Number(m[1]), Number(m[2] ?? m[1])];
  return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
}

/** Schedules run side by side (they wait on timers far more than they compute). */
const PARALLEL = 10;
const BATCH = 50;

describe('chaos schedules', () => {
  it('are pure functions of their seed and cross every option and event kind', () => {
    expect(chaosSchedule(7)).toEqual(chaosSchedule(7));
    const all = Array.from({ length: 500 }, (_, i) => chaosSchedule(i + 1));
    const text = all.map(describeSchedule).join('\n');
    for (const w of [
      'sgd',
      'gd',
      'fedavg',
      'svm',
      'evalEvery',
      'checkpointEvery',
      'balance',
      'dp',
      'secure',
      'median',
      'trimmed-mean',
      'fp16',
      'int8',
      'powersgd',
      'randomk',
      'auto',
    ])
      expect(text).toContain(w);
    for (const k of ['crash', 'leave', 'join', 'pause', 'stop', 'restart', 'timeout']) expect(text).toContain(`${k}@`);
  });

  const list = seeds();
  for (let b = 0; b < list.length; b += BATCH) {
    const batch = list.slice(b, b + BATCH);
    it(`seeds ${batch[0]}-${batch.at(-1)}: the run ends, survivors agree, no step lost or repeated, served weights as fault-free`, {
      timeout: 600_000,
    }, async () => {
      const failures: string[] = [];
      for (let i = 0; i < batch.length; i += PARALLEL) {
        const outcomes = await Promise.all(batch.slice(i, i + PARALLEL).map(runChaos));
        for (const o of outcomes)
          if (o.problems.length)
            failures.push(`${describeSchedule(o.schedule)}\n    ${o.problems.join('\n    ')}\n    again: ${reproduce(o.schedule.seed)}`);
      }
      expect(failures, failures.join('\n')).toEqual([]);
    });
  }
});
