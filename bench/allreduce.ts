/**
 * `npm run bench -- allreduce`: ring allreduce against the link speed (a concurrent ring shift
 * under the same load) and against the naive all-to-all sum, over real WebRTC between headless
 * Chromium tabs, all measured side by side in one run.
 */
import type { Page } from 'playwright-core';
import { startCluster } from '../src/cli/cluster.ts';

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

export type Op = 'shift' | 'ring' | 'alltoall';

/** Times one op on every peer at once, started from a barrier; returns the slowest peer's ms and mean bytes sent. */
export async function timeOp(pages: Page[], op: Op, bytes: number): Promise<{ ms: number; sent: number }> {
  const runs = await Promise.all(
    pages.map((p) =>
      p.evaluate(
        async ([op, bytes]) => {
          const api = window.ringtrain;
          const n = api.view()!.members.length;
          const w = window as unknown as { benchBuf?: Float32Array };
          if (w.benchBuf?.length !== bytes / 4) {
            w.benchBuf = new Float32Array(bytes / 4);
            for (let i = 0; i < w.benchBuf.length; i++) w.benchBuf[i] = i % 1024;
          }
          const data = w.benchBuf;
          await api.barrier();
          const before = api.stats().frameBytesSent;
          const t0 = performance.now();
          if (op === 'shift') await api.shift(Math.ceil(bytes / n));
          else if (op === 'ring') await api.allreduce(data);
          else await api.allToAllSum(data);
          const ms = performance.now() - t0;
          return { ms, sent: api.stats().frameBytesSent - before };
        },
        [op, bytes] as const,
      ),
    ),
  );
  return { ms: Math.max(...runs.map((r) => r.ms)), sent: runs.reduce((a, r) => a + r.sent, 0) / runs.length };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
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
