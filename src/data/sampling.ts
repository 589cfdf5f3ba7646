/**
 * Seeded sampling on top of {@link mulberry32}: shuffles, normal and gamma variates. Every function
 * takes the generator as an argument, so a caller's sequence of draws (and hence its output) is a
 * pure function of the seed.
 */
import { mulberry32 } from '../core/random.ts';

/** A uniform generator on [0, 1), as returned by `mulberry32(seed)`. */
export type Rng = () => number;

/** A seeded generator; `seed` is taken modulo 2^32. */
export function rng(seed: number): Rng {
  return mulberry32(seed);
}

/** A uniform integer in `[0, k)`. */
export function randInt(r: Rng, k: number): number {
  return Math.floor(r() * k);
}

/** Shuffles `a` in place (Fisher-Yates, from the end) and returns it. */
export function shuffleInPlace<T extends { length: number; [i: number]: number }>(a: T, r: Rng): T {
  for (let i = a.length - 1; i > 0; i--) {
    const j = randInt(r, i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

/** `[0, 1, ..., n-1]` in a seeded random order. */
export function permutation(n: number, r: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(p, r);
}

/** A standard normal variate (Box-Muller; one of the pair is discarded, which keeps it stateless). */
export function normal(r: Rng): number {
  // 1 - u is in (0, 1], so the log is finite.
  const u = 1 - r();
  const v = r();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * The logarithm of a Gamma(alpha, 1) variate, by Marsaglia and Tsang (2000). For `alpha < 1` it
 * uses Gamma(alpha) = Gamma(alpha + 1) * U^(1/alpha), kept in log space so that very small alphas
 * (whose variates underflow to 0 as doubles) still give usable, finite values.
 */
export function logGamma(r: Rng, alpha: number): number {
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new RangeError(`logGamma: alpha must be > 0 and finite, got ${alpha}`);
  if (alpha < 1) {
    const u = 1 - r(); // (0, 1]
    return logGamma(r, alpha + 1) + Math.log(u) / alpha;
  }
  const d = alpha - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(r);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - r();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return Math.log(d * v);
  }
}

/**
 * A draw from the symmetric Dirichlet(alpha) distribution over `k` categories: `k` non-negative
 * numbers that sum to 1. Smaller `alpha` concentrates the mass on fewer categories.
 */
export function dirichlet(r: Rng, k: number, alpha: number): Float64Array {
  const logs = new Float64Array(k);
  let max = -Infinity;
  for (let i = 0; i < k; i++) {
    logs[i] = logGamma(r, alpha);
    if (logs[i]! > max) max = logs[i]!;
  }
  let sum = 0;
  for (let i = 0; i < k; i++) {
    logs[i] = Math.exp(logs[i]! - max);
    sum += logs[i]!;
  }
  for (let i = 0; i < k; i++) logs[i]! /= sum;
  return logs;
}
