/**
 * The gradient exchange, built from the validated config: one `sum(contribution) → agreed sum` per
 * step, as a stack of named stages over the control-flagged collectives of the group:
 *
 *   guard → (robust rule | codec → secure masks) → control flags → the group's ring
 *
 * Each stage is its own file (stages/*.ts, each codec in codecs/*.ts) and declares what it adds to
 * the wire (exact tail values, wire type, extra rounds, a gather instead of a sum); codecs and
 * robust rules (rules/*.ts) are looked up by name in registry.ts. The control flags are not built
 * here: they wrap every collective of the loop (evaluation, probes, agreement too), so the trainer
 * passes them in as `base`.
 *
 * Copies of the full vector (n floats) per step, from the gradient read back from the device to the
 * mean the optimizer applies, counting only copies and fresh n-sized vectors (not the ring's
 * frames or the optimizer's own update):
 *
 * Plain synchronous SGD (guard + control flags): 3, of which the exchange makes 1.
 *   1. ml/step.ts computeGradients: the device's readback into the caller's gradient (kept: tfjs's
 *      array may be the backend's own storage).
 *   2. Contribution.gradient: the gradient into the packed vector `[grad | loss | count]`, which
 *      keeps spare room for the tail values below (the one copy the exchange makes).
 *   3. core Communicator.allreduce: its working buffer, which becomes the sum (core/, not ours).
 *   The guard checks in place; the control flags are appended in place into the spare room (was a
 *   copy); the flags are dropped from the sum as a view; the mean is divided in place (was a copy).
 *   Before the stages: 5 (readback, pack, flags, ring, mean).
 * Per stage, on top of that:
 *   - guard: 0 on a good step. A bad step: N broadcasts, each received as a copy, and the sum of
 *     the valid ones (a new vector); a peer that leaves itself out sends zeros (a new vector).
 *   - secure masks: +1, the fixed-point words (not in place: PowerSGD reads its Q factors again
 *     after the sum); the sum is decoded in place (was +2: words and result).
 *   - fp16 / int8: 0 here (the ring encodes its chunks).
 *   - random-k, PowerSGD: +3, the error-feedback input (gradient + residual), the residual update,
 *     and the decoded sum; what goes on the wire is k values, or the factors.
 *   - robust rule: +N, the all-gather's buffer (N vectors, core's), then the aggregate (+1, a new
 *     vector; the gathered parts and their flags are views).
 *   - control flags: 0 (was +1).
 *   - a fault drill (tests, the drill page API): +1, the altered copy.
 */
import type { TrainConfig } from '../../protocol/run-config.ts';
import type { Codec, Slot } from './codecs/codec.ts';
import { codecFor, ruleFor } from './registry.ts';
import type { Exchange, Stage, StepScope, SumOf } from './stage.ts';
import { AutoCodecStage } from './stages/auto.ts';
import { GuardStage } from './stages/guard.ts';
import { SecureStage } from './stages/secure.ts';

export class GradientExchange {
  constructor(
    /** Outermost first. */
    readonly stages: readonly Stage[],
    /** The codec stage, if any (its state lives across steps). */
    readonly codec: Codec | null,
  ) {}

  /** The `auto` codec's stage, when the config asks for it. */
  get auto(): AutoCodecStage | null {
    return this.codec instanceof AutoCodecStage ? this.codec : null;
  }

  /** This step's sum over `base` (the group's control-flagged collectives). */
  forStep(base: Exchange, scope: StepScope): SumOf {
    let ex = base;
    for (let i = this.stages.length - 1; i >= 0; i--) ex = this.stages[i]!.wrap(ex, scope);
    return ex.sum;
  }

  /** A new group agreed on `step`: codecs restart from the state every peer can agree on. */
  reset(step: number): void {
    this.codec?.reset(step);
  }
}

/**
 * The exchange `cfg` asks for, for a model of `slots`. FedAvg sums weights, not gradients: it
 * gets no stage (the config refuses every gradient option with it).
 */
export function buildExchange(cfg: TrainConfig, slots: Slot[]): GradientExchange {
  if (cfg.algorithm === 'fedavg') return new GradientExchange([], null);
  const stages: Stage[] = [new GuardStage(cfg.maxGradNorm ?? Infinity, !cfg.secureAggregation)];
  if (cfg.robust) {
    stages.push(ruleFor(cfg.robust));
    return new GradientExchange(stages, null);
  }
  const codec = cfg.compression ? codecFor(cfg.compression, slots, cfg.seed) : null;
  if (codec) stages.push(codec);
  if (cfg.secureAggregation) stages.push(new SecureStage(cfg.secureAggregation.scale));
  return new GradientExchange(stages, codec);
}
