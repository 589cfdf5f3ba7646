/**
 * `ringtrain`: train with N headless browser peers, serve the app, or lend this machine's
 * browsers to a room as volunteer peers.
 *
 * Exit codes: 0 done; 1 the run failed; 2 bad usage; 3 no browser; 130 interrupted (Ctrl-C: the
 * peers stop at the same step, the model so far is written, the last checkpoint stays on the server).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Page } from 'playwright-core';
import type { ModelFile } from '../runtime/model.ts';
import { runServer } from '../server/run.ts';
import { jobFromFields, MODEL_DEFAULTS, SETUP_DEFAULTS, SetupError } from '../training/job.ts';
import type { TrainResult } from '../training/trainer.ts';
import type { TreeResult } from '../training/trees.ts';
import type { RunningServer } from '../server/app.ts';
import { nodePeer, pagePeer, type DrivenPeer, type RunEvent } from '../harness/driven.ts';
import { NodePeer, startNodeCluster } from '../harness/node-peers.ts';
import { findChromium, launchBrowser, newPeerContext, openApp } from '../harness/browser.ts';
import { buildApp, startCluster, type Cluster } from '../harness/cluster.ts';
import { Progress } from './progress.ts';
import { CLI_DATASETS, PEER_USAGE, TRAIN_USAGE, USAGE } from './usage.ts';
import { DATASET_FACTORIES, trainSamples } from '../training/datasets.ts';
import { LOCAL_DATASET } from '../data/local.ts';
import type { DatasetName } from '../protocol/catalogs.ts';
import { listed } from '../protocol/registry.ts';
import { describePrivacy } from '../ui/status-panel.ts';

export const EXIT = { ok: 0, failed: 1, usage: 2, noBrowser: 3, interrupted: 130 } as const;

class UsageError extends Error {}

type Parsed = { values: Record<string, string | boolean | undefined>; positionals: string[] };

function parse(argv: string[], options: NonNullable<ParseArgsConfig['options']>, usage: string): Parsed {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true }) as Parsed;
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${usage}`);
  }
}

function writeModel(files: ModelFile[], dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  return files.map((f) => {
    const p = path.join(dir, f.name);
    writeFileSync(p, Buffer.from(f.base64, 'base64'));
    return p;
  });
}

/** A path relative to the working directory when it lies under it. */
const shown = (f: string): string => (path.relative(process.cwd(), f).startsWith('..') ? f : path.relative(process.cwd(), f));

/**
 * After a failed run: writes the model of the last committed step (from the first peer that kept
 * one) and says where the run's last checkpoint is.
 */
async function keepWhatFailed(run: Running, out: string): Promise<void> {
  for (const peer of run.peers) {
    const files = await peer.call<ModelFile[]>('exportFiles').catch(() => null);
    const meta = files?.find((f) => f.name.endsWith('.json'));
    if (!files || !meta) continue;
    const steps = (
      JSON.parse(Buffer.from(meta.base64, 'base64').toString()) as { userDefinedMetadata?: { ringtrain?: { steps?: number } } }
    ).userDefinedMetadata?.ringtrain?.steps;
    for (const f of writeModel(files, out))
      console.error(`ringtrain: wrote ${shown(f)}${steps !== undefined ? ` (the model at step ${steps}, the last one committed)` : ''}`);
    break;
  }
  const ck = await run.server.checkpoints.latestFile(run.room);
  console.error(
    ck ? `ringtrain: the run's last checkpoint (step ${ck.step}) is ${shown(ck.path)}` : 'ringtrain: the run stored no checkpoint',
  );
}

/** The server and the peers of a `ringtrain train` run, tabs or Node processes alike. */
interface Running {
  server: RunningServer;
  room: string;
  peers: DrivenPeer[];
  close(): Promise<void>;
}

async function startPeers(runtime: string, peers: number, backend: string | undefined): Promise<Running> {
  if (runtime === 'node') {
    const c = await startNodeCluster({ peers, ...(backend ? { backend } : {}) });
    return { server: c.server, room: c.room, peers: c.peers.map(nodePeer), close: c.close };
  }
  await findChromium();
  const c: Cluster = await startCluster({ peers, build: 'if-stale', query: backend ? { backend } : {} });
  return { server: c.server, room: c.room, peers: c.pages.map(pagePeer), close: c.close };
}

/** The flag that sets a form field: the field's name in kebab case (localSteps: --local-steps). */
const flagOf = (field: string): string => field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

async function train(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      peers: { type: 'string', default: '2' },
      runtime: { type: 'string', default: 'browser' },
      dataset: { type: 'string' },
      model: { type: 'string' },
      epochs: { type: 'string' },
      algorithm: { type: 'string' },
      optimizer: { type: 'string' },
      lr: { type: 'string' },
      batch: { type: 'string' },
      partition: { type: 'string' },
      alpha: { type: 'string' },
      depth: { type: 'string' },
      rounds: { type: 'string' },
      bins: { type: 'string' },
      'col-sample': { type: 'string' },
      compression: { type: 'string' },
      aggregation: { type: 'string' },
      schedule: { type: 'string' },
      'warmup-steps': { type: 'string' },
      'weight-decay': { type: 'string' },
      'clip-norm': { type: 'string' },
      'label-smoothing': { type: 'string' },
      augment: { type: 'string' },
      lambda: { type: 'string' },
      'kernel-features': { type: 'string' },
      'kernel-gamma': { type: 'string' },
      'lm-layers': { type: 'string' },
      'lm-width': { type: 'string' },
      'lm-heads': { type: 'string' },
      'local-steps': { type: 'string' },
      'outer-lr': { type: 'string' },
      'outer-momentum': { type: 'string' },
      backend: { type: 'string' },
      out: { type: 'string', default: 'ringtrain-model' },
      help: { type: 'boolean', default: false },
    },
    TRAIN_USAGE,
  );
  if (values.help) {
    console.log(TRAIN_USAGE);
    return EXIT.ok;
  }
  const peers = Number(values.peers);
  if (!Number.isInteger(peers) || peers < 1 || peers > 32)
    throw new UsageError(`--peers: "${String(values.peers)}" must be a whole number from 1 to 32`);
  // Absent, the model's own (the transformer's text) or the form's default.
  const dataset =
    (values.dataset as string | undefined) ?? MODEL_DEFAULTS[String(values.model ?? '')]?.['dataset'] ?? SETUP_DEFAULTS['dataset']!;
  if (!(CLI_DATASETS as string[]).includes(dataset)) throw new UsageError(`--dataset: "${dataset}" is not ${listed(CLI_DATASETS)}`);
  const made = DATASET_FACTORIES[dataset as DatasetName];
  const synthetic = made.source === 'synthetic' ? made.input : null;
  if (values.backend !== undefined && !['webgpu', 'webgl', 'wasm', 'cpu'].includes(String(values.backend)))
    throw new UsageError(`--backend: "${String(values.backend)}" is not webgpu, webgl, wasm or cpu`);
  const fields: Record<string, string> = {};
  for (const k of Object.keys(SETUP_DEFAULTS)) {
    const v = values[flagOf(k) as keyof typeof values];
    if (typeof v === 'string') fields[k] = v;
  }
  // A synthetic set is loaded into every peer as its own data, less the held-out test share.
  fields['dataset'] = synthetic ? LOCAL_DATASET : dataset;
  let job;
  try {
    job = jobFromFields(fields, synthetic ? trainSamples(dataset) : undefined);
  } catch (e) {
    if (e instanceof SetupError) throw new UsageError(`--${flagOf(e.field)}: ${e.message.replace(/^\w+: /, '')}`);
    throw e;
  }
  const runtime = String(values.runtime);
  if (runtime !== 'browser' && runtime !== 'node') throw new UsageError(`--runtime: "${runtime}" is not browser or node`);
  if (runtime === 'node' && values.backend === 'webgl')
    throw new UsageError('--backend: Node peers have no webgl; use webgpu, wasm or cpu');
  console.log(
    runtime === 'node'
      ? `ringtrain: starting the server and ${peers} Node peer(s) ...`
      : `ringtrain: building the app if needed, starting the server and ${peers} headless peer(s) ...`,
  );
  const cluster = await startPeers(runtime, peers, values.backend === undefined ? undefined : String(values.backend));
  let interrupted = false;
  const onSigint = (): void => {
    if (interrupted) process.exit(EXIT.interrupted);
    interrupted = true;
    console.log('\nringtrain: stopping the peers at the next step (Ctrl-C again to quit at once) ...');
    for (const p of cluster.peers) void p.call('stop').catch(() => undefined);
  };
  process.on('SIGINT', onSigint);
  try {
    if (synthetic) await Promise.all(cluster.peers.map((p) => p.call('useData', synthetic)));
    const first = cluster.peers[0]!;
    const out = path.resolve(String(values.out));
    const progress = new Progress(process.stdout);
    const ticker = setInterval(() => progress.tick(), 1000);
    let faultAt = -1;
    let privacy = '';
    const onEvent = (e: RunEvent): void => {
      if (e.type === 'eval')
        progress.score(
          'rmse' in e && e.rmse !== undefined
            ? `rmse ${e.rmse.toPrecision(4)}`
            : 'bitsPerChar' in e && e.bitsPerChar !== undefined
              ? `${e.bitsPerChar.toFixed(3)} bits/char`
              : `accuracy ${e.accuracy.toFixed(4)}`,
        );
      else if (e.type === 'sample') progress.note(`ringtrain: step ${e.step}: ${JSON.stringify(e.prompt + e.text)}`);
      else if (e.type === 'step')
        progress.update(e.step, e.steps, 'step', `loss ${e.loss.toFixed(4)}, ${Math.round(e.samplesPerSec)} samples/s`);
      else if (e.type === 'round') progress.update(e.round, e.rounds, 'round');
      else if (e.type === 'privacy') privacy = describePrivacy(e);
      else if (e.type === 'fault') {
        faultAt = 'step' in e ? e.step : 0;
        progress.note(
          `ringtrain: fault${'step' in e ? ` after step ${e.step}` : ''} (view ${e.epoch}): ${e.reason}; the peers re-form the ring`,
        );
      } else if (e.type === 'sync' && faultAt >= 0) {
        faultAt = -1;
        progress.note(
          `ringtrain: recovered: ${e.size} peer(s) go on from ${'step' in e ? `step ${e.step}` : `round ${e.rounds}`} (view ${e.epoch})`,
        );
      }
    };
    console.log(
      `ringtrain: training ${job.config.model} on ${dataset} with ${peers} peer(s) in room ${cluster.room} (${cluster.server.url})`,
    );
    const started = performance.now();
    let results: (TrainResult | TreeResult)[];
    try {
      results = await Promise.all(cluster.peers.map((p, i) => p.run(job, i === 0 ? onEvent : undefined)));
    } catch (e) {
      progress.finish();
      console.error(`ringtrain: the run failed: ${(e as Error).message}`);
      await keepWhatFailed(cluster, out);
      return EXIT.failed;
    } finally {
      clearInterval(ticker);
    }
    progress.finish();
    const r = results[0]!;
    const checksums = new Set(results.map((x) => x.checksum));
    if (checksums.size !== 1) throw new Error(`the peers ended with different models (checksums ${[...checksums].join(', ')})`);
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    const stopped = 'stopped' in r && r.stopped;
    console.log(
      `ringtrain: ${stopped ? 'stopped' : 'done'} in ${secs} s; test accuracy ${(r.accuracy * 100).toFixed(2)}%${'rmse' in r && r.rmse !== undefined ? `, RMSE ${r.rmse.toPrecision(4)}` : ''}; model checksum ${r.checksum} on all ${peers} peers`,
    );
    if (privacy) console.log(`ringtrain: privacy: ${privacy}`);
    for (const f of writeModel(await first.call<ModelFile[]>('exportFiles'), out)) console.log(`ringtrain: wrote ${shown(f)}`);
    return interrupted ? EXIT.interrupted : EXIT.ok;
  } finally {
    process.off('SIGINT', onSigint);
    await cluster.close();
  }
}

async function peer(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      count: { type: 'string', default: '1' },
      node: { type: 'boolean', default: false },
      backend: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    PEER_USAGE,
  );
  if (values.help) {
    console.log(PEER_USAGE);
    return EXIT.ok;
  }
  const raw = positionals[0];
  if (!raw) throw new UsageError(`give the room's link\n\n${PEER_USAGE}`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`"${raw}" is not a URL; give the room's link, e.g. http://host:8080/?room=lab`);
  }
  const room = url.searchParams.get('room');
  if (!room) throw new UsageError(`${raw} names no room; the link needs ?room=<name>`);
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1 || count > 32)
    throw new UsageError(`--count: "${String(values.count)}" must be a whole number from 1 to 32`);
  if (values.node) return nodeVolunteers(url, room, count, values.backend === undefined ? undefined : String(values.backend));
  if (values.backend) url.searchParams.set('backend', String(values.backend));
  const browser = await launchBrowser();
  const ctx = await newPeerContext(browser, url.origin);
  const pages: Page[] = [];
  for (let i = 0; i < count; i++) {
    const p = await ctx.newPage();
    await openApp(p, url.toString(), () => window.ringtrain?.peerId() !== null);
    pages.push(p);
  }
  console.log(
    `ringtrain: ${count} volunteer peer(s) in room ${room} at ${url.origin}; they train every run started from a dashboard. Ctrl-C to leave.`,
  );
  const phases = new Map<number, string>();
  const done = new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  // A volunteer's browser that dies (crashed, or killed by PID) ends the command: say so.
  let onDisconnect = (): void => undefined;
  const died = new Promise<number>((resolve) => {
    onDisconnect = () => {
      console.error(
        'ringtrain: the volunteers\' browser has gone (crashed or killed); the room carries on without it. Run "ringtrain peer" again to rejoin.',
      );
      resolve(EXIT.failed);
    };
    browser.once('disconnected', onDisconnect);
  });
  const poll = setInterval(() => {
    pages.forEach(
      (p, i) =>
        void p
          .evaluate(() => ({
            phase: document.getElementById('phase')?.textContent ?? '',
            summary: document.getElementById('result-summary')?.textContent ?? '',
            error: document.getElementById('setup-error')?.textContent ?? '',
          }))
          .then(({ phase, summary, error }) => {
            if (phases.get(i) === phase) return;
            phases.set(i, phase);
            // A finished run says what it reached (the checksum is the same on every peer).
            const detail = phase === 'done' || phase === 'stopped' ? `: ${summary}` : phase === 'failed' ? `: ${error}` : '';
            console.log(`peer ${i}: ${phase}${detail}`);
          })
          .catch(() => undefined),
    );
  }, 2000);
  const code = await Promise.race([done.then(() => EXIT.interrupted), died]);
  clearInterval(poll);
  if (code !== EXIT.interrupted) return code;
  // Leaving on Ctrl-C closes the browser: that is not a death to report.
  browser.off('disconnected', onDisconnect);
  console.log('\nringtrain: leaving the room ...');
  await Promise.all(pages.map((p) => p.evaluate(() => window.ringtrain.leave()).catch(() => undefined)));
  await browser.close();
  return EXIT.interrupted;
}

/**
 * `ringtrain peer --node`: K Node peer processes in the room, each training every run the room
 * starts, until Ctrl-C. A peer that dies (killed, crashed) is reported; the room goes on without it.
 */
async function nodeVolunteers(url: URL, room: string, count: number, backend: string | undefined): Promise<number> {
  if (backend === 'webgl') throw new UsageError('--backend: Node peers have no webgl; use webgpu, wasm or cpu');
  const peers = await Promise.all(
    Array.from({ length: count }, () => NodePeer.start({ link: url.toString(), ...(backend ? { backend } : {}), stdio: 'ignore' })),
  );
  const alive = new Set(peers);
  let leaving = false;
  const gone = new Promise<void>((resolve) => {
    peers.forEach((p, i) => {
      p.on('event', (e) => {
        if (e.type === 'phase') console.log(`peer ${i}: ${e.phase}`);
        else if (e.type === 'train' && e.event.type === 'backend')
          console.log(`peer ${i}: backend ${e.event.report.name} (${e.event.report.reason})`);
        else if (e.type === 'run-finished' && e.outcome.kind === 'train')
          console.log(`peer ${i}: test accuracy ${(e.outcome.result.accuracy * 100).toFixed(2)}%, checksum ${e.outcome.result.checksum}`);
        else if (e.type === 'run-failed' || e.type === 'join-failed') console.log(`peer ${i}: ${'message' in e ? e.message : e.error}`);
      });
      p.on('exit', (code, signal) => {
        if (leaving || !alive.delete(p)) return;
        console.error(`peer ${i} (pid ${p.pid}) exited (${signal ?? code}); the room carries on without it`);
        if (alive.size === 0) resolve();
      });
    });
  });
  try {
    await Promise.all(peers.map((p) => p.call('join')));
  } catch (e) {
    await Promise.all(peers.map((p) => p.kill('SIGKILL')));
    throw e;
  }
  console.log(
    `ringtrain: ${count} Node volunteer peer(s) (pids ${peers.map((p) => p.pid).join(', ')}) in room ${room} at ${url.origin}; they train every run started from a dashboard. Ctrl-C to leave.`,
  );
  const interrupted = new Promise<boolean>((resolve) => process.once('SIGINT', () => resolve(true)));
  if (!(await Promise.race([interrupted, gone.then(() => false)]))) {
    console.error('ringtrain: every Node peer has gone; run "ringtrain peer --node" again to rejoin.');
    return EXIT.failed;
  }
  console.log('\nringtrain: leaving the room ...');
  leaving = true;
  await Promise.all([...alive].map(async (p) => p.call('leave').catch(() => undefined)));
  await Promise.all([...alive].map((p) => p.kill()));
  return EXIT.interrupted;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'train':
      return train(rest);
    case 'serve':
      if (!rest.includes('--help')) await buildApp(undefined, true);
      await runServer([...rest, '--prod'], 'ringtrain serve');
      return -1;
    case 'peer':
      return peer(rest);
    case undefined:
    case '--help':
    case 'help':
      console.log(USAGE);
      return command === undefined ? EXIT.usage : EXIT.ok;
    default:
      throw new UsageError(`unknown command "${command}"\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // serve keeps running until its signal handler exits.
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      console.error(`ringtrain: ${e.message}`);
      process.exit(EXIT.usage);
    }
    const msg = (e as Error).message ?? String(e);
    console.error(`ringtrain: ${msg}`);
    process.exit(/No Chromium found|RINGTRAIN_CHROMIUM=/.test(msg) ? EXIT.noBrowser : EXIT.failed);
  },
);
