/**
 * `npm run bench -- compression`: N headless tabs train the MLP on Fashion-MNIST for a fixed number
 * of steps with each gradient codec (none, random-k, PowerSGD of rank 1, 2, 4), side by side in
 * one run: payload bytes rank 0 sends per step, ms per step split into compute and communication,
 * and the test accuracy reached. The links here are loopback; the WAN profiles of issue 8 (netem
 * in network namespaces) are not built yet.
 */
import type { Page } from 'playwright-core';
import { startCluster } from '../src/cli/cluster.ts';
import type { CompressionSpec } from '../src/ml/algorithms/compression.ts';
import type { TrainConfig } from '../src/training/trainer.ts';

export interface CompressionRow {
  profile: 'loopback';
  codec: string;
  peers: number;
  steps: number;
  bytes_per_step: number;
  ms_per_step: number;
  compute_ms: number;
  comm_ms: number;
  test_accuracy: number;
  /** Against the uncompressed row of the same run. */
  bytes_ratio: number;
  ms_ratio: number;
}

export const CODECS: Record<string, CompressionSpec | null> = {
  none: null,
  'randomk-1%': { kind: 'randomk', ratio: 0.01 },
  'powersgd-r1': { kind: 'powersgd', rank: 1 },
  'powersgd-r2': { kind: 'powersgd', rank: 2 },
  'powersgd-r4': { kind: 'powersgd', rank: 4 },
};

/** Trains `config` on every page; rank 0's bytes sent and its mean step split. */
async function run(pages: Page[], config: TrainConfig): Promise<{ bytes: number; ms: number; compute: number; comm: number; accuracy: number; checksums: Set<string> }> {
  const before = await pages[0]!.evaluate(() => window.ringtrain.stats().payloadBytesSent);
  const rs = await Promise.all(
    pages.map((p) =>
      p.evaluate(async (c) => {
        const steps: { computeMs: number; readbackMs: number; allreduceMs: number; applyMs: number; t: number }[] = [];
        const r = await window.ringtrain.train(c, (e) => e.type === 'step' && steps.push({ ...e, t: performance.now() }));
        // Skip the first steps (backend warm-up) in the timings. (No named functions in here:
        // tsx would wrap them in a helper the page does not have.)
        const s = steps.slice(Math.min(5, steps.length - 1));
        const wall = s.length > 1 ? (s.at(-1)!.t - s[0]!.t) / (s.length - 1) : NaN;
        const compute = s.reduce((a, x) => a + x.computeMs + x.readbackMs + x.applyMs, 0) / s.length;
        const comm = s.reduce((a, x) => a + x.allreduceMs, 0) / s.length;
        return { accuracy: r.accuracy, checksum: r.checksum, ms: wall, compute, comm };
      }, config),
    ),
  );
  const after = await pages[0]!.evaluate(() => window.ringtrain.stats().payloadBytesSent);
  const r0 = rs[0]!;
  return { bytes: (after - before) / config.steps, ms: r0.ms, compute: r0.compute, comm: r0.comm, accuracy: r0.accuracy, checksums: new Set(rs.map((r) => r.checksum)) };
}

export async function benchCompression(o: { peers: number; steps: number; codecs: string[] }, log: (s: string) => void): Promise<CompressionRow[]> {
  const cluster = await startCluster({ peers: o.peers, query: { backend: 'wasm' }, deadAfterMs: 30_000 });
  const rows: CompressionRow[] = [];
  try {
    for (const codec of o.codecs) {
      const spec = CODECS[codec]!;
      const config: TrainConfig = {
        dataset: 'fashion-mnist',
        partition: { scheme: 'iid', seed: 1 },
        model: 'mlp',
        algorithm: 'sgd',
        optimizer: { kind: 'adam', lr: 0.002 },
        batch: 128,
        steps: o.steps,
        seed: 3,
        ...(spec ? { compression: spec } : {}),
      };
      const r = await run(cluster.pages, config);
      if (r.checksums.size !== 1) throw new Error(`${codec}: the peers ended with different weights`);
      const base = rows.find((x) => x.codec === 'none');
      const row: CompressionRow = {
        profile: 'loopback',
        codec,
        peers: o.peers,
        steps: o.steps,
        bytes_per_step: Math.round(r.bytes),
        ms_per_step: Math.round(r.ms * 10) / 10,
        compute_ms: Math.round(r.compute * 10) / 10,
        comm_ms: Math.round(r.comm * 10) / 10,
        test_accuracy: Math.round(r.accuracy * 10_000) / 10_000,
        bytes_ratio: base ? Math.round((base.bytes_per_step / r.bytes) * 10) / 10 : 1,
        ms_ratio: base ? Math.round((base.ms_per_step / r.ms) * 100) / 100 : 1,
      };
      rows.push(row);
      log(
        `${codec.padEnd(12)} ${String(row.bytes_per_step).padStart(9)} B/step (${row.bytes_ratio}x less)  ${row.ms_per_step} ms/step (compute ${row.compute_ms}, allreduce ${row.comm_ms}; ${row.ms_ratio}x)  accuracy ${row.test_accuracy}`,
      );
    }
  } finally {
    await cluster.close();
  }
  return rows;
}
