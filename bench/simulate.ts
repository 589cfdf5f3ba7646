/**
 * `npm run bench -- simulate`: a discrete-event simulator of training across N peers (the model:
 * bench/sim/model.ts), calibrated by measurement and checked against real runs, then projected to
 * 4..1024 volunteers on the lan, home and far link profiles, for ring vs two-level allreduce ×
 * per-step sync vs DiLoCo, with churn. Writes bench/results/simulate.json and simulate.svg.
 *
 * What is measured (and where) and what is assumed:
 *
 * - measured here, by this scenario (Node peers, tfjs `--backend`, default cpu; the MLP 784-128-10
 *   by sync SGD on served Fashion-MNIST): one peer's compute per step at the global batch and at
 *   each validation run's local batch (→ c0 + c1·b by least squares), its other per-step work
 *   (step − compute: apply, bookkeeping) and the gradient's size (the trainer's parameter count);
 *   for the validation rows only, the cores the idle cluster of N peers uses (its timers,
 *   heartbeats and the server), which the peers' work cannot have;
 * - measured by `bench -- allreduce` (bench/results/allreduce.json, Node rows, this 2-core
 *   machine): the per-hop software cost, fitted with the peers sharing `--cores` cores
 *   (fitRing's `cores`), i.e. as α (ms) and β (MB/s) on a core of one's own;
 * - measured by `bench -- train` (train.json): the ratio of per-sample compute of `--backend-to`
 *   (the volunteers' backend, default wasm) to cpu, on softmax with one tab: applied to the MLP's
 *   compute (an assumption: the ratio carries over);
 * - measured by `bench -- faults` (faults.json): the recovery time, median fault-to-next-commit
 *   over its faults (4 tabs on loopback); on a WAN profile, 4 one-way delays more (two round
 *   trips to detect and agree: an assumption), and taken as independent of N (an assumption);
 * - from WAN_PROFILES (src/harness/netns.ts): each profile's wire, α = one-way delay, β = rate,
 *   capped under packet loss by the Mathis bound (an assumption: SCTP's congestion control is
 *   TCP-like; see wireOf);
 * - assumed (options): local batch per peer, DiLoCo's H and codec, device speed spread
 *   (log-normal σ), per-step jitter, mean session length, crash rate, simulated hours, seed; one
 *   core per peer in the projection (a volunteer brings one device).
 *
 * Not modelled: DiLoCo's different statistical efficiency (a sample of a DiLoCo round is not
 * worth a sample of a sync step: goodput counts samples, not progress), compression of sync
 * gradients, newcomers' state download, the server's limits.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BackendName } from '../src/ml/backend.ts';
import { WAN_PROFILES, type WanProfileName } from '../src/harness/netns.ts';
import { median } from '../src/harness/timing.ts';
import { type AllreduceRow, fitRing, type RingFit, round } from './allreduce.ts';
import type { FaultRow } from './faults.ts';
import { meanRun, measureQuietly, QUIET_CORES, type RunMeasure } from './sim/measure.ts';
import {
  type Device,
  drawUnits,
  groupSize,
  type HopCpu,
  mbPerSec,
  ringMs,
  type Scenario,
  STRATEGIES,
  type Strategy,
  seeded,
  simulateChurn,
  simulateStep,
  strategyName,
  unitBytes,
  unitSamples,
  type Wire,
  wireOf,
} from './sim/model.ts';
import { goodputSvg, type Series } from './sim/svg.ts';
import type { TrainRow } from './train.ts';

export interface SimulateOptions {
  /** Peer counts of the validation runs; empty: keep the calibration and validation rows of the last run. */
  validate: number[];
  /** Validation runs: runs per N (their mean is compared), steps, warm-up steps left out, global batch, tfjs backend of the Node peers. */
  reps: number;
  steps: number;
  warmup: number;
  batch: number;
  backend: string;
  /** Cores the peers of this machine share (validation runs, and the allreduce rows' fit). */
  cores: number;
  /** Wait at most this long for other jobs to leave the cores before a measured run, s. */
  quietWaitS: number;
  /** Projection: peer counts, profiles, the volunteers' backend. */
  peers: number[];
  profiles: WanProfileName[];
  backendTo: BackendName;
  localBatch: number;
  dilocoH: number;
  dilocoCodec: 'fp16' | 'int8';
  deviceSigma: number;
  jitterSigma: number;
  sessionMin: number;
  crashPerHour: number;
  /** Overrides the recovery time from faults.json, ms. */
  recoveryMs?: number;
  hours: number;
  seed: number;
}

/** One peer's measured costs: the model's Device (a least-squares line over the one-peer runs), and those runs. */
export interface Calibration extends Device {
  backend: string;
  params: number;
  bytes: number;
  runs: RunMeasure[];
}

export interface ValidationRow extends RunMeasure {
  local_batch: number;
  /** The one-peer run at this local batch made just before (the machine's speed drifts over minutes): compute, and the rest of its step. */
  solo_compute_ms: number;
  solo_after_ms: number;
  /** The first model: compute(b) + after + 2(N−1)(α + S/(Nβ)) with the plain fit, no CPU sharing. */
  naive_ms: number;
  naive_error: number;
  /** The event simulation with every peer's CPU work sharing all `cores` cores. */
  all_cores_ms: number;
  all_cores_error: number;
  /** The model: the same on the cores the idle cluster leaves (`cores` − `idle_cores`). */
  predicted_ms: number;
  error: number;
  within_20pct: boolean;
  predicted_cpu_ms_per_step: number;
  /** Other jobs took more than 0.3 of a core during the run. */
  disturbed: boolean;
}

export interface ProjectionRow {
  profile: WanProfileName;
  peers: number;
  strategy: string;
  topology: Strategy['topology'];
  algorithm: Strategy['algorithm'];
  group: number | null;
  bytes: number;
  unit_ms: number;
  compute_ms: number;
  samples_per_unit: number;
  /** Without failures: samples per unit / mean unit time. */
  ideal_samples_per_s: number;
  throughput: number;
  goodput: number;
  aborted_pct: number;
  failures_per_hour: number;
  units_drawn: number;
}

export interface SimulateReport {
  date: string;
  /** When the calibration and validation runs were made (`--no-validate` keeps those of an earlier run). */
  validation_date: string;
  options: SimulateOptions;
  inputs: Record<string, unknown>;
  calibration: Calibration;
  validation: ValidationRow[];
  projection: ProjectionRow[];
  winners: Record<string, { peers: number; best: string; best_sync: string }[]>;
  summary: string[];
}

/** Loopback: no wire cost; the software's hop cost is all CPU. */
const LOOPBACK: Wire = { alphaMs: 0, bytesPerMs: Infinity };
/** Units drawn per configuration at most, and the events it may spend on them (a ring step of 1024 peers is about 4 million). */
const MAX_UNITS = 32;
const UNIT_EVENT_BUDGET = 4e6;

const readJson = <T>(file: string): T | null => (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : null);

/** Relative error of a prediction against a measurement. */
const relErr = (predicted: number, measured: number): number => round((predicted - measured) / measured, 3);

/** The per-hop software cost on a dedicated core, from a fit made with `cores` shared cores. */
const hopOf = (f: RingFit): HopCpu => ({ hopMs: f.alpha_ms, bytesPerMs: mbPerSec(f.beta_mb_per_s) });

/** Per-sample compute of `backend` relative to cpu, from train.json's one-tab softmax rows. */
function backendFactor(train: TrainRow[] | null, backend: BackendName): { factor: number; source: string } {
  const perSample = (b: string): number | undefined => {
    const r = train?.find((x) => x.backend === b && x.peers === 1);
    return r ? r.compute_ms : undefined;
  };
  const [to, cpu] = [perSample(backend), perSample('cpu')];
  if (backend === 'cpu') return { factor: 1, source: 'cpu: the calibration backend' };
  if (to === undefined || cpu === undefined) return { factor: 1, source: `train.json has no one-peer ${backend} and cpu rows: factor 1` };
  return { factor: to / cpu, source: `train.json, softmax, 1 peer: ${backend} ${to} ms / cpu ${cpu} ms per step of 128` };
}

/** A one-peer run at local batch `batch`. */
async function solo(o: SimulateOptions, batch: number, log: (s: string) => void): Promise<RunMeasure> {
  const r = await measureQuietly(
    { peers: 1, batch, steps: o.steps, warmup: o.warmup, backend: o.backend },
    o.quietWaitS * 1000,
    log,
    `calibration: 1 Node peer (${o.backend}), batch ${batch}, ${o.steps} steps`,
  );
  log(
    `  ${r.step_ms.toFixed(1)} ms/step, compute ${r.compute_ms.toFixed(1)} ms, background ${r.background_cores?.toFixed(2) ?? '?'} cores`,
  );
  return r;
}

/** The Device of the one-peer runs: compute = c0 + c1·b by least squares, and the mean of the rest of a step. */
export function fitDevice(runs: RunMeasure[], backend: string): Calibration {
  const n = runs.length;
  const [mb, mc] = [runs.reduce((a, r) => a + r.batch, 0) / n, runs.reduce((a, r) => a + r.compute_ms, 0) / n];
  const sxx = runs.reduce((a, r) => a + (r.batch - mb) ** 2, 0);
  const c1 = runs.reduce((a, r) => a + (r.batch - mb) * (r.compute_ms - mc), 0) / sxx;
  if (!(c1 > 0)) throw new Error(`calibration: compute did not grow with the batch (${JSON.stringify(runs)}); a disturbed run? run again`);
  return {
    backend,
    params: runs[0]!.params,
    bytes: runs[0]!.params * 4 + 8,
    c0Ms: round(Math.max(0, mc - c1 * mb), 3),
    c1Ms: round(c1, 4),
    afterMs: round(runs.reduce((a, r) => a + r.step_ms - r.compute_ms, 0) / n, 3),
    runs,
  };
}

/**
 * A measured run of N peer processes on this machine against the model's prediction for it: the
 * event simulation of one step with every peer's CPU work sharing the cores the idle cluster
 * leaves (`cores` − its measured idle load), and, for comparison, the first model and the
 * simulation on all `cores`.
 */
export function validationRow(
  m: RunMeasure,
  one: Pick<RunMeasure, 'compute_ms' | 'step_ms'>,
  shared: RingFit,
  plain: RingFit,
  cores: number,
): ValidationRow {
  const n = m.peers;
  const local = m.batch / n;
  const [compute, after] = [one.compute_ms, one.step_ms - one.compute_ms];
  const bytes = m.params * 4 + 8;
  const naive = compute + after + ringMs(n, bytes, { alphaMs: plain.alpha_ms, bytesPerMs: mbPerSec(plain.beta_mb_per_s) });
  const step = (c: number) =>
    simulateStep({
      n,
      computeMs: new Array<number>(n).fill(compute),
      afterMs: new Array<number>(n).fill(after),
      bytes,
      topology: 'ring',
      wire: LOOPBACK,
      hop: hopOf(shared),
      cores: c,
    });
  const all = step(cores);
  const left = step(Math.max(0.5, cores - (m.idle_cores ?? 0)));
  return {
    ...m,
    step_ms: round(m.step_ms, 1),
    step_ms_runs: m.step_ms_runs.map((x) => round(x, 1)),
    compute_ms: round(m.compute_ms, 1),
    allreduce_ms: round(m.allreduce_ms, 1),
    apply_ms: round(m.apply_ms, 2),
    cpu_ms_per_step: m.cpu_ms_per_step === null ? null : round(m.cpu_ms_per_step, 1),
    background_cores: m.background_cores === null ? null : round(m.background_cores, 2),
    idle_cores: m.idle_cores === null ? null : round(m.idle_cores, 3),
    local_batch: local,
    solo_compute_ms: round(compute, 3),
    solo_after_ms: round(after, 3),
    naive_ms: round(naive, 1),
    naive_error: relErr(naive, m.step_ms),
    all_cores_ms: round(all.ms, 1),
    all_cores_error: relErr(all.ms, m.step_ms),
    predicted_ms: round(left.ms, 1),
    error: relErr(left.ms, m.step_ms),
    within_20pct: Math.abs(left.ms - m.step_ms) <= 0.2 * m.step_ms,
    predicted_cpu_ms_per_step: round(left.cpuMs, 1),
    disturbed: (m.background_cores ?? 0) > QUIET_CORES,
  };
}

/** The one-peer runs (the calibration) and, right after each but the first, a validation run of N peers. */
async function validate(
  o: SimulateOptions,
  shared: RingFit,
  plain: RingFit,
  log: (s: string) => void,
): Promise<{ calibration: Calibration; rows: ValidationRow[] }> {
  const rows: ValidationRow[] = [];
  const solos = [await solo(o, o.batch, log)];
  log(VALIDATION_HEADER);
  for (const n of o.validate) {
    const one = await solo(o, o.batch / n, log);
    solos.push(one);
    const runs: RunMeasure[] = [];
    for (let rep = 1; rep <= o.reps; rep++)
      runs.push(
        await measureQuietly(
          { peers: n, batch: o.batch, steps: o.steps, warmup: o.warmup, backend: o.backend },
          o.quietWaitS * 1000,
          log,
          `validation: ${n} Node peers, global batch ${o.batch}, ${o.steps} steps (run ${rep} of ${o.reps})`,
        ),
      );
    const m = meanRun(runs);
    const row = validationRow(m, one, shared, plain, o.cores);
    rows.push(row);
    log(formatValidation(row));
  }
  return { calibration: fitDevice(solos, o.backend), rows };
}

const VALIDATION_HEADER =
  'peers  local b  measured ms (runs)  predicted ms  error  within 20%  | first model  error  all cores  error  idle cores  CPU ms/step meas./pred.  background';

function formatValidation(r: ValidationRow): string {
  const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)}%`;
  return [
    String(r.peers).padStart(5),
    String(r.local_batch).padStart(8),
    `${r.step_ms.toFixed(1)}${r.step_ms_runs.length > 1 ? ` (${r.step_ms_runs.map((x) => x.toFixed(0)).join('/')})` : ''}`.padStart(18),
    r.predicted_ms.toFixed(1).padStart(13),
    pct(r.error).padStart(6),
    (r.within_20pct ? 'yes' : 'NO').padStart(11),
    ` | ${r.naive_ms.toFixed(1).padStart(10)}`,
    pct(r.naive_error).padStart(6),
    r.all_cores_ms.toFixed(1).padStart(10),
    pct(r.all_cores_error).padStart(6),
    (r.idle_cores?.toFixed(2) ?? '?').padStart(11),
    `${r.cpu_ms_per_step?.toFixed(0) ?? '?'} / ${r.predicted_cpu_ms_per_step.toFixed(0)}`.padStart(24),
    `${r.background_cores?.toFixed(2) ?? '?'}${r.disturbed ? ' (disturbed)' : ''}`.padStart(11),
  ].join(' ');
}

/** A seed per configuration, independent of the order they are run in. */
const seedOf = (seed: number, ...parts: number[]): number => parts.reduce((h, p) => Math.imul(h ^ p, 0x9e3779b1) >>> 0, seed >>> 0);

function project(
  o: SimulateOptions,
  cal: Calibration,
  hop: HopCpu,
  factor: number,
  recoveryMs: number,
  log: (s: string) => void,
): ProjectionRow[] {
  const rows: ProjectionRow[] = [];
  const device: Device = { c0Ms: cal.c0Ms * factor, c1Ms: cal.c1Ms * factor, afterMs: cal.afterMs };
  for (const profile of o.profiles) {
    const wire = wireOf(WAN_PROFILES[profile]);
    const recovery = recoveryMs + 4 * WAN_PROFILES[profile].delayMs;
    for (const n of o.peers) {
      for (const strategy of STRATEGIES) {
        const s: Scenario = {
          n,
          strategy,
          localBatch: o.localBatch,
          params: cal.params,
          dilocoH: o.dilocoH,
          dilocoBytesPerValue: o.dilocoCodec === 'fp16' ? 2 : 1,
          device,
          deviceSigma: o.deviceSigma,
          jitterSigma: o.jitterSigma,
          wire,
          hop,
          cores: Infinity,
        };
        // Common random numbers: every strategy at this N meets the same devices and the same failures.
        const units = drawUnits(s, MAX_UNITS, seeded(seedOf(o.seed, n)), UNIT_EVENT_BUDGET);
        const churn = simulateChurn(
          n,
          units,
          {
            sessionMin: o.sessionMin,
            crashPerHour: o.crashPerHour,
            recoveryMs: recovery,
            horizonMs: o.hours * 3_600_000,
            maxEvents: 2_000_000,
          },
          seeded(seedOf(o.seed, n, 1)),
        );
        const unitMs = units.reduce((a, u) => a + u.ms, 0) / units.length;
        rows.push({
          profile,
          peers: n,
          strategy: strategyName(strategy),
          ...strategy,
          group: strategy.topology === 'two-level' ? groupSize(n) : null,
          bytes: unitBytes(s),
          unit_ms: round(unitMs, 1),
          compute_ms: round(units.reduce((a, u) => a + u.computeMs, 0) / units.length, 1),
          samples_per_unit: unitSamples(s),
          ideal_samples_per_s: round((unitSamples(s) / unitMs) * 1000, 1),
          throughput: round(churn.throughput, 1),
          goodput: round(churn.goodput, 1),
          aborted_pct: round((100 * churn.aborted) / Math.max(1, churn.aborted + churn.committed), 1),
          failures_per_hour: round(churn.failures / (churn.simulatedMs / 3_600_000), 1),
          units_drawn: units.length,
        });
      }
    }
    log(`projected ${profile}`);
  }
  return rows;
}

/** Per profile and N: the strategy of highest goodput, and the best of the per-step sync ones. */
function winners(rows: ProjectionRow[]): SimulateReport['winners'] {
  const out: SimulateReport['winners'] = {};
  const top = (rs: ProjectionRow[]): string => rs.reduce((a, b) => (b.goodput > a.goodput ? b : a)).strategy;
  for (const r of rows) {
    const list = (out[r.profile] ??= []);
    if (list.some((w) => w.peers === r.peers)) continue;
    const same = rows.filter((x) => x.profile === r.profile && x.peers === r.peers);
    list.push({ peers: r.peers, best: top(same), best_sync: top(same.filter((x) => x.algorithm === 'sync')) });
  }
  return out;
}

/** "ring sync at N = 4–16, two-level sync at N = 32–1024": runs of equal winners. */
function ranges(list: { peers: number; name: string }[]): string {
  const parts: string[] = [];
  for (let i = 0; i < list.length; ) {
    let j = i;
    while (j + 1 < list.length && list[j + 1]!.name === list[i]!.name) j++;
    const [a, b] = [list[i]!.peers, list[j]!.peers];
    parts.push(`${list[i]!.name} at N = ${a === b ? a : `${a}–${b}`}`);
    i = j + 1;
  }
  return parts.join(', ');
}

function summarize(w: SimulateReport['winners'], rows: ProjectionRow[]): string[] {
  return Object.entries(w).flatMap(([profile, list]) => {
    // Where churn costs a strategy half its failure-free rate or more.
    const halved = STRATEGIES.map(strategyName).flatMap((name) => {
      const r = rows.find((x) => x.profile === profile && x.strategy === name && x.goodput < 0.5 * x.ideal_samples_per_s);
      return r ? [`${name} from N = ${r.peers}`] : [];
    });
    return [
      `${profile}: highest goodput: ${ranges(list.map((x) => ({ peers: x.peers, name: x.best })))}`,
      `${profile}: per-step sync only: ${ranges(list.map((x) => ({ peers: x.peers, name: x.best_sync })))}`,
      `${profile}: churn halves goodput: ${halved.length ? halved.join(', ') : 'nowhere'}`,
    ];
  });
}

const si = (x: number): string =>
  x >= 1e6
    ? `${(x / 1e6).toFixed(2)}M`
    : x >= 1e4
      ? `${(x / 1e3).toFixed(0)}k`
      : x >= 1e3
        ? `${(x / 1e3).toFixed(1)}k`
        : x.toFixed(x < 10 ? 2 : 0);

/** Per profile: a row per N, goodput (and unit time) per strategy. */
function formatProjection(rows: ProjectionRow[], profiles: WanProfileName[], peers: number[]): string[] {
  const names = STRATEGIES.map(strategyName);
  const lines: string[] = [];
  for (const profile of profiles) {
    const p = WAN_PROFILES[profile];
    lines.push(
      `\n${profile} (${p.delayMs} ms, ${p.rateMbit} Mbit/s${'lossPct' in p ? `, ${p.lossPct}% loss` : ''}): goodput samples/s, ms per step or round, goodput as % of the failure-free rate`,
    );
    lines.push(['    N', ...names.map((x) => x.padStart(24))].join(' '));
    for (const n of peers) {
      const cells = names.map((name) => {
        const r = rows.find((x) => x.profile === profile && x.peers === n && x.strategy === name)!;
        const unit = r.unit_ms < 1000 ? `${r.unit_ms.toFixed(0)} ms` : `${(r.unit_ms / 1000).toFixed(r.unit_ms < 10_000 ? 1 : 0)} s`;
        return `${si(r.goodput)}  ${unit}  ${Math.round((100 * r.goodput) / r.ideal_samples_per_s)}%`.padStart(24);
      });
      lines.push([String(n).padStart(5), ...cells].join(' '));
    }
  }
  return lines;
}

const COLORS: Record<Strategy['topology'], string> = { ring: '#37c', 'two-level': '#e67e22' };

export async function benchSimulate(o: SimulateOptions, dir: string, log: (s: string) => void): Promise<SimulateReport> {
  const file = path.join(dir, 'simulate.json');
  const results = path.join(import.meta.dirname, 'results');
  const allreduce = readJson<{ rows: AllreduceRow[] }>(path.join(results, 'allreduce.json'));
  const plain = allreduce && fitRing(allreduce.rows, 'node');
  const shared = allreduce && fitRing(allreduce.rows, 'node', o.cores);
  if (!plain || !shared)
    throw new Error(
      'simulate: bench/results/allreduce.json has too few Node rows to fit α and β (run `npm run bench -- allreduce --runtime node --peers 4,8,16,32`)',
    );
  const faults = readJson<{ faults: FaultRow[] }>(path.join(results, 'faults.json'));
  const resumes = faults?.faults.map((f) => f.resume_ms) ?? [];
  const recoveryMs = o.recoveryMs ?? (resumes.length ? median(resumes) : 1000);
  const recoverySource =
    o.recoveryMs !== undefined
      ? '--recovery-ms'
      : resumes.length
        ? `faults.json: median fault-to-next-commit of ${resumes.length} faults (4 tabs, loopback)`
        : 'no faults.json: 1000 ms assumed';
  const bf = backendFactor(readJson<TrainRow[]>(path.join(results, 'train.json')), o.backendTo);
  const earlier = readJson<SimulateReport>(file);

  log(
    `link fit (allreduce.json, Node rows): plain α ${plain.alpha_ms} ms, β ${plain.beta_mb_per_s} MB/s (R² ${plain.r2}); ` +
      `with ${o.cores} shared cores: α ${shared.alpha_ms} ms, β ${shared.beta_mb_per_s} MB/s per dedicated core (R² ${shared.r2})`,
  );
  let calibration: Calibration;
  let validation: ValidationRow[];
  let validationDate = new Date().toISOString().slice(0, 10);
  if (o.validate.length > 0) {
    for (const n of o.validate)
      if (o.batch % n) throw new Error(`--validate ${n}: the global batch ${o.batch} does not split evenly over ${n} peers`);
    ({ calibration, rows: validation } = await validate(o, shared, plain, log));
  } else {
    if (!earlier)
      throw new Error('simulate: no earlier bench/results/simulate.json to take the calibration from: run with --validate 4,8,16');
    calibration = earlier.calibration;
    validationDate = earlier.validation_date ?? earlier.date;
    // The stored measurements against the current model (its inputs may have changed since).
    validation = earlier.validation.map((r) =>
      validationRow(r, { compute_ms: r.solo_compute_ms, step_ms: r.solo_compute_ms + r.solo_after_ms }, shared, plain, o.cores),
    );
    log(`calibration and validation runs of ${validationDate} (not re-run):`);
    log(VALIDATION_HEADER);
    for (const r of validation) log(formatValidation(r));
  }
  log(
    `calibration (one peer, least squares over ${calibration.runs.length} runs): compute ${calibration.c0Ms} + ${calibration.c1Ms}·b ms, ` +
      `after ${calibration.afterMs} ms, ${calibration.params} parameters (${calibration.bytes} bytes a step)`,
  );

  const projection = project(o, calibration, hopOf(shared), bf.factor, recoveryMs, log);
  for (const line of formatProjection(projection, o.profiles, o.peers)) log(line);
  const w = winners(projection);
  const summary = summarize(w, projection);
  log('');
  for (const line of summary) log(line);

  const report: SimulateReport = {
    date: new Date().toISOString().slice(0, 10),
    validation_date: validationDate,
    options: o,
    inputs: {
      link_fit_plain: { ...plain, source: 'allreduce.json, Node rows; the first model' },
      link_fit_shared_cores: {
        ...shared,
        source: `allreduce.json, Node rows, fitted with ${o.cores} shared cores: per-hop software cost on a dedicated core`,
      },
      recovery_ms: recoveryMs,
      recovery_source: recoverySource,
      recovery_wan: 'plus 4 one-way delays of the profile (assumption)',
      backend_to: o.backendTo,
      backend_factor: round(bf.factor, 3),
      backend_factor_source: bf.source,
      profiles: Object.fromEntries(
        o.profiles.map((p) => {
          const wire = wireOf(WAN_PROFILES[p]);
          return [p, { ...WAN_PROFILES[p], alpha_ms: wire.alphaMs, beta_mb_per_s: round(wire.bytesPerMs / 1000, 3) }];
        }),
      ),
    },
    calibration,
    validation,
    projection,
    winners: w,
    summary,
  };
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(path.join(dir, 'simulate.svg'), svgOf(report));
  return report;
}

function svgOf(r: SimulateReport): string {
  const o = r.options;
  return goodputSvg(
    o.profiles.map((profile) => {
      const p = WAN_PROFILES[profile];
      return {
        title: `${profile}: ${p.delayMs} ms, ${p.rateMbit} Mbit/s${'lossPct' in p ? `, ${p.lossPct}% loss` : ''}`,
        series: STRATEGIES.map(
          (s): Series => ({
            label: strategyName(s),
            color: COLORS[s.topology],
            dashed: s.algorithm === 'diloco',
            points: r.projection
              .filter((x) => x.profile === profile && x.strategy === strategyName(s))
              .map((x) => [x.peers, x.goodput] as [number, number]),
          }),
        ),
      };
    }),
    [
      `MLP (${r.calibration.params} parameters), ${o.localBatch} samples per peer and step, one device per peer (${o.backendTo}, speed spread σ ${o.deviceSigma}); ` +
        `DiLoCo: H = ${o.dilocoH}, ${o.dilocoCodec} deltas.`,
      `Churn: sessions of ${o.sessionMin} min on average, ${o.crashPerHour} crashes per peer-hour, recovery ${r.inputs['recovery_ms']} ms + 4 link delays.`,
      `Below 10 samples/s: on the bottom axis. npm run bench -- simulate, ${r.date}.`,
    ],
  );
}
