/**
 * What every codec shares. A codec turns a step's sum into allreduces of smaller vectors, so the
 * peers still just add; it is a stage (stage.ts) whose state lives across steps and restarts at
 * every agreement. Each codec is one file next to this one and one entry in the registry
 * (../registry.ts), under its name in the catalog (protocol/catalogs.ts `CODECS`).
 *
 * Codecs work on packed gradients `[gradient sum (n) | loss | count]` (../contribution.ts):
 * {@link Compressor.sum} is a drop-in for the plain sum of a step, returning a packed sum that is
 * identical on every peer. The vectors a codec sends carry the gradient's tail (loss, count) in
 * their first round. Pure TypeScript.
 *
 * Two families share code here: the quantising codecs (fp16, int8: {@link QuantisingCodec}), which
 * only put the body on a smaller wire, and the error-feedback codecs (random-k, PowerSGD:
 * {@link ErrorFeedbackCodec}), which keep the part of the gradient they did not send (the residual)
 * and add it to the next step's, so nothing is lost, only delayed.
 */
import type { CodecConfig, CodecName } from '../../../protocol/catalogs.ts';
import { wireBytes, type Wire } from '../../../protocol/wire.ts';
import { Contribution } from '../contribution.ts';
import { withSum, type Exchange, type Stage, type SumOf, type WireAdditions } from '../stage.ts';

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

/** The config of codec `K` (its name under `kind`, with its options). */
export type CodecSpec<K extends CodecName = CodecName> = Extract<CodecConfig, { kind: K }>;
/** The names of the codecs proper: every codec but `auto`, which picks one of them. */
export type CompressorName = Exclude<CodecName, 'auto'>;

/** A codec's stage: it keeps state across steps, which every agreement resets. */
export interface Codec extends Stage {
  /** Back to the state every peer of a new group agrees on at `step`. */
  reset(step: number): void;
}

/** A codec proper: a drop-in for the plain sum, with what it sent and what it carries. */
export interface Compressor extends Codec {
  readonly stats: CompressionStats;
  /** The residual this peer carries (what it has not sent yet; zeros for a quantising codec). */
  carried(): Float32Array;
  /** A drop-in for the step's plain sum of packed gradients (see the module comment). */
  sum(plain: SumOf): SumOf;
}

/** How the registry makes codec `K` for a model of `slots` in a run of `seed`. */
export type CodecFactory<K extends CodecName, C extends Codec = Codec> = (spec: CodecSpec<K>, slots: Slot[], seed: number) => C;

/** The parameters of a model of `slots`. */
const sizeOf = (slots: Slot[]): number => slots.reduce((n, s) => n + s.size, 0);

/** The shared part of a codec proper: its stats, its residual, its stage. */
abstract class CompressorBase implements Compressor {
  /** Its name in the catalog and the registry. */
  abstract readonly name: string;
  abstract readonly adds: WireAdditions;
  readonly stats: CompressionStats = { floatsSent: 0, floatsDense: 0 };
  protected readonly residual: Float32Array;

  constructor(readonly slots: Slot[]) {
    this.residual = new Float32Array(sizeOf(slots));
  }

  abstract reset(step: number): void;
  abstract sum(plain: SumOf): SumOf;

  carried(): Float32Array {
    return this.residual;
  }

  /** Refuses a contribution whose body is not this model's gradient. */
  protected check(c: Contribution): void {
    const n = this.residual.length;
    if (c.bodyLength !== n)
      throw new RangeError(`compression: a contribution of ${c.length} values for ${n} parameters (+ ${c.tail.join(', ')})`);
  }

  wrap(inner: Exchange): Exchange {
    return withSum(inner, this.sum(inner.sum));
  }
}

/**
 * fp16, int8: the ring carries float16, or int8 with a scale per chunk (protocol/wire.ts); the
 * sample count and loss stay float32. Each hop rounds; nothing is carried over.
 */
export class QuantisingCodec extends CompressorBase {
  readonly adds: WireAdditions;

  constructor(
    readonly name: string,
    private readonly wire: Wire,
    slots: Slot[],
  ) {
    super(slots);
    this.adds = { tail: [], rounds: 0, wire };
  }

  reset(_step: number): void {
    this.residual.fill(0);
  }

  sum(plain: SumOf): SumOf {
    return async (c) => {
      this.check(c);
      this.stats.floatsDense += c.length;
      this.stats.floatsSent += wireBytes(this.wire, this.residual.length, c.tail.length) / 4;
      return plain(c.onWire(this.wire));
    };
  }
}

/**
 * Random-k, PowerSGD: each step compresses the gradient plus the residual (error feedback); the
 * residual keeps what the compressed sum missed of this peer's share.
 */
export abstract class ErrorFeedbackCodec extends CompressorBase {
  /** The step the next sum makes (seeds what every peer draws alike). */
  protected step = 0;

  constructor(
    slots: Slot[],
    protected readonly seed: number,
  ) {
    super(slots);
  }

  /**
   * Back to the state every peer can agree on at `step` (after a recovery, or for a joiner): no
   * residual, and what {@link restart} draws from the seed.
   */
  reset(step: number): void {
    this.step = step;
    this.residual.fill(0);
    this.restart(step);
  }

  /** What a codec redraws at a reset besides the residual (PowerSGD: its factors). */
  protected restart(_step: number): void {}

  /**
   * Sums `x` (this peer's gradient plus its residual, `n` values) with `plain`, writing the agreed
   * sum into `out` (body and tail, from `c`'s tail) and the new residual into {@link residual}.
   */
  protected abstract compress(x: Float32Array, c: Contribution, out: Contribution, plain: SumOf): Promise<void>;

  sum(plain: SumOf): SumOf {
    return async (c) => {
      this.check(c);
      const n = this.residual.length;
      const x = new Float32Array(n);
      const v = c.body;
      for (let i = 0; i < n; i++) x[i] = v[i]! + this.residual[i]!;
      const out = Contribution.zeros(n, c.tail);
      await this.compress(x, c, out, plain);
      this.step++;
      this.stats.floatsDense += c.length;
      return out;
    };
  }
}
