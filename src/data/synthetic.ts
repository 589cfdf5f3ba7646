/**
 * Seeded synthetic datasets for tests and demos. The same options give bit-identical datasets on
 * every peer and every run.
 */
import { DataError, type Dataset } from './dataset.ts';
import { normal, permutation, rng } from './sampling.ts';

function checkInt(fn: string, name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new DataError('bad-argument', `${fn}: ${name} must be an integer >= ${min}, got ${v}`);
}

function checkNonNegative(fn: string, name: string, v: number): void {
  if (!(v >= 0) || !Number.isFinite(v)) throw new DataError('bad-argument', `${fn}: ${name} must be a finite number >= 0, got ${v}`);
}

/** Options of {@link gaussianBlobs}. */
export interface BlobsOptions {
  /** Number of samples. */
  n: number;
  /** Number of classes (blobs), >= 1. */
  classes: number;
  /** Feature dimension, >= 1. */
  dims: number;
  /** Standard deviation of each blob around its centre (the centres lie in [-1, 1]^dims). */
  spread: number;
  seed: number;
}

/**
 * Isotropic Gaussian blobs: class `c`'s centre is uniform in [-1, 1]^dims, its samples are the
 * centre plus `spread` times standard normal noise. Classes are balanced (sizes differ by at most
 * one) and the samples come in a seeded random order. Shape `[dims]`.
 */
export function gaussianBlobs(o: BlobsOptions): Dataset {
  const fn = 'gaussianBlobs';
  checkInt(fn, 'n', o.n, 0);
  checkInt(fn, 'classes', o.classes, 1);
  checkInt(fn, 'dims', o.dims, 1);
  checkNonNegative(fn, 'spread', o.spread);
  const r = rng(o.seed);
  const centres = new Float64Array(o.classes * o.dims);
  for (let i = 0; i < centres.length; i++) centres[i] = 2 * r() - 1;
  const order = permutation(o.n, r);
  const x = new Float32Array(o.n * o.dims);
  const y = new Int32Array(o.n);
  for (let i = 0; i < o.n; i++) {
    const c = order[i]! % o.classes;
    y[i] = c;
    for (let j = 0; j < o.dims; j++) x[i * o.dims + j] = centres[c * o.dims + j]! + o.spread * normal(r);
  }
  return {
    n: o.n,
    shape: [o.dims],
    x,
    y,
    numClasses: o.classes,
    classNames: Array.from({ length: o.classes }, (_, c) => `blob ${c}`),
    featureNames: Array.from({ length: o.dims }, (_, j) => `x${j}`),
  };
}

/** Options of {@link twoSpirals}. */
export interface SpiralsOptions {
  /** Number of samples (split between the two spirals, sizes differ by at most one). */
  n: number;
  /** Standard deviation of the Gaussian noise added to each coordinate. */
  noise: number;
  seed: number;
}

/**
 * Two interleaved spirals in the plane (class 0 and its point reflection, class 1), each turning
 * 1.75 times around the origin out to radius 1: a classic non-linearly-separable problem. Shape
 * `[2]`, samples in a seeded random order.
 */
export function twoSpirals(o: SpiralsOptions): Dataset {
  const fn = 'twoSpirals';
  checkInt(fn, 'n', o.n, 0);
  checkNonNegative(fn, 'noise', o.noise);
  const r = rng(o.seed);
  const order = permutation(o.n, r);
  const x = new Float32Array(o.n * 2);
  const y = new Int32Array(o.n);
  const turns = 1.75;
  for (let i = 0; i < o.n; i++) {
    const c = order[i]! % 2;
    const t = 0.05 + 0.95 * r(); // position along the spiral, 0..1
    const angle = t * turns * 2 * Math.PI;
    const sign = c === 0 ? 1 : -1;
    x[2 * i] = sign * t * Math.cos(angle) + o.noise * normal(r);
    x[2 * i + 1] = sign * t * Math.sin(angle) + o.noise * normal(r);
    y[i] = c;
  }
  return { n: o.n, shape: [2], x, y, numClasses: 2, classNames: ['spiral 0', 'spiral 1'], featureNames: ['x', 'y'] };
}

/** Options of {@link linearRegression}. */
export interface LinearRegressionOptions {
  n: number;
  /** Feature dimension, >= 1. */
  dims: number;
  /** Standard deviation of the Gaussian noise added to each target. */
  noise: number;
  seed: number;
}

/** A regression dataset together with the true parameters that generated it. */
export interface LinearRegressionDataset extends Dataset {
  /** The true weight vector (length `dims`). */
  readonly weights: Float32Array;
  /** The true intercept. */
  readonly bias: number;
}

/**
 * `target = w . x + b + noise * N(0, 1)` with `x ~ N(0, I)`, `w ~ N(0, I)` and `b ~ N(0, 1)`.
 * Returns a regression Dataset (`numClasses` 0, `targets`) plus the true `weights` and `bias`,
 * so a test can check that training recovers them.
 */
export function linearRegression(o: LinearRegressionOptions): LinearRegressionDataset {
  const fn = 'linearRegression';
  checkInt(fn, 'n', o.n, 0);
  checkInt(fn, 'dims', o.dims, 1);
  checkNonNegative(fn, 'noise', o.noise);
  const r = rng(o.seed);
  const weights = new Float32Array(o.dims);
  for (let j = 0; j < o.dims; j++) weights[j] = normal(r);
  const bias = Math.fround(normal(r));
  const x = new Float32Array(o.n * o.dims);
  const targets = new Float32Array(o.n);
  for (let i = 0; i < o.n; i++) {
    let t = bias;
    for (let j = 0; j < o.dims; j++) {
      const v = Math.fround(normal(r));
      x[i * o.dims + j] = v;
      t += weights[j]! * v;
    }
    targets[i] = t + o.noise * normal(r);
  }
  return {
    n: o.n,
    shape: [o.dims],
    x,
    y: new Int32Array(o.n),
    numClasses: 0,
    targets,
    featureNames: Array.from({ length: o.dims }, (_, j) => `x${j}`),
    weights,
    bias,
  };
}
