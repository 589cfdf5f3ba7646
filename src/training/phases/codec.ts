/**
 * Compression `auto`: the probe adds each step's timings and, at its last step, the group picks
 * the codec together (ml/algorithms/auto.ts) from sums every peer makes alike.
 */
import { chooseCodec } from '../../ml/algorithms/auto.ts';
import type { StepTimings } from '../../ml/algorithms/distributed.ts';
import { weightLayout } from '../../ml/flat.ts';
import type { Run } from '../run.ts';

/** After a step: adds its timings to the probe and, at the probe's last step, picks the codec with the whole group. */
export async function chooseAutoCodec(run: Run, t: StepTimings): Promise<void> {
  const auto = run.exchange.auto;
  const { probe, st, g } = run;
  if (!auto || auto.chosen || st.step <= probe.from) return;
  probe.commMs += t.allreduceMs;
  probe.computeMs += t.computeMs + t.readbackMs + t.applyMs;
  if (st.step < probe.until) return;
  // The links' latency: the quickest of a few 1-float allreduces (every peer makes the same calls).
  let latency = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await run.sum(new Float32Array(1));
    latency = Math.min(latency, performance.now() - t0);
  }
  // Every peer's compute time at its rank, so all know the slowest.
  const mine = new Float32Array(3 + g.size);
  mine.set([probe.commMs, probe.computeMs, latency]);
  mine[3 + g.rank] = probe.computeMs;
  const total = await run.sum(mine);
  const steps = probe.until - probe.from;
  const computeMs = total[1]! / steps / g.size;
  const slowest = Math.max(...total.subarray(3)) / steps;
  const choice = chooseCodec(
    { commMs: total[0]! / steps / g.size, computeMs, latencyMs: total[2]! / g.size, waitMs: slowest - computeMs },
    weightLayout(run.model),
  );
  auto.choose(choice.spec, st.step);
  run.deps.emit({ type: 'codec', step: st.step, codec: choice.name, reason: choice.reason });
  // Decided for this group (with no codec too): the next group measures again.
  probe.until = Infinity;
}
