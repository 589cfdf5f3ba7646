/**
 * Benchmarks: `npm run bench -- <scenario> [options]`. Each scenario prints a table and writes
 * bench/results/<scenario>.json (or `<--out DIR>/<scenario>.json`).
 *
 *   allreduce  [--runtime browser[,node]] [--peers 4[,8,16,32]] [--max-tabs 4] [--max-mesh 16] [--sizes 65536,1048576,4194304,16777216] [--reps 3]
 *              (rows per runtime side by side, the two-level allreduce between Node peers, and the fitted per-hop latency α and per-link rate 1/β)
 *   train      [--peers 1,2,4] [--backends cpu,wasm,webgl,webgpu] [--models softmax[,mlp]] [--steps 40]
 *              [--warmup 5] [--batch 128] [--lr 0.005] [--eval-every 10] [--target 0.7]
 *   accuracy   [--runtime node|browser] [--peers 4] [--models softmax,mlp,cnn,linear-svm,rff-svm] [--set lr=0.001,epochs=10,...]
 *              [--rff-features 2000] [--gamma 0.02] [--max-minutes M]   (the dashboard's default run of each model, with the
 *              form fields --set changes; test accuracy after each evaluation, time to the model's target; rows not re-run are kept)
 *   faults     [--faults 10] [--every 10] [--seed 1]
 *   soak       [--minutes 60] [--peers 4] [--model mlp] [--cut-every S]   (one long run, sampled every minute; also soak.svg)
 *   stragglers [--peers 4] [--steps 80] [--slowdown 10]   (Node peers; one slowed: sync SGD and DiLoCo, with and without balance)
 *   lm         [--backends cpu,wasm,webgl,webgpu] [--models ringtrain,gpt-nano] [--steps 6] [--budget-steps 60 | 0] [--budget-batch 16] [--peers 1,4]
 *              (the transformer on Moby-Dick: ms per token per backend at batch 8, context 128, after 2 warm-up steps, against DISCO's gpt-nano; then a
 *              budget of tokens with 1 and 4 Node peers: bits per character reached and wall time)
 *   chaos      [--seeds 1-2000]   (the chaos harness of npm test over more seeds; Node, no browser)
 *   compression [--peers 4] [--steps 150] [--codecs none,auto,fp16,int8,powersgd-r1,powersgd-r2,powersgd-r4,randomk-1%]
 *   robust     [--peers 4] [--steps 150]   (sum, median, trimmed mean, secure aggregation; honest, then with a byzantine tab; state agreement's cost)
 *   wan        [--peers 4] [--steps 60] [--profiles lan,home,far] [--models cnn[,mlp]] [--codecs ...]   (root: network namespaces)
 *              [--diloco 10,50,100 | --diloco ''] [--deltas fp16,int8]   (DiLoCo rows: H, and the codec of its deltas; against per-step sync)
 *   server     [--peers 500] [--room-size 10] [--hold-ms 5000] [--flood-peers 200]   (simulated peers, no browser; then
 *              --flood-peers honest joins with and without a reconnecting flooder, default limits; 0 skips that row)
 *   svm-trees  [--runtime browser|node] [--peers 1,4] [--models linear-svm,rff-svm,tree,gbdt] [--steps 1000] [--depth 8[,12]] [--rounds 10]
 *              [--gbdt-depth 4] [--bins 32] [--rff-features 2000] [--gamma 0.02] [--set colSample=0.5,...]   (rows not re-run are kept)
 *   conv       [--steps 5] [--batch 128]   (ms per CNN gradient step on wasm with RingTrain's conv gradients, with tfjs's own, and on
 *              cpu, for the CNN's layouts: the old default conv 8/16, conv 16/32 + dense 128, the default conv 32/64 + dense 128)
 *   simulate   [--validate 4,8,16 | --no-validate] [--reps 2] [--steps 20] [--warmup 5] [--batch 128] [--backend cpu] [--cores 2]
 *              [--quiet-wait 300] [--peers 4,8,...,1024] [--profiles lan,home,far] [--backend-to wasm] [--local-batch 32]
 *              [--diloco-h 50] [--diloco-codec fp16|int8] [--device-sigma 0.5] [--jitter-sigma 0.1] [--session-min 60]
 *              [--crash-per-hour 0.1] [--recovery-ms (faults.json)] [--hours 2] [--seed 1]
 *              (a discrete-event model of ring vs two-level allreduce × per-step sync vs DiLoCo under churn, calibrated
 *              by one-peer Node runs and checked against real runs of --validate N Node peers on this machine (predicted vs
 *              measured ms/step); then goodput for N volunteers per profile: simulate.json and simulate.svg. --no-validate
 *              (or --validate '') keeps the calibration and validation runs of the last simulate.json; see bench/simulate.ts)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BACKEND_NAMES, type BackendName } from '../src/ml/backend.ts';
import type { ModelKind } from '../src/ml/models.ts';
import { ALLREDUCE_HEADER, type AllreduceRow, benchAllreduce, fitRing, type PeerRuntime, type RingFit } from './allreduce.ts';
import { benchChaos } from './chaos.ts';
import { benchConv, CONV_LAYOUTS } from './conv.ts';
import { benchFaults } from './faults.ts';
import { benchAgreement } from './agreement.ts';
import { benchCompression, benchRobust, CODEC_NAMES } from './compression.ts';
import { benchServer, benchServerFlood } from './server.ts';
import { benchSoak } from './soak.ts';
import { benchStragglers } from './stragglers.ts';
import { benchLm, LM_SHAPES, type LmShape } from './lm.ts';
import { WAN_PROFILES, type WanProfileName } from '../src/harness/netns.ts';
import { benchWan, mergeWanRows, WAN_MODELS, type WanRow } from './wan.ts';
import { benchSvmTrees, GBDT_PARAMS, type GbdtParams, mergeRows, SVM_TREE_MODELS, type SvmTreeRow } from './svm-trees.ts';
import { benchSimulate } from './simulate.ts';
import { benchTrain, TRAIN_HEADER } from './train.ts';
import { ACCURACY_HEADER, ACCURACY_MODELS, type AccuracyRow, benchAccuracy, gbdtRow } from './accuracy.ts';

const list = (s: string, name: string): number[] =>
  s.split(',').map((x) => {
    const v = Number(x);
    if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name}: "${x}" is not a positive integer`);
    return v;
  });

const MODELS: readonly ModelKind[] = ['softmax', 'mlp', 'cnn'];

function names<T extends string>(s: string, name: string, allowed: readonly T[]): T[] {
  return s.split(',').map((x) => {
    if (!(allowed as readonly string[]).includes(x)) throw new Error(`--${name}: "${x}" is not one of ${allowed.join(', ')}`);
    return x as T;
  });
}

function positive(s: string, name: string): number {
  const v = Number(s);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name}: "${s}" is not a positive number`);
  return v;
}

const SCENARIOS = [
  'allreduce',
  'train',
  'accuracy',
  'faults',
  'soak',
  'chaos',
  'svm-trees',
  'server',
  'compression',
  'robust',
  'wan',
  'stragglers',
  'lm',
  'simulate',
  'conv',
];

/** A number ≥ 0 (`--name`). */
function nonNegative(s: string, name: string): number {
  const v = Number(s);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name}: "${s}" is not a non-negative number`);
  return v;
}

/** `--set field=value,field2=value2` as fields. */
function setFields(s: string): Record<string, string> {
  return Object.fromEntries(
    s
      .split(',')
      .filter(Boolean)
      .map((kv) => {
        const [k, v] = kv.split('=');
        if (!k || v === undefined) throw new Error(`--set: "${kv}" is not field=value`);
        return [k, v];
      }),
  );
}

/** svm-trees: the boosting parameters `--set` gives (the trainer's defaults for the others). */
function gbdtParams(fields: Record<string, string>): GbdtParams {
  return Object.fromEntries(
    Object.entries(fields).map(([k, v]) => {
      if (!(GBDT_PARAMS as readonly string[]).includes(k)) throw new Error(`--set: "${k}" is not one of ${GBDT_PARAMS.join(', ')}`);
      return [k, nonNegative(v, `set ${k}`)];
    }),
  );
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      peers: { type: 'string' },
      runtime: { type: 'string' },
      diloco: { type: 'string' },
      slowdown: { type: 'string', default: '10' },
      deltas: { type: 'string' },
      'budget-steps': { type: 'string' },
      'budget-batch': { type: 'string' },
      'max-tabs': { type: 'string', default: '4' },
      'max-mesh': { type: 'string', default: '16' },
      sizes: { type: 'string', default: '65536,1048576,4194304,16777216' },
      reps: { type: 'string' },
      backends: { type: 'string', default: 'cpu,wasm,webgl,webgpu' },
      models: { type: 'string' },
      steps: { type: 'string' },
      epochs: { type: 'string', default: '2' },
      warmup: { type: 'string', default: '5' },
      batch: { type: 'string', default: '128' },
      lr: { type: 'string', default: '0.005' },
      'eval-every': { type: 'string', default: '10' },
      target: { type: 'string', default: '0.7' },
      faults: { type: 'string', default: '10' },
      every: { type: 'string', default: '10' },
      seed: { type: 'string', default: '1' },
      depth: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '10' },
      'gbdt-depth': { type: 'string', default: '4' },
      bins: { type: 'string', default: '32' },
      'rff-features': { type: 'string', default: '2000' },
      'room-size': { type: 'string', default: '10' },
      codecs: { type: 'string' },
      profiles: { type: 'string', default: 'lan,home,far' },
      'hold-ms': { type: 'string', default: '5000' },
      'flood-peers': { type: 'string', default: '200' },
      gamma: { type: 'string', default: '0.02' },
      out: { type: 'string' },
      seeds: { type: 'string', default: '1-2000' },
      minutes: { type: 'string', default: '60' },
      model: { type: 'string', default: 'mlp' },
      'cut-every': { type: 'string' },
      validate: { type: 'string', default: '4,8,16' },
      'no-validate': { type: 'boolean', default: false },
      backend: { type: 'string', default: 'cpu' },
      cores: { type: 'string' },
      'quiet-wait': { type: 'string', default: '300' },
      'backend-to': { type: 'string', default: 'wasm' },
      'local-batch': { type: 'string', default: '32' },
      'diloco-h': { type: 'string', default: '50' },
      'diloco-codec': { type: 'string', default: 'fp16' },
      'device-sigma': { type: 'string', default: '0.5' },
      'jitter-sigma': { type: 'string', default: '0.1' },
      'session-min': { type: 'string', default: '60' },
      'crash-per-hour': { type: 'string', default: '0.1' },
      'recovery-ms': { type: 'string' },
      hours: { type: 'string', default: '2' },
      set: { type: 'string', default: '' },
      'max-minutes': { type: 'string' },
    },
  });
  const scenario = positionals[0] ?? 'allreduce';
  // --out: somewhere else than the committed figures (e.g. a quick run with small options).
  const outDir = path.resolve(values.out ?? path.join(import.meta.dirname, 'results'));
  mkdirSync(outDir, { recursive: true });
  if (!SCENARIOS.includes(scenario)) throw new Error(`unknown scenario "${scenario}"; available: ${SCENARIOS.join(', ')}`);
  const log = (s: string): void => console.log(s);
  const file = path.join(outDir, `${scenario}.json`);
  const save = (rows: unknown[]): void => writeFileSync(file, `${JSON.stringify(rows, null, 2)}\n`);
  let rows: unknown[];
  if (scenario === 'faults') {
    const o = { faults: list(values.faults, 'faults')[0]!, every: list(values.every, 'every')[0]!, seed: Number(values.seed) };
    console.log(`faults benchmark: 4 peers, softmax on fashion-mnist, ${o.faults} faults one every ${o.every} steps (seed ${o.seed})`);
    const r = await benchFaults(o, log);
    writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
    console.log(JSON.stringify(r.summary, null, 2));
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
    return;
  }
  if (scenario === 'soak') {
    const o = {
      minutes: positive(values.minutes, 'minutes'),
      peers: list(values.peers ?? '4', 'peers')[0]!,
      model: names(values.model, 'model', MODELS)[0]!,
      ...(values['cut-every'] ? { cutEveryMs: 1000 * positive(values['cut-every'], 'cut-every') } : {}),
      log,
    };
    console.log(
      `soak benchmark: ${o.peers} tabs train ${o.model} on fashion-mnist for ${o.minutes} min, sampled every minute${o.cutEveryMs ? `, a ring link cut every ${o.cutEveryMs / 1000} s` : ''}`,
    );
    const svg = path.join(outDir, 'soak.svg');
    const summary = await benchSoak(o, file, svg);
    console.log(JSON.stringify(summary, null, 2));
    console.log(`wrote ${path.relative(process.cwd(), file)} and ${path.relative(process.cwd(), svg)}`);
    if (summary.failed_runs > 0) process.exitCode = 1;
    return;
  }
  if (scenario === 'stragglers') {
    const o = {
      peers: list(values.peers ?? '4', 'peers')[0]!,
      steps: list(values.steps ?? '80', 'steps')[0]!,
      slowdown: positive(values.slowdown, 'slowdown'),
    };
    console.log(
      `stragglers benchmark: ${o.peers} Node peers, MLP on served fashion-mnist, ${o.steps} steps; the last peer computes ${o.slowdown}x slower`,
    );
    rows = await benchStragglers(o, log);
    save(rows);
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
    return;
  }
  if (scenario === 'conv') {
    const o = { layouts: CONV_LAYOUTS, batch: list(values.batch, 'batch')[0]!, steps: list(values.steps ?? '5', 'steps')[0]! };
    console.log(`conv benchmark: ms per CNN gradient step of ${o.batch} images (median of ${o.steps} after 2 warm-up), wasm and cpu`);
    rows = await benchConv(o, log);
    save(rows);
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
    return;
  }
  if (scenario === 'lm') {
    const o = {
      backends: names(values.backends, 'backends', BACKEND_NAMES),
      shapes: names(values.models ?? Object.keys(LM_SHAPES).join(','), 'models', Object.keys(LM_SHAPES) as LmShape[]),
      steps: list(values.steps ?? '6', 'steps')[0]!,
      warmup: 2,
      budgetSteps: nonNegative(values['budget-steps'] ?? '60', 'budget-steps'),
      budgetBatch: list(values['budget-batch'] ?? '16', 'budget-batch')[0]!,
      peers: list(values.peers ?? '1,4', 'peers'),
    };
    console.log(
      `language model benchmark: ${o.backends.join(', ')} x ${o.shapes.join(', ')}, ${o.steps} steps (${o.warmup} warm-up) at batch 8, context 128; then ${o.budgetSteps} steps of ${o.budgetBatch} windows with ${o.peers.join(' and ')} Node peers`,
    );
    const r = await benchLm(o, log);
    writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
    return;
  }
  if (scenario === 'simulate') {
    const o = {
      validate: values['no-validate'] || values.validate === '' ? [] : list(values.validate, 'validate'),
      reps: list(values.reps ?? '2', 'reps')[0]!,
      steps: list(values.steps ?? '20', 'steps')[0]!,
      warmup: nonNegative(values.warmup, 'warmup'),
      batch: list(values.batch, 'batch')[0]!,
      backend: names(values.backend, 'backend', ['cpu', 'wasm'])[0]!,
      cores: list(values.cores ?? String(availableParallelism()), 'cores')[0]!,
      quietWaitS: nonNegative(values['quiet-wait'], 'quiet-wait'),
      peers: list(values.peers ?? '4,8,16,32,64,128,256,512,1024', 'peers'),
      profiles: names(values.profiles, 'profiles', Object.keys(WAN_PROFILES) as WanProfileName[]),
      backendTo: names<BackendName>(values['backend-to'], 'backend-to', BACKEND_NAMES)[0]!,
      localBatch: list(values['local-batch'], 'local-batch')[0]!,
      dilocoH: list(values['diloco-h'], 'diloco-h')[0]!,
      dilocoCodec: names(values['diloco-codec'], 'diloco-codec', ['fp16', 'int8'] as const)[0]!,
      deviceSigma: nonNegative(values['device-sigma'], 'device-sigma'),
      jitterSigma: nonNegative(values['jitter-sigma'], 'jitter-sigma'),
      sessionMin: positive(values['session-min'], 'session-min'),
      crashPerHour: nonNegative(values['crash-per-hour'], 'crash-per-hour'),
      ...(values['recovery-ms'] ? { recoveryMs: nonNegative(values['recovery-ms'], 'recovery-ms') } : {}),
      hours: positive(values.hours, 'hours'),
      seed: Number(values.seed),
    };
    console.log(
      `simulate: ${o.validate.length ? `calibration (1 Node peer) and validation runs (${o.validate.join(', ')} Node peers on ${o.cores} cores), then ` : ''}` +
        `projection for N = ${o.peers.join(', ')} on ${o.profiles.join(', ')}`,
    );
    const r = await benchSimulate(o, outDir, log);
    console.log(`wrote ${path.relative(process.cwd(), file)} and ${path.relative(process.cwd(), path.join(outDir, 'simulate.svg'))}`);
    if (r.validation.some((v) => !v.within_20pct)) process.exitCode = 1;
    return;
  }
  if (scenario === 'chaos') {
    const m = /^(\d+)-(\d+)$/.exec(values.seeds);
    if (!m || Number(m[1]) > Number(m[2])) throw new Error(`--seeds: "${values.seeds}" is not a range like 1-2000`);
    const seeds = Array.from({ length: Number(m[2]) - Number(m[1]) + 1 }, (_, i) => Number(m[1]) + i);
    console.log(`chaos benchmark: schedules ${values.seeds} against the training loop on the in-memory ring`);
    const r = await benchChaos(seeds, log);
    writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
    console.log(JSON.stringify(r.summary, null, 2));
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
    return;
  }
  if (scenario === 'compression') {
    const o = {
      peers: list(values.peers ?? '4', 'peers')[0]!,
      steps: list(values.steps ?? '150', 'steps')[0]!,
      codecs: names(values.codecs ?? CODEC_NAMES.join(','), 'codecs', CODEC_NAMES),
    };
    console.log(
      `compression benchmark: ${o.peers} tabs, MLP on fashion-mnist, ${o.steps} steps per codec (${o.codecs.join(', ')}), loopback links`,
    );
    rows = await benchCompression(o, log);
    save(rows);
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
    return;
  }
  if (scenario === 'wan') {
    const o = {
      peers: list(values.peers ?? '4', 'peers')[0]!,
      steps: list(values.steps ?? '60', 'steps')[0]!,
      profiles: names(values.profiles, 'profiles', Object.keys(WAN_PROFILES) as WanProfileName[]),
      models: names(values.models ?? 'cnn', 'models', WAN_MODELS),
      codecs: names(values.codecs ?? CODEC_NAMES.join(','), 'codecs', CODEC_NAMES),
      diloco: values.diloco === '' ? [] : list(values.diloco ?? '10,50,100', 'diloco'),
      deltas: names(values.deltas ?? 'fp16,int8', 'deltas', CODEC_NAMES),
    };
    console.log(
      `wan benchmark: ${o.peers} peers (one Chromium per network namespace), ${o.models.join(', ')} on fashion-mnist, ${o.steps} steps per codec; profiles ${o.profiles.join(', ')}`,
    );
    // Rows not measured again are kept (a run of some profiles, models or variants adds to the rest).
    const earlier: WanRow[] = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : [];
    const keep = (fresh: WanRow[]): void => save(mergeWanRows(earlier, fresh));
    keep(await benchWan(o, log, keep));
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
    return;
  }
  if (scenario === 'robust') {
    const o = { peers: list(values.peers ?? '4', 'peers')[0]!, steps: list(values.steps ?? '150', 'steps')[0]! };
    console.log(
      `robust aggregation benchmark: ${o.peers} tabs, MLP on fashion-mnist, ${o.steps} steps per variant, loopback links; the byzantine tab sends its gradient x -100`,
    );
    rows = [...(await benchRobust(o, log)), await benchAgreement({ peers: o.peers }, log)];
    save(rows);
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
    return;
  }
  if (scenario === 'server') {
    const o = {
      peers: list(values.peers ?? '500', 'peers')[0]!,
      roomSize: list(values['room-size'], 'room-size')[0]!,
      holdMs: list(values['hold-ms'], 'hold-ms')[0]!,
    };
    console.log(
      `server benchmark: ${o.peers} simulated peers in rooms of ${o.roomSize}, joining in waves, holding ${o.holdMs} ms, leaving in waves`,
    );
    const r = await benchServer(o, log);
    const floodPeers = Number(values['flood-peers']);
    if (!Number.isInteger(floodPeers) || floodPeers < 0)
      throw new Error(`--flood-peers: "${values['flood-peers']}" is not a non-negative integer`);
    let flood;
    if (floodPeers > 0) {
      console.log(
        `flood row: ${floodPeers} honest peers (one address each) join without, then with, a reconnecting flooder from one address; default per-address limits`,
      );
      flood = await benchServerFlood({ peers: floodPeers, roomSize: o.roomSize }, log);
    }
    writeFileSync(file, `${JSON.stringify({ ...r, ...(flood ? { flood } : {}) }, null, 2)}\n`);
    console.log(JSON.stringify({ ...r, ...(flood ? { flood } : {}) }, null, 2));
    if (flood) {
      const [w, c, f] = [flood.with_flooder, flood.without_flooder, flood.flooder];
      console.log(
        `flood: join p50/p99 ${w.p50_ms}/${w.p99_ms} ms with the flooder, ${c.p50_ms}/${c.p99_ms} ms without (p99 x${flood.p99_ratio}); ` +
          `${w.failed} failed, ${flood.honest_disturbed} disturbed; flooder ${f.msgs_per_s} msgs/s, ${f.conns_per_s} connections/s, ` +
          `${f.refused} refused, ${f.cut_off} cut off: ${flood.pass ? 'PASS' : 'FAIL'} (p99 < ${flood.target_p99_ms} ms)`,
      );
    }
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
    if (!r.consistent || (flood && !flood.pass)) process.exitCode = 1;
    return;
  }
  if (scenario === 'svm-trees') {
    const o = {
      peers: list(values.peers ?? '1,4', 'peers'),
      models: names(values.models ?? SVM_TREE_MODELS.join(','), 'models', SVM_TREE_MODELS),
      svmSteps: list(values.steps ?? '1000', 'steps')[0]!,
      treeDepths: list(values.depth, 'depth'),
      rounds: list(values.rounds, 'rounds')[0]!,
      gbdtDepth: list(values['gbdt-depth'], 'gbdt-depth')[0]!,
      bins: list(values.bins, 'bins')[0]!,
      rffFeatures: list(values['rff-features'], 'rff-features')[0]!,
      gamma: positive(values.gamma, 'gamma'),
      runtime: names<PeerRuntime>(values.runtime ?? 'browser', 'runtime', ['browser', 'node'])[0]!,
      gbdt: gbdtParams(setFields(values.set)),
    };
    console.log(`svm-trees benchmark on fashion-mnist: ${JSON.stringify(o)}`);
    const earlier = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as SvmTreeRow[]) : [];
    rows = await benchSvmTrees(o, log, (fresh) => save(mergeRows(earlier, fresh)), earlier);
    save(mergeRows(earlier, rows as SvmTreeRow[]));
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
    return;
  }
  if (scenario === 'allreduce') {
    const peers = list(values.peers ?? '4', 'peers');
    const sizes = list(values.sizes, 'sizes');
    for (const s of sizes) if (s % 4) throw new Error(`--sizes: ${s} is not a multiple of 4 bytes (float32)`);
    const runtimes = names<PeerRuntime>(values.runtime ?? 'browser', 'runtime', ['browser', 'node']);
    console.log(
      `allreduce benchmark: ${runtimes.join(' and ')} peers ${peers.join(',')}, sizes ${sizes.join(',')} B, median of ${values.reps ?? '3'}`,
    );
    console.log(ALLREDUCE_HEADER);
    const maxTabs = list(values['max-tabs'], 'max-tabs')[0]!;
    const maxMesh = list(values['max-mesh'], 'max-mesh')[0]!;
    // Rows of other (runtime, peers, size) from an earlier run stay: a long run can be made in parts.
    const key = (r: AllreduceRow): string => `${r.runtime}/${r.peers}/${r.bytes}`;
    const earlier = existsSync(file) ? ((JSON.parse(readFileSync(file, 'utf8')) as { rows?: AllreduceRow[] }).rows ?? []) : [];
    let all = earlier;
    const store = (): RingFit[] => {
      const fits = (['browser', 'node'] as const).flatMap((r) => fitRing(all, r) ?? []);
      writeFileSync(file, `${JSON.stringify({ rows: all, fits }, null, 2)}\n`);
      return fits;
    };
    await benchAllreduce({ peers, sizes, reps: list(values.reps ?? '3', 'reps')[0]!, runtimes, maxTabs, maxMesh }, log, (row) => {
      all = [...all.filter((r) => key(r) !== key(row)), row].sort(
        (a, b) => a.runtime.localeCompare(b.runtime) || a.peers - b.peers || a.bytes - b.bytes,
      );
      store();
    });
    for (const f of store())
      console.log(
        `${f.runtime}: fitted T = 2(N-1)(α + M/N / β): α ${f.alpha_ms} ms per hop, β ${f.beta_mb_per_s} MB/s per link (R² ${f.r2}, ${f.rows} rows)`,
      );
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
    return;
  } else if (scenario === 'train') {
    const o = {
      peers: list(values.peers ?? '1,2,4', 'peers'),
      backends: names<BackendName>(values.backends, 'backends', BACKEND_NAMES),
      models: names(values.models ?? 'softmax', 'models', MODELS),
      steps: list(values.steps ?? '40', 'steps')[0]!,
      warmup: Number(values.warmup),
      batch: list(values.batch, 'batch')[0]!,
      lr: positive(values.lr, 'lr'),
      evalEvery: list(values['eval-every'], 'eval-every')[0]!,
      target: positive(values.target, 'target'),
    };
    if (!Number.isInteger(o.warmup) || o.warmup < 0) throw new Error(`--warmup: "${values.warmup}" is not a non-negative integer`);
    console.log(
      `train benchmark: sync SGD on fashion-mnist (IID), global batch ${o.batch}, adam lr ${o.lr}, ${o.steps} steps (medians after ${o.warmup}), ` +
        `eval every ${o.evalEvery}, target ${o.target}; backends ${o.backends.join(',')}, peers ${o.peers.join(',')}, models ${o.models.join(',')}`,
    );
    console.log(TRAIN_HEADER);
    rows = await benchTrain(o, log, save);
  } else {
    const o = {
      peers: list(values.peers ?? '4', 'peers')[0]!,
      runtime: names<PeerRuntime>(values.runtime ?? 'node', 'runtime', ['browser', 'node'])[0]!,
      // --models '': none (the table's rows are only merged again, e.g. after svm-trees made the GBDT row).
      models: values.models === '' ? [] : names(values.models ?? ACCURACY_MODELS.join(','), 'models', ACCURACY_MODELS),
      fields: setFields(values.set),
      rff: { features: list(values['rff-features'], 'rff-features')[0]!, gamma: positive(values.gamma, 'gamma') },
      ...(values['max-minutes'] ? { maxMinutes: positive(values['max-minutes'], 'max-minutes') } : {}),
    };
    console.log(`accuracy benchmark on fashion-mnist: ${JSON.stringify(o)}`);
    console.log(ACCURACY_HEADER);
    // Models not run this time keep their earlier rows; the GBDT row comes from svm-trees.json.
    const trees = path.join(outDir, 'svm-trees.json');
    const gbdt = existsSync(trees) ? gbdtRow(JSON.parse(readFileSync(trees, 'utf8')) as SvmTreeRow[]) : [];
    const earlier = existsSync(file)
      ? (JSON.parse(readFileSync(file, 'utf8')) as AccuracyRow[]).filter((r) => !o.models.includes(r.model as AccuracyRow['model']))
      : [];
    const merged = (fresh: AccuracyRow[]): unknown[] => [
      ...ACCURACY_MODELS.flatMap((m) => [...earlier, ...fresh].filter((r) => r.model === m)),
      ...gbdt,
    ];
    rows = merged(await benchAccuracy(o, log, (fresh) => save(merged(fresh))));
  }
  save(rows);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`bench failed: ${(e as Error).message}`);
    process.exit(1);
  },
);
