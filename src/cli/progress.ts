/**
 * The CLI's view of a long run. In a terminal: one bar redrawn in place (at most every
 * `barEveryMs`). Elsewhere (a log file, CI, `nohup`): a plain line at least every `lineEveryMs`,
 * also while no step completes, so a stalled run shows what it waits on. Faults and recoveries
 * get their own line in both modes.
 */
export interface ProgressOutput {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export interface ProgressOptions {
  /** Plain output: the longest gap between two lines, ms (default 30 000). */
  lineEveryMs?: number;
  /** Terminal: the shortest gap between two redraws of the bar, ms (default 100). */
  barEveryMs?: number;
  now?: () => number;
}

/** "1h02m", "3m05s" or "42s". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

export class Progress {
  private readonly lineEveryMs: number;
  private readonly barEveryMs: number;
  private readonly now: () => number;
  private done = 0;
  private total = 0;
  private unit = 'step';
  private fields = '';
  private accuracy = '';
  /** The first progress seen (the rate and the ETA count from there), and the last line or redraw. */
  private first: { at: number; done: number } | null = null;
  private lastOut = -Infinity;
  /** When `done` last changed. */
  private movedAt = 0;
  private barShown = false;

  constructor(
    private readonly out: ProgressOutput,
    o: ProgressOptions = {},
  ) {
    this.lineEveryMs = o.lineEveryMs ?? 30_000;
    this.barEveryMs = o.barEveryMs ?? 100;
    this.now = o.now ?? (() => performance.now());
  }

  /** `done` of `total` steps (or rounds) complete; `fields`: what to show after the count, e.g. the loss. */
  update(done: number, total: number, unit: string, fields = ''): void {
    const now = this.now();
    if (!this.first || done < this.first.done) this.first = { at: now, done };
    if (done !== this.done || this.first.at === now) this.movedAt = now;
    [this.done, this.total, this.unit, this.fields] = [done, total, unit, fields];
    const gap = now - this.lastOut;
    if (this.out.isTTY) {
      if (gap >= this.barEveryMs || done === total) this.drawBar(now);
    } else if (gap >= this.lineEveryMs || done === total || this.lastOut === -Infinity) this.line(now);
  }

  /** The latest test score, shown with every later line. */
  score(text: string): void {
    this.accuracy = text;
  }

  /** Plain output: a line when none was written for `lineEveryMs` (call it from a timer). */
  tick(): void {
    const now = this.now();
    if (!this.out.isTTY && this.first && now - this.lastOut >= this.lineEveryMs) this.line(now);
  }

  /** A line of its own (a fault, a recovery), above the bar in a terminal. */
  note(text: string): void {
    if (this.out.isTTY && this.barShown) this.out.write(`\r${' '.repeat(this.width())}\r`);
    this.out.write(`${text}\n`);
    if (this.out.isTTY && this.barShown) this.drawBar(this.now());
  }

  /** Ends the bar's line in a terminal. */
  finish(): void {
    if (this.out.isTTY && this.barShown) this.out.write('\n');
    this.barShown = false;
  }

  private width(): number {
    return this.out.columns ? this.out.columns - 1 : 100;
  }

  private status(now: number): string {
    const parts = [`${this.unit} ${this.done}/${this.total}`];
    if (this.fields) parts.push(this.fields);
    if (this.accuracy) parts.push(this.accuracy);
    const f = this.first!;
    const rate = (this.done - f.done) / Math.max(1e-9, now - f.at);
    if (this.done > f.done && this.done < this.total) parts.push(`ETA ${duration((this.total - this.done) / rate)}`);
    return parts.join(', ');
  }

  private drawBar(now: number): void {
    const bar = 30;
    const filled = Math.round((bar * this.done) / Math.max(1, this.total));
    const pct = Math.floor((100 * this.done) / Math.max(1, this.total));
    const text = `[${'#'.repeat(filled)}${'.'.repeat(bar - filled)}] ${pct}% ${this.status(now)}`;
    this.out.write(`\r${text.slice(0, this.width()).padEnd(this.width())}`);
    this.barShown = true;
    this.lastOut = now;
  }

  private line(now: number): void {
    const pct = Math.floor((100 * this.done) / Math.max(1, this.total));
    const still = now - this.movedAt >= this.lineEveryMs ? ` (no ${this.unit} done for ${duration(now - this.movedAt)})` : '';
    this.out.write(`${pct}% ${this.status(now)}${still}\n`);
    this.lastOut = now;
  }
}
