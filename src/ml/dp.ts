/**
 * Differentially private SGD (Abadi et al. 2016) across peers: every example's gradient is clipped
 * to norm `clip` before it is summed, and each of the N peers adds Gaussian noise of standard
 * deviation noiseMultiplier x clip / sqrt(N), so the ring's sum carries noise of
 * noiseMultiplier x clip, as one machine's DP-SGD would. The noise comes from the browser's
 * cryptographic generator: no seed another peer could know to remove it.
 *
 * The accountant is the Rényi-DP bound of the subsampled Gaussian mechanism (Mironov, Talwar and
 * Zhang 2019) at integer orders 2..256, composed over the steps and turned into (ε, δ) by
 * ε = RDP(α) + log(1/δ)/(α − 1), minimised over α, as TensorFlow Privacy's
 * compute_dp_sgd_privacy does. It assumes Poisson sampling with rate q = batch / examples; the
 * sampler draws fixed-size batches from a shuffle, the usual approximation.
 *
 * Two figures, because two observers see different things. Whoever sees the model (or any step's
 * sum) sees noise of σC: that is the usual ε. Without secure aggregation, the next peer in the ring
 * receives 1/N of this peer's contribution as it is, carrying only this peer's share of the noise,
 * σC/√N, for the same sensitivity C: a Gaussian mechanism of multiplier σ/√N, composed over
 * every noisy gradient this peer sent (a retried step counts twice) at that step's room size N.
 */
import type * as tf from '@tensorflow/tfjs';
import type { LossKind } from './models.ts';
import { computeGradients, type GradientResult, type Targets } from './step.ts';

export interface DpOptions {
  /** Per-example gradient norm bound C. */
  clip: number;
  /** σ: noise standard deviation over C. */
  noiseMultiplier: number;
  /** δ of the (ε, δ) report (default 1e-5). */
  delta?: number;
}

const ORDERS = Array.from({ length: 255 }, (_, i) => i + 2);

function logAdd(a: number, b: number): number {
  if (a === -Infinity) return b;
  const m = Math.max(a, b);
  return m + Math.log(Math.exp(a - m) + Math.exp(b - m));
}

const logFactorials = Float64Array.from({ length: 257 }, (_, n) => {
  let s = 0;
  for (let i = 2; i <= n; i++) s += Math.log(i);
  return s;
});

/** RDP of one step of the Poisson-subsampled Gaussian mechanism at integer order `alpha`. */
function rdpOneStep(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (q === 1) return alpha / (2 * sigma * sigma);
  let logA = -Infinity;
  for (let k = 0; k <= alpha; k++) {
    const logBinom = logFactorials[alpha]! - logFactorials[k]! - logFactorials[alpha - k]!;
    logA = logAdd(logA, logBinom + (alpha - k) * Math.log1p(-q) + k * Math.log(q) + (k * k - k) / (2 * sigma * sigma));
  }
  return logA / (alpha - 1);
}

/** ε after `steps` steps of sampling rate `q` and noise multiplier `sigma`, for `delta`. */
export function dpEpsilon(q: number, sigma: number, steps: number, delta: number): number {
  const a = new RdpAccountant();
  a.add(q, sigma, steps);
  return a.epsilon(delta);
}

/**
 * Rényi-DP composed over steps whose noise may differ (a ring neighbour's view of a peer changes
 * with the room's size): the RDP of each order adds up over the steps.
 */
export class RdpAccountant {
  private readonly rdp = new Float64Array(ORDERS.length);
  private steps = 0;

  /** Composes `steps` more steps of sampling rate `q` and noise multiplier `sigma`. */
  add(q: number, sigma: number, steps = 1): void {
    if (!(q >= 0 && q <= 1) || !(sigma > 0) || !(steps >= 0)) {
      throw new RangeError(`dpEpsilon: need 0 <= q <= 1, sigma > 0, steps >= 0; got q=${q}, sigma=${sigma}, steps=${steps}`);
    }
    if (steps === 0) return;
    ORDERS.forEach((a, i) => (this.rdp[i]! += steps * rdpOneStep(q, sigma, a)));
    this.steps += steps;
  }

  /** ε for `delta` after the steps added so far (0 before any). */
  epsilon(delta: number): number {
    if (!(delta > 0 && delta < 1)) throw new RangeError(`dpEpsilon: need 0 < delta < 1; got delta=${delta}`);
    if (this.steps === 0) return 0;
    return Math.min(...ORDERS.map((a, i) => this.rdp[i]! + Math.log(1 / delta) / (a - 1)));
  }
}

/** A standard normal draw from the cryptographic generator (Box-Muller). */
function gaussian(): number {
  const u = crypto.getRandomValues(new Uint32Array(2));
  return Math.sqrt(-2 * Math.log((u[0]! + 1) / 2 ** 32)) * Math.cos((2 * Math.PI * u[1]!) / 2 ** 32);
}

/**
 * This peer's part of a DP-SGD step: the sum of its examples' gradients, each clipped to `clip`,
 * plus Gaussian noise of standard deviation noiseMultiplier x clip / sqrt(peers).
 */
export async function privateGradients(
  model: tf.LayersModel,
  x: Float32Array,
  y: Targets,
  count: number,
  lossKind: LossKind,
  o: DpOptions,
  peers: number,
): Promise<GradientResult> {
  const per = count > 0 ? x.length / count : 0;
  let out: GradientResult | null = null;
  for (let i = 0; i < count; i++) {
    const g = await computeGradients(model, x.subarray(i * per, (i + 1) * per), y.subarray(i, i + 1), 1, lossKind);
    let sq = 0;
    for (const v of g.grad) sq += v * v;
    const scale = Math.min(1, o.clip / (Math.sqrt(sq) || 1));
    if (!out) out = { ...g, grad: new Float32Array(g.grad.length) };
    else {
      out.loss += g.loss;
      out.computeMs += g.computeMs;
      out.readbackMs += g.readbackMs;
    }
    for (let j = 0; j < g.grad.length; j++) out.grad[j]! += scale * g.grad[j]!;
  }
  const result = out ?? (await computeGradients(model, x, y, 0, lossKind));
  result.count = count;
  const sd = (o.noiseMultiplier * o.clip) / Math.sqrt(peers);
  for (let j = 0; j < result.grad.length; j++) result.grad[j]! += sd * gaussian();
  return result;
}
