/**
 * A long run as volunteers make it: N headless tabs train one model for `minutes`, then one tab
 * stops the room. Every `sampleEveryMs` each tab is sampled (after a forced garbage collection, so
 * the heap figure is what the tab retains): JS heap, tensors, plot points, event-log entries,
 * mailbox slots and connection objects, plus the renderers' resident memory; steps, faults and
 * recoveries are counted from the tabs' events, link re-dials from the coordinator's log. Shared by
 * `npm run bench -- soak` (an hour) and the short soak of `npm test`.
 */
import { startCluster } from './cluster.ts';
import type { MemoryProbe } from '../page-api.ts';
import type { ModelKind } from '../ml/models.ts';
import { jobFromFields } from '../training/job.ts';
import type { TrainEvent, TrainResult } from '../training/trainer.ts';
import { renderers } from './procs.ts';

export interface SoakOptions {
  minutes: number;
  peers: number;
  model: ModelKind;
  /** Force a backend (default: each tab's probe picks, as for a user). */
  backend?: 'wasm' | 'cpu' | 'webgl' | 'webgpu';
  /** Between two samples, ms (default 60 000). */
  sampleEveryMs?: number;
  /** Cut one random ring link this often, ms (default: never): every cut makes the ring re-dial. */
  cutEveryMs?: number;
  log?: (line: string) => void;
}

/** One tab at one sample. */
export interface PeerSample {
  heapMB: number;
  tensors: number;
  tensorMB: number;
  chartPoints: number;
  eventLog: number;
  mailboxSlots: number;
  mailboxMB: number;
  links: number;
  pendingLinks: number;
  /** DataConnection objects PeerJS holds (open or not). */
  peerjsConnections: number;
  /** Dials made again so far (no answer, or failed). */
  redials: number;
  listeners: number;
  /** Steps this tab committed since the previous sample, and their mean wall time, ms. */
  steps: number;
  stepMs: number | null;
  faults: number;
  recoveries: number;
}

export interface SoakSample {
  minute: number;
  /** Resident memory of each renderer process (one per tab), MB. */
  rendererRssMB: number[];
  peers: PeerSample[];
}

export interface SoakReport {
  options: { minutes: number; peers: number; model: string; sampleEveryMs: number; cutEveryMs: number | null };
  samples: SoakSample[];
  /** Null when the run failed; otherwise its end. */
  result: { steps: number; accuracy: number; checksums: string[]; stopped: boolean } | null;
  error: string | null;
  /** Ring links cut by the soak, and views the coordinator formed after a link was reported down. */
  cuts: number;
  linkReports: number;
}

const MB = 2 ** 20;

export async function soak(o: SoakOptions): Promise<SoakReport> {
  const every = o.sampleEveryMs ?? 60_000;
  const log = o.log ?? (() => {});
  let linkReports = 0;
  const cluster = await startCluster({
    peers: o.peers,
    build: 'if-stale',
    ...(o.backend ? { query: { backend: o.backend } } : {}),
    log: (line) => {
      if (/reported down/.test(line)) linkReports++;
    },
  });
  try {
    const job = jobFromFields({ model: o.model });
    if (job.kind !== 'train') throw new Error(`soak: ${o.model} is not a gradient-trained model`);
    // Far more steps than the soak lasts: one tab stops the room at the end. Evaluation and
    // checkpoints on a schedule, as the dashboard's runs have them.
    const config = { ...job.config, steps: 10_000_000, evalEvery: 500, checkpointEvery: 500 };
    // Samples are taken with the room paused after a step: what a tab holds is then well defined
    // (no step's tensors in flight), and each tab's count can be compared with every other.
    let paused = new Set<number>();
    let onPaused = (): void => {};
    const pausedNow = (i: number): void => {
      paused.add(i);
      onPaused();
    };
    const counters = cluster.pages.map(() => ({ steps: 0, stepMsSum: 0, lastStepAt: 0, faults: 0, recoveries: 0, faulted: false }));
    await Promise.all(
      cluster.pages.map((page, i) =>
        page.exposeFunction('__soakEvent', (e: TrainEvent) => {
          const c = counters[i]!;
          const now = performance.now();
          if (e.type === 'step') {
            if (c.lastStepAt > 0) {
              c.steps++;
              c.stepMsSum += now - c.lastStepAt;
            }
            c.lastStepAt = now;
          } else if (e.type === 'fault') {
            c.faults++;
            c.faulted = true;
            c.lastStepAt = 0;
          } else if (e.type === 'sync' && c.faulted) {
            c.recoveries++;
            c.faulted = false;
          } else if (e.type === 'control' && e.state === 'paused') pausedNow(i);
        }),
      ),
    );
    const cdp = await Promise.all(cluster.pages.map((p) => p.context().newCDPSession(p)));
    const runs = cluster.pages.map((p) => p.evaluate((c) => window.ringtrain.train(c as never, (e) => window.__soakEvent?.(e)), config));
    let failure: Error | null = null;
    const finished = Promise.all(runs).catch((e: unknown) => {
      failure = e as Error;
      return null;
    });
    const samples: SoakSample[] = [];
    const started = performance.now();
    /** Pauses the room and resolves once every tab holds (false if the run ended first). */
    const pauseAll = async (): Promise<boolean> => {
      paused = new Set();
      await cluster.pages[0]!.evaluate(() => window.ringtrain.pause());
      return Promise.race([
        finished.then(() => false),
        new Promise<boolean>((resolve) => {
          onPaused = () => paused.size === cluster.pages.length && resolve(true);
          onPaused();
        }),
      ]);
    };
    const sample = async (): Promise<void> => {
      const peers = await Promise.all(
        cluster.pages.map(async (page, i): Promise<PeerSample> => {
          await cdp[i]!.send('HeapProfiler.collectGarbage');
          const heap = await cdp[i]!.send('Runtime.getHeapUsage');
          const m: MemoryProbe = await page.evaluate(() => window.ringtrain.debug.memory());
          const c = counters[i]!;
          const s: PeerSample = {
            heapMB: heap.usedSize / MB,
            tensors: m.tensors,
            tensorMB: m.tensorBytes / MB,
            chartPoints: m.chartPoints,
            eventLog: m.eventLog,
            mailboxSlots: m.session?.mailbox.slots ?? 0,
            mailboxMB: (m.session?.mailbox.bytes ?? 0) / MB,
            links: m.session?.connections.links ?? 0,
            pendingLinks: m.session?.connections.pending ?? 0,
            peerjsConnections: m.session?.connections.peerjs ?? 0,
            redials: m.session?.connections.redials ?? 0,
            listeners: m.session?.listeners ?? 0,
            steps: c.steps,
            stepMs: c.steps > 0 ? c.stepMsSum / c.steps : null,
            faults: c.faults,
            recoveries: c.recoveries,
          };
          // The step that spans the pause is not timed.
          Object.assign(c, { steps: 0, stepMsSum: 0, faults: 0, recoveries: 0, lastStepAt: 0 });
          return s;
        }),
      );
      const rss = renderers(process.pid).map((p) => p.rssBytes / MB);
      const at = { minute: (performance.now() - started) / 60_000, rendererRssMB: rss, peers };
      samples.push(at);
      const mean = (f: (p: PeerSample) => number): number => peers.reduce((a, p) => a + f(p), 0) / peers.length;
      log(
        `${at.minute.toFixed(1)} min: heap ${mean((p) => p.heapMB).toFixed(1)} MB/peer, renderer RSS ${(rss.reduce((a, b) => a + b, 0) / Math.max(1, rss.length)).toFixed(0)} MB/peer, ` +
          `tensors ${peers.map((p) => p.tensors).join('/')}, step ${mean((p) => p.stepMs ?? 0).toFixed(0)} ms, ${peers.reduce((a, p) => a + p.steps, 0)} steps, ` +
          `faults ${peers.reduce((a, p) => a + p.faults, 0)}, links ${peers.map((p) => p.links).join('/')}, PeerJS connections ${peers.map((p) => p.peerjsConnections).join('/')}`,
      );
    };
    let cuts = 0;
    const cutOne = async (): Promise<void> => {
      const page = cluster.pages[Math.floor(Math.random() * cluster.pages.length)]!;
      const cut = await page.evaluate(() => {
        const v = window.ringtrain.view();
        const me = window.ringtrain.peerId();
        const ids = v?.members.map((m) => m.peerId) ?? [];
        const next = ids[(ids.indexOf(me!) + 1) % ids.length];
        return !!next && next !== me && window.ringtrain.debug.cutLink(next);
      });
      if (cut) cuts++;
    };
    const end = started + o.minutes * 60_000;
    // Sample k is due at started + k * every (computed so, the last one due at the end is exactly
    // `end`): the soak takes every sample due by its end, however late a pause made the previous.
    let k = 1;
    let nextSample = started + every;
    let nextCut = o.cutEveryMs ? started + o.cutEveryMs : Infinity;
    // Wakes for each sample and cut until the soak's time is up or the run fails.
    while (!failure && (performance.now() < end || nextSample <= end)) {
      const wake = Math.min(nextSample, nextCut, end);
      const done = await Promise.race([
        finished.then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), Math.max(0, wake - performance.now()))),
      ]);
      if (done) break;
      if (performance.now() >= nextSample) {
        if (!(await pauseAll())) break;
        await sample();
        await cluster.pages[0]!.evaluate(() => window.ringtrain.resume());
        nextSample = started + ++k * every;
      }
      if (performance.now() >= nextCut && nextCut < end) {
        await cutOne();
        nextCut += o.cutEveryMs!;
      }
    }
    if (!failure) await cluster.pages[0]!.evaluate(() => window.ringtrain.stop());
    const results = (await finished) as TrainResult[] | null;
    const error = failure as Error | null;
    return {
      options: { minutes: o.minutes, peers: o.peers, model: o.model, sampleEveryMs: every, cutEveryMs: o.cutEveryMs ?? null },
      samples,
      result: results && {
        steps: results[0]!.steps,
        accuracy: results[0]!.accuracy,
        checksums: results.map((r) => r.checksum),
        stopped: results.every((r) => r.stopped),
      },
      error: error ? error.message : null,
      cuts,
      linkReports,
    };
  } finally {
    await cluster.close();
  }
}

/** Least-squares slope of `y` over `x`. */
export function slope(x: number[], y: number[]): number {
  const n = x.length;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (x[i]! - mx) * (y[i]! - my);
    den += (x[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
