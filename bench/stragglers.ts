/**
 * `npm run bench -- stragglers`: 4 Node peers (real WebRTC on loopback) train the MLP on served
 * Fashion-MNIST, side by side: with no slow peer, then with one peer computing 10x slower
 * (`ringtrain.debug.slow`, a slow device) with and without `balance` (training/stragglers.ts), for
 * sync SGD and DiLoCo. For each: the healthy peers' training time per global step after the first
 * half of the run (when the slow peer has been shrunk or put on standby), against the run without
 * a slow peer, the step at which the slow peer went on standby, and the test accuracy.
 */
import { MLP_CONFIG } from '../src/harness/drills.ts';
import { startNodeCluster } from '../src/harness/node-peers.ts';
import type { RuntimeEvent } from '../src/runtime/events.ts';
import type { TrainConfig, TrainEvent, TrainResult } from '../src/training/trainer.ts';

export interface StragglerRow {
  algorithm: 'sgd' | 'diloco';
  peers: number;
  steps: number;
  /** How much slower the slow peer computes (1: none). */
  slowdown: number;
  balance: boolean;
  /** Rank 0's ms per global step over the second half of the run. */
  ms_per_step: number;
  /** Against the same algorithm with no slow peer (1: as fast; the issue's bound is 1.2). */
  vs_no_straggler: number;
  /** The step at which the slow peer went on standby (null: it did not). */
  standby_at: number | null;
  test_accuracy: number;
}

const r2 = (x: number): number => Math.round(x * 100) / 100;

/** One run on a fresh cluster of `peers`: the last peer slowed by `slowdown`. */
async function run(peers: number, config: TrainConfig, slowdown: number) {
  const c = await startNodeCluster({ peers, backend: 'wasm', stdio: 'ignore', deadAfterMs: 30_000 });
  try {
    const steps: { step: number; t: number }[] = [];
    let standby: number | null = null;
    c.peers[0]!.on('event', (e: RuntimeEvent) => {
      if (e.type !== 'train') return;
      const ev: TrainEvent = e.event;
      if (ev.type === 'step') steps.push({ step: ev.step, t: performance.now() });
      if (ev.type === 'straggler' && ev.state === 'standby' && standby === null) standby = ev.step;
    });
    if (slowdown > 1) await c.peers.at(-1)!.call('debug.slow', slowdown);
    const rs = await Promise.all(c.peers.map((p) => p.call<TrainResult>('train', config)));
    if (new Set(rs.map((r) => r.checksum)).size !== 1) throw new Error('the peers ended with different weights');
    const half = steps.filter((s) => s.step > config.steps / 2);
    const ms = (half.at(-1)!.t - half[0]!.t) / (half.at(-1)!.step - half[0]!.step);
    return { ms, standby, accuracy: rs[0]!.accuracy };
  } finally {
    await c.close();
  }
}

export async function benchStragglers(
  o: { peers: number; steps: number; slowdown: number },
  log: (s: string) => void,
): Promise<StragglerRow[]> {
  const rows: StragglerRow[] = [];
  for (const algorithm of ['sgd', 'diloco'] as const) {
    const base: TrainConfig = { ...MLP_CONFIG, steps: o.steps, algorithm, ...(algorithm === 'diloco' ? { localSteps: 5 } : {}) };
    let clean = NaN;
    for (const [slowdown, balance] of [
      [1, true],
      [o.slowdown, false],
      [o.slowdown, true],
    ] as const) {
      const r = await run(o.peers, { ...base, ...(balance ? { balance } : {}) }, slowdown);
      if (slowdown === 1) clean = r.ms;
      const row: StragglerRow = {
        algorithm,
        peers: o.peers,
        steps: o.steps,
        slowdown,
        balance,
        ms_per_step: r2(r.ms),
        vs_no_straggler: r2(r.ms / clean),
        standby_at: r.standby,
        test_accuracy: Math.round(r.accuracy * 1e4) / 1e4,
      };
      rows.push(row);
      log(
        `${algorithm.padEnd(6)} slow x${slowdown} balance ${balance ? 'on ' : 'off'}: ${row.ms_per_step} ms/step (${row.vs_no_straggler}x the run without a slow peer)` +
          `${r.standby !== null ? `, slow peer on standby at step ${r.standby}` : ''}, accuracy ${row.test_accuracy}`,
      );
    }
  }
  return rows;
}
