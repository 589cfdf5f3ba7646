/**
 * Stragglers (`balance`): who computes how much of the global batch, decided by every peer alike
 * from the speeds and step times the group sums at each rebalance.
 *
 * - The batch is split in proportion to each active peer's measured speed (samples per ms), so a
 *   slow peer's share shrinks and the others take the work over: the global batch stays whole.
 *   The shrinking stops at {@link SHARE_FLOOR} of the median speed.
 * - A peer's deadline is {@link DEADLINE_FACTOR} times the median step time of the other active peers. A peer
 *   whose step takes longer misses it; one that misses {@link MISSES_TO_STANDBY} rebalances in a
 *   row (its share already shrunk, so what is left is fixed cost: a slow device, a busy tab) goes on
 *   **standby**: it computes nothing, still takes part in every sum with an empty contribution, so
 *   it applies every update and its state stays current, and it is never evicted for being slow.
 * - A standby peer measures itself on a small probe batch every {@link PROBE_EVERY} rebalances and
 *   steps back in when its speed reaches {@link RETURN_SPEED} of the active peers' median.
 * - The last active peer never goes on standby.
 */
import { proportionalSplit } from './sampler.ts';

/** A peer misses the deadline when its step takes longer than this many times the active peers' median. */
export const DEADLINE_FACTOR = 2;
/** Missed deadlines in a row that put a peer on standby. */
export const MISSES_TO_STANDBY = 3;
/** A standby peer steps back in at this share of the active peers' median speed. */
export const RETURN_SPEED = 0.5;
/** Rebalances between a standby peer's probes. */
export const PROBE_EVERY = 4;
/** Samples in a standby peer's probe batch. */
export const PROBE_SAMPLES = 16;
/**
 * A share shrinks with the speed down to that of a peer this fraction of the active peers' median
 * speed, no further: a peer slower than that (about 8 times, with the deadline at twice) then
 * misses its deadline at every rebalance and goes on standby, while one merely 2 to 4 times slower
 * keeps a share that fits its speed.
 */
export const SHARE_FLOOR = 0.25;

/** What one rank reports at a rebalance. */
export interface Report {
  /** Samples per ms of its last steps (0: none measured). */
  speed: number;
  /** ms its last step's compute took (0: it computed nothing). */
  stepMs: number;
}

/** A rank that changed state at a rebalance. */
export interface Change {
  rank: number;
  state: 'standby' | 'active';
  stepMs: number;
  deadlineMs: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One group's straggler state: the same on every peer, since every peer feeds it the same sums. */
export class Stragglers {
  readonly standby: boolean[];
  private readonly misses: number[];
  private rebalances = 0;

  constructor(size: number) {
    this.standby = Array.from({ length: size }, () => false);
    this.misses = Array.from({ length: size }, () => 0);
  }

  /** Whether `rank`, on standby, probes its speed before the next rebalance. */
  probes(rank: number): boolean {
    return this.standby[rank]! && (this.rebalances + 1) % PROBE_EVERY === 0;
  }

  /** One rebalance: every rank's report in, the shares of `batch` per rank and the changes out. */
  decide(batch: number, reports: readonly Report[]): { shares: number[]; changes: Change[] } {
    this.rebalances++;
    const active = (): number[] => reports.flatMap((_, r) => (this.standby[r] ? [] : [r]));
    // Each peer against the others (in a group of 2 a median with itself could never be missed).
    const deadline = (r: number): number => {
      const times = active()
        .filter((o) => o !== r)
        .map((o) => reports[o]!.stepMs)
        .filter((t) => t > 0);
      return times.length > 0 ? DEADLINE_FACTOR * median(times) : Infinity;
    };
    const changes: Change[] = [];
    const speedOf = (rs: number[]): number => median(rs.map((r) => reports[r]!.speed).filter((s) => s > 0));
    const activeSpeed = speedOf(active());
    // Back first, against the speeds measured before anyone else left.
    reports.forEach((rep, r) => {
      if (this.standby[r] && rep.speed > 0 && rep.speed >= RETURN_SPEED * activeSpeed) {
        this.standby[r] = false;
        this.misses[r] = 0;
        changes.push({ rank: r, state: 'active', stepMs: rep.stepMs, deadlineMs: deadline(r) });
      }
    });
    reports.forEach((rep, r) => {
      if (this.standby[r]) return;
      const deadlineMs = deadline(r);
      this.misses[r] = rep.stepMs > deadlineMs ? this.misses[r]! + 1 : 0;
      if (this.misses[r]! >= MISSES_TO_STANDBY && active().length > 1) {
        this.standby[r] = true;
        this.misses[r] = 0;
        changes.push({ rank: r, state: 'standby', stepMs: rep.stepMs, deadlineMs });
      }
    });
    const on = active();
    const floor = SHARE_FLOOR * speedOf(on);
    const split = proportionalSplit(
      batch,
      on.map((r) => Math.max(reports[r]!.speed, floor)),
    );
    const shares = reports.map(() => 0);
    on.forEach((r, i) => {
      shares[r] = split[i]!;
    });
    return { shares, changes };
  }
}
