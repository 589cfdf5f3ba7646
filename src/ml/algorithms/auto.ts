/**
 * The `auto` codec. After a few uncompressed steps, the room knows (from a sum of every peer's
 * measurements, so all decide alike) how long a step computes, how long its allreduce takes, and
 * how long a 1-float allreduce takes: the links' latency, paid once per ring round whatever the
 * size. Part of a step's allreduce is waiting for the slowest peer's compute (the mean peer waits
 * for the slowest compute minus the mean one), which no codec shortens. The rest is taken as
 * proportional to the bytes sent. That predicts each codec's step:
 *
 *   compute + wait + rounds × latency + (allreduce − wait − latency) × bytes / bytes uncompressed
 *
 * with none, fp16 and int8 in one round (1, 1/2, about 1/4 of the bytes) and PowerSGD rank 2 in
 * two (its share of bytes depends on the model's matrices). Codecs are tried from the least lossy
 * to the most; the next is taken only if its predicted step is at least {@link MIN_GAIN} shorter
 * than the one chosen so far, so accuracy is traded only for a real gain.
 *
 * Tensors are already fused into one ring call per step and chunks are pipelined along the ring
 * (core/collectives), so there is no bucket size left to choose. Pure.
 */
import { wireBytes } from '../../protocol/wire.ts';
import type { CodecSpec, CompressorName, Slot } from '../exchange/codecs/codec.ts';
import { powerSgdFloats } from '../exchange/codecs/powersgd.ts';

/** Shortest gain (share of the step) for which a lossier codec is taken. */
export const MIN_GAIN = 0.1;
/** Steps measured before choosing (after one warm-up step). */
export const AUTO_PROBE_STEPS = 4;

export interface CodecChoice {
  /** null: no compression. */
  spec: CodecSpec<CompressorName> | null;
  name: string;
  /** Why, in words for the dashboard. */
  reason: string;
}

export interface StepCosts {
  /** Mean ms of a step's allreduce. */
  commMs: number;
  /** Mean ms of the rest of a step (compute, readback, apply). */
  computeMs: number;
  /** Mean ms of a 1-float allreduce. */
  latencyMs: number;
  /** Mean ms a peer's allreduce waits for the slowest peer's compute (0 if unknown). */
  waitMs: number;
}

/** The codec for a room whose steps cost `c` with this model's tensors (see the module comment). */
export function chooseCodec(c: StepCosts, slots: Slot[]): CodecChoice {
  const dense = slots.reduce((n, s) => n + s.size, 0);
  const wait = Math.min(c.waitMs, c.commMs);
  const latency = Math.min(c.latencyMs, c.commMs - wait);
  const perByte = c.commMs - wait - latency;
  const candidates: { name: string; spec: CodecSpec<CompressorName> | null; rounds: number; share: number }[] = [
    { name: 'none', spec: null, rounds: 1, share: 1 },
    { name: 'fp16', spec: { kind: 'fp16' }, rounds: 1, share: wireBytes('f16', dense, 2) / wireBytes('f32', dense, 2) },
    { name: 'int8', spec: { kind: 'int8' }, rounds: 1, share: wireBytes('i8', dense, 2) / wireBytes('f32', dense, 2) },
    { name: 'powersgd-r2', spec: { kind: 'powersgd', rank: 2 }, rounds: 2, share: powerSgdFloats(slots, 2) / dense },
  ];
  const predicted = candidates.map((k) => ({ ...k, ms: c.computeMs + wait + k.rounds * latency + perByte * k.share }));
  let best = predicted[0]!;
  for (const k of predicted.slice(1)) if (k.ms <= best.ms * (1 - MIN_GAIN)) best = k;
  const ms = (x: number): string => x.toFixed(0);
  const reason =
    `allreduce ${ms(c.commMs)} of a ${ms(c.commMs + c.computeMs)} ms step, ${ms(latency)} ms of it latency, ${ms(wait)} waiting for the slowest peer; ` +
    `predicted step: ${predicted.map((k) => `${k.name} ${ms(k.ms)}`).join(', ')} ms`;
  return { spec: best.spec, name: best.name, reason };
}
