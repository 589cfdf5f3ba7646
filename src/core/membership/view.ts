import type { View } from '../../protocol/messages.ts';

export type { View, Member } from '../../protocol/messages.ts';

/** Where a peer sits in a view's ring. */
export interface RingPosition {
  rank: number;
  size: number;
  /** Peer this one sends to. */
  next: string;
  /** Peer this one receives from. */
  prev: string;
}

/** This peer's position in `view`, or null when it is not a member. */
export function ringPosition(view: View, self: string): RingPosition | null {
  const rank = view.members.findIndex((m) => m.peerId === self);
  if (rank < 0) return null;
  const size = view.members.length;
  return {
    rank,
    size,
    next: view.members[(rank + 1) % size]!.peerId,
    prev: view.members[(rank - 1 + size) % size]!.peerId,
  };
}

/** Builds a view from member ids in ring order (rank = index). */
export function makeView(room: string, epoch: number, ids: readonly string[]): View {
  return { room, epoch, members: ids.map((peerId, rank) => ({ peerId, rank })) };
}

/**
 * A ring order of `ids` in which no two neighbours form a pair that `avoid` names (a data channel
 * between them would not open), as close to the given order as can be: the given order itself
 * when it has no such pair, else the first ring in a depth-first search that tries members in the
 * given order. Falls back to the given order when no such ring exists (or after `budget` tries).
 */
export function ringAvoiding(ids: readonly string[], avoid: (a: string, b: string) => boolean, budget = 20_000): string[] {
  const n = ids.length;
  const bad = (i: number, j: number): boolean => avoid(ids[i]!, ids[j]!) || avoid(ids[j]!, ids[i]!);
  if (n < 3 || ids.every((_, i) => !bad(i, (i + 1) % n))) return [...ids];
  const order = [0];
  const used = new Set([0]);
  let tries = 0;
  const extend = (): boolean => {
    if (order.length === n) return !bad(order[n - 1]!, 0);
    for (let j = 1; j < n; j++) {
      if (used.has(j) || bad(order[order.length - 1]!, j)) continue;
      if (++tries > budget) return false;
      order.push(j);
      used.add(j);
      if (extend()) return true;
      order.pop();
      used.delete(j);
    }
    return false;
  };
  return extend() ? order.map((i) => ids[i]!) : [...ids];
}
