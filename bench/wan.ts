/**
 * `npm run bench -- wan`: 4 peers, each its own Chromium in its own network namespace, train over
 * emulated WAN links (src/harness/netns.ts: kernel rate limits with tbf; delay by netem where the kernel
 * has it, else held back by the app) with each gradient codec, side by side per profile: bytes
 * sent per step, ms per step split into compute and communication, and test accuracy after the
 * same number of steps. Needs root (namespaces); elsewhere it stops with a message saying so.
 */
import type { ModelKind } from '../src/ml/models.ts';
import type { TrainConfig } from '../src/training/trainer.ts';
import { MLP_CONFIG } from '../src/harness/drills.ts';
import { codecVariants, runVariants, type Variant, type VariantRow } from './compression.ts';
import { startWanCluster, WAN_PROFILES, type WanProfileName } from '../src/harness/netns.ts';

export interface WanRow extends Omit<VariantRow, 'variant'> {
  profile: string;
  /** Per-step sync (`sgd`) or `diloco`; a DiLoCo row's codec is that of its deltas. */
  algorithm: 'sgd' | 'diloco';
  codec: string;
  /** DiLoCo: inner steps per round (H). */
  local_steps?: number;
  model: ModelKind;
  /** Against per-step sync without compression on the same profile and model: the seconds of training until this run first reached sync's final accuracy (null: never), and the ratio. */
  time_to_sync_accuracy_s: number | null;
  speedup_to_sync_accuracy: number | null;
  /** Bytes per sample, sync's over this row's. */
  bytes_per_sample_ratio: number;
  /** Final accuracy minus sync's, in points, after the same samples. */
  accuracy_vs_sync_points: number;
  /** How the link delay was made: by the kernel (netem) or by the app; and whether loss was emulated. */
  delay: 'netem' | 'app';
  loss_emulated: boolean;
}

/** The models the benchmark trains: the small CNN (the issue's choice) runs on tfjs's cpu backend (wasm lacks Conv2DBackpropFilter). */
const WAN_CONFIG: Record<'cnn' | 'mlp', { config: TrainConfig; backend: string }> = {
  cnn: { config: { ...MLP_CONFIG, model: 'cnn', optimizer: { kind: 'adam', lr: 0.005 } }, backend: 'cpu' },
  mlp: { config: MLP_CONFIG, backend: 'wasm' },
};

export const WAN_MODELS = Object.keys(WAN_CONFIG) as ('cnn' | 'mlp')[];

/** DiLoCo variants: rounds of each H, with each codec for the deltas. */
export function dilocoVariants(localSteps: number[], deltas: string[]): Variant[] {
  return localSteps.flatMap((h) =>
    codecVariants(deltas).map((v) => ({
      name: `diloco H=${h} ${v.name}`,
      config: { ...v.config, algorithm: 'diloco', localSteps: h },
    })),
  );
}

/** The columns against per-step sync without compression, among rows of one profile and model. */
function againstSync(
  rows: Omit<WanRow, 'time_to_sync_accuracy_s' | 'speedup_to_sync_accuracy' | 'bytes_per_sample_ratio' | 'accuracy_vs_sync_points'>[],
): WanRow[] {
  const sync = rows.find((r) => r.algorithm === 'sgd' && r.codec === 'none');
  if (!sync) throw new Error('the wan benchmark compares every row with per-step sync in float32: keep none in --codecs');
  const target = sync.test_accuracy;
  const reach = (curve: [number, number][]): number | null => curve.find(([, a]) => a >= target)?.[0] ?? null;
  const syncTime = reach(sync.curve);
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  return rows.map((r) => {
    const t = reach(r.curve);
    return {
      ...r,
      time_to_sync_accuracy_s: t,
      speedup_to_sync_accuracy: t !== null && syncTime !== null ? r2(syncTime / Math.max(t, 1e-3)) : null,
      bytes_per_sample_ratio: r2(sync.bytes_per_sample / r.bytes_per_sample),
      accuracy_vs_sync_points: r2((r.test_accuracy - target) * 100),
    };
  });
}

export async function benchWan(
  o: {
    peers: number;
    steps: number;
    profiles: WanProfileName[];
    codecs: string[];
    models: ('cnn' | 'mlp')[];
    /** DiLoCo's H values (none: no DiLoCo rows) and the codecs of its deltas. */
    diloco: number[];
    deltas: string[];
  },
  log: (s: string) => void,
  save: (rows: WanRow[]) => void,
): Promise<WanRow[]> {
  if (process.getuid?.() !== 0)
    throw new Error(
      'the wan benchmark needs root (it creates network namespaces and shapes their links); run it as root, e.g. sudo npm run bench -- wan',
    );
  const rows: WanRow[] = [];
  for (const model of o.models) {
    const { config, backend } = WAN_CONFIG[model];
    for (const profile of o.profiles) {
      const p = WAN_PROFILES[profile];
      log(`\n${model} on ${profile}: ${p.delayMs} ms one way, ${p.rateMbit} Mbit/s${'lossPct' in p ? `, ${p.lossPct}% loss` : ''}`);
      const cluster = await startWanCluster({ profile, peers: o.peers, query: { backend }, deadAfterMs: 30_000, build: 'if-stale', log });
      try {
        const variants = [...codecVariants(o.codecs), ...dilocoVariants(o.diloco, o.deltas)];
        const evalEvery = Math.max(1, Math.round(o.steps / 20));
        const got = await runVariants(cluster.pages, { ...config, steps: o.steps, evalEvery }, variants, log);
        const here = got.map(({ variant, ...r }, i) => {
          const v = variants[i]!.config;
          return {
            profile,
            algorithm: v.algorithm === 'diloco' ? ('diloco' as const) : ('sgd' as const),
            // The codec's name in the form (powersgd-r2, randomk-1%), as the earlier rows have it.
            codec: variant.replace(/^diloco H=\d+ /, ''),
            ...(typeof v.localSteps === 'number' ? { local_steps: v.localSteps } : {}),
            model,
            delay: cluster.info.delay,
            loss_emulated: cluster.info.loss,
            ...r,
          };
        });
        const compared = againstSync(here);
        rows.push(...compared);
        for (const [i, r] of compared.entries())
          if (r.algorithm === 'diloco' || r.codec !== 'none')
            log(
              `${variants[i]!.name}: ${r.bytes_per_sample_ratio}x fewer bytes per sample than sync, ` +
                `${r.speedup_to_sync_accuracy === null ? 'never reached' : `${r.speedup_to_sync_accuracy}x faster to`} sync's accuracy, ${r.accuracy_vs_sync_points} points at equal samples`,
            );
        save(rows);
      } finally {
        await cluster.close();
      }
    }
  }
  return rows;
}

/** The rows of `earlier` that `fresh` does not measure again (by profile, model, algorithm, codec and H), then `fresh`. */
export function mergeWanRows(earlier: WanRow[], fresh: WanRow[]): WanRow[] {
  const key = (r: WanRow): string => JSON.stringify([r.profile, r.model, r.algorithm ?? 'sgd', r.codec, r.local_steps ?? null]);
  const again = new Set(fresh.map(key));
  return [...earlier.filter((r) => !again.has(key(r))), ...fresh];
}
