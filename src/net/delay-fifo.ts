/** The clock a {@link DelayFifo} runs on (injectable for tests). */
export interface FifoClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: FifoClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * Holds each item for a fixed delay, then hands it to `deliver`, in arrival order. Emulates a
 * link's one-way latency inside the app where the kernel cannot (no netem): one timer at a time,
 * armed for the oldest item held.
 */
export class DelayFifo<T> {
  private readonly due: number[] = [];
  private readonly items: T[] = [];
  private head = 0;
  private timer: unknown = null;

  constructor(
    readonly delayMs: number,
    private readonly deliver: (item: T) => void,
    private readonly clock: FifoClock = realClock,
  ) {
    if (!(delayMs >= 0) || !Number.isFinite(delayMs)) throw new RangeError(`DelayFifo: delay ${delayMs} ms is not a finite number >= 0`);
  }

  /** Items held now. */
  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.due.push(this.clock.now() + this.delayMs);
    this.items.push(item);
    if (this.timer === null) this.arm();
  }

  /** Drops everything held, undelivered. */
  clear(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.due.length = 0;
    this.items.length = 0;
    this.head = 0;
  }

  private arm(): void {
    this.timer = this.clock.setTimeout(() => this.flush(), Math.max(0, this.due[this.head]! - this.clock.now()));
  }

  private flush(): void {
    this.timer = null;
    const now = this.clock.now();
    // A delivery may push (or clear) re-entrantly; re-read the queue each time round.
    while (this.head < this.items.length && this.due[this.head]! <= now) {
      const item = this.items[this.head]!;
      this.head++;
      this.deliver(item);
    }
    if (this.head === this.items.length) {
      this.due.length = 0;
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.due.splice(0, this.head);
      this.items.splice(0, this.head);
      this.head = 0;
    }
    if (this.size > 0 && this.timer === null) this.arm();
  }
}
