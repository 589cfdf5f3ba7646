/**
 * Splitting a dataset's sample indices across the peers of a view.
 *
 * **Determinism on view changes.** A peer at rank `r` of a view with `size` members trains on part
 * `r` of `partition(labels, {parts: size, seed, scheme, ...})`. The result is a pure function of
 * the labels and the options (no clock, no global state, no `Math.random`), so the server and every
 * peer compute the same split without talking. When the view changes, the peers re-partition with
 * the new size: a view of the same size reproduces exactly the same parts (a peer that rejoins at
 * its old rank gets its old shard back), and a view of another size gets a new split that is
 * again the same everywhere. {@link partitionKey} names a split, for caches and for checking that
 * two peers agree.
 */
import { DataError } from './dataset.ts';
import { dirichlet, permutation, rng, shuffleInPlace } from './sampling.ts';

/** How samples are spread over parts. */
export type PartitionScheme = 'iid' | 'label-shards' | 'dirichlet';

/** All schemes, for validators and option lists. */
export const PARTITION_SCHEMES: readonly PartitionScheme[] = ['iid', 'label-shards', 'dirichlet'];

/** Options of {@link partition}. */
export interface PartitionOptions {
  scheme: PartitionScheme;
  /** Number of parts (the view size), an integer >= 1. */
  parts: number;
  /** Seed of every random choice; taken modulo 2^32. */
  seed: number;
  /** label-shards: shards per part, an integer >= 1. Default 2 (McMahan et al.). */
  shardsPerPart?: number;
  /** dirichlet: concentration, > 0. Smaller is more skewed. Default 0.5. */
  alpha?: number;
  /** Number of classes; labels must lie in [0, numClasses). Default: max label + 1. */
  numClasses?: number;
  /**
   * dirichlet: fewest samples a part may get; parts below it take samples from the largest part.
   * Default 1 (no peer is left without data), capped at floor(n / parts).
   */
  minPerPart?: number;
}

/** label-shards: shards per part when `shardsPerPart` is not given (McMahan et al. use 2). */
export const DEFAULT_SHARDS_PER_PART = 2;
/** dirichlet: concentration when `alpha` is not given. */
export const DEFAULT_ALPHA = 0.5;

function resolveClasses(fn: string, labels: Int32Array, numClasses: number | undefined): number {
  let max = -1;
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    if (c < 0) throw new DataError('bad-argument', `${fn}: labels[${i}] is ${c}; labels must be class indices >= 0`);
    if (c > max) max = c;
  }
  if (numClasses === undefined) return max + 1;
  if (!Number.isInteger(numClasses) || numClasses < 0) {
    throw new DataError('bad-argument', `${fn}: numClasses must be an integer >= 0, got ${numClasses}`);
  }
  if (max >= numClasses) throw new DataError('bad-argument', `${fn}: a label is ${max}, outside [0, numClasses = ${numClasses})`);
  return numClasses;
}

/** Indices sorted by label, ties by index (a stable counting sort). */
function sortByLabel(labels: Int32Array, numClasses: number): Int32Array {
  const start = new Int32Array(numClasses + 1);
  for (const c of labels) start[c + 1]!++;
  for (let c = 0; c < numClasses; c++) start[c + 1]! += start[c]!;
  const out = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) out[start[labels[i]!]!++] = i;
  return out;
}

function sorted(a: ArrayLike<number>): Int32Array {
  return Int32Array.from(a).sort();
}

/**
 * Splits the indices `0 .. labels.length - 1` into `parts` disjoint parts whose union is all of
 * them. Each part is returned sorted ascending. Deterministic in (labels, options).
 *
 * - `iid`: a seeded Fisher-Yates shuffle, then contiguous near-equal pieces: part `p` is
 *   `shuffled[floor(p*n/parts) .. floor((p+1)*n/parts))`, so sizes differ by at most one.
 * - `label-shards`: McMahan et al.'s pathological non-IID split. Indices are sorted by label (ties
 *   by index), cut into `parts * shardsPerPart` contiguous shards of near-equal size, and each part
 *   gets `shardsPerPart` shards chosen by a seeded permutation. A part sees at most
 *   `shardsPerPart` labels when shard boundaries fall on label boundaries (balanced classes and
 *   `parts * shardsPerPart` a multiple of the class count, e.g. 10 classes and 5 or 10 parts with
 *   2 shards each). Otherwise a shard may straddle label boundaries (one larger than a class spans
 *   several), so a part sees a few more labels; with 3 parts x 2 shards of Fashion-MNIST, at most 6
 *   of the 10.
 * - `dirichlet`: for each class in turn, its indices are shuffled and split by proportions drawn
 *   from a symmetric Dirichlet(alpha) over the parts (gamma variates by Marsaglia-Tsang). Smaller
 *   `alpha` gives each part fewer dominant classes. Parts then below `minPerPart` take samples,
 *   one at a time, from the currently largest part.
 *
 * Throws DataError('bad-argument') for options out of range or a negative label (programmer
 * errors: validate user input before calling).
 */
export function partition(labels: Int32Array, opts: PartitionOptions): Int32Array[] {
  const fn = 'partition';
  const { scheme, parts, seed } = opts;
  if (!Number.isInteger(parts) || parts < 1) throw new DataError('bad-argument', `${fn}: parts must be an integer >= 1, got ${parts}`);
  if (!Number.isFinite(seed)) throw new DataError('bad-argument', `${fn}: seed must be a finite number, got ${seed}`);
  const n = labels.length;
  const r = rng(seed);
  switch (scheme) {
    case 'iid': {
      resolveClasses(fn, labels, opts.numClasses);
      const perm = permutation(n, r);
      const out: Int32Array[] = [];
      for (let p = 0; p < parts; p++) out.push(sorted(perm.subarray(Math.floor((p * n) / parts), Math.floor(((p + 1) * n) / parts))));
      return out;
    }
    case 'label-shards': {
      const k = opts.shardsPerPart ?? DEFAULT_SHARDS_PER_PART;
      if (!Number.isInteger(k) || k < 1) throw new DataError('bad-argument', `${fn}: shardsPerPart must be an integer >= 1, got ${k}`);
      const order = sortByLabel(labels, resolveClasses(fn, labels, opts.numClasses));
      const shards = parts * k;
      const shardOrder = permutation(shards, r);
      const out: Int32Array[] = [];
      for (let p = 0; p < parts; p++) {
        const mine: number[] = [];
        for (let j = 0; j < k; j++) {
          const s = shardOrder[p * k + j]!;
          const from = Math.floor((s * n) / shards);
          const to = Math.floor(((s + 1) * n) / shards);
          for (let i = from; i < to; i++) mine.push(order[i]!);
        }
        out.push(sorted(mine));
      }
      return out;
    }
    case 'dirichlet': {
      const alpha = opts.alpha ?? DEFAULT_ALPHA;
      if (!(alpha > 0) || !Number.isFinite(alpha))
        throw new DataError('bad-argument', `${fn}: alpha must be a finite number > 0, got ${alpha}`);
      const minWanted = opts.minPerPart ?? 1;
      if (!Number.isInteger(minWanted) || minWanted < 0) {
        throw new DataError('bad-argument', `${fn}: minPerPart must be an integer >= 0, got ${minWanted}`);
      }
      const classes = resolveClasses(fn, labels, opts.numClasses);
      const byClass = sortByLabel(labels, classes);
      const lists: number[][] = Array.from({ length: parts }, () => []);
      let from = 0;
      for (let c = 0; c < classes; c++) {
        let to = from;
        while (to < n && labels[byClass[to]!] === c) to++;
        const idx = shuffleInPlace(byClass.slice(from, to), r);
        const m = idx.length;
        const props = dirichlet(r, parts, alpha);
        let cum = 0;
        let cut = 0;
        for (let p = 0; p < parts; p++) {
          cum += props[p]!;
          const next = p === parts - 1 ? m : Math.min(m, Math.round(cum * m));
          for (let i = cut; i < next; i++) lists[p]!.push(idx[i]!);
          cut = Math.max(cut, next);
        }
        from = to;
      }
      const min = Math.min(minWanted, Math.floor(n / parts));
      for (let p = 0; p < parts; p++) {
        while (lists[p]!.length < min) {
          let big = 0;
          for (let q = 1; q < parts; q++) if (lists[q]!.length > lists[big]!.length) big = q;
          lists[p]!.push(lists[big]!.pop()!);
        }
      }
      return lists.map(sorted);
    }
    default: {
      const bad: never = scheme;
      throw new DataError('bad-argument', `${fn}: scheme must be one of ${PARTITION_SCHEMES.join(', ')}, got ${String(bad)}`);
    }
  }
}

/**
 * A canonical name for one split: equal keys mean equal results of {@link partition} on the
 * same labels. Only the options that the scheme uses appear, with their defaults filled in, e.g.
 * `label-shards/parts=3/seed=7/shardsPerPart=2/n=60000`.
 */
export function partitionKey(opts: PartitionOptions & { n: number }): string {
  const base = `${opts.scheme}/parts=${opts.parts}/seed=${opts.seed >>> 0}`;
  const nc = opts.numClasses !== undefined ? `/numClasses=${opts.numClasses}` : '';
  switch (opts.scheme) {
    case 'iid':
      return `${base}/n=${opts.n}`;
    case 'label-shards':
      return `${base}/shardsPerPart=${opts.shardsPerPart ?? DEFAULT_SHARDS_PER_PART}${nc}/n=${opts.n}`;
    case 'dirichlet':
      return `${base}/alpha=${opts.alpha ?? DEFAULT_ALPHA}/minPerPart=${opts.minPerPart ?? 1}${nc}/n=${opts.n}`;
  }
}

/** Per-part label counts: `result[p][c]` = samples of class `c` in part `p`. */
export function partHistograms(labels: Int32Array, parts: readonly Int32Array[], numClasses: number): Int32Array[] {
  return parts.map((idx) => {
    const h = new Int32Array(numClasses);
    for (const i of idx) h[labels[i]!]!++;
    return h;
  });
}

/**
 * How far the parts' label distributions are from the whole set's, in [0, 1]: the sample-weighted
 * mean total-variation distance. 0 for perfectly stratified parts; near 1 when each part holds
 * classes that are rare overall. Empty parts count for nothing.
 */
export function labelSkew(labels: Int32Array, parts: readonly Int32Array[], numClasses: number): number {
  const n = labels.length;
  if (n === 0) return 0;
  const global = new Float64Array(numClasses);
  for (const c of labels) global[c]! += 1 / n;
  let total = 0;
  for (const h of partHistograms(labels, parts, numClasses)) {
    const m = h.reduce((a, b) => a + b, 0);
    if (m === 0) continue;
    let tv = 0;
    for (let c = 0; c < numClasses; c++) tv += Math.abs(h[c]! / m - global[c]!);
    total += (m / n) * (tv / 2);
  }
  return total;
}
