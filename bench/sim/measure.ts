/**
 * Real short trainings on Node peers for `npm run bench -- simulate`: the calibration runs (one
 * peer) and the validation runs (N peers on this machine) that the model is checked against.
 *
 * Besides wall time, a run reads the CPU time its peer processes used (Linux /proc; null
 * elsewhere) and the machine's CPU time used by anything else (the "background": other jobs on a
 * shared machine take cores from the peers, and the model cannot know that in advance).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { RunEvent } from '../../src/harness/driven.ts';
import { MLP_CONFIG } from '../../src/harness/drills.ts';
import type { TrainConfig, TrainResult } from '../../src/training/trainer.ts';
import { startNodeCluster } from '../../src/harness/node-peers.ts';
import { nodePeer } from '../../src/harness/driven.ts';

/** The run measured: the MLP (784-128-10) by sync SGD on served Fashion-MNIST, no evaluations or checksums between steps. */
export const VALIDATION_CONFIG: TrainConfig = { ...MLP_CONFIG, evalEvery: 0, checksumEvery: 0 };

export interface RunMeasure {
  peers: number;
  /** Global batch, split across the peers. */
  batch: number;
  steps: number;
  warmup: number;
  params: number;
  /** Wall time per step on rank 0 after the warm-up steps (ms, from the events' arrival here). */
  step_ms: number;
  /** Means over the peers and the kept steps, from the step events. */
  compute_ms: number;
  allreduce_ms: number;
  /** apply + readback: the work after the gradient, besides the collective. */
  apply_ms: number;
  /** CPU time all peer processes used per kept step (ms), or null without /proc. */
  cpu_ms_per_step: number | null;
  /** Cores busy with anything but the peers and this process during the kept steps, or null. */
  background_cores: number | null;
  /** The step times of the runs this one averages (one run: its own). */
  step_ms_runs: number[];
  /**
   * Cores the idle cluster used (the peers' timers, heartbeats and polling threads, and this
   * process: the server and the harness), over 2 s after it formed and before training; or null.
   */
  idle_cores: number | null;
}

/** CPU time (ms) a process has used, from /proc/<pid>/stat (utime + stime at 100 ticks/s); null without /proc. */
function processCpuMs(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

/** The machine's busy and total CPU time so far (ms summed over cores), or null without /proc. */
function machineCpuMs(): { busy: number; total: number } | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0) * 10;
    return { busy: total - (f[3]! + f[4]!) * 10, total };
  } catch {
    return null;
  }
}

interface Snapshot {
  t: number;
  peers: (number | null)[];
  machine: { busy: number; total: number } | null;
  self: number;
}

const ownCpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const snapshot = (pids: number[]): Snapshot => ({
  t: performance.now(),
  peers: pids.map(processCpuMs),
  machine: machineCpuMs(),
  self: ownCpuMs(),
});

/** Peers' CPU ms, cores this cluster used (peers and this process) and background cores between two snapshots. */
function between(a: Snapshot, b: Snapshot): { peersMs: number | null; ownCores: number | null; backgroundCores: number | null } {
  const parts = b.peers.map((x, i) => (x === null || a.peers[i] === null ? null : x - a.peers[i]!));
  const peersMs = parts.some((x) => x === null) ? null : parts.reduce((s, x) => s! + x!, 0)!;
  const ownCores = peersMs === null ? null : (peersMs + b.self - a.self) / (b.t - a.t);
  if (!a.machine || !b.machine || ownCores === null) return { peersMs, ownCores, backgroundCores: null };
  const busyCores = ((b.machine.busy - a.machine.busy) / (b.machine.total - a.machine.total)) * availableParallelism();
  return { peersMs, ownCores, backgroundCores: Math.max(0, busyCores - ownCores) };
}

/** Cores busy with anything but this process over `ms` (null without /proc). */
export async function backgroundCores(ms = 2000): Promise<number | null> {
  const a = snapshot([]);
  await new Promise((r) => setTimeout(r, ms));
  return between(a, snapshot([])).backgroundCores;
}

/**
 * Waits until other jobs use less than `below` cores (checked every 5 s, at most `maxWaitMs`);
 * returns the last reading. Measured runs on a shared 2-core machine are worthless while another
 * job holds a core.
 */
export async function waitForQuiet(below: number, maxWaitMs: number, log: (s: string) => void): Promise<number | null> {
  const until = Date.now() + maxWaitMs;
  for (;;) {
    const bg = await backgroundCores();
    if (bg === null || bg < below || Date.now() > until) return bg;
    log(`  the machine is busy (${bg.toFixed(2)} cores used by other jobs): waiting ...`);
    await new Promise((r) => setTimeout(r, 3000));
  }
}

/** Trains VALIDATION_CONFIG on `peers` Node peers (tfjs `backend`) for `steps` steps and measures the steps after `warmup`. */
export async function measureRun(o: { peers: number; batch: number; steps: number; warmup: number; backend: string }): Promise<RunMeasure> {
  if (o.steps < o.warmup + 2) throw new Error(`--steps ${o.steps}: needs at least --warmup + 2 (${o.warmup + 2})`);
  // Many processes on 2 cores starve each other's timers at times: a peer counts as dead only after 30 s of silence.
  const cluster = await startNodeCluster({ peers: o.peers, backend: o.backend, stdio: 'ignore', deadAfterMs: 30_000 });
  try {
    const pids = cluster.peers.map((p) => p.pid);
    await new Promise((r) => setTimeout(r, 1000));
    const idleFrom = snapshot(pids);
    await new Promise((r) => setTimeout(r, 2000));
    const idle = between(idleFrom, snapshot(pids)).ownCores;
    const config: TrainConfig = { ...VALIDATION_CONFIG, batch: o.batch, steps: o.steps };
    type Step = Extract<RunEvent, { type: 'step' }>;
    const kept: Step[] = [];
    let first: Snapshot | null = null;
    let last: Snapshot | null = null;
    const results = await Promise.all(
      cluster.peers.map((p, rank) =>
        nodePeer(p).run({ kind: 'train', config }, (e) => {
          if (e.type !== 'step') return;
          if (e.step > o.warmup) kept.push(e);
          if (rank !== 0) return;
          if (e.step === o.warmup) first = snapshot(pids);
          if (e.step === o.steps) last = snapshot(pids);
        }),
      ),
    );
    const [a, b] = [first as Snapshot | null, last as Snapshot | null];
    if (!a || !b) throw new Error(`${o.peers} peers: rank 0 reported no step ${o.warmup} or ${o.steps}`);
    const k = o.steps - o.warmup;
    const { peersMs, backgroundCores } = between(a, b);
    const mean = (f: (e: Step) => number): number => kept.reduce((s, e) => s + f(e), 0) / kept.length;
    return {
      peers: o.peers,
      batch: o.batch,
      steps: o.steps,
      warmup: o.warmup,
      params: (results[0] as TrainResult).params,
      step_ms: (b.t - a.t) / k,
      compute_ms: mean((e) => e.computeMs),
      allreduce_ms: mean((e) => e.allreduceMs),
      apply_ms: mean((e) => e.applyMs + e.readbackMs),
      cpu_ms_per_step: peersMs === null ? null : peersMs / k,
      background_cores: backgroundCores,
      idle_cores: idle,
      step_ms_runs: [(b.t - a.t) / k],
    };
  } finally {
    await cluster.close();
  }
}

/** Other jobs using more than this many cores during a measured run make it disturbed. */
export const QUIET_CORES = 0.3;

/**
 * `measureRun` once the machine is quiet (waiting at most `quietWaitMs`); a run that other jobs
 * disturbed all the same is run once more, and the quieter of the two kept.
 */
export async function measureQuietly(
  o: Parameters<typeof measureRun>[0],
  quietWaitMs: number,
  log: (s: string) => void,
  label: string,
): Promise<RunMeasure> {
  let best: RunMeasure | null = null;
  for (let attempt = 0; attempt < 2 && (best === null || (best.background_cores ?? 0) > QUIET_CORES); attempt++) {
    await waitForQuiet(QUIET_CORES, quietWaitMs, log);
    log(`${label}${attempt ? ' (again: other jobs disturbed the first run)' : ''} ...`);
    const r = await measureRun(o);
    if (best === null || (r.background_cores ?? 0) < (best.background_cores ?? 0)) best = r;
  }
  return best!;
}

/** The mean of runs of one configuration (nulls stay null where any run has one). */
export function meanRun(runs: RunMeasure[]): RunMeasure {
  const mean = (f: (r: RunMeasure) => number | null): number | null =>
    runs.some((r) => f(r) === null) ? null : runs.reduce((a, r) => a + f(r)!, 0) / runs.length;
  return {
    ...runs[0]!,
    step_ms: mean((r) => r.step_ms)!,
    compute_ms: mean((r) => r.compute_ms)!,
    allreduce_ms: mean((r) => r.allreduce_ms)!,
    apply_ms: mean((r) => r.apply_ms)!,
    cpu_ms_per_step: mean((r) => r.cpu_ms_per_step),
    background_cores: mean((r) => r.background_cores),
    idle_cores: mean((r) => r.idle_cores),
    step_ms_runs: runs.flatMap((r) => r.step_ms_runs),
  };
}
