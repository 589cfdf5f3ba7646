/**
 * What one peer puts into a collective sum: a body (summed on whatever wire the stages pick) and
 * an exact tail of named values (summed as float32, whatever the wire):
 *
 *   [ body (gradient sum, factors, masked words, ...) | loss | count | pause | stop | ... ]
 *
 * The tail's slots are named ({@link TailSlot}), so no stage re-derives the layout by index
 * arithmetic: a gradient is `[grad | loss | count]`, PowerSGD's second round carries no tail at
 * all, the control flags append `pause` and `stop`, and secure aggregation appends `broken`.
 *
 * Copies. A contribution is a view over a buffer that keeps a few spare floats after it
 * ({@link SPARE}), so that the stages below can append their tail values in place instead of
 * copying the whole vector; appending hands the spare room over to the new view (the old one
 * copies if it appends again).
 */
import type { Wire } from '../../protocol/wire.ts';
import { MlError } from '../errors.ts';

/**
 * A value of the exact tail. `loss` is exact on the wire but private: secure aggregation masks it
 * with the body. The others are public: summed in the clear (a whole-number count, flags).
 */
export type TailSlot = 'loss' | 'count' | 'pause' | 'stop' | 'broken';

/** Tail slots that secure aggregation leaves in the clear. */
const PUBLIC: ReadonlySet<TailSlot> = new Set(['count', 'pause', 'stop', 'broken']);

/** The tail of a packed gradient: `[grad | loss | count]`. */
export const GRADIENT_TAIL: readonly TailSlot[] = ['loss', 'count'];

/** Floats reserved after every vector a contribution allocates: room for the tail values the stages below append. */
export const SPARE = 4;

/** The largest sample count a float32 sums exactly. */
const MAX_COUNT = 2 ** 24;

export class Contribution {
  /** Floats after `data` in its buffer that this view may append into without copying. */
  private room: number;

  private constructor(
    /** Body then tail: what goes on the wire. */
    readonly data: Float32Array,
    /** The names of the tail's values, in order. */
    readonly tail: readonly TailSlot[],
    /** The values' type on the wire; absent: float32 (no wire spec given to the ring). */
    readonly wire: Wire | undefined,
    room: number,
  ) {
    if (tail.length > data.length) throw new RangeError(`contribution: a tail of ${tail.length} values in a vector of ${data.length}`);
    this.room = room;
  }

  /** Zeros for a body of `body` values and `tail`, with spare room after it. */
  static zeros(body: number, tail: readonly TailSlot[], wire?: Wire): Contribution {
    const length = body + tail.length;
    return new Contribution(new Float32Array(length + SPARE).subarray(0, length), tail, wire, SPARE);
  }

  /** A contribution over `data` as it is (no copy, no spare room): its last `tail.length` values are the tail. */
  static over(data: Float32Array, tail: readonly TailSlot[] = [], wire?: Wire): Contribution {
    return new Contribution(data, tail, wire, 0);
  }

  /** A plain vector (no tail) copied into a contribution with spare room: the loop's small sums (evaluation, probes). */
  static copyOf(v: Float32Array): Contribution {
    const c = Contribution.zeros(v.length, []);
    c.data.set(v);
    return c;
  }

  /**
   * `[grad | count]`, or `[grad | loss | count]` when a summed loss is given: the vector a step
   * sums (count as float32 is exact up to 2^24 samples). One copy of the gradient.
   */
  static gradient(grad: Float32Array, count: number, loss?: number): Contribution {
    if (!(Number.isInteger(count) && count >= 0 && count <= MAX_COUNT)) {
      throw new MlError('invalid-argument', `packGradient: count must be an integer in [0, 2^24]; got ${count}`);
    }
    const c = Contribution.zeros(grad.length, loss === undefined ? ['count'] : GRADIENT_TAIL);
    c.data.set(grad);
    if (loss !== undefined) c.set('loss', loss);
    c.set('count', count);
    return c;
  }

  get length(): number {
    return this.data.length;
  }

  /** Values before the tail. */
  get bodyLength(): number {
    return this.data.length - this.tail.length;
  }

  /** The body (a view). */
  get body(): Float32Array {
    return this.data.subarray(0, this.bodyLength);
  }

  /** The tail's values (a view). */
  get tailValues(): Float32Array {
    return this.data.subarray(this.bodyLength);
  }

  /** How many of the last tail values secure aggregation sums in the clear (public slots at the end). */
  get publicTail(): number {
    let k = 0;
    while (k < this.tail.length && PUBLIC.has(this.tail[this.tail.length - 1 - k]!)) k++;
    return k;
  }

  has(slot: TailSlot): boolean {
    return this.tail.includes(slot);
  }

  private index(slot: TailSlot): number {
    const i = this.tail.lastIndexOf(slot);
    if (i < 0) throw new RangeError(`contribution: no ${slot} in the tail [${this.tail.join(', ')}]`);
    return this.bodyLength + i;
  }

  get(slot: TailSlot): number {
    return this.data[this.index(slot)]!;
  }

  set(slot: TailSlot, value: number): void {
    this.data[this.index(slot)] = value;
  }

  /** The sample count (last `count` slot). */
  get count(): number {
    return this.get('count');
  }

  /** The summed loss. */
  get loss(): number {
    return this.get('loss');
  }

  /**
   * This contribution with `values` appended to its tail: in place when its buffer has room (the
   * usual case: every allocation keeps {@link SPARE} floats), otherwise one copy.
   */
  append(values: Partial<Record<TailSlot, number>>): Contribution {
    const slots = Object.keys(values) as TailSlot[];
    const k = slots.length;
    const length = this.data.length + k;
    let data: Float32Array;
    let room: number;
    if (k <= this.room) {
      data = new Float32Array(this.data.buffer, this.data.byteOffset, length);
      room = this.room - k;
      this.room = 0;
    } else {
      data = new Float32Array(length + SPARE).subarray(0, length);
      data.set(this.data);
      room = SPARE;
    }
    slots.forEach((s, i) => (data[this.data.length + i] = values[s]!));
    return new Contribution(data, [...this.tail, ...slots], this.wire, room);
  }

  /** This contribution without its last `k` tail values (a view; they stay in the buffer). */
  dropTail(k: number): Contribution {
    if (k > this.tail.length) throw new RangeError(`contribution: cannot drop ${k} of a tail of ${this.tail.length}`);
    return new Contribution(this.data.subarray(0, this.data.length - k), this.tail.slice(0, this.tail.length - k), this.wire, 0);
  }

  /** `data` (a sum of contributions like this one) read with this layout and wire. */
  like(data: Float32Array): Contribution {
    if (data.length !== this.data.length)
      throw new RangeError(
        `contribution: ${data.length} values where the layout [${this.bodyLength} | ${this.tail.join(', ')}] has ${this.length}`,
      );
    return new Contribution(data, this.tail, this.wire, 0);
  }

  /** The same values to send as `wire` (a view). */
  onWire(wire: Wire | undefined): Contribution {
    return new Contribution(this.data, this.tail, wire, 0);
  }

  /** A copy of the values, with spare room (what a fault drill alters). */
  copy(): Contribution {
    const c = Contribution.zeros(this.bodyLength, this.tail, this.wire);
    c.data.set(this.data);
    return c;
  }

  /** The values as bytes (a view), for a broadcast. */
  bytes(): Uint8Array {
    return new Uint8Array(this.data.buffer, this.data.byteOffset, this.data.byteLength);
  }

  /**
   * A summed gradient turned into the mean, in place: the body and the loss divided by the total
   * count (in JS, so every peer gets the same bits from the same sums). Throws
   * MlError('invalid-argument') when the count is not a positive integer (no peer had samples).
   */
  toMean(): { grad: Float32Array; loss: number; count: number } {
    const count = this.has('count') ? this.count : undefined;
    if (count === undefined || !(Number.isInteger(count) && count > 0)) {
      throw new MlError('invalid-argument', `meanGradient: the count slot (last value) must be a positive integer; got ${count}`);
    }
    const grad = this.body;
    for (let i = 0; i < grad.length; i++) grad[i] = grad[i]! / count;
    const loss = this.has('loss') ? this.loss / count : Number.NaN;
    return { grad, loss: Math.fround(loss), count };
  }
}
