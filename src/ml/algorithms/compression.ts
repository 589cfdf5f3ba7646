/**
 * Gradient compression that keeps the ring: each codec turns a step's sum into allreduces of
 * smaller vectors, so the peers still just add.
 *
 * - fp16, int8: the ring carries float16, or int8 with a scale per chunk (protocol/wire.ts); the
 *   sample count and loss stay float32. Each hop rounds; nothing is carried over.
 *
 * Random-k and PowerSGD keep the part of the gradient they did not send (error feedback) and add
 * it to the next step's, so nothing is lost, only delayed.
 *
 * - random-k: a share of the coordinates, the same ones on every peer (drawn from the run's seed
 *   and the step), summed as a dense k-vector.
 * - PowerSGD (Vogels et al. 2019): each weight matrix M (m x n) becomes P = M Q (m x r), summed;
 *   P is orthonormalised; Q = Mᵀ P (n x r), summed; the step uses P Qᵀ. Q starts from the
 *   previous step's (warm start). Vectors (biases) are summed as they are.
 *
 * Works on packed gradients `[gradient sum (n) | loss | count]` (exchange/contribution.ts):
 * {@link Compressor.sum} is a drop-in for the plain sum of a step, returning a packed sum that is
 * identical on every peer. The vectors it sends carry the gradient's tail (loss, count) in their
 * first round; PowerSGD's second round (the Q factors) carries none. Pure TypeScript.
 */
import { mulberry32 } from '../../core/random.ts';
import { wireBytes, type Wire } from '../../protocol/wire.ts';
import { Contribution } from '../exchange/contribution.ts';
import type { SumOf } from '../exchange/stage.ts';

export type CompressionSpec =
  | { kind: 'auto' }
  | { kind: 'fp16' }
  | { kind: 'int8' }
  | { kind: 'randomk'; ratio: number }
  | { kind: 'powersgd'; rank: number };

/** The wire of a quantising codec, null for the others. */
export function quantisedWire(spec: CompressionSpec): Wire | null {
  return spec.kind === 'fp16' ? 'f16' : spec.kind === 'int8' ? 'i8' : null;
}

/** One tensor of the flat gradient: its shape and offset. */
export interface Slot {
  shape: number[];
  offset: number;
  size: number;
}

/** What a compressed sum sent, in floats, against the dense sum. */
export interface CompressionStats {
  floatsSent: number;
  floatsDense: number;
}

/** Rows and columns of a tensor seen as a matrix (the last dimension is the columns); null for vectors. */
function matrixOf(s: Slot): { m: number; n: number } | null {
  if (s.shape.length < 2) return null;
  const n = s.shape[s.shape.length - 1]!;
  return { m: s.size / n, n };
}

/** Floats one PowerSGD step of `rank` sends for these tensors (both rounds; vectors as they are). */
export function powerSgdFloats(slots: Slot[], rank: number): number {
  return slots.reduce((n, s) => {
    const mat = matrixOf(s);
    return n + (mat ? (mat.m + mat.n) * Math.min(rank, mat.m, mat.n) : s.size);
  }, 0);
}

/** Orthonormalises the `r` columns of the row-major `m x r` matrix in place (Gram-Schmidt). */
export function orthonormalise(p: Float32Array, m: number, r: number): void {
  for (let j = 0; j < r; j++) {
    for (let k = 0; k < j; k++) {
      let dot = 0;
      for (let i = 0; i < m; i++) dot += p[i * r + j]! * p[i * r + k]!;
      for (let i = 0; i < m; i++) p[i * r + j]! -= dot * p[i * r + k]!;
    }
    let norm = 0;
    for (let i = 0; i < m; i++) norm += p[i * r + j]! ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let i = 0; i < m; i++) p[i * r + j]! /= norm;
  }
}

/** A compressor for one peer: its residual and (PowerSGD) the warm-start factors. */
export class Compressor {
  readonly stats: CompressionStats = { floatsSent: 0, floatsDense: 0 };
  private residual: Float32Array;
  private qs: (Float32Array | null)[] = [];
  private step = 0;

  constructor(
    readonly spec: CompressionSpec,
    private readonly slots: Slot[],
    private readonly seed: number,
  ) {
    if (!['fp16', 'int8', 'randomk', 'powersgd'].includes(spec.kind))
      throw new RangeError(`compression: "${spec.kind}" is not fp16, int8, randomk or powersgd (auto is decided by the trainer)`);
    if (spec.kind === 'randomk' && !(spec.ratio > 0 && spec.ratio <= 1))
      throw new RangeError(`compression: randomk ratio must be in (0, 1]; got ${spec.ratio}`);
    if (spec.kind === 'powersgd' && !(Number.isInteger(spec.rank) && spec.rank >= 1))
      throw new RangeError(`compression: powersgd rank must be a whole number >= 1; got ${spec.rank}`);
    this.residual = new Float32Array(slots.reduce((n, s) => n + s.size, 0));
    this.reset(0);
  }

  /**
   * Back to the state every peer can agree on at `step` (after a recovery, or for a joiner): no
   * residual, factors drawn from the seed.
   */
  reset(step: number): void {
    this.step = step;
    this.residual.fill(0);
    this.qs = this.slots.map((s, i) => {
      const mat = matrixOf(s);
      if (this.spec.kind !== 'powersgd' || !mat) return null;
      const r = Math.min(this.spec.rank, mat.m, mat.n);
      const rand = mulberry32((this.seed * 7919 + i * 104_729 + step) >>> 0);
      return Float32Array.from({ length: mat.n * r }, () => rand() - 0.5);
    });
  }

  /** The residual this peer carries (what it has not sent yet). */
  carried(): Float32Array {
    return this.residual;
  }

  /** A drop-in for the step's plain sum of packed gradients (see the module comment). */
  sum(plain: SumOf): SumOf {
    return async (c) => {
      const n = this.residual.length;
      if (c.bodyLength !== n)
        throw new RangeError(`compression: a contribution of ${c.length} values for ${n} parameters (+ ${c.tail.join(', ')})`);
      const wire = quantisedWire(this.spec);
      if (wire) {
        this.stats.floatsDense += c.length;
        this.stats.floatsSent += wireBytes(wire, n, c.tail.length) / 4;
        return plain(c.onWire(wire));
      }
      const x = new Float32Array(n);
      const v = c.body;
      for (let i = 0; i < n; i++) x[i] = v[i]! + this.residual[i]!;
      const out = Contribution.zeros(n, c.tail);
      if (this.spec.kind === 'randomk') await this.randomK(x, c, out, plain);
      else await this.powerSgd(x, c, out, plain);
      this.step++;
      this.stats.floatsDense += c.length;
      return out;
    };
  }

  private async randomK(x: Float32Array, c: Contribution, out: Contribution, plain: SumOf): Promise<void> {
    const n = x.length;
    const k = Math.max(1, Math.round(n * (this.spec as { ratio: number }).ratio));
    // The same k coordinates on every peer: a seeded partial shuffle.
    const rand = mulberry32((this.seed * 31_337 + this.step) >>> 0);
    const order = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(rand() * (n - i));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const idx = order.subarray(0, k);
    const send = Contribution.zeros(k, c.tail);
    this.residual.set(x);
    idx.forEach((coord, i) => {
      send.data[i] = x[coord]!;
      this.residual[coord] = 0;
    });
    send.tailValues.set(c.tailValues);
    const total = await plain(send);
    idx.forEach((coord, i) => (out.data[coord] = total.data[i]!));
    out.tailValues.set(total.tailValues);
    this.stats.floatsSent += send.length;
  }

  private async powerSgd(x: Float32Array, src: Contribution, packed: Contribution, plain: SumOf): Promise<void> {
    const out = packed.data;
    const mats = this.slots.map((s, i) => ({ s, mat: matrixOf(s), q: this.qs[i] }));
    const rankOf = (mat: { m: number; n: number }, q: Float32Array): number => q.length / mat.n;
    // First round: P = M Q for every matrix, vectors as they are, then the gradient's tail (loss, count).
    let first = 0;
    for (const { s, mat, q } of mats) first += mat && q ? mat.m * rankOf(mat, q) : s.size;
    const sendP = Contribution.zeros(first, src.tail);
    const a = sendP.data;
    let o = 0;
    for (const { s, mat, q } of mats) {
      if (!mat || !q) {
        a.set(x.subarray(s.offset, s.offset + s.size), o);
        o += s.size;
        continue;
      }
      const r = rankOf(mat, q);
      for (let i = 0; i < mat.m; i++)
        for (let j = 0; j < r; j++) {
          let acc = 0;
          for (let c = 0; c < mat.n; c++) acc += x[s.offset + i * mat.n + c]! * q[c * r + j]!;
          a[o + i * r + j] = acc;
        }
      o += mat.m * r;
    }
    sendP.tailValues.set(src.tailValues);
    const pSummed = await plain(sendP);
    const pSum = pSummed.body;
    // Second round: Q = Mᵀ P̂ with P̂ the orthonormalised summed P.
    const ps: Float32Array[] = [];
    let second = 0;
    o = 0;
    for (const { s, mat, q } of mats) {
      if (!mat || !q) {
        out.set(pSum.subarray(o, o + s.size), s.offset);
        o += s.size;
        continue;
      }
      const r = rankOf(mat, q);
      const p = pSum.slice(o, o + mat.m * r);
      orthonormalise(p, mat.m, r);
      ps.push(p);
      second += mat.n * r;
      o += mat.m * r;
    }
    packed.tailValues.set(pSummed.tailValues);
    // Second round: no tail (the count went with the first).
    const sendQ = Contribution.zeros(second, []);
    const b = sendQ.data;
    let o2 = 0;
    let pi = 0;
    for (const { s, mat, q } of mats) {
      if (!mat || !q) continue;
      const r = rankOf(mat, q);
      const p = ps[pi++]!;
      for (let c = 0; c < mat.n; c++)
        for (let j = 0; j < r; j++) {
          let acc = 0;
          for (let i = 0; i < mat.m; i++) acc += x[s.offset + i * mat.n + c]! * p[i * r + j]!;
          b[o2 + c * r + j] = acc;
        }
      o2 += mat.n * r;
    }
    const qSum = second > 0 ? (await plain(sendQ)).data : b;
    // The step's matrices: P̂ Qᵀ (identical on every peer). The residual keeps this peer's share
    // of what the approximation missed: x minus (its own projection on P̂).
    this.residual.set(x);
    o2 = 0;
    pi = 0;
    mats.forEach(({ s, mat, q }, slot) => {
      if (!mat || !q) {
        this.residual.fill(0, s.offset, s.offset + s.size);
        return;
      }
      const r = rankOf(mat, q);
      const p = ps[pi++]!;
      const qNew = qSum.slice(o2, o2 + mat.n * r);
      for (let i = 0; i < mat.m; i++)
        for (let c = 0; c < mat.n; c++) {
          let approx = 0;
          let mine = 0;
          for (let j = 0; j < r; j++) {
            approx += p[i * r + j]! * qNew[c * r + j]!;
            mine += p[i * r + j]! * b[o2 + c * r + j]!;
          }
          out[s.offset + i * mat.n + c] = approx;
          this.residual[s.offset + i * mat.n + c]! -= mine;
        }
      this.qs[slot] = qNew;
      o2 += mat.n * r;
    });
    this.stats.floatsSent += sendP.length + second;
  }
}
