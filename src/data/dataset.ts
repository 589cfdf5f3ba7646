/**
 * The in-memory dataset every loader produces and every model consumes.
 *
 * Pure TypeScript: no DOM, no Node modules, no tfjs, so the browser, the server and the tests all
 * share it.
 */

/** Why a dataset could not be read, built or partitioned. Check `code`, not the message. */
export type DataErrorCode =
  /** The bytes are not the expected format (bad magic, unknown dtype or version, gzip not undone). */
  | 'bad-format'
  /** The input ends before the data its header announces. */
  | 'truncated'
  /** Sizes disagree: trailing bytes, images vs labels count, a header count vs the data. */
  | 'size-mismatch'
  /** Dimensions that are zero where they must not be, too many, or too large to allocate. */
  | 'bad-dims'
  /** A value is out of range or not parsable (a CSV cell, a label >= numClasses). */
  | 'bad-value'
  /** A CSV record has a different number of fields than the header. */
  | 'ragged'
  /** A named column (label, categorical, excluded) is not in the header. */
  | 'missing-column'
  /** A file or dataset does not exist where it should. */
  | 'not-found'
  /** No samples (an empty file, a header without rows, zero images). */
  | 'empty'
  /** A caller passed an option that is out of range (a programmer error; thrown, not returned). */
  | 'bad-argument'
  /** A download failed: network error or an HTTP error status (the message carries the server's). */
  | 'fetch-failed'
  /** The caller's AbortSignal fired. */
  | 'aborted';

/**
 * A typed, expected failure of a data operation. Messages name the function or the place in the
 * input (row, column, byte offset) and say what to do.
 */
export class DataError extends Error {
  override readonly name = 'DataError';
  constructor(
    readonly code: DataErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A dataset of `n` samples held in flat typed arrays.
 *
 * Invariants (checked by {@link checkDataset}):
 * - `x.length === n * featureSize(shape)`; sample `i` is `x[i*d .. (i+1)*d)`, row-major over
 *   `shape` (images are `[height, width, channels]`, channels last).
 * - `y.length === n`. For classification (`numClasses > 0`) every `y[i]` is in `[0, numClasses)`.
 * - Regression is `numClasses === 0`: `targets` (length `n`) holds the real-valued target and `y`
 *   is all zeros (so code that only shuffles or partitions indices treats both tasks alike).
 * - `classNames`, when present, has `numClasses` entries; `featureNames`, when present, has
 *   `featureSize(shape)` entries.
 */
export interface Dataset {
  readonly n: number;
  /** Per-sample feature shape, e.g. `[28, 28, 1]` for grey images, `[d]` for tabular data. */
  readonly shape: readonly number[];
  /** Features, `n * prod(shape)` floats, row-major. Pixels are scaled to [0, 1]. */
  readonly x: Float32Array;
  /** Class index of each sample; all zeros for regression. */
  readonly y: Int32Array;
  /** Number of classes; 0 means regression (see `targets`). */
  readonly numClasses: number;
  /** Regression targets (length `n`); present exactly when `numClasses === 0`. */
  readonly targets?: Float32Array;
  /** Display name of each class index. */
  readonly classNames?: readonly string[];
  /** Name of each feature (CSV columns, one-hot columns as `column=value`). */
  readonly featureNames?: readonly string[];
}

/** Number of floats per sample: the product of `shape` (1 for a scalar shape `[]`). */
export function featureSize(shape: readonly number[]): number {
  let d = 1;
  for (const s of shape) d *= s;
  return d;
}

/** True for a regression dataset (`numClasses === 0`, real-valued `targets`). */
export function isRegression(ds: Dataset): boolean {
  return ds.numClasses === 0;
}

/**
 * Checks every {@link Dataset} invariant and returns the first violation as a DataError, or null.
 * Loaders call it before returning; it is O(n) over the labels only (features are not read, so
 * `x` may be any array of the right length).
 */
export function checkDataset(ds: Omit<Dataset, 'x'> & { readonly x: ArrayLike<number> }): DataError | null {
  const { n, shape, numClasses } = ds;
  if (!Number.isInteger(n) || n < 0) return new DataError('bad-dims', `dataset: n must be an integer >= 0, got ${n}`);
  if (!shape.every((s) => Number.isInteger(s) && s >= 1)) {
    return new DataError('bad-dims', `dataset: shape [${shape.join(', ')}] must contain integers >= 1`);
  }
  const d = featureSize(shape);
  if (ds.x.length !== n * d) {
    return new DataError('size-mismatch', `dataset: x has ${ds.x.length} floats, expected n*prod(shape) = ${n}*${d}`);
  }
  if (ds.y.length !== n) return new DataError('size-mismatch', `dataset: y has ${ds.y.length} labels, expected n = ${n}`);
  if (!Number.isInteger(numClasses) || numClasses < 0) {
    return new DataError('bad-dims', `dataset: numClasses must be an integer >= 0, got ${numClasses}`);
  }
  if (numClasses === 0) {
    if (!ds.targets || ds.targets.length !== n) {
      return new DataError('size-mismatch', `dataset: a regression dataset (numClasses 0) needs targets of length n = ${n}`);
    }
  } else {
    if (ds.targets) return new DataError('bad-value', 'dataset: targets are only for regression (numClasses 0)');
    for (let i = 0; i < n; i++) {
      const c = ds.y[i]!;
      if (c < 0 || c >= numClasses) {
        return new DataError('bad-value', `dataset: sample ${i} has label ${c}, outside [0, ${numClasses})`);
      }
    }
  }
  if (ds.classNames && ds.classNames.length !== numClasses) {
    return new DataError('size-mismatch', `dataset: ${ds.classNames.length} class names for ${numClasses} classes`);
  }
  if (ds.featureNames && ds.featureNames.length !== d) {
    return new DataError('size-mismatch', `dataset: ${ds.featureNames.length} feature names for ${d} features`);
  }
  return null;
}

/**
 * The samples at `indices`, in that order (an index may repeat), as a new Dataset with copied
 * arrays. Throws DataError('bad-argument') if an index is not an integer in `[0, ds.n)`.
 */
export function subset(ds: Dataset, indices: ArrayLike<number>): Dataset {
  const d = featureSize(ds.shape);
  const m = indices.length;
  const x = new Float32Array(m * d);
  const y = new Int32Array(m);
  const targets = ds.targets ? new Float32Array(m) : undefined;
  for (let j = 0; j < m; j++) {
    const i = indices[j]!;
    if (!Number.isInteger(i) || i < 0 || i >= ds.n) {
      throw new DataError('bad-argument', `subset: indices[${j}] = ${i} is outside [0, ${ds.n})`);
    }
    x.set(ds.x.subarray(i * d, (i + 1) * d), j * d);
    y[j] = ds.y[i]!;
    if (targets) targets[j] = ds.targets![i]!;
  }
  return {
    n: m,
    shape: [...ds.shape],
    x,
    y,
    numClasses: ds.numClasses,
    ...(targets ? { targets } : {}),
    ...(ds.classNames ? { classNames: ds.classNames } : {}),
    ...(ds.featureNames ? { featureNames: ds.featureNames } : {}),
  };
}

/**
 * Count of samples per class: `hist[c]` = number of `i` with `y[i] === c`, length `numClasses`
 * (labels outside the range are ignored). Empty for regression.
 */
export function labelHistogram(ds: Pick<Dataset, 'y' | 'numClasses'>): Int32Array {
  const hist = new Int32Array(ds.numClasses);
  for (const c of ds.y) if (c >= 0 && c < ds.numClasses) hist[c]!++;
  return hist;
}
