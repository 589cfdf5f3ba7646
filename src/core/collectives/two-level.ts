import type { WireSpec } from '../../protocol/wire.ts';
import type { RingPosition } from '../membership/view.ts';
import type { CollectiveContext } from './context.ts';
import { mod, type Range, segmentRange } from './partition.ts';
import { ringAllreduce, settleBoth } from './ring-allreduce.ts';

/*
 * Two-level (hierarchical) allreduce. The N peers of a view are cut, in ring order, into groups of
 * g consecutive ranks (the last one smaller when g does not divide N: N = 10, g = 4 gives 4, 4, 2).
 * The vector is cut into g shards (segmentRange(length, g, s)). In a group of m members the
 * shards are dealt out in m contiguous blocks (block b: shards segmentRange(g, m, b)), and the
 * member that the ring's reduce-scatter leaves with block b, local index b − 1 (mod m), owns them:
 * in a full group one shard each, in a smaller one several. Then:
 *
 *   1. reduce-scatter inside each group (the ring's first half over the group's blocks): each
 *      owner holds its group's sum of its shards;
 *   2. for each shard s, a ring allreduce of that shard among its owners, one per group, in group
 *      order: each owner holds the total of its shards;
 *   3. all-gather inside each group (the ring's second half over the same blocks).
 *
 * A full-group peer sends 2(g−1)/g + 2(G−1)/(G·g) of the vector (G = ⌈N/g⌉ groups), the ring's
 * 2(N−1)/N when g divides N, in 2(g−1) + 2(G−1) steps instead of the ring's 2(N−1): fewer
 * per-hop latencies, the same bytes. A peer of a smaller last group carries several shards across.
 *
 * Frames never mix: each phase takes frames only from its own ring neighbours, in FIFO order per
 * sender, and checks the headers (op, segment, chunk). The group phases use segments [0, m) (op
 * ReduceScatter, then AllGather); the ring of shard s tags its segments g + s·G + [0, G). A peer of
 * a smaller last group takes part in several shard rings at once; they are kept apart both ways:
 * its neighbours differ in each (the owners of s in the full groups around it, one shard each)
 * and so do the tags. Group neighbours and shard-ring neighbours are never the same peer (one
 * shard ring holds one peer per group).
 *
 * Guarantees, as the ring's: every peer ends with the same bits (each shard's total is made once
 * per group by the shard ring, whose all-gather copies bits, then copied to the group), and sums of
 * integers (of any exactly representable values) are exact. Wires: float32 and u32 (whose words
 * add modulo 2^32, exactly, in any order), with their exact tail. The quantised wires (f16, i8) are
 * refused: the group all-gather would have to quantise again, along chunks that differ between
 * groups of different sizes, and peers of different groups would end with different bits; the
 * communicator runs the plain ring for them.
 */

/** Wires the two-level allreduce takes: those whose sums lose nothing. */
export function twoLevelWireOk(wire: WireSpec | undefined): boolean {
  return !wire || wire.wire === 'f32' || wire.wire === 'u32';
}

/** Groups of a view of `n` peers cut into groups of `groupSize`: how many, and rank's group (first rank, size). */
function groupOf(n: number, g: number, rank: number): { index: number; first: number; size: number } {
  const index = Math.floor(rank / g);
  const first = index * g;
  return { index, first, size: Math.min(g, n - first) };
}

/** Block of a group of `m` members holding shard `s` (of `g`). */
function blockOf(g: number, m: number, s: number): number {
  for (let b = 0; b < m; b++) if (s < segmentRange(g, m, b).end) return b;
  throw new RangeError(`shard ${s} is not one of ${g}`);
}

/** Local index of the member of a group of `m` that owns block `b`: the ring's reduce-scatter leaves block b with member b − 1. */
const ownerOfBlock = (m: number, b: number): number => mod(b - 1, m);

/** Ranks of the ring of shard `s`: its owner in each group, in group order. */
function shardRing(n: number, g: number, s: number): number[] {
  const ranks: number[] = [];
  for (let first = 0; first < n; first += g) {
    const m = Math.min(g, n - first);
    ranks.push(first + ownerOfBlock(m, blockOf(g, m, s)));
  }
  return ranks;
}

/** Shards that `rank` owns. */
function ownedShards(n: number, g: number, rank: number): number[] {
  const { first, size: m } = groupOf(n, g, rank);
  const r = segmentRange(g, m, mod(rank - first + 1, m));
  return Array.from({ length: r.end - r.start }, (_, i) => r.start + i);
}

/** Position of `ranks[i]` in the ring `ranks` of the view's members `ids`. */
function subRing(ids: readonly string[], ranks: readonly number[], i: number): RingPosition {
  const k = ranks.length;
  return { rank: i, size: k, next: ids[ranks[(i + 1) % k]!]!, prev: ids[ranks[(i + k - 1) % k]!]! };
}

/** The group size in [1, n] that `groupSize` means on a view of `n`: a RangeError unless it is a positive integer. */
export function effectiveGroupSize(groupSize: number, n: number): number {
  if (!(Number.isInteger(groupSize) && groupSize >= 1))
    throw new RangeError(`two-level allreduce: groupSize must be a positive integer, got ${groupSize}`);
  return Math.min(groupSize, n);
}

/**
 * Ranks that `rank` exchanges frames with in a two-level allreduce of `n` peers (its group
 * neighbours, and its neighbours in the rings of the shards it owns), ascending, without itself.
 */
export function twoLevelPeers(n: number, groupSize: number, rank: number): number[] {
  const g = effectiveGroupSize(groupSize, n);
  const { first, size: m } = groupOf(n, g, rank);
  const out = new Set<number>();
  if (m > 1) {
    out.add(first + mod(rank - first + 1, m));
    out.add(first + mod(rank - first - 1, m));
  }
  if (n > g) {
    for (const s of ownedShards(n, g, rank)) {
      const ring = shardRing(n, g, s);
      const i = ring.indexOf(rank);
      out.add(ring[(i + 1) % ring.length]!);
      out.add(ring[(i + ring.length - 1) % ring.length]!);
    }
  }
  out.delete(rank);
  return [...out].sort((a, b) => a - b);
}

/**
 * Two-level allreduce (sum) of `buf` in place over every peer of `ctx.view` (ring order = the
 * view's member order), in groups of `groupSize` consecutive ranks; see the comment at the top of
 * this file. `groupSize` ≥ N is one group (the ring, in two halves), 1 is one ring of all peers.
 * Throws a RangeError for a quantised wire (f16, i8) or a groupSize that is not a positive integer.
 * On failure `buf` holds a partial result and must be discarded.
 */
export async function twoLevelAllreduce(
  ctx: CollectiveContext,
  buf: Float32Array,
  groupSize: number,
  o: { wire?: WireSpec } = {},
): Promise<void> {
  const { rank, size: n } = ctx.pos;
  const g = effectiveGroupSize(groupSize, n);
  if (!twoLevelWireOk(o.wire)) throw new RangeError(`two-level allreduce: the ${o.wire?.wire} wire is lossy; run the ring for it`);
  if (n === 1) return;
  const ids = ctx.view.members.map((m) => m.peerId);
  const groups = Math.ceil(n / g);
  const group = groupOf(n, g, rank);
  const shard = (s: number): Range => segmentRange(buf.length, g, s);
  const block = (b: number): Range => {
    const r = segmentRange(g, group.size, b);
    return { start: shard(r.start).start, end: shard(r.end - 1).end };
  };
  const members = Array.from({ length: group.size }, (_, i) => group.first + i);
  const inGroup: CollectiveContext = { ...ctx, pos: subRing(ids, members, rank - group.first) };
  const wire = o.wire ? { wire: o.wire } : {};

  await ringAllreduce(inGroup, buf, { ...wire, only: 'reduce-scatter', segment: block });
  const across = async (s: number): Promise<void> => {
    const ring = shardRing(n, g, s);
    const r = shard(s);
    // The shard's part of the exact tail.
    const exactFrom = buf.length - (o.wire?.exact ?? 0);
    const sub = o.wire ? { wire: { wire: o.wire.wire, exact: Math.max(0, r.end - Math.max(r.start, exactFrom)) } } : {};
    const pos = subRing(ids, ring, ring.indexOf(rank));
    await ringAllreduce({ ...ctx, pos }, buf.subarray(r.start, r.end), { ...sub, tag: g + s * groups });
  };
  await settleBoth(ctx, ...ownedShards(n, g, rank).map(across));
  await ringAllreduce(inGroup, buf, { ...wire, only: 'all-gather', segment: block });
}
