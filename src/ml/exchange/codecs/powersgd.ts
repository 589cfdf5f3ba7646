/**
 * PowerSGD (Vogels et al. 2019): each weight matrix M (m x n) becomes P = M Q (m x r), summed; P
 * is orthonormalised; Q = Mᵀ P (n x r), summed; the step uses P Qᵀ. Q starts from the previous
 * step's (warm start). Vectors (biases) are summed as they are. The first round carries the
 * gradient's tail (loss, count), the second (the Q factors) none. What the approximation missed
 * of this peer's share stays in the residual (error feedback, codec.ts).
 */
import { mulberry32 } from '../../../core/random.ts';
import { Contribution } from '../contribution.ts';
import type { SumOf, WireAdditions } from '../stage.ts';
import { ErrorFeedbackCodec, type CodecFactory, type Slot } from './codec.ts';

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

export class PowerSgdCodec extends ErrorFeedbackCodec {
  readonly name = 'powersgd';
  /** Its second sum (the Q factors). */
  readonly adds: WireAdditions = { tail: [], rounds: 1 };
  /** The warm-start Q factor of each matrix (null for vectors). */
  private qs: (Float32Array | null)[] = [];

  constructor(
    private readonly rank: number,
    slots: Slot[],
    seed: number,
  ) {
    super(slots, seed);
    if (!(Number.isInteger(rank) && rank >= 1)) throw new RangeError(`compression: powersgd rank must be a whole number >= 1; got ${rank}`);
    this.restart(0);
  }

  /** Factors drawn from the seed, the same on every peer at `step`. */
  protected override restart(step: number): void {
    this.qs = this.slots.map((s, i) => {
      const mat = matrixOf(s);
      if (!mat) return null;
      const r = Math.min(this.rank, mat.m, mat.n);
      const rand = mulberry32((this.seed * 7919 + i * 104_729 + step) >>> 0);
      return Float32Array.from({ length: mat.n * r }, () => rand() - 0.5);
    });
  }

  protected async compress(x: Float32Array, src: Contribution, packed: Contribution, plain: SumOf): Promise<void> {
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

export const powersgd: CodecFactory<'powersgd', PowerSgdCodec> = (spec, slots, seed) => new PowerSgdCodec(spec.rank, slots, seed);
