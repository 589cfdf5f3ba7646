import * as tf from '@tensorflow/tfjs';
import { MlError } from './errors.ts';

/**
 * Parameters <-> one flat Float32Array.
 *
 * Layout: the model's `trainableWeights` in order, each flattened row-major (a dense kernel is
 * [in, out], a conv kernel [kh, kw, inC, outC], then its bias). Gradients (step.ts) and optimizer
 * state (optimizer.ts) use the same layout. Models with non-trainable weights are rejected: they
 * would be left out of checksums and checkpoints without anyone noticing.
 *
 * Master copy: every write through {@link setFlatWeights} keeps a copy of the vector it wrote,
 * together with the identity of each variable's data. {@link getFlatWeights} returns that copy (no
 * GPU readback) while no variable has been reassigned since; anything that assigns a variable
 * behind its back (`model.setWeights`, `model.fit`, a tf optimizer) changes that identity, and the
 * next read comes from the device again. The master copy is what makes the weights of all peers
 * bit-identical even where a backend stores floats with less precision.
 */

/** One trainable weight's place in the flat vector. */
export interface WeightSlot {
  name: string;
  shape: number[];
  /** First element in the flat vector. */
  offset: number;
  /** Number of elements. */
  size: number;
}

interface MasterCopy {
  flat: Float32Array;
  ids: unknown[];
}

const master = new WeakMap<tf.LayersModel, MasterCopy>();

/** The tf.Variables behind the model's trainable weights, in flat order. Throws for non-trainable weights. */
export function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  if (model.nonTrainableWeights.length > 0) {
    throw new MlError(
      'invalid-argument',
      `trainableVariables: model '${model.name}' has ${model.nonTrainableWeights.length} non-trainable weights ` +
        `(${model.nonTrainableWeights.map((w) => w.name).join(', ')}); the flat layout covers trainable weights only`,
    );
  }
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}

/** Where each trainable weight lives in the flat vector. */
export function weightLayout(model: tf.LayersModel): WeightSlot[] {
  let offset = 0;
  return trainableVariables(model).map((v) => {
    const slot = { name: v.name, shape: [...v.shape], offset, size: v.size };
    offset += v.size;
    return slot;
  });
}

/** Number of trainable parameters (the length of the flat vector). */
export function paramCount(model: tf.LayersModel): number {
  return trainableVariables(model).reduce((n, v) => n + v.size, 0);
}

function cached(model: tf.LayersModel, vars: tf.Variable[]): Float32Array | null {
  const m = master.get(model);
  if (!m || m.ids.length !== vars.length) return null;
  for (let i = 0; i < vars.length; i++) if (vars[i]!.dataId !== m.ids[i]) return null;
  return m.flat;
}

/**
 * The model's trainable weights as one new Float32Array (layout above). Returns a copy of the master
 * copy when it is current; otherwise (or with `fromDevice`) reads the weights back from the backend
 * in one transfer (`await data()`, which every backend supports) and makes that the master copy.
 */
export async function getFlatWeights(model: tf.LayersModel, options: { fromDevice?: boolean } = {}): Promise<Float32Array> {
  const vars = trainableVariables(model);
  if (!options.fromDevice) {
    const hit = cached(model, vars);
    if (hit) return hit.slice();
  }
  if (vars.length === 0) return new Float32Array(0);
  const ids = vars.map((v) => v.dataId);
  const joined = tf.tidy(() => tf.concat(vars.map((v) => tf.reshape(v, [-1]))));
  try {
    const flat = (await joined.data()) as Float32Array;
    const out = flat instanceof Float32Array ? flat : Float32Array.from(flat);
    // Only a read that still matches the variables may become the master copy.
    if (vars.every((v, i) => v.dataId === ids[i])) master.set(model, { flat: out.slice(), ids });
    return out;
  } finally {
    joined.dispose();
  }
}

/**
 * Writes `flat` (layout above) into the model's trainable weights and makes a copy of it the master
 * copy. Throws MlError('shape-mismatch') when the length differs from {@link paramCount}, and
 * MlError('invalid-argument') for a value that is not finite. Uploads one tensor per weight; creates
 * no lasting tensors (the variables replace their old values).
 */
export function setFlatWeights(model: tf.LayersModel, flat: Float32Array): void {
  const vars = trainableVariables(model);
  const n = vars.reduce((s, v) => s + v.size, 0);
  if (!(flat instanceof Float32Array)) {
    throw new MlError('invalid-argument', `setFlatWeights: flat must be a Float32Array, got ${Object.prototype.toString.call(flat)}`);
  }
  if (flat.length !== n) {
    throw new MlError(
      'shape-mismatch',
      `setFlatWeights: flat has ${flat.length} values but model '${model.name}' has ${n} parameters; ` +
        'was it made for another model spec?',
    );
  }
  const bad = firstNonFinite(flat);
  if (bad >= 0) {
    throw new MlError('invalid-argument', `setFlatWeights: flat[${bad}] is ${flat[bad]}; weights must be finite`);
  }
  const copy = flat.slice();
  tf.tidy(() => {
    let off = 0;
    for (const v of vars) {
      v.assign(tf.tensor(copy.subarray(off, off + v.size), v.shape, 'float32'));
      off += v.size;
    }
  });
  master.set(model, { flat: copy, ids: vars.map((v) => v.dataId) });
}

/** Index of the first NaN or ±Infinity in `a`, or -1. */
export function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

/**
 * 32-bit FNV-1a over the vector's bytes (little-endian float32, as stored). Equal vectors give equal
 * sums on every peer; any bit difference (including -0 vs 0, or NaN payloads) very likely changes it.
 * About 1.3 ms per MB in Node here (0.5 ms for the MLP's 101,770 parameters).
 */
export function checksum(flat: Float32Array): number {
  const bytes = new Uint8Array(flat.buffer, flat.byteOffset, flat.byteLength);
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** {@link checksum} as 8 lowercase hex digits, for logs, events and the UI. */
export function checksumHex(flat: Float32Array): string {
  return checksum(flat).toString(16).padStart(8, '0');
}

/** {@link checksumHex} of the model's flat weights (from the master copy when current). */
export async function weightChecksum(model: tf.LayersModel): Promise<string> {
  return checksumHex(await getFlatWeights(model));
}
