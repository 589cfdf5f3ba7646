/**
 * The `auto` codec: after a few uncompressed steps, every peer knows how long the room's steps
 * spent computing and communicating (a sum of everyone's timings, so all decide alike) and picks:
 *
 * - none when the allreduce is under {@link QUIET_SHARE} of the step: compression could save
 *   little and costs accuracy or time of its own;
 * - fp16 (half the bytes, no accuracy loss measured) when communication is a real but not the
 *   main cost;
 * - when communication dominates ({@link BUSY_SHARE} or more): PowerSGD of rank 2 where the
 *   model's weight matrices make it send at least {@link POWERSGD_MIN_RATIO} times less, else int8.
 *
 * Tensors are already fused into one ring call per step and chunks are pipelined along the ring
 * (core/collectives), so there is no bucket size left to choose. Pure.
 */
import { powerSgdFloats, type CompressionSpec, type Slot } from './compression.ts';

export const QUIET_SHARE = 0.2;
export const BUSY_SHARE = 0.5;
export const POWERSGD_MIN_RATIO = 8;
/** Steps measured before choosing (after one warm-up step). */
export const AUTO_PROBE_STEPS = 4;

export interface CodecChoice {
  /** null: no compression. */
  spec: CompressionSpec | null;
  name: string;
  /** Why, in words for the dashboard. */
  reason: string;
}

/** The codec for a room whose steps spend `commMs` in the allreduce and `computeMs` elsewhere. */
export function chooseCodec(commMs: number, computeMs: number, slots: Slot[]): CodecChoice {
  const share = commMs / Math.max(commMs + computeMs, 1e-9);
  const pct = `the allreduce took ${Math.round(share * 100)}% of a step (${commMs.toFixed(0)} of ${(commMs + computeMs).toFixed(0)} ms)`;
  if (!(share >= QUIET_SHARE)) return { spec: null, name: 'none', reason: `${pct}: compression would save little` };
  if (share < BUSY_SHARE) return { spec: { kind: 'fp16' }, name: 'fp16', reason: `${pct}: fp16 halves the bytes at no measured accuracy cost` };
  const dense = slots.reduce((n, s) => n + s.size, 0);
  const ratio = dense / powerSgdFloats(slots, 2);
  if (ratio >= POWERSGD_MIN_RATIO) {
    return { spec: { kind: 'powersgd', rank: 2 }, name: 'powersgd-r2', reason: `${pct}: PowerSGD rank 2 sends ${ratio.toFixed(0)}x less for this model` };
  }
  return { spec: { kind: 'int8' }, name: 'int8', reason: `${pct}; PowerSGD would send only ${ratio.toFixed(1)}x less for this model, so int8 (4x less)` };
}
