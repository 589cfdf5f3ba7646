/**
 * The training checkpoint format, shared by the peers (which write and restore it) and the server
 * (which verifies and stores it). Little-endian:
 *
 * | offset | size | field |
 * |-------:|-----:|-------|
 * | 0      | 4    | magic 0x4B435452 ("RTCK") |
 * | 4      | 4    | format version (1) |
 * | 8      | 4    | step: the last committed global step |
 * | 12     | 4    | run key length in bytes (UTF-8 JSON), padded to 4 in the body |
 * | 16     | 4    | weights: number of float32 values |
 * | 20     | 4    | optimizer state: number of float32 values |
 * | 24     | 4    | FNV-1a 32 checksum of header bytes 0..23 and every byte after the header |
 * | 28     | 4    | reserved, 0 |
 * | 32     | ...  | run key, weights, optimizer state |
 *
 * The run key says which run the state belongs to (model, data, algorithm, optimizer, seed), so a
 * checkpoint of another run is never restored into this one.
 */

export const CHECKPOINT_MAGIC = 0x4b435452;
export const CHECKPOINT_VERSION = 1;
export const CHECKPOINT_HEADER_BYTES = 32;
/** Largest checkpoint accepted anywhere (bytes). */
export const MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024;
const MAX_KEY_BYTES = 16 * 1024;

export interface Checkpoint {
  step: number;
  /** Identifies the run (same key, same model and optimizer layout). */
  runKey: string;
  weights: Float32Array;
  optimizer: Float32Array;
}

/** Why bytes are not a valid checkpoint. Returned by {@link decodeCheckpoint}, never thrown. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

/** FNV-1a, 32 bits, over `bytes`; pass a previous result as `h` to continue it over more bytes. */
export function fnv1a(bytes: Uint8Array, h = 0x811c9dc5): number {
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const checksumOf = (bytes: Uint8Array): number => fnv1a(bytes.subarray(CHECKPOINT_HEADER_BYTES), fnv1a(bytes.subarray(0, 24)));

const pad4 = (n: number): number => (n + 3) & ~3;

export function encodeCheckpoint(c: Checkpoint): Uint8Array<ArrayBuffer> {
  const key = new TextEncoder().encode(c.runKey);
  if (key.length > MAX_KEY_BYTES) throw new RangeError(`encodeCheckpoint: run key of ${key.length} bytes exceeds ${MAX_KEY_BYTES}`);
  const keyPadded = pad4(key.length);
  const total = CHECKPOINT_HEADER_BYTES + keyPadded + 4 * (c.weights.length + c.optimizer.length);
  const out = new Uint8Array(total);
  out.set(key, CHECKPOINT_HEADER_BYTES);
  const body = new Float32Array(out.buffer, CHECKPOINT_HEADER_BYTES + keyPadded);
  body.set(c.weights);
  body.set(c.optimizer, c.weights.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, CHECKPOINT_MAGIC, true);
  dv.setUint32(4, CHECKPOINT_VERSION, true);
  dv.setUint32(8, c.step, true);
  dv.setUint32(12, key.length, true);
  dv.setUint32(16, c.weights.length, true);
  dv.setUint32(20, c.optimizer.length, true);
  dv.setUint32(24, checksumOf(out), true);
  return out;
}

/**
 * Decodes and verifies a checkpoint: magic, version, sizes against the byte length, and the
 * checksum. A truncated, padded or bit-flipped file is a CheckpointError saying which check failed.
 */
export function decodeCheckpoint(bytes: Uint8Array): Checkpoint | CheckpointError {
  if (bytes.length < CHECKPOINT_HEADER_BYTES)
    return new CheckpointError(`checkpoint of ${bytes.length} bytes is shorter than its ${CHECKPOINT_HEADER_BYTES}-byte header`);
  if (bytes.length > MAX_CHECKPOINT_BYTES)
    return new CheckpointError(`checkpoint of ${bytes.length} bytes exceeds ${MAX_CHECKPOINT_BYTES}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== CHECKPOINT_MAGIC) return new CheckpointError('not a RingTrain checkpoint (bad magic)');
  const version = dv.getUint32(4, true);
  if (version !== CHECKPOINT_VERSION)
    return new CheckpointError(`checkpoint format v${version}; this version reads v${CHECKPOINT_VERSION}`);
  const step = dv.getUint32(8, true);
  const keyLen = dv.getUint32(12, true);
  const nw = dv.getUint32(16, true);
  const no = dv.getUint32(20, true);
  if (keyLen > MAX_KEY_BYTES) return new CheckpointError(`run key of ${keyLen} bytes exceeds ${MAX_KEY_BYTES}`);
  const want = CHECKPOINT_HEADER_BYTES + pad4(keyLen) + 4 * (nw + no);
  if (bytes.length !== want)
    return new CheckpointError(`checkpoint is ${bytes.length} bytes; its header announces ${want} (truncated or padded)`);
  const body = bytes.subarray(CHECKPOINT_HEADER_BYTES);
  if (checksumOf(bytes) !== dv.getUint32(24, true)) return new CheckpointError('checkpoint checksum mismatch (the file is corrupt)');
  const floats = new Float32Array(body.slice(pad4(keyLen)).buffer);
  return {
    step,
    runKey: new TextDecoder().decode(body.subarray(0, keyLen)),
    weights: floats.slice(0, nw),
    optimizer: floats.slice(nw, nw + no),
  };
}
