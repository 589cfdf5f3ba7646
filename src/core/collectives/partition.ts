/** Pure arithmetic for cutting a vector into ring segments and frame-sized chunks. */

/** Half-open element range [start, end). */
export interface Range {
  start: number;
  end: number;
}

/**
 * Splits `length` elements into `parts` contiguous segments whose sizes differ by at most one
 * (the first `length % parts` segments get the extra element). Segments may be empty when
 * `length < parts`.
 */
export function segmentRange(length: number, parts: number, index: number): Range {
  const base = Math.floor(length / parts);
  const extra = length % parts;
  const start = index * base + Math.min(index, extra);
  return { start, end: start + base + (index < extra ? 1 : 0) };
}

/** Number of chunks of at most `chunkElems` elements in `len` elements; at least 1 (an empty chunk). */
export function chunkCount(len: number, chunkElems: number): number {
  return Math.max(1, Math.ceil(len / chunkElems));
}

/** The `c`-th chunk of a segment. */
export function chunkRange(seg: Range, chunkElems: number, c: number): Range {
  const start = Math.min(seg.end, seg.start + c * chunkElems);
  return { start, end: Math.min(seg.end, start + chunkElems) };
}

/** Non-negative modulo. */
export function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}
