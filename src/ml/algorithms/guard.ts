/**
 * Keeps broken or poisoned gradients out of a step's sum, on the ring. Every peer checks its own
 * contribution first (a tab whose GPU produced NaN contributes nothing that step). The sum itself
 * is then checked: if every contribution is finite with a mean-gradient norm within the bound,
 * so is the sum (the weighted mean of vectors within a ball stays in it). A sum that fails the
 * check means some peer sent a bad contribution: then, for that step only, every peer broadcasts
 * its contribution, every peer finds the same offenders, and all take the sum of the valid ones,
 * added in rank order so that every peer gets the same bits. The cost is one extra round of N
 * broadcasts on a bad step, nothing on a good one.
 *
 * Works on packed gradients (exchange/contribution.ts): `[gradient sum (n) | loss sum | count]`.
 */
import { Contribution } from '../exchange/contribution.ts';
import type { SumOf } from '../exchange/stage.ts';

export interface GuardOptions {
  sum: SumOf;
  /** Ring broadcast from `root`: every peer gets the same bytes. */
  broadcast(root: number, data: Uint8Array | null): Promise<Uint8Array>;
  rank: number;
  size: number;
  /** Largest norm of a contribution's mean gradient (sum / count); Infinity checks finiteness only. */
  maxNorm: number;
  /** False for a fault drill that must send its bad contribution (default true). */
  selfCheck?: boolean;
  /**
   * False when contributions must stay private (secure aggregation): a bad sum then cannot be
   * traced to a peer without revealing everyone's gradients, so it rejects instead (default true).
   */
  attribute?: boolean;
  /** The ranks whose contribution was left out of this sum; `self`: this peer left out its own. */
  onReject(ranks: number[], self: boolean): void;
}

/** True when a packed contribution is finite, has a whole count, and a mean-gradient norm within `maxNorm`. */
export function contributionOk(c: Contribution, maxNorm: number): boolean {
  const count = c.has('count') ? c.count : undefined;
  if (count === undefined || !Number.isInteger(count) || count < 0) return false;
  // One indexed pass (this runs on every step's full vector): finiteness everywhere, the norm over the body.
  const d = c.data;
  const body = c.bodyLength;
  let sq = 0;
  for (let i = 0; i < d.length; i++) {
    const x = d[i]!;
    if (!Number.isFinite(x)) return false;
    if (i < body) sq += x * x;
  }
  return count === 0 ? sq === 0 : Math.sqrt(sq) / count <= maxNorm;
}

/** A sum of packed gradients that leaves invalid contributions out (see the module comment). */
export function guardedSum(o: GuardOptions): SumOf {
  return async (c) => {
    const selfBad = (o.selfCheck ?? true) && !contributionOk(c, o.maxNorm);
    const mine = selfBad ? Contribution.zeros(c.bodyLength, c.tail, c.wire) : c;
    if (selfBad) o.onReject([o.rank], true);
    const total = await o.sum(mine);
    if (contributionOk(total, o.maxNorm)) return total;
    if (o.attribute === false) {
      throw new RangeError(
        'the step sum has NaN/Inf or is over the norm bound, and secure aggregation hides which peer sent it; the run stops here',
      );
    }
    const parts: Contribution[] = [];
    for (let r = 0; r < o.size; r++) {
      const bytes = await o.broadcast(r, r === o.rank ? mine.bytes() : null);
      parts.push(
        bytes.byteLength === mine.data.byteLength
          ? mine.like(new Float32Array(bytes.slice().buffer))
          : Contribution.over(new Float32Array(0)),
      );
    }
    const offenders = parts.flatMap((p, r) => (p.length === c.length && contributionOk(p, o.maxNorm) ? [] : [r]));
    const out = Contribution.zeros(c.bodyLength, c.tail);
    parts.forEach((p, r) => {
      if (!offenders.includes(r)) for (let i = 0; i < out.length; i++) out.data[i]! += p.data[i]!;
    });
    o.onReject(offenders, false);
    return out;
  };
}
