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
import { codecVariants, runVariants, type VariantRow } from './compression.ts';
import { startWanCluster, WAN_PROFILES, type WanProfileName } from '../src/harness/netns.ts';

export interface WanRow extends Omit<VariantRow, 'variant'> {
  profile: string;
  codec: string;
  model: ModelKind;
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

export async function benchWan(
  o: { peers: number; steps: number; profiles: WanProfileName[]; codecs: string[]; models: ('cnn' | 'mlp')[] },
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
        const got = await runVariants(cluster.pages, { ...config, steps: o.steps }, codecVariants(o.codecs), log);
        for (const { variant, ...r } of got)
          rows.push({ profile, codec: variant, model, delay: cluster.info.delay, loss_emulated: cluster.info.loss, ...r });
        save(rows);
      } finally {
        await cluster.close();
      }
    }
  }
  return rows;
}
