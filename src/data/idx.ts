/**
 * IDX files (the MNIST / Fashion-MNIST format, http://yann.lecun.com/exdb/mnist/).
 *
 * Layout, big-endian:
 *
 * | offset | size      | field |
 * |-------:|----------:|-------|
 * | 0      | 2         | zero |
 * | 2      | 1         | dtype code (see {@link IDX_DTYPES}) |
 * | 3      | 1         | rank r |
 * | 4      | 4 * r     | dims, u32 each |
 * | 4+4r   | prod*size | data, row-major, big-endian elements |
 *
 * The files usually ship gzip-compressed; decompress before parsing ({@link isGzip},
 * {@link gunzip}).
 */
import { DataError, checkDataset, type Dataset } from './dataset.ts';

/** IDX element types by their dtype code. */
export const IDX_DTYPES = {
  0x08: 'u8',
  0x09: 'i8',
  0x0b: 'i16',
  0x0c: 'i32',
  0x0d: 'f32',
  0x0e: 'f64',
} as const;

/** An IDX element type: u8, i8, i16, i32, f32 or f64. */
export type IdxDType = (typeof IDX_DTYPES)[keyof typeof IDX_DTYPES];

/** The typed array each dtype decodes to. */
export interface IdxDataTypes {
  u8: Uint8Array;
  i8: Int8Array;
  i16: Int16Array;
  i32: Int32Array;
  f32: Float32Array;
  f64: Float64Array;
}

/** A parsed IDX array: `data.length === prod(dims)`, row-major. */
export type IdxArray = {
  [K in IdxDType]: { dtype: K; dims: number[]; data: IdxDataTypes[K] };
}[IdxDType];

const SIZE: Record<IdxDType, number> = { u8: 1, i8: 1, i16: 2, i32: 4, f32: 4, f64: 8 };
const CODE: Record<IdxDType, number> = { u8: 0x08, i8: 0x09, i16: 0x0b, i32: 0x0c, f32: 0x0d, f64: 0x0e };

/** Most dimensions an IDX file may declare. MNIST uses 1 (labels) and 3 (images). */
export const MAX_IDX_RANK = 8;
/** Largest element count accepted (2^31 - 1): typed arrays beyond this are impractical in browsers. */
export const MAX_IDX_ELEMENTS = 0x7fff_ffff;

/** True when `bytes` start with the gzip magic number (0x1f 0x8b). */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Decompresses gzip bytes with the Compression Streams API (`DecompressionStream`, present in
 * browsers and in Node >= 18). Bytes that are not gzip are returned unchanged. Rejects with
 * DataError('bad-format') on corrupt or truncated gzip data.
 */
export async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  if (!isGzip(bytes)) return bytes;
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new DataError(
      'bad-format',
      `gunzip: the gzip data is corrupt or truncated (${e instanceof Error ? e.message : String(e)}); download the file again`,
    );
  }
}

/**
 * Parses one IDX file. The result's `data` is a copy for multi-byte dtypes and a view of `bytes`
 * for u8/i8 (no copy of a 47 MB image file).
 *
 * Throws DataError: 'bad-format' (gzip not undone, bad magic, unknown dtype), 'bad-dims' (rank 0 or
 * above {@link MAX_IDX_RANK}, more than {@link MAX_IDX_ELEMENTS} elements), 'truncated' (header or
 * data shorter than declared), 'size-mismatch' (bytes after the data). Nothing is allocated
 * before the declared size has been checked against the input's size.
 */
export function parseIdx(bytes: Uint8Array): IdxArray {
  if (isGzip(bytes)) {
    throw new DataError(
      'bad-format',
      'parseIdx: the bytes are gzip-compressed; decompress them first (gunzip() from data/idx.ts, or zlib.gunzipSync in Node)',
    );
  }
  if (bytes.length < 4) throw new DataError('truncated', `parseIdx: ${bytes.length} B is shorter than the 4-byte IDX magic`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataError('bad-format', 'parseIdx: not an IDX file (the first two bytes must be zero); pick an *-idx*-ubyte file');
  }
  const dtype = IDX_DTYPES[bytes[2]! as keyof typeof IDX_DTYPES] as IdxDType | undefined;
  if (!dtype) {
    throw new DataError(
      'bad-format',
      `parseIdx: unknown IDX dtype code 0x${bytes[2]!.toString(16).padStart(2, '0')}; expected one of 08 (u8), 09 (i8), 0B (i16), 0C (i32), 0D (f32), 0E (f64)`,
    );
  }
  const rank = bytes[3]!;
  if (rank < 1 || rank > MAX_IDX_RANK) {
    throw new DataError('bad-dims', `parseIdx: rank ${rank} is outside 1..${MAX_IDX_RANK}`);
  }
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) {
    throw new DataError('truncated', `parseIdx: ${bytes.length} B is shorter than the ${headerBytes} B header of a rank-${rank} array`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < rank; i++) {
    const d = dv.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d; // exact: each factor < 2^32 and we stop once past 2^31
    if (count > MAX_IDX_ELEMENTS) {
      throw new DataError('bad-dims', `parseIdx: dims [${dims.join(', ')}...] exceed ${MAX_IDX_ELEMENTS} elements; the header is corrupt`);
    }
  }
  const size = SIZE[dtype];
  const dataBytes = count * size;
  const have = bytes.length - headerBytes;
  if (have < dataBytes) {
    throw new DataError(
      'truncated',
      `parseIdx: dims [${dims.join(', ')}] of ${dtype} need ${dataBytes} B of data, the file has ${have} B; the file is truncated, download it again`,
    );
  }
  if (have > dataBytes) {
    throw new DataError(
      'size-mismatch',
      `parseIdx: ${have - dataBytes} B follow the ${dataBytes} B of data for dims [${dims.join(', ')}]; the header does not match the file`,
    );
  }
  const off = bytes.byteOffset + headerBytes;
  switch (dtype) {
    case 'u8':
      return { dtype, dims, data: new Uint8Array(bytes.buffer, off, count) };
    case 'i8':
      return { dtype, dims, data: new Int8Array(bytes.buffer, off, count) };
    case 'i16': {
      const data = new Int16Array(count);
      for (let i = 0; i < count; i++) data[i] = dv.getInt16(headerBytes + 2 * i, false);
      return { dtype, dims, data };
    }
    case 'i32': {
      const data = new Int32Array(count);
      for (let i = 0; i < count; i++) data[i] = dv.getInt32(headerBytes + 4 * i, false);
      return { dtype, dims, data };
    }
    case 'f32': {
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = dv.getFloat32(headerBytes + 4 * i, false);
      return { dtype, dims, data };
    }
    case 'f64': {
      const data = new Float64Array(count);
      for (let i = 0; i < count; i++) data[i] = dv.getFloat64(headerBytes + 8 * i, false);
      return { dtype, dims, data };
    }
  }
}

/**
 * Encodes an array as IDX bytes (the inverse of {@link parseIdx}); for tests and for exporting.
 * Throws DataError('bad-argument') when `data.length` is not `prod(dims)` or a dim is not a u32.
 */
export function encodeIdx(a: IdxArray): Uint8Array {
  const { dtype, dims, data } = a;
  if (dims.length < 1 || dims.length > MAX_IDX_RANK) {
    throw new DataError('bad-argument', `encodeIdx: rank ${dims.length} is outside 1..${MAX_IDX_RANK}`);
  }
  let count = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffff_ffff) throw new DataError('bad-argument', `encodeIdx: dim ${d} is not a u32`);
    count *= d;
  }
  if (data.length !== count) {
    throw new DataError('bad-argument', `encodeIdx: data has ${data.length} elements, dims [${dims.join(', ')}] need ${count}`);
  }
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + count * SIZE[dtype]);
  const dv = new DataView(out.buffer);
  out[2] = CODE[dtype];
  out[3] = dims.length;
  dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d, false));
  switch (dtype) {
    case 'u8':
      out.set(data, header);
      break;
    case 'i8':
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.length), header);
      break;
    case 'i16':
      for (let i = 0; i < count; i++) dv.setInt16(header + 2 * i, data[i]!, false);
      break;
    case 'i32':
      for (let i = 0; i < count; i++) dv.setInt32(header + 4 * i, data[i]!, false);
      break;
    case 'f32':
      for (let i = 0; i < count; i++) dv.setFloat32(header + 4 * i, data[i]!, false);
      break;
    case 'f64':
      for (let i = 0; i < count; i++) dv.setFloat64(header + 8 * i, data[i]!, false);
      break;
  }
  return out;
}

/** Options of {@link idxToDataset}. */
export interface IdxToDatasetOptions {
  /** Names of the classes; their count fixes `numClasses` (otherwise max label + 1). */
  classNames?: readonly string[];
}

const INTEGER_DTYPES = new Set<IdxDType>(['u8', 'i8', 'i16', 'i32']);

/**
 * Builds a classification Dataset from an images IDX array (`[n, ...]`) and a labels IDX array
 * (`[n]`, integer dtype). Either argument may be raw (already decompressed) IDX bytes.
 *
 * Features: u8 pixels are scaled to [0, 1] (`v / 255`); other dtypes are converted to float as
 * they are. Shape: `[n, h, w]` becomes `[h, w, 1]` (channels last, as a CNN expects), any other
 * rank keeps its trailing dims (`[n, d]` -> `[d]`, `[n, h, w, c]` -> `[h, w, c]`).
 *
 * Throws DataError: anything {@link parseIdx} throws; 'size-mismatch' when the counts differ or the
 * labels are not 1-D; 'bad-format' for non-integer labels; 'bad-value' for a negative label or one
 * beyond `classNames`; 'empty' for zero images.
 */
export function idxToDataset(images: IdxArray | Uint8Array, labels: IdxArray | Uint8Array, opts: IdxToDatasetOptions = {}): Dataset {
  const im = images instanceof Uint8Array ? parseIdx(images) : images;
  const lb = labels instanceof Uint8Array ? parseIdx(labels) : labels;
  const n = im.dims[0]!;
  if (n === 0) throw new DataError('empty', 'idxToDataset: the images file holds 0 images');
  if (lb.dims.length !== 1) {
    throw new DataError(
      'size-mismatch',
      `idxToDataset: labels must be 1-D, got dims [${lb.dims.join(', ')}]; did you swap the images and labels files?`,
    );
  }
  if (lb.dims[0] !== n) {
    throw new DataError(
      'size-mismatch',
      `idxToDataset: ${n} images but ${lb.dims[0]} labels; pick the labels file that belongs to these images`,
    );
  }
  if (!INTEGER_DTYPES.has(lb.dtype)) {
    throw new DataError('bad-format', `idxToDataset: labels must have an integer dtype, got ${lb.dtype}`);
  }
  const rest = im.dims.slice(1);
  const shape = rest.length === 2 ? [rest[0]!, rest[1]!, 1] : rest.length === 0 ? [1] : rest;
  if (shape.some((s) => s === 0)) throw new DataError('bad-dims', `idxToDataset: sample shape [${shape.join(', ')}] has a zero dimension`);

  const x = new Float32Array(im.data.length);
  if (im.dtype === 'u8') {
    const src = im.data;
    for (let i = 0; i < src.length; i++) x[i] = src[i]! / 255;
  } else {
    const src = im.data;
    for (let i = 0; i < src.length; i++) x[i] = src[i]!;
  }
  const y = new Int32Array(n);
  let max = -1;
  for (let i = 0; i < n; i++) {
    const c = lb.data[i]!;
    if (c < 0) throw new DataError('bad-value', `idxToDataset: label ${i} is ${c}; class labels must be >= 0`);
    if (c > max) max = c;
    y[i] = c;
  }
  const numClasses = opts.classNames ? opts.classNames.length : max + 1;
  if (max >= numClasses) {
    throw new DataError(
      'bad-value',
      `idxToDataset: a label is ${max} but only ${numClasses} class names were given; give one name per class`,
    );
  }
  const ds: Dataset = { n, shape, x, y, numClasses, ...(opts.classNames ? { classNames: [...opts.classNames] } : {}) };
  const bad = checkDataset(ds);
  if (bad) throw bad;
  return ds;
}
