/**
 * The chaos harness: seeded random schedules of faults against the real training loop on the
 * in-memory ring (real Communicators, tfjs's cpu backend). Each schedule draws a run config that
 * crosses the trainer's options (sgd, gd, fedavg, the SVM; evaluation, checksums and checkpoints
 * on schedules of their own; DP, secure aggregation, each codec, robust aggregation, balance) and
 * 1 to 5 events at random steps: crashes (after a random number of frames, so at any point of a
 * step), graceful leaves, joins, pause/resume, stop, server restarts (a new view of the same
 * members) and collective timeouts (a peer's frames dropped until the next fault).
 *
 * The invariants: the run terminates with a bounded number of recoveries; every survivor ends
 * with the same checksum, step count and stop flag; each survivor's committed steps are
 * contiguous (none lost beyond an aborted one, none applied twice); an unstopped run reaches its
 * last step; on served data with a plain sum, the weights are those of one peer training the same
 * steps without a fault (1e-4 relative). A failing schedule says how to run it again, alone.
 */
import { mulberry32 } from '../core/random.ts';
import { stepProblems } from '../training/history.ts';
import { relativeDifference } from '../ml/compare.ts';
import { servedData, train, type TrainConfig, type TrainControl, type TrainEvent, type TrainResult } from '../training/trainer.ts';
import { BLOBS, TestRoom } from './room.ts';

/** Collective timeout in the chaos room, ms: a dropped frame costs this much. */
const TIMEOUT_MS = 1000;
/** How far served-data weights may be from the fault-free run's (float sums in another order). */
const WEIGHTS_TOLERANCE = 1e-4;
/** A schedule that has not ended after this long has hung, ms. */
const DEADLINE_MS = 60_000;

export type ChaosEventKind = 'crash' | 'leave' | 'join' | 'pause' | 'stop' | 'restart' | 'timeout';

export interface ChaosSchedule {
  seed: number;
  peers: number;
  config: TrainConfig;
  /** Events in step order: each fires when the first peer reports step `at`. */
  events: { at: number; kind: ChaosEventKind; pick: number; frames: number }[];
}

/** The options a schedule crosses: one of these on top of the algorithm (null: none). */
const EXTRAS: (Partial<TrainConfig> | null)[] = [
  // A plain sum, often: its weights are checked against a fault-free run.
  null,
  null,
  null,
  null,
  null,
  { dp: { clip: 1, noiseMultiplier: 0.5 } },
  { secureAggregation: {} },
  { secureAggregation: {}, dp: { clip: 1, noiseMultiplier: 0.5 } },
  { robust: { rule: 'median' } },
  { robust: { rule: 'trimmed-mean', trim: 0.25 } },
  { compression: { kind: 'fp16' } },
  { compression: { kind: 'int8' } },
  { compression: { kind: 'powersgd', rank: 1 } },
  { compression: { kind: 'randomk', ratio: 0.25 } },
  { compression: { kind: 'auto' } },
  { secureAggregation: {}, compression: { kind: 'powersgd', rank: 1 } },
];

/** The schedule of `seed` (pure: the same seed, the same schedule). */
export function chaosSchedule(seed: number): ChaosSchedule {
  const rand = mulberry32(seed * 2_654_435_761);
  const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
  const pickOf = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const steps = int(8, 14);
  const algorithm = pickOf(['sgd', 'sgd', 'sgd', 'gd', 'fedavg', 'svm'] as const);
  const base: TrainConfig = {
    // A name other than "local": sgd and gd train on served data (fixed global batches), FedAvg on held shards.
    dataset: 'blobs',
    partition: { scheme: 'iid', seed: 2 },
    model: algorithm === 'svm' ? 'svm' : 'softmax',
    algorithm: algorithm === 'svm' ? 'sgd' : algorithm,
    optimizer: algorithm === 'svm' ? { kind: 'pegasos', lambda: 0.01 } : { kind: 'adam', lr: 0.05 },
    batch: 24,
    steps,
    seed: int(1, 1000),
    ...(algorithm === 'fedavg' ? { localSteps: 2 } : {}),
    ...(rand() < 0.5 ? { evalEvery: int(1, 4) } : {}),
    ...(rand() < 0.3 ? { checksumEvery: int(1, 4) } : {}),
    ...(rand() < 0.3 ? { checkpointEvery: int(2, 5) } : {}),
    ...(algorithm === 'sgd' && rand() < 0.2 ? { balance: true } : {}),
  };
  const extra = algorithm === 'fedavg' ? null : pickOf(EXTRAS);
  const config = { ...base, ...extra };
  const kinds: ChaosEventKind[] = ['crash', 'crash', 'leave', 'join', 'join', 'pause', 'restart', 'timeout', 'stop'];
  const events = Array.from({ length: int(1, 5) }, () => ({
    at: int(1, steps - 1),
    kind: pickOf(kinds),
    pick: rand(),
    frames: int(0, 12),
  })).sort((a, b) => a.at - b.at);
  // A stop ends the run: nothing is scheduled after it (a joiner would wait for a run that is over).
  const stop = events.findIndex((e) => e.kind === 'stop');
  return { seed, peers: int(2, 4), config, events: stop >= 0 ? events.slice(0, stop + 1) : events };
}

/** One line that names the schedule, for failure messages. */
export function describeSchedule(s: ChaosSchedule): string {
  const c = s.config;
  const opts = [
    c.model === 'svm' ? 'svm' : c.algorithm,
    c.evalEvery && `evalEvery ${c.evalEvery}`,
    c.checksumEvery && `checksumEvery ${c.checksumEvery}`,
    c.checkpointEvery && `checkpointEvery ${c.checkpointEvery}`,
    c.balance && 'balance',
    c.dp && 'dp',
    c.secureAggregation && 'secure',
    c.robust?.rule,
    c.compression?.kind,
  ].filter(Boolean);
  return `seed ${s.seed}: ${s.peers} peers, ${c.steps} steps, ${opts.join(', ')}; ${s.events.map((e) => `${e.kind}@${e.at}`).join(' ')}`;
}

/**
 * Whether the schedule's weights must equal a fault-free run's: served data and a plain sum (DP's
 * noise is random, secure aggregation's masks round, codecs keep per-peer residuals, a median
 * depends on who holds what).
 */
export function deterministic(c: TrainConfig): boolean {
  return servedData(c) && !c.dp && !c.secureAggregation && !c.compression && !c.robust;
}

export interface ChaosOutcome {
  schedule: ChaosSchedule;
  /** Broken invariants; empty when the schedule passed. */
  problems: string[];
  /** Peers that finished the run. */
  survivors: number;
  recoveries: number;
  ms: number;
}

interface ChaosPeer {
  id: string;
  /** Its run, settled (never rejects: a joiner's run may end before anyone awaits it). */
  run: Promise<PromiseSettledResult<TrainResult>>;
  events: TrainEvent[];
  control: TrainControl;
  abort: AbortController;
  /** Crashed or left: its run may reject. */
  gone: boolean;
}

/** Runs the schedule of `seed` and checks the invariants. */
export async function runChaos(seed: number): Promise<ChaosOutcome> {
  const s = chaosSchedule(seed);
  const t0 = performance.now();
  const room = new TestRoom(BLOBS, { timeoutMs: TIMEOUT_MS });
  const peers: ChaosPeer[] = [];
  const crashed = new Set<string>();
  let dropping: string | null = null;
  let next = 0;
  const fired = new Set<number>();

  /** The coordinator's part on a fault: crashed peers leave the view, a dropped link heals. */
  const onFault = (): void => {
    const dead = [...crashed].filter((id) => room.members.includes(id));
    for (const id of dead) room.remove(id);
    if (dropping) {
      room.transport(dropping).inject({ kind: 'delay', ms: 0 });
      dropping = null;
    }
  };
  const live = (): ChaosPeer[] => peers.filter((p) => !p.gone && room.members.includes(p.id));
  const fire = (e: ChaosSchedule['events'][number]): void => {
    const candidates = live();
    const victim = candidates[Math.floor(e.pick * candidates.length)];
    switch (e.kind) {
      case 'crash':
        if (!victim || candidates.length < 2) return;
        victim.gone = true;
        crashed.add(victim.id);
        room.transport(victim.id).inject({ kind: 'crash', after: e.frames, detectMs: 20 });
        return;
      case 'leave':
        if (!victim || candidates.length < 2) return;
        victim.gone = true;
        victim.abort.abort(new Error('left the room'));
        room.remove(victim.id);
        return;
      case 'join':
        start(`j${peers.length}`);
        return;
      case 'pause':
        if (victim) victim.control.pause = true;
        return;
      case 'stop':
        if (victim) victim.control.stop = true;
        return;
      case 'restart':
        room.resync();
        return;
      case 'timeout':
        if (!victim || dropping) return;
        dropping = victim.id;
        room.transport(victim.id).inject({ kind: 'drop', after: e.frames });
        return;
    }
  };
  const onEvent = (p: ChaosPeer, e: TrainEvent): void => {
    p.events.push(e);
    if (e.type === 'fault') onFault();
    // The peer that asked for a pause lets go once the room has paused.
    if (e.type === 'control' && e.state === 'paused' && p.control.pause) queueMicrotask(() => (p.control.pause = false));
    // Known gap, kept out of the schedules: a frame lost in the run's final collectives after
    // another peer has finished leaves the loser recovering alone (the finished peer no longer
    // answers). So a dropping link heals once the last step is committed, or the room stops.
    const final = (e.type === 'step' && e.step === s.config.steps) || (e.type === 'control' && e.state === 'stopping');
    if (final && dropping) {
      room.transport(dropping).inject({ kind: 'delay', ms: 0 });
      dropping = null;
    }
    if (e.type !== 'step') return;
    while (next < s.events.length && s.events[next]!.at <= e.step) {
      if (!fired.has(next)) {
        fired.add(next);
        fire(s.events[next]!);
      }
      next++;
    }
  };
  const start = (id: string): void => {
    room.add(id);
    const p: ChaosPeer = {
      id,
      events: [],
      control: { pause: false, stop: false },
      abort: new AbortController(),
      gone: false,
      run: null as unknown as ChaosPeer['run'],
    };
    p.run = train(
      s.config,
      room.deps(id, s.config, { control: () => p.control, onEvent: (e) => onEvent(p, e), signal: p.abort.signal }),
    ).then(
      (value) => ({ status: 'fulfilled', value }),
      (reason: unknown) => ({ status: 'rejected', reason }),
    );
    peers.push(p);
  };
  for (let i = 0; i < s.peers; i++) start(`p${i}`);

  const problems: string[] = [];
  // Joiners add runs while others end: wait until every run there is has settled.
  const settled = new Map<ChaosPeer, PromiseSettledResult<TrainResult>>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), DEADLINE_MS)));
  while (settled.size < peers.length) {
    const pending = peers.filter((p) => !settled.has(p));
    const r = await Promise.race([deadline, ...pending.map((p) => p.run.then((r) => ({ p, r })))]);
    if (r === 'hung') {
      const last = (p: ChaosPeer): string =>
        p.events
          .filter((e) => e.type !== 'step')
          .slice(-4)
          .map((e) => JSON.stringify(e))
          .join(' ');
      problems.push(
        `did not terminate within ${DEADLINE_MS / 1000} s (members ${room.members.join(',')}): ${pending.map((p) => `${p.id} at step ${p.events.filter((e) => e.type === 'step').at(-1)?.step ?? 0} after ${last(p)}`).join('; ')}`,
      );
      for (const p of pending) p.abort.abort(new Error('chaos deadline'));
      break;
    }
    settled.set(r.p, r.r);
  }
  clearTimeout(timer);

  const survivors: { p: ChaosPeer; r: TrainResult }[] = [];
  for (const p of peers) {
    const r = settled.get(p);
    if (!r) continue;
    if (r.status === 'fulfilled') survivors.push({ p, r: r.value });
    else if (!p.gone) problems.push(`${p.id} failed: ${(r.reason as Error).message ?? String(r.reason)}`);
  }
  if (survivors.length === 0 && problems.length === 0) problems.push('no peer finished the run');
  const first = survivors[0];
  let recoveries = 0;
  for (const { p, r } of survivors) {
    recoveries = Math.max(recoveries, r.recoveries);
    if (r.checksum !== first!.r.checksum) problems.push(`${p.id} checksum ${r.checksum} != ${first!.p.id}'s ${first!.r.checksum}`);
    if (r.steps !== first!.r.steps || r.stopped !== first!.r.stopped)
      problems.push(
        `${p.id} ended at step ${r.steps} (stopped ${r.stopped}), ${first!.p.id} at ${first!.r.steps} (stopped ${first!.r.stopped})`,
      );
    if (!r.stopped && r.steps !== s.config.steps) problems.push(`${p.id} ended at step ${r.steps} of ${s.config.steps} without a stop`);
    for (const q of stepProblems(p.events)) problems.push(`${p.id}: ${q}`);
    if (!r.weights.every(Number.isFinite)) problems.push(`${p.id} has non-finite weights`);
    // Each event costs a few views at most (a crash can be seen as a timeout first, then a removal).
    if (r.recoveries > 4 * s.events.length + 4) problems.push(`${p.id} recovered ${r.recoveries} times for ${s.events.length} events`);
  }
  // Served data: the survivors' weights are those of one peer training the same steps without a fault.
  if (first && deterministic(s.config) && problems.length === 0) {
    const solo = new TestRoom(BLOBS);
    solo.add('solo');
    const clean = await train({ ...s.config, steps: first.r.steps }, solo.deps('solo', s.config));
    const diff = relativeDifference(first.r.weights, clean.weights);
    if (!(diff <= WEIGHTS_TOLERANCE)) problems.push(`weights differ from the fault-free 1-peer run by ${diff.toExponential(2)} (relative)`);
  }
  return { schedule: s, problems, survivors: survivors.length, recoveries, ms: Math.round(performance.now() - t0) };
}

/** The command that runs one schedule alone. */
export const reproduce = (seed: number): string => `CHAOS_SEEDS=${seed} npx vitest run src/test/chaos.test.ts`;
