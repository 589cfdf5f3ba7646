/**
 * `npm run bench -- allreduce`: ring allreduce against the link speed (a concurrent ring shift
 * under the same load) and against the naive all-to-all sum, over real WebRTC between headless
 * Chromium tabs, all measured side by side in one run.
 */
import { startCluster } from '../src/harness/cluster.ts';
import { median, timeOp, type Op } from '../src/harness/timing.ts';

export interface AllreduceRow {
  peers: number;
  bytes: number;
  shift_ms: number;
  ring_ms: number;
  bound_ms: number;
  efficiency: number;
  alltoall_ms: number;
  speedup_vs_alltoall: number;
  bytes_sent_per_peer: number;
}

export interface AllreduceBenchOptions {
  peers: number[];
  sizes: number[];
  reps: number;
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

export async function benchAllreduce(o: AllreduceBenchOptions, log: (s: string) => void): Promise<AllreduceRow[]> {
  const rows: AllreduceRow[] = [];
  for (const n of o.peers) {
    log(`starting ${n} headless peers ...`);
    const cluster = await startCluster({ peers: n });
    try {
      // Open the all-to-all mesh and warm every link up gradually: a fresh channel is slow for its
      // first megabytes, and a burst on many fresh channels at once can stall them for seconds.
      for (const bytes of [64 << 10, 1 << 20, 4 << 20]) {
        await timeOp(cluster.pages, 'alltoall', bytes);
        await timeOp(cluster.pages, 'ring', bytes);
      }
      for (const bytes of o.sizes) {
        const samples: Record<Op, number[]> = { shift: [], ring: [], alltoall: [] };
        let sent = 0;
        for (let r = 0; r < o.reps; r++) {
          // Interleave the three so drift in machine load hits them alike.
          samples.shift.push((await timeOp(cluster.pages, 'shift', bytes)).ms);
          const ring = await timeOp(cluster.pages, 'ring', bytes);
          samples.ring.push(ring.ms);
          sent = ring.sent;
          samples.alltoall.push((await timeOp(cluster.pages, 'alltoall', bytes)).ms);
        }
        const shift = median(samples.shift);
        const ring = median(samples.ring);
        const alltoall = median(samples.alltoall);
        const bound = 2 * (n - 1) * shift;
        const row: AllreduceRow = {
          peers: n,
          bytes,
          shift_ms: round(shift),
          ring_ms: round(ring),
          bound_ms: round(bound),
          efficiency: round(bound / ring, 3),
          alltoall_ms: round(alltoall),
          speedup_vs_alltoall: round(alltoall / ring, 3),
          bytes_sent_per_peer: Math.round(sent),
        };
        rows.push(row);
        log(formatRow(row));
      }
    } finally {
      await cluster.close();
    }
  }
  return rows;
}

const HEADER = 'peers      bytes   shift_ms    ring_ms   bound_ms  effic.  alltoall_ms  speedup  sent/peer  optimum  framing';

export function formatRow(r: AllreduceRow): string {
  const optimum = (2 * (r.peers - 1) * r.bytes) / r.peers;
  const framing = r.bytes_sent_per_peer / optimum - 1;
  return [
    String(r.peers).padStart(5),
    String(r.bytes).padStart(10),
    r.shift_ms.toFixed(1).padStart(10),
    r.ring_ms.toFixed(1).padStart(10),
    r.bound_ms.toFixed(1).padStart(10),
    r.efficiency.toFixed(2).padStart(7),
    r.alltoall_ms.toFixed(1).padStart(12),
    `${r.speedup_vs_alltoall.toFixed(2)}x`.padStart(8),
    String(r.bytes_sent_per_peer).padStart(10),
    String(Math.round(optimum)).padStart(8),
    `${(framing * 100).toFixed(2)}%`.padStart(8),
  ].join(' ');
}

export { HEADER as ALLREDUCE_HEADER };
