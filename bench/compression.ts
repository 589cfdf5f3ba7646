/**
 * Side-by-side training runs on the same tabs, one per variant of a base config:
 *
 * - `npm run bench -- compression`: the gradient codecs (none, fp16, int8, random-k, PowerSGD of
 *   rank 1, 2, 4, auto) on loopback links;
 * - `npm run bench -- robust`: the ring's sum against the median and the trimmed mean over an
 *   all-gather, with honest peers (what robustness costs) and with one byzantine tab sending its
 *   gradient times -100 (what it buys); and against secure aggregation's masked fixed-point sum
 *   modulo 2^32 (what privacy costs: the masks, and the accuracy its rounding loses);
 * - bench/wan.ts runs the codecs over emulated WAN links.
 *
 * For each: payload bytes rank 0 sends per step, ms per step split into compute (incl. readback
 * and apply) and communication, and the test accuracy reached, with ratios against the first
 * variant of the same run.
 */
import type { Page } from 'playwright-core';
import { startCluster } from '../src/harness/cluster.ts';
import { MLP_CONFIG } from '../src/harness/drills.ts';
import { AGGREGATIONS, COMPRESSIONS } from '../src/training/job.ts';
import type { TrainConfig } from '../src/training/trainer.ts';

export interface Variant {
  name: string;
  config: Partial<TrainConfig>;
  /** The last tab sends its gradient times -100 during this variant (a byzantine peer). */
  attacker?: boolean;
}

export interface VariantRow {
  variant: string;
  peers: number;
  steps: number;
  bytes_per_step: number;
  ms_per_step: number;
  compute_ms: number;
  readback_ms: number;
  comm_ms: number;
  test_accuracy: number;
  /** Against the first variant of the same run. */
  bytes_ratio: number;
  ms_ratio: number;
  /** compression `auto`: what it picked. */
  picked?: string;
  /** Payload bytes rank 0 sent per training sample of the global batch. */
  bytes_per_sample: number;
  /** Seconds of training (evaluations left out) until each evaluation, and the accuracy there. */
  curve: [number, number][];
}

export const CODEC_NAMES = Object.keys(COMPRESSIONS);

export const codecVariants = (names: string[]): Variant[] =>
  names.map((name) => ({ name, config: COMPRESSIONS[name] ? { compression: COMPRESSIONS[name] } : {} }));

const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Trains `config` on every page; rank 0's bytes sent, its mean split of a global step (after 5
 * warm-up step events; a DiLoCo round's event covers `span` steps), and its accuracy curve against
 * training time (from the first agreement, the time evaluations took left out).
 */
async function run(pages: Page[], config: TrainConfig) {
  const before = await pages[0]!.evaluate(() => window.ringtrain.stats().payloadBytesSent);
  const rs = await Promise.all(
    pages.map((p) =>
      p.evaluate(async (c) => {
        // t: training time, the evaluations' left out.
        const steps: {
          step: number;
          span: number;
          computeMs: number;
          readbackMs: number;
          allreduceMs: number;
          applyMs: number;
          t: number;
        }[] = [];
        const curve: [number, number][] = [];
        let picked: string | undefined;
        // Training time counts from the group's first agreement: loading data and picking a backend are left out.
        let t0 = Number.NaN;
        let evaluating = 0;
        let last = performance.now();
        const r = await window.ringtrain.train(c, (e) => {
          const t = performance.now();
          if (e.type === 'sync' && Number.isNaN(t0)) t0 = t;
          if (e.type === 'step') steps.push({ ...e, t: t - evaluating });
          if (e.type === 'codec') picked = e.codec;
          // An evaluation runs after a step (or another evaluation): the time since is its own.
          if (e.type === 'eval') {
            evaluating += t - last;
            curve.push([(t - t0 - evaluating) / 1000, e.accuracy]);
          }
          last = t;
        });
        // No named functions in here: tsx would wrap them in a helper the page does not have.
        const s = steps.slice(Math.min(5, Math.max(0, steps.length - 2)));
        const covered = s.length > 1 ? s.at(-1)!.step - s[0]!.step : NaN;
        const perStep = s.slice(1).reduce((a, x) => a + x.span, 0);
        const wall = (s.at(-1)!.t - s[0]!.t) / covered;
        const compute = s.slice(1).reduce((a, x) => a + x.computeMs + x.readbackMs + x.applyMs, 0) / perStep;
        const readback = s.slice(1).reduce((a, x) => a + x.readbackMs, 0) / perStep;
        const comm = s.slice(1).reduce((a, x) => a + x.allreduceMs, 0) / perStep;
        return { accuracy: r.accuracy, checksum: r.checksum, ms: wall, compute, readback, comm, picked, curve };
      }, config),
    ),
  );
  const after = await pages[0]!.evaluate(() => window.ringtrain.stats().payloadBytesSent);
  return { ...rs[0]!, bytes: (after - before) / config.steps, checksums: new Set(rs.map((r) => r.checksum)) };
}

/** Runs every variant of `base` on `pages`, one after the other, and logs a line per variant. */
export async function runVariants(pages: Page[], base: TrainConfig, variants: Variant[], log: (s: string) => void): Promise<VariantRow[]> {
  const rows: VariantRow[] = [];
  for (const v of variants) {
    const attacker = pages.at(-1)!;
    if (v.attacker) await attacker.evaluate(() => window.ringtrain.debug.poison('flip'));
    const r = await run(pages, { ...base, ...v.config }).finally(
      () => v.attacker && attacker.evaluate(() => window.ringtrain.debug.poison(null)),
    );
    if (r.checksums.size !== 1) throw new Error(`${v.name}: the peers ended with different weights`);
    const first = rows[0];
    const row: VariantRow = {
      variant: v.name,
      peers: pages.length,
      steps: base.steps,
      bytes_per_step: Math.round(r.bytes),
      ms_per_step: round(r.ms, 1),
      compute_ms: round(r.compute, 1),
      readback_ms: round(r.readback, 2),
      comm_ms: round(r.comm, 1),
      test_accuracy: round(r.accuracy, 4),
      bytes_ratio: first ? round(first.bytes_per_step / r.bytes, 1) : 1,
      ms_ratio: first ? round(first.ms_per_step / r.ms, 2) : 1,
      ...(r.picked ? { picked: r.picked } : {}),
      bytes_per_sample: round(r.bytes / (base.batch || 1), 1),
      curve: r.curve.map(([t, a]) => [round(t, 2), round(a, 4)]),
    };
    rows.push(row);
    log(
      `${v.name.padEnd(22)} ${String(row.bytes_per_step).padStart(9)} B/step (${row.bytes_ratio}x less)  ${row.ms_per_step} ms/step ` +
        `(compute ${row.compute_ms} incl. readback ${row.readback_ms}, communication ${row.comm_ms}; ${row.ms_ratio}x)  accuracy ${row.test_accuracy}${r.picked ? `  auto picked ${r.picked}` : ''}`,
    );
  }
  return rows;
}

/** `compression`: the codecs on loopback links. */
export async function benchCompression(o: { peers: number; steps: number; codecs: string[] }, log: (s: string) => void) {
  const cluster = await startCluster({ peers: o.peers, query: { backend: 'wasm' }, deadAfterMs: 30_000 });
  try {
    const rows = await runVariants(cluster.pages, { ...MLP_CONFIG, steps: o.steps }, codecVariants(o.codecs), log);
    return rows.map(({ variant, ...r }) => ({ profile: 'loopback', codec: variant, ...r }));
  } finally {
    await cluster.close();
  }
}

/** Secure aggregation at its default scale: honest tabs only (its sum keeps a byzantine tab's gradient as the plain sum does). */
const SECURE_VARIANT: Variant = { name: 'secure (mod 2^32)', config: { secureAggregation: {} } };

/** `robust`: the ring's sum, the median and the trimmed mean, without and with a byzantine tab; secure aggregation against the sum. */
export async function benchRobust(o: { peers: number; steps: number }, log: (s: string) => void): Promise<VariantRow[]> {
  const cluster = await startCluster({ peers: o.peers, query: { backend: 'wasm' }, deadAfterMs: 30_000 });
  const aggregation = Object.entries(AGGREGATIONS).map(([name, rule]) => ({ name, config: rule ? { robust: rule } : {} }));
  try {
    const rows = await runVariants(
      cluster.pages,
      { ...MLP_CONFIG, steps: o.steps },
      [...aggregation, SECURE_VARIANT, ...aggregation.map((v) => ({ ...v, name: `${v.name} + byzantine tab`, attacker: true }))],
      log,
    );
    const [sum, secure] = [rows[0]!, rows.find((r) => r.variant === SECURE_VARIANT.name)!];
    log(
      `secure aggregation against the plain ring: ${secure.bytes_per_step - sum.bytes_per_step} B/step more, ${round(secure.ms_per_step - sum.ms_per_step, 1)} ms/step more, ` +
        `accuracy ${round(secure.test_accuracy - sum.test_accuracy, 4)} (same data, seed and steps)`,
    );
    return rows;
  } finally {
    await cluster.close();
  }
}
