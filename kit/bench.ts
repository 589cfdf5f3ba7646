/**
 * The GPU kit's benchmark (kit/README.md). kit/build.ts bundles it into `bench.mjs`; gpu-bench.sh
 * runs it one phase at a time, each under its own `timeout`, and each phase writes one JSON file
 * into the work folder:
 *
 *   bench.mjs adapter <work>              Dawn's adapter -> adapter.json; exits 3 when there is none
 *                                         or it is a software one (unless RINGTRAIN_KIT_ALLOW_SOFTWARE=1)
 *   bench.mjs micro <work>                ms/step of the MLP and the CNN at batch 128 and 1024 on
 *                                         webgpu, wasm and cpu -> micro.json
 *   bench.mjs matmul <work>               fp32 matmul GFLOP/s through tfjs-webgpu -> matmul.json
 *   bench.mjs ring <work> <data root>     the CNN trained by 4 Node GPU peers in a ring to 0.91 test
 *                                         accuracy -> ring.json (rewritten at each evaluation)
 *   bench.mjs report <work> <out file>    everything, with torch.json (torch_ref.py) and the phases'
 *                                         exit codes, as gpu.json with the ratios; prints a summary
 *
 * RINGTRAIN_KIT_QUICK=1: few steps, small matmuls, a few ring steps (the kit's check on SwiftShader).
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from '../src/core/random.ts';
import { startNodePeers, type NodePeer } from '../src/harness/node-peers.ts';
import { CONV_GRAD_KERNEL, readAdapterInfo, type AdapterInfo, type BackendName } from '../src/ml/backend.ts';
import { paramCount } from '../src/ml/flat.ts';
import { createModel, type ModelSpec } from '../src/ml/models.ts';
import { createOptimizer } from '../src/ml/optimizer.ts';
import { computeGradients } from '../src/ml/step.ts';
import { installWebGpu, registerNodeBackends } from '../src/node/platform.ts';
import type { RuntimeEvent } from '../src/runtime/events.ts';
import { startServer } from '../src/server/app.ts';
import type { TrainConfig, TrainResult } from '../src/training/trainer.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const QUICK = process.env['RINGTRAIN_KIT_QUICK'] === '1';
const ALLOW_SOFTWARE = process.env['RINGTRAIN_KIT_ALLOW_SOFTWARE'] === '1';

/** The models of src/ml/models.ts: MLP 784-128-10, CNN conv 32 and 64 3x3 relu + maxpool 2x2, dense 128 relu and 10. */
const SPECS = {
  mlp: { kind: 'mlp', inputShape: [784], numClasses: 10, seed: 1 },
  cnn: { kind: 'cnn', inputShape: [28, 28, 1], numClasses: 10, seed: 1 },
} as const satisfies Record<string, ModelSpec>;
type ModelKey = keyof typeof SPECS;
const BATCHES = [128, 1024] as const;
const BACKENDS = ['webgpu', 'wasm', 'cpu'] as const satisfies readonly BackendName[];
const MATMUL_SIZES = QUICK ? [256, 512] : [1024, 2048, 4096];
/** The ring run's target test accuracy. */
const TARGET_ACCURACY = 0.91;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const round = (x: number, digits = 3): number => Number(x.toFixed(digits));

function writeJson(file: string, value: unknown): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

function readJson(file: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** Software adapters: Dawn's fallback flag, or a CPU implementation by name. */
function isSoftwareAdapter(a: AdapterInfo): boolean {
  return a.isFallback || /google|swiftshader|llvmpipe|lavapipe|software|cpu/i.test(`${a.vendor} ${a.architecture} ${a.description}`);
}

async function adapterPhase(work: string): Promise<number> {
  const gpu = await installWebGpu();
  const adapter = gpu ? await gpu.requestAdapter({ powerPreference: 'high-performance' }) : null;
  const info = adapter ? readAdapterInfo(adapter) : null;
  const software = info ? isSoftwareAdapter(info) : null;
  const nvidia = info ? /nvidia/i.test(`${info.vendor} ${info.description}`) : false;
  const ok = info !== null && ((!software && nvidia) || ALLOW_SOFTWARE);
  const why =
    info === null
      ? gpu
        ? 'Dawn loaded but found no adapter (no Vulkan driver reachable: check VK_ICD_FILENAMES and the ICD search above)'
        : 'Dawn (dawn.node) did not load'
      : software
        ? `the adapter is a software one (${info.vendor}/${info.architecture}${info.isFallback ? ', fallback' : ''}), not the GPU`
        : nvidia
          ? 'the NVIDIA GPU'
          : `the adapter is not NVIDIA's (${info.vendor}/${info.architecture})`;
  writeJson(path.join(work, 'adapter.json'), { adapter: info, software, nvidia, allowSoftware: ALLOW_SOFTWARE, ok, why });
  console.log(
    `adapter: ${info ? `${info.vendor} / ${info.architecture} / ${info.description || '-'} (fallback ${info.isFallback})` : 'none'}: ${why}`,
  );
  if (ok) return 0;
  console.error(
    `\n*** FAIL: ${why}. The kit measures the GPU through Dawn's Vulkan backend; set RINGTRAIN_KIT_ALLOW_SOFTWARE=1 only to check the kit on a software adapter. ***\n`,
  );
  return 3;
}

/** One timed configuration: the median of timed steps, or why it was skipped. */
type StepMeasure =
  | { msPerStep: number; timedSteps: number; warmupSteps: number; firstStepMs: number; capped: boolean }
  | { skipped: string };

/**
 * RingTrain's training step on the active backend (as ml/probe.ts: the gradient with its readback,
 * then the flat optimizer's update) on seeded random data; `warmup` untimed steps, then up to
 * `steps` timed ones, stopping once `capMs` have passed since the first.
 */
async function measureSteps(spec: ModelSpec, batch: number, o: { warmup: number; steps: number; capMs: number }): Promise<StepMeasure> {
  const rand = mulberry32(batch);
  const x = Float32Array.from({ length: batch * 784 }, () => rand());
  const y = Int32Array.from({ length: batch }, () => Math.floor(rand() * 10));
  const model = createModel(spec);
  try {
    const opt = createOptimizer({ kind: 'sgd', lr: 1e-3 }, paramCount(model));
    const step = async (): Promise<number> => {
      const t0 = performance.now();
      const g = await computeGradients(model, x, y, batch, 'crossentropy');
      for (let j = 0; j < g.grad.length; j++) g.grad[j] = g.grad[j]! / batch;
      await opt.apply(model, g.grad);
      return performance.now() - t0;
    };
    const started = performance.now();
    const firstStepMs = await step();
    const times: number[] = [];
    let capped = false;
    for (let i = 1; i < o.warmup + o.steps; i++) {
      if (performance.now() - started > o.capMs) {
        capped = true;
        break;
      }
      const t = await step();
      if (i >= o.warmup) times.push(t);
    }
    // Nothing timed within the cap: the first (cold) step is all there is, and says so.
    if (times.length === 0) times.push(firstStepMs);
    return { msPerStep: round(median(times)), timedSteps: times.length, warmupSteps: o.warmup, firstStepMs: round(firstStepMs), capped };
  } finally {
    model.dispose();
  }
}

async function microPhase(work: string): Promise<void> {
  await registerNodeBackends();
  const o = QUICK ? { warmup: 1, steps: 3, capMs: 8_000 } : { warmup: 3, steps: 20, capMs: 10_000 };
  const file = path.join(work, 'micro.json');
  const out: Record<string, Record<ModelKey, Record<string, StepMeasure>>> = {};
  for (const backend of BACKENDS) {
    const rows: Record<ModelKey, Record<string, StepMeasure>> = { mlp: {}, cnn: {} };
    out[backend] = rows;
    const set = await tf.setBackend(backend).catch((e: unknown) => String(e));
    for (const model of Object.keys(SPECS) as ModelKey[]) {
      let previous: { batch: number; ms: number } | null = null;
      for (const batch of BATCHES) {
        let m: StepMeasure;
        if (set !== true) m = { skipped: `the ${backend} backend did not initialise (${set})` };
        else if (model === 'cnn' && !tf.getKernel(CONV_GRAD_KERNEL, backend))
          m = { skipped: `tfjs ${tf.version.tfjs} ${backend} has no ${CONV_GRAD_KERNEL} kernel: the CNN cannot train on it` };
        else if (previous && (previous.ms * batch) / previous.batch > o.capMs / 2)
          m = {
            skipped: `estimated ${round((previous.ms * batch) / previous.batch / 1000, 1)} s/step from batch ${previous.batch} (${previous.ms} ms), over half the ${o.capMs / 1000} s cap`,
          };
        else m = await measureSteps(SPECS[model], batch, o).catch((e: unknown) => ({ skipped: `failed: ${String(e)}` }));
        rows[model][String(batch)] = m;
        if ('msPerStep' in m) previous = { batch, ms: m.msPerStep };
        console.log(
          `micro ${backend} ${model} batch ${batch}: ${'msPerStep' in m ? `${m.msPerStep} ms/step (${m.timedSteps} timed)` : m.skipped}`,
        );
        writeJson(file, { options: o, backends: out });
      }
    }
  }
}

async function matmulPhase(work: string): Promise<void> {
  await registerNodeBackends();
  const file = path.join(work, 'matmul.json');
  const set = await tf.setBackend('webgpu').catch((e: unknown) => String(e));
  if (set !== true) {
    writeJson(file, { skipped: `the webgpu backend did not initialise (${set})` });
    return;
  }
  const warmup = QUICK ? 1 : 2;
  const reps = QUICK ? 2 : 5;
  const rows: Record<string, unknown> = {};
  for (const n of MATMUL_SIZES) {
    // k matmuls per timed rep, then one element of the last read back: the queue runs in order, so
    // the readback waits for all k, and reading one element keeps the transfer out of the figure.
    const k = n <= 1024 && !QUICK ? 8 : 2;
    const a = tf.randomUniform([n, n], -1, 1, 'float32', 1);
    const b = tf.randomUniform([n, n], -1, 1, 'float32', 2);
    const rep = async (): Promise<number> => {
      const t0 = performance.now();
      const outs: tf.Tensor[] = [];
      for (let i = 0; i < k; i++) outs.push(tf.matMul(a, b));
      const corner = tf.slice(outs[k - 1]!, [0, 0], [1, 1]);
      await corner.data();
      const ms = (performance.now() - t0) / k;
      tf.dispose([...outs, corner]);
      return ms;
    };
    for (let i = 0; i < warmup; i++) await rep();
    const times: number[] = [];
    for (let i = 0; i < reps; i++) times.push(await rep());
    tf.dispose([a, b]);
    const ms = median(times);
    rows[String(n)] = { msPerMatmul: round(ms), gflops: round((2 * n ** 3) / (ms * 1e6), 1), matmulsPerRep: k, reps, warmup };
    console.log(`matmul ${n}: ${round(ms)} ms, ${round((2 * n ** 3) / (ms * 1e6), 1)} GFLOP/s`);
    writeJson(file, { backend: 'webgpu', sizes: rows });
  }
}

async function ringPhase(work: string, dataRoot: string): Promise<void> {
  const file = path.join(work, 'ring.json');
  const capMs = QUICK ? 90_000 : 100_000;
  const config: TrainConfig = {
    dataset: 'fashion-mnist',
    partition: { scheme: 'iid', seed: 1 },
    // Quick (SwiftShader): the MLP, since SwiftShader takes minutes to evaluate the 10k test images
    // through the CNN on 4 peers; the bundle, server, data, WebRTC ring and webgpu peers are the same.
    model: QUICK ? 'mlp' : 'cnn',
    algorithm: 'sgd',
    optimizer: { kind: 'adam', lr: 0.003 },
    batch: QUICK ? 8 : 512,
    steps: QUICK ? 2 : 20_000,
    evalEvery: QUICK ? 0 : 50,
    checksumEvery: QUICK ? 1 : 200,
    seed: 5,
  };
  const record: {
    peers: number;
    config: TrainConfig;
    target: number;
    capMs: number;
    evals: { step: number; accuracy: number; sinceStartS: number; sinceFirstStepS: number | null }[];
    reachedTarget: boolean;
    timeToTargetS: number | null;
    timeToTargetFromFirstStepS: number | null;
    bestAccuracy: number | null;
    stoppedBy: string | null;
    results?: Omit<TrainResult, 'weights' | 'spec'>[];
    backends?: string[];
    checksumsAgree?: boolean;
    msPerStep?: number | null;
  } = {
    peers: 4,
    config,
    target: TARGET_ACCURACY,
    capMs,
    evals: [],
    reachedTarget: false,
    timeToTargetS: null,
    timeToTargetFromFirstStepS: null,
    bestAccuracy: null,
    stoppedBy: null,
  };
  writeJson(file, record);
  // A peer compiling shaders can stay silent for seconds: a generous deadline keeps it in the view.
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    mode: 'headless',
    root: dataRoot,
    checkpointDir: path.join(work, 'checkpoints'),
    deadAfterMs: 15_000,
  });
  let peers: NodePeer[] = [];
  let cap: ReturnType<typeof setTimeout> | undefined;
  try {
    peers = await startNodePeers(4, {
      link: `${server.url}/?room=kit`,
      backend: 'webgpu',
      entry: { script: path.join(HERE, 'peer.mjs'), execArgv: [] },
      startTimeoutMs: 120_000,
    });
    console.log(`ring: 4 peers started at ${server.url}`);
    await Promise.all(peers.map((p) => p.call('waitForView', 4, 120_000)));
    console.log('ring: all 4 in the view; training');
    const lead = peers[0]!;
    const t0 = performance.now();
    let firstStep: number | null = null;
    let stepsAt: { step: number; t: number }[] = [];
    const stop = (why: string): void => {
      if (record.stoppedBy) return;
      record.stoppedBy = why;
      void lead.call('stop').catch(() => {});
    };
    peers.forEach((p, i) =>
      p.on('event', (e: RuntimeEvent) => {
        if (e.type === 'train' && e.event.type === 'backend')
          console.log(`ring peer ${i}: backend ${e.event.report.name} (${e.event.report.reason})`);
        else if (e.type === 'train' && e.event.type === 'fault')
          console.log(`ring peer ${i}: fault at step ${e.event.step}: ${e.event.reason}`);
        else if (e.type === 'run-failed' || e.type === 'error') console.log(`ring peer ${i}: ${JSON.stringify(e).slice(0, 300)}`);
      }),
    );
    lead.on('event', (e: RuntimeEvent) => {
      if (e.type !== 'train') return;
      const ev = e.event;
      const now = performance.now();
      if (ev.type === 'step') {
        firstStep ??= now;
        if (QUICK || ev.step % 200 === 0)
          console.log(`ring step ${ev.step}: loss ${ev.loss.toFixed(4)} at ${((now - t0) / 1000).toFixed(1)} s`);
        if (stepsAt.length < 10_000) stepsAt.push({ step: ev.step, t: now });
      } else if (ev.type === 'eval') {
        record.evals.push({
          step: ev.step,
          accuracy: round(ev.accuracy, 4),
          sinceStartS: round((now - t0) / 1000, 2),
          sinceFirstStepS: firstStep === null ? null : round((now - firstStep) / 1000, 2),
        });
        record.bestAccuracy = Math.max(record.bestAccuracy ?? 0, round(ev.accuracy, 4));
        console.log(`ring step ${ev.step}: test accuracy ${ev.accuracy.toFixed(4)} at ${((now - t0) / 1000).toFixed(1)} s`);
        if (ev.accuracy >= TARGET_ACCURACY && !record.reachedTarget) {
          record.reachedTarget = true;
          record.timeToTargetS = round((now - t0) / 1000, 2);
          record.timeToTargetFromFirstStepS = firstStep === null ? null : round((now - firstStep) / 1000, 2);
          stop(`reached ${TARGET_ACCURACY}`);
        }
        writeJson(file, record);
      }
    });
    cap = setTimeout(() => stop(`time cap ${capMs / 1000} s`), capMs);
    const results = await Promise.all(peers.map((p) => p.call<TrainResult>('train', config)));
    record.stoppedBy ??= `ran all ${config.steps} steps`;
    record.results = results.map(({ weights: _w, spec: _s, ...r }) => r);
    record.backends = results.map((r) => r.backend);
    record.checksumsAgree = new Set(results.map((r) => r.checksum)).size === 1;
    record.bestAccuracy = Math.max(record.bestAccuracy ?? 0, ...results.map((r) => round(r.accuracy, 4)));
    // Steady ms/step: the steps after the first tenth (shader compilation and data upload are in the first ones).
    stepsAt = stepsAt.slice(Math.floor(stepsAt.length / 10));
    const [first, last] = [stepsAt[0], stepsAt[stepsAt.length - 1]];
    record.msPerStep = first && last && last.step > first.step ? round((last.t - first.t) / (last.step - first.step)) : null;
    writeJson(file, record);
    console.log(
      `ring: ${record.reachedTarget ? `reached ${TARGET_ACCURACY} in ${record.timeToTargetS} s` : `best ${record.bestAccuracy} (target ${TARGET_ACCURACY} not reached: ${record.stoppedBy})`}, backends ${record.backends.join(',')}`,
    );
  } finally {
    clearTimeout(cap);
    await Promise.all(peers.map((p) => p.kill()));
    await server.close();
  }
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | null => (typeof v === 'object' && v !== null ? (v as Json) : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const ratio = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? round(a / b, 4) : null);

function reportPhase(work: string, outFile: string): void {
  const adapter = readJson(path.join(work, 'adapter.json'));
  const micro = readJson(path.join(work, 'micro.json'));
  const matmul = readJson(path.join(work, 'matmul.json'));
  const ring = readJson(path.join(work, 'ring.json'));
  const torch = readJson(path.join(work, 'torch.json'));
  const phases: Record<string, string> = {};
  const statusDir = path.join(work, 'status');
  if (existsSync(statusDir)) for (const f of readdirSync(statusDir)) phases[f] = readFileSync(path.join(statusDir, f), 'utf8').trim();
  const env = readJson(path.join(work, 'env.json'));

  const ms = (backend: string, model: string, batch: string): number | null =>
    num(obj(obj(obj(obj(micro?.['backends'])?.[backend])?.[model])?.[batch])?.['msPerStep']);
  const torchMs = (model: string, batch: string): number | null => num(obj(obj(obj(torch?.['steps'])?.[model])?.[batch])?.['msPerStep']);
  const steps: Json = {};
  for (const model of Object.keys(SPECS))
    for (const batch of BATCHES.map(String)) {
      const w = ms('webgpu', model, batch);
      steps[`${model}@${batch}`] = {
        msPerStep: { webgpu: w, wasm: ms('wasm', model, batch), cpu: ms('cpu', model, batch), torch: torchMs(model, batch) },
        ratios: {
          'webgpu/torch': ratio(w, torchMs(model, batch)),
          'webgpu/wasm': ratio(w, ms('wasm', model, batch)),
          'webgpu/cpu': ratio(w, ms('cpu', model, batch)),
        },
      };
    }
  const matmuls: Json = {};
  for (const n of new Set([...MATMUL_SIZES.map(String), ...Object.keys(obj(matmul?.['sizes']) ?? {})])) {
    const w = num(obj(obj(matmul?.['sizes'])?.[n])?.['gflops']);
    const t = num(obj(obj(torch?.['matmul'])?.[n])?.['gflops']);
    matmuls[n] = { gflops: { webgpu: w, torch: t }, ratios: { 'webgpu/torch': ratio(w, t) } };
  }
  const report = {
    kit: 'ringtrain gpu kit',
    when: new Date().toISOString(),
    quick: QUICK,
    env,
    phases,
    adapter,
    ratioNote:
      'ms/step ratios are webgpu ms over the other ms (below 1: webgpu is faster); matmul ratios are webgpu GFLOP/s over torch GFLOP/s (below 1: webgpu is slower)',
    summary: {
      steps,
      matmul: matmuls,
      ring: ring
        ? {
            reachedTarget: ring['reachedTarget'],
            timeToTargetS: ring['timeToTargetS'],
            bestAccuracy: ring['bestAccuracy'],
            torch: torch?.['ring'] ?? null,
          }
        : null,
    },
    micro,
    matmul,
    ring,
    torch,
  };
  writeJson(outFile, report);

  const a = obj(adapter?.['adapter']);
  const lines = [
    `adapter: ${a ? `${String(a['vendor'])} / ${String(a['architecture'])} / ${String(a['description'])}` : 'none'} (${String(adapter?.['why'] ?? 'no adapter phase')})`,
    `phases: ${Object.entries(phases)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
    'ms/step              webgpu      wasm       cpu     torch   gpu/torch  gpu/wasm  gpu/cpu',
  ];
  const cell = (v: unknown): string => (typeof v === 'number' ? String(v) : '-').padStart(9);
  for (const [k, v] of Object.entries(steps)) {
    const m = obj(obj(v)?.['msPerStep']);
    const r = obj(obj(v)?.['ratios']);
    lines.push(
      `${k.padEnd(16)} ${[m?.['webgpu'], m?.['wasm'], m?.['cpu'], m?.['torch'], r?.['webgpu/torch'], r?.['webgpu/wasm'], r?.['webgpu/cpu']].map(cell).join(' ')}`,
    );
  }
  for (const [n, v] of Object.entries(matmuls)) {
    const g = obj(obj(v)?.['gflops']);
    lines.push(`matmul ${n.padEnd(5)} GFLOP/s webgpu ${cell(g?.['webgpu'])} torch ${cell(g?.['torch'])}`);
  }
  if (ring)
    lines.push(
      `ring (4 peers, ${String(obj(ring['config'])?.['model'])}): ${ring['reachedTarget'] ? `${TARGET_ACCURACY} in ${String(ring['timeToTargetS'])} s` : `best ${String(ring['bestAccuracy'])}, target not reached (${String(ring['stoppedBy'])})`}`,
    );
  if (torch && torch['available'] === false) lines.push(`torch: ${String(torch['reason'])}`);
  console.log(`\n${lines.join('\n')}\n\nwrote ${outFile}`);
}

const [phase, work, extra] = process.argv.slice(2);
if (!phase || !work) {
  console.error('usage: bench.mjs adapter|micro|matmul|ring|report <work dir> [data root | out file]');
  process.exit(2);
}
mkdirSync(work, { recursive: true });
if (phase === 'adapter') process.exitCode = await adapterPhase(work);
else if (phase === 'micro') await microPhase(work);
else if (phase === 'matmul') await matmulPhase(work);
else if (phase === 'ring') await ringPhase(work, extra ?? HERE);
else if (phase === 'report') reportPhase(work, extra ?? path.join(work, 'gpu.json'));
else {
  console.error(`unknown phase ${phase}`);
  process.exit(2);
}
// Dawn's device and the wasm runtime keep handles open: end the phase when its work is done.
process.exit(process.exitCode ?? 0);
