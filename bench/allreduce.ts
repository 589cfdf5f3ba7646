/**
 * `npm run bench -- allreduce`: ring allreduce against the link speed (a concurrent ring shift
 * under the same load), against the naive all-to-all sum and, between Node peers, against the
 * two-level allreduce (core/collectives/two-level.ts, groups of `autoGroupSize(N)`), over real
 * WebRTC between headless Chromium tabs or Node peer processes (`--runtime browser,node`), all
 * measured side by side in one run. Per runtime it fits the ring's cost model, T = 2(N-1)·(α + β·M/N): α the per-hop latency,
 * β the per-byte cost of a hop.
 */
import { startCluster } from '../src/harness/cluster.ts';
import { nodePeer, pagePeer, type DrivenPeer } from '../src/harness/driven.ts';
import { autoGroupSize } from '../src/core/collectives/communicator.ts';
import { startNodeCluster } from '../src/harness/node-peers.ts';
import { median, timeOp, type Op } from '../src/harness/timing.ts';

export type PeerRuntime = 'browser' | 'node';

export interface AllreduceRow {
  runtime: PeerRuntime;
  peers: number;
  bytes: number;
  shift_ms: number;
  ring_ms: number;
  bound_ms: number;
  efficiency: number;
  /** Null where the all-to-all's full mesh was not opened (more peers than `maxMesh`). */
  alltoall_ms: number | null;
  speedup_vs_alltoall: number | null;
  bytes_sent_per_peer: number;
  /**
   * The two-level allreduce in groups of `two_level_group`, and `ring_ms / two_level_ms` (above 1:
   * two-level is faster). Null where not run (tabs, fewer than 4 peers); absent in rows measured
   * before it existed.
   */
  two_level_ms?: number | null;
  two_level_group?: number | null;
  two_level_speedup?: number | null;
}

export interface AllreduceBenchOptions {
  peers: number[];
  sizes: number[];
  reps: number;
  runtimes: PeerRuntime[];
  /** Most headless tabs one run opens: beyond 6 to 8 tabs on 2 cores fresh links stall (Node peers go on). */
  maxTabs: number;
  /** Most peers for the all-to-all baseline: its full mesh is N(N-1)/2 links (496 at 32 peers, too many for 2 cores). */
  maxMesh: number;
}

/** The ring's cost model fitted to one runtime's rows by least squares. */
export interface RingFit {
  runtime: PeerRuntime;
  /** Fitted with the peers sharing this many cores (see {@link fitRing}); absent: no sharing modelled. */
  cores?: number;
  /** Per-hop latency, ms. */
  alpha_ms: number;
  /** Per-byte cost of a hop, as a rate: MB/s. */
  beta_mb_per_s: number;
  /** Share of the ring times' variance the model explains. */
  r2: number;
  rows: number;
}

export const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

/**
 * N peers of `runtime` in one room, with a way to close them. `backend`: the tensor backend the
 * peers use (default: cpu for Node peers, the tab's probe for tabs).
 */
export async function startPeers(
  runtime: PeerRuntime,
  n: number,
  o: { backend?: string; build?: boolean } = {},
): Promise<{ peers: DrivenPeer[]; close(): Promise<void> }> {
  if (runtime === 'node') {
    // 16 to 32 processes on 2 cores starve each other's timers at times: a peer is declared dead
    // only after 30 s of silence, so that a slow tick does not end the measurement with a new view.
    const c = await startNodeCluster({ peers: n, backend: o.backend ?? 'cpu', stdio: 'ignore', deadAfterMs: 30_000 });
    return { peers: c.peers.map(nodePeer), close: c.close };
  }
  const c = await startCluster({
    peers: n,
    ...(o.build === false ? { build: false } : {}),
    ...(o.backend ? { deadAfterMs: 30_000, query: { backend: o.backend } } : {}),
  });
  return { peers: c.pages.map(pagePeer), close: c.close };
}

export async function benchAllreduce(
  o: AllreduceBenchOptions,
  log: (s: string) => void,
  onRow: (row: AllreduceRow) => void = () => {},
): Promise<AllreduceRow[]> {
  const rows: AllreduceRow[] = [];
  for (const n of o.peers) {
    for (const runtime of o.runtimes) {
      if (runtime === 'browser' && n > o.maxTabs) {
        log(`skipping ${n} tabs (more than --max-tabs ${o.maxTabs})`);
        continue;
      }
      log(`starting ${n} ${runtime === 'node' ? 'Node' : 'headless tab'} peers ...`);
      const cluster = await startPeers(runtime, n);
      try {
        // Open the all-to-all mesh and warm every link up gradually: a fresh channel is slow for its
        // first megabytes, and a burst on many fresh channels at once can stall them for seconds.
        const mesh = n <= o.maxMesh;
        // Two-level between Node peers only: tabs stop at --max-tabs (4), two groups of 2.
        const group = autoGroupSize(n);
        const twoLevel = runtime === 'node' && group > 1 && group < n;
        for (const bytes of [64 << 10, 1 << 20, 4 << 20]) {
          if (mesh) await timeOp(cluster.peers, 'alltoall', bytes);
          await timeOp(cluster.peers, 'ring', bytes);
          // Its first call opens the links between groups.
          if (twoLevel) await timeOp(cluster.peers, 'twolevel', bytes);
        }
        for (const bytes of o.sizes) {
          const samples: Record<Op, number[]> = { shift: [], ring: [], twolevel: [], alltoall: [] };
          let sent = 0;
          for (let r = 0; r < o.reps; r++) {
            // Interleave them so drift in machine load hits them alike.
            samples.shift.push((await timeOp(cluster.peers, 'shift', bytes)).ms);
            const ring = await timeOp(cluster.peers, 'ring', bytes);
            samples.ring.push(ring.ms);
            sent = ring.sent;
            if (twoLevel) samples.twolevel.push((await timeOp(cluster.peers, 'twolevel', bytes)).ms);
            if (mesh) samples.alltoall.push((await timeOp(cluster.peers, 'alltoall', bytes)).ms);
          }
          const shift = median(samples.shift);
          const ring = median(samples.ring);
          const alltoall = mesh ? median(samples.alltoall) : null;
          const two = twoLevel ? median(samples.twolevel) : null;
          const bound = 2 * (n - 1) * shift;
          const row: AllreduceRow = {
            runtime,
            peers: n,
            bytes,
            shift_ms: round(shift),
            ring_ms: round(ring),
            bound_ms: round(bound),
            efficiency: round(bound / ring, 3),
            alltoall_ms: alltoall === null ? null : round(alltoall),
            speedup_vs_alltoall: alltoall === null ? null : round(alltoall / ring, 3),
            bytes_sent_per_peer: Math.round(sent),
            two_level_ms: two === null ? null : round(two),
            two_level_group: twoLevel ? group : null,
            two_level_speedup: two === null ? null : round(ring / two, 3),
          };
          rows.push(row);
          log(formatRow(row));
          onRow(row);
        }
      } finally {
        await cluster.close();
      }
    }
  }
  return rows;
}

/**
 * Fits T = 2(N-1)·α + 2(N-1)(M/N)·β to a runtime's ring times (two features, no intercept: the
 * normal equations of a 2×2 system). Null with fewer than 2 rows or a singular system.
 *
 * With `cores`: the N peers of a row shared that many cores, and each hop is CPU work every peer
 * does at once, so a hop took max(1, N/cores) times its cost on a core of its own:
 * T = 2(N-1)·max(1, N/cores)·(α + β·M/N), and α, β are the costs on a dedicated core.
 */
export function fitRing(rows: AllreduceRow[], runtime: PeerRuntime, cores?: number): RingFit | null {
  const mine = rows.filter((r) => r.runtime === runtime);
  if (mine.length < 2) return null;
  const hops = (n: number): number => 2 * (n - 1) * (cores ? Math.max(1, n / cores) : 1);
  let [aa, ab, bb, ay, by] = [0, 0, 0, 0, 0];
  for (const r of mine) {
    const a = hops(r.peers);
    const b = (a * r.bytes) / r.peers;
    aa += a * a;
    ab += a * b;
    bb += b * b;
    ay += a * r.ring_ms;
    by += b * r.ring_ms;
  }
  const det = aa * bb - ab * ab;
  if (!(Math.abs(det) > 0)) return null;
  const alpha = (ay * bb - by * ab) / det;
  const beta = (by * aa - ay * ab) / det;
  const mean = mine.reduce((s, r) => s + r.ring_ms, 0) / mine.length;
  let [res, tot] = [0, 0];
  for (const r of mine) {
    const a = hops(r.peers);
    res += (r.ring_ms - a * alpha - ((a * r.bytes) / r.peers) * beta) ** 2;
    tot += (r.ring_ms - mean) ** 2;
  }
  return {
    runtime,
    ...(cores ? { cores } : {}),
    alpha_ms: round(alpha, 3),
    beta_mb_per_s: round(1 / (beta * 1000), 1),
    r2: round(1 - res / tot, 3),
    rows: mine.length,
  };
}

const HEADER =
  'runtime peers      bytes   shift_ms    ring_ms   bound_ms  effic.  alltoall_ms  speedup  sent/peer  optimum  framing  2level_ms  g  vs ring';

export function formatRow(r: AllreduceRow): string {
  const optimum = (2 * (r.peers - 1) * r.bytes) / r.peers;
  const framing = r.bytes_sent_per_peer / optimum - 1;
  return [
    r.runtime.padEnd(7),
    String(r.peers).padStart(5),
    String(r.bytes).padStart(10),
    r.shift_ms.toFixed(1).padStart(10),
    r.ring_ms.toFixed(1).padStart(10),
    r.bound_ms.toFixed(1).padStart(10),
    r.efficiency.toFixed(2).padStart(7),
    (r.alltoall_ms?.toFixed(1) ?? '-').padStart(12),
    (r.speedup_vs_alltoall === null ? '-' : `${r.speedup_vs_alltoall.toFixed(2)}x`).padStart(8),
    String(r.bytes_sent_per_peer).padStart(10),
    String(Math.round(optimum)).padStart(8),
    `${(framing * 100).toFixed(2)}%`.padStart(8),
    (r.two_level_ms?.toFixed(1) ?? '-').padStart(10),
    String(r.two_level_group ?? '-').padStart(2),
    (r.two_level_speedup == null ? '-' : `${r.two_level_speedup.toFixed(2)}x`).padStart(8),
  ].join(' ');
}

export { HEADER as ALLREDUCE_HEADER };
