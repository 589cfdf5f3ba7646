/**
 * Plot data for a run of any length in bounded memory: columns of points (x first) that keep at
 * most `max` points. When full, every second point is dropped and from then on only every second
 * new point is kept (then every fourth, ...), so the whole run stays evenly sampled: between
 * max/2 and max points for a thousand steps or a million.
 */
export class BoundedSeries {
  /** Column 0: x; then one column per series. */
  readonly data: number[][];
  /** Keep one point in `stride`. */
  private stride = 1;
  private offered = 0;

  constructor(
    series: number,
    private readonly max = 2048,
  ) {
    if (max < 2 || max % 2 !== 0) throw new RangeError(`BoundedSeries: max ${max} must be an even number of at least 2`);
    this.data = Array.from({ length: series + 1 }, () => []);
  }

  /** Offers one point; returns whether it was kept. */
  push(x: number, ...values: number[]): boolean {
    if (this.offered++ % this.stride !== 0) return false;
    if (this.data[0]!.length === this.max) {
      for (const col of this.data) {
        for (let i = 0; i < col.length / 2; i++) col[i] = col[2 * i]!;
        col.length /= 2;
      }
      // The points kept are those at multiples of the new stride; this one is too (max is even).
      this.stride *= 2;
    }
    this.data[0]!.push(x);
    values.forEach((v, i) => this.data[i + 1]!.push(v));
    return true;
  }

  get length(): number {
    return this.data[0]!.length;
  }

  clear(): void {
    for (const col of this.data) col.length = 0;
    this.stride = 1;
    this.offered = 0;
  }
}
