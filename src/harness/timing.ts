/**
 * Timing collectives in real pages, for the benchmarks and the WAN harness: every page starts the
 * op from a barrier, and the slowest page's time is the op's.
 */
import type { Page } from 'playwright-core';

export type Op = 'shift' | 'ring' | 'alltoall';

/** Times one op on every peer at once, started from a barrier; returns the slowest peer's ms and mean bytes sent. */
export async function timeOp(pages: Page[], op: Op, bytes: number): Promise<{ ms: number; sent: number }> {
  const runs = await Promise.all(
    pages.map((p) =>
      p.evaluate(
        async ([op, bytes]) => {
          const api = window.ringtrain;
          const n = api.view()!.members.length;
          const w = window;
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
