/**
 * Timing collectives on real peers (tabs or Node peer processes), for the benchmarks and the WAN
 * harness: every peer starts the op from a barrier, and the slowest peer's time is the op's.
 */
import type { DrivenPeer } from './driven.ts';

/**
 * `ring`: `allreduce` on the ring; `twolevel`: with the topology `{ kind: 'auto', minPeers: 1 }`,
 * the two-level allreduce in groups of `autoGroupSize(N)` (from 4 peers; the ring below).
 */
export type Op = 'shift' | 'ring' | 'twolevel' | 'alltoall';

/** Times one op on every peer at once, started from a barrier; returns the slowest peer's ms and mean bytes sent. */
export async function timeOp(peers: DrivenPeer[], op: Op, bytes: number): Promise<{ ms: number; sent: number }> {
  const runs = await Promise.all(peers.map((p) => p.timed(op, bytes)));
  return { ms: Math.max(...runs.map((r) => r.ms)), sent: runs.reduce((a, r) => a + r.sent, 0) / runs.length };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
