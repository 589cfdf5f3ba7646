/**
 * `npm run bench -- lm`: the transformer language model on Moby-Dick.
 *
 * 1. Throughput per backend: one peer trains batch 8 at context 128 (DISCO's published shape for
 *    its gpt-nano) for a few steps; ms per token (forward, backward and the optimizer's apply),
 *    tokens per second, and the ratio to DISCO's ~0.53 ms per token. Two shapes: RingTrain's
 *    default (2 layers, d 128, 4 heads) and gpt-nano's (3 layers, d 48, 3 heads; DISCO's 50 257-token
 *    GPT-2 vocabulary is 96 characters here, so its 2.4 M embedding parameters are not). cpu and
 *    wasm run in Node peers, webgl and webgpu in headless Chromium tabs (software renderers on a
 *    machine without a GPU: the row says which backend ran).
 * 2. A fixed budget of tokens with 1 and with 4 Node peers (wasm): the validation bits per
 *    character reached, the wall time and the room's tokens per second. Sync SGD on served data
 *    makes the two runs the same computation, so their losses agree; the wall time is the point.
 */
import { startCluster } from '../src/harness/cluster.ts';
import { nodePeer, pagePeer, type DrivenPeer, type RunEvent } from '../src/harness/driven.ts';
import { startNodeCluster } from '../src/harness/node-peers.ts';
import type { BackendName } from '../src/ml/backend.ts';
import type { TrainConfig, TrainResult } from '../src/training/trainer.ts';

/** DISCO's gpt-nano (2.5 M parameters) on a laptop, in Node: about 0.53 ms per token at batch 8 and context 128 (epfml/disco PR #659; ../shared/REFERENCES.md). */
export const DISCO_MS_PER_TOKEN = 0.53;

export const LM_SHAPES = {
  ringtrain: { layers: 2, dModel: 128, heads: 4 },
  'gpt-nano': { layers: 3, dModel: 48, heads: 3 },
} as const;
export type LmShape = keyof typeof LM_SHAPES;

const CONTEXT = 128;

export interface LmThroughputRow {
  runtime: 'node' | 'browser';
  backend: string;
  shape: LmShape;
  params: number;
  batch: number;
  context: number;
  /** Median over the steps after the warm-up: the step's wall time per token. */
  ms_per_token: number;
  tokens_per_sec: number;
  /** DISCO's ms per token over ours (> 1: faster than DISCO's published figure). */
  vs_disco: number;
}

export interface LmBudgetRow {
  peers: number;
  backend: string;
  shape: LmShape;
  steps: number;
  batch: number;
  tokens: number;
  val_bits_per_char: number;
  wall_s: number;
  tokens_per_sec: number;
  checksum: string;
}

function config(shape: LmShape, batch: number, steps: number): TrainConfig {
  return {
    dataset: 'moby-dick',
    partition: { scheme: 'iid', seed: 1 },
    model: 'transformer',
    transformer: LM_SHAPES[shape],
    algorithm: 'sgd',
    optimizer: { kind: 'adam', lr: 0.002, weightDecay: 0.01 },
    schedule: { kind: 'cosine', warmupSteps: Math.min(20, Math.floor(steps / 5)) },
    batch,
    steps,
    evalEvery: 0,
    checksumEvery: 0,
    seed: 1,
  };
}

type Step = Extract<RunEvent, { type: 'step' }>;

/** Trains `cfg` on every peer; rank 0's step events, its result and the backend it ran on. */
async function trainOn(
  peers: DrivenPeer[],
  cfg: TrainConfig,
): Promise<{ steps: Step[]; result: TrainResult; backend: string; wallS: number }> {
  const steps: Step[] = [];
  let backend = '?';
  const t0 = performance.now();
  const results = await Promise.all(
    peers.map((p, rank) =>
      p.run({ kind: 'train', config: cfg }, (e) => {
        if (rank !== 0) return;
        if (e.type === 'step') steps.push(e);
        if (e.type === 'backend') backend = e.report.name;
      }),
    ),
  );
  const result = results[0] as TrainResult;
  if (new Set(results.map((r) => (r as TrainResult).checksum)).size !== 1) throw new Error('the peers ended with different weights');
  return { steps, result, backend, wallS: (performance.now() - t0) / 1000 };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** Peers on `backend` for `fn`: Node peers for cpu and wasm, headless tabs for webgl and webgpu; closed afterwards. */
async function withPeers<T>(backend: BackendName, n: number, fn: (peers: DrivenPeer[]) => Promise<T>): Promise<T> {
  if (backend === 'cpu' || backend === 'wasm') {
    const c = await startNodeCluster({ peers: n, backend, stdio: 'ignore', deadAfterMs: 60_000 });
    try {
      return await fn(c.peers.map(nodePeer));
    } finally {
      await c.close();
    }
  }
  const c = await startCluster({ peers: n, query: { backend }, deadAfterMs: 60_000 });
  try {
    return await fn(c.pages.map(pagePeer));
  } finally {
    await c.close();
  }
}

export async function benchLm(
  o: {
    backends: BackendName[];
    shapes: LmShape[];
    steps: number;
    warmup: number;
    budgetSteps: number;
    budgetBatch: number;
    peers: number[];
  },
  log: (s: string) => void,
): Promise<{ throughput: LmThroughputRow[]; budget: LmBudgetRow[] }> {
  const throughput: LmThroughputRow[] = [];
  for (const backend of o.backends)
    for (const shape of o.shapes) {
      try {
        const row = await withPeers(backend, 1, async (peers) => {
          const batch = 8;
          const run = await trainOn(peers, config(shape, batch, o.steps));
          if (run.backend !== backend) throw new Error(`asked for ${backend}, ran on ${run.backend}`);
          const ms = median(run.steps.slice(o.warmup).map((e) => (e.samples / e.samplesPerSec) * 1000)) / (batch * CONTEXT);
          return {
            runtime: backend === 'cpu' || backend === 'wasm' ? 'node' : 'browser',
            backend,
            shape,
            params: run.result.params,
            batch,
            context: CONTEXT,
            ms_per_token: r3(ms),
            tokens_per_sec: Math.round(1000 / ms),
            vs_disco: r3(DISCO_MS_PER_TOKEN / ms),
          } satisfies LmThroughputRow;
        });
        throughput.push(row);
        log(
          `${row.runtime.padEnd(7)} ${backend.padEnd(6)} ${shape.padEnd(9)} ${String(row.params).padStart(7)} params  ${row.ms_per_token} ms/token  ${row.tokens_per_sec} tokens/s  ${row.vs_disco}x DISCO's ${DISCO_MS_PER_TOKEN} ms/token`,
        );
      } catch (e) {
        log(`${backend} ${shape}: no row (${(e as Error).message.split('\n')[0]})`);
      }
    }
  const budget: LmBudgetRow[] = [];
  for (const n of o.budgetSteps > 0 ? o.peers : []) {
    const row = await withPeers('wasm', n, async (peers) => {
      const cfg = { ...config('ringtrain', o.budgetBatch, o.budgetSteps) };
      const run = await trainOn(peers, cfg);
      const tokens = o.budgetSteps * o.budgetBatch * CONTEXT;
      return {
        peers: n,
        backend: run.backend,
        shape: 'ringtrain',
        steps: o.budgetSteps,
        batch: o.budgetBatch,
        tokens,
        val_bits_per_char: r3(run.result.loss / Math.LN2),
        wall_s: Math.round(run.wallS * 10) / 10,
        tokens_per_sec: Math.round(tokens / run.wallS),
        checksum: run.result.checksum,
      } satisfies LmBudgetRow;
    });
    budget.push(row);
    log(
      `${n} peer(s) ${row.backend}: ${row.tokens} tokens (${row.steps} steps of ${row.batch} windows) -> ${row.val_bits_per_char} bits/char in ${row.wall_s} s (${row.tokens_per_sec} tokens/s for the room)`,
    );
  }
  return { throughput, budget };
}
