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
