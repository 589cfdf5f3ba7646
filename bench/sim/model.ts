/**
 * The discrete-event model behind `npm run bench -- simulate` (bench/simulate.ts): pure functions,
 * no I/O, every random draw from a seeded generator.
 *
 * One step (per-step sync) or one round (DiLoCo) of N peers is simulated event by event:
 *
 * - each peer first computes (a CPU task: its local batch, or H local steps);
 * - then the collective, as messages: a ring of M members makes 2(M−1) hops; at hop k member i
 *   sends one chunk to member i+1 once it has processed the chunk of hop k−1 from member i−1 (hop
 *   0: once its own data is ready). A chunk occupies the sender's upload for chunk/β (one send at
 *   a time per link) and lands α later; the receiver then spends CPU on it (the per-hop software
 *   cost, a + chunk/b on a dedicated core). So every hop waits for the slowest sender of that hop,
 *   and a straggler delays the whole ring.
 * - two-level: groups of g ≈ √N; a reduce-scatter ring inside each group (g−1 hops of S/g), a ring
 *   across the groups between the members that hold the same shard (2(G−1) hops of S/N, G = N/g),
 *   and an all-gather inside each group (g−1 hops of S/g);
 * - then the per-step fixed work (apply the update, bookkeeping: a CPU task).
 *
 * CPU work runs on a dedicated core per peer (the projection: one volunteer device per peer), or on
 * `cores` cores shared by all peers with processor sharing (the validation against a run of N peer
 * processes on this 2-core machine: with m tasks ready, each runs at min(1, cores/m) of a core).
 *
 * Over many steps or rounds (`simulateChurn`), peers leave (exponential sessions) or crash (a
 * Poisson rate); a failure aborts the step or round in progress for everyone (a ring's sum, and
 * a two-level sum's cross-group ring, need every member), costs a recovery time, and the
 * departed peer's place is taken by a newcomer: throughput counts the samples computed, goodput
 * the samples of committed steps or rounds.
 */
import { mulberry32 } from '../../src/core/random.ts';

// ---------------------------------------------------------------------------------------------
// Random draws

export type Rng = () => number;

export const seeded = (seed: number): Rng => mulberry32(seed);

/** An exponential draw of the given mean. */
export const exponential = (rng: Rng, mean: number): number => -mean * Math.log(1 - rng());

/** A log-normal factor of median 1: exp(σ·z), z standard normal (Box–Muller). σ = 0 gives 1. */
export function lognormal(rng: Rng, sigma: number): number {
  if (sigma === 0) return 1;
  const z = Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  return Math.exp(sigma * z);
}

// ---------------------------------------------------------------------------------------------
// The event kernel

/** A binary min-heap of (time, sequence) keys: equal times pop in insertion order (deterministic runs). */
class TimeHeap<T> {
  private readonly keys: number[] = [];
  private readonly seqs: number[] = [];
  private readonly items: T[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  peek(): number {
    return this.keys[0] ?? Infinity;
  }

  push(t: number, item: T): void {
    let i = this.items.length;
    this.keys.push(t);
    this.seqs.push(this.seq++);
    this.items.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): { t: number; item: T } | undefined {
    const n = this.items.length;
    if (n === 0) return undefined;
    const top = { t: this.keys[0]!, item: this.items[0]! };
    this.swap(0, n - 1);
    this.keys.pop();
    this.seqs.pop();
    this.items.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n - 1 && this.less(l, m)) m = l;
      if (r < n - 1 && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }

  private less(a: number, b: number): boolean {
    return this.keys[a]! < this.keys[b]! || (this.keys[a] === this.keys[b] && this.seqs[a]! < this.seqs[b]!);
  }

  private swap(a: number, b: number): void {
    [this.keys[a], this.keys[b]] = [this.keys[b]!, this.keys[a]!];
    [this.seqs[a], this.seqs[b]] = [this.seqs[b]!, this.seqs[a]!];
    [this.items[a], this.items[b]] = [this.items[b]!, this.items[a]!];
  }
}

/** Simulated time (ms) and the events still to come; `run` stops after `maxEvents` (a bound, not a goal). */
export class Sim {
  now = 0;
  events = 0;
  private readonly queue = new TimeHeap<() => void>();

  at(t: number, fn: () => void): void {
    this.queue.push(Math.max(t, this.now), fn);
  }

  run(maxEvents = 50_000_000): void {
    for (;;) {
      const e = this.queue.pop();
      if (!e) return;
      if (++this.events > maxEvents) throw new Error(`simulation: more than ${maxEvents} events`);
      this.now = e.t;
      e.item();
    }
  }
}

/** Where CPU work runs: `work` ms of one core's time for `peer`, then `done`. */
export interface Cpu {
  run(peer: number, work: number, done: () => void): void;
}

/** One core per peer: a task takes its work's time, whatever the others do. */
export const dedicatedCpu = (sim: Sim): Cpu => ({ run: (_peer, work, done) => sim.at(sim.now + work, done) });

/**
 * `cores` cores shared by all tasks (processor sharing): with m tasks running, each advances at
 * min(1, cores/m) ms of work per ms. All running tasks advance alike, so one virtual clock V
 * (work done by any running task since the start) orders their ends.
 */
export function sharedCpu(sim: Sim, cores: number): Cpu {
  const running = new TimeHeap<() => void>();
  let v = 0;
  let last = 0;
  let wake = 0;
  const rate = (): number => Math.min(1, cores / Math.max(1, running.size));
  const advance = (): void => {
    v += (sim.now - last) * rate();
    last = sim.now;
  };
  const schedule = (): void => {
    const token = ++wake;
    if (running.size === 0) return;
    sim.at(sim.now + Math.max(0, running.peek() - v) / rate(), () => {
      if (token !== wake) return;
      advance();
      const done: (() => void)[] = [];
      while (running.size > 0 && running.peek() <= v + 1e-9) done.push(running.pop()!.item);
      schedule();
      for (const d of done) d();
    });
  };
  return {
    run(_peer, work, done) {
      advance();
      running.push(v + work, done);
      schedule();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Links and collectives

/** A link between two peers: α, latency per hop (ms); β, its rate (bytes per ms = kB/s). */
export interface Wire {
  alphaMs: number;
  bytesPerMs: number;
}

/** The software's cost of one hop on the receiving peer's core: `hopMs` + chunk / `bytesPerMs`. */
export interface HopCpu {
  hopMs: number;
  bytesPerMs: number;
}

export const NO_HOP_CPU: HopCpu = { hopMs: 0, bytesPerMs: Infinity };

export type Topology = 'ring' | 'two-level';

/** The group size of the two-level scheme for N peers: the divisor of N nearest √N (the larger on a tie). */
export function groupSize(n: number): number {
  let best = 1;
  for (let g = 1; g <= n; g++) if (n % g === 0 && Math.abs(g - Math.sqrt(n)) <= Math.abs(best - Math.sqrt(n))) best = g;
  return best;
}

/** Closed form of a ring allreduce of `bytes` over n peers on uniform links: 2(n−1)(α + S/(nβ)). */
export const ringMs = (n: number, bytes: number, w: Wire): number => (n <= 1 ? 0 : 2 * (n - 1) * (w.alphaMs + bytes / n / w.bytesPerMs));

/** Closed form of the two-level allreduce (groups of g): 2(g−1)(α + S/(gβ)) + 2(G−1)(α + S/(nβ)), G = n/g. */
export function twoLevelMs(n: number, bytes: number, w: Wire, g = groupSize(n)): number {
  const inGroup = g <= 1 ? 0 : 2 * (g - 1) * (w.alphaMs + bytes / g / w.bytesPerMs);
  const across = n / g <= 1 ? 0 : 2 * (n / g - 1) * (w.alphaMs + bytes / n / w.bytesPerMs);
  return inGroup + across;
}

/** What a collective needs from the step around it. */
interface Net {
  sim: Sim;
  cpu: Cpu;
  wire: Wire;
  hop: HopCpu;
  /** Per peer: a factor on its CPU work (its device's speed). */
  slow: number[];
  /** Per peer: when its upload is free again. */
  linkFree: number[];
}

/**
 * A ring over `members` (peer ids in ring order) making `hops` hops of `chunk` bytes. Returns
 * `ready(peer)`, to call when that member's own data is there; `done(peer)` is called when the
 * member has processed its last incoming chunk.
 */
function ring(net: Net, members: number[], hops: number, chunk: number, done: (peer: number) => void): (peer: number) => void {
  const m = members.length;
  const index = new Map(members.map((p, i) => [p, i]));
  const ready = new Array<boolean>(m).fill(false);
  const busy = new Array<boolean>(m).fill(false);
  const inbox = new Array<number>(m).fill(0);
  const processed = new Array<number>(m).fill(0);
  const { sim, cpu, wire, hop } = net;
  const send = (i: number): void => {
    const from = members[i]!;
    const start = Math.max(sim.now, net.linkFree[from]!);
    net.linkFree[from] = start + chunk / wire.bytesPerMs;
    const j = (i + 1) % m;
    sim.at(net.linkFree[from]! + wire.alphaMs, () => {
      inbox[j]!++;
      work(j);
    });
  };
  const work = (i: number): void => {
    if (!ready[i] || busy[i] || processed[i]! >= inbox[i]!) return;
    busy[i] = true;
    const peer = members[i]!;
    cpu.run(peer, (hop.hopMs + chunk / hop.bytesPerMs) * net.slow[peer]!, () => {
      busy[i] = false;
      processed[i]!++;
      if (processed[i]! < hops) send(i);
      else done(peer);
      work(i);
    });
  };
  return (peer) => {
    const i = index.get(peer)!;
    if (m === 1 || hops === 0) return done(peer);
    ready[i] = true;
    send(i);
    work(i);
  };
}

/** The allreduce of `bytes` over peers 0..n−1 as chained rings; returns `ready(peer)`. */
function allreduce(net: Net, n: number, bytes: number, topology: Topology, done: (peer: number) => void): (peer: number) => void {
  const everyone = Array.from({ length: n }, (_, i) => i);
  if (topology === 'ring') return ring(net, everyone, 2 * (n - 1), bytes / n, done);
  const g = groupSize(n);
  const groups = n / g;
  // Peer p is member p % g of group ⌊p/g⌋; the cross-group ring j joins the members j of every group.
  const groupOf = (p: number): number[] => everyone.slice(Math.floor(p / g) * g, Math.floor(p / g) * g + g);
  const gather = new Map<number, (p: number) => void>();
  const across = new Map<number, (p: number) => void>();
  const scatter = new Map<number, (p: number) => void>();
  for (let k = 0; k < groups; k++) {
    const members = everyone.slice(k * g, k * g + g);
    const ag = ring(net, members, g - 1, bytes / g, done);
    for (const p of members) gather.set(p, ag);
  }
  for (let j = 0; j < g; j++) {
    const members = Array.from({ length: groups }, (_, k) => k * g + j);
    const x = ring(net, members, 2 * (groups - 1), bytes / n, (p) => gather.get(p)!(p));
    for (const p of members) across.set(p, x);
  }
  for (let k = 0; k < groups; k++) {
    const members = groupOf(k * g);
    const rs = ring(net, members, g - 1, bytes / g, (p) => across.get(p)!(p));
    for (const p of members) scatter.set(p, rs);
  }
  return (p) => scatter.get(p)!(p);
}

/** One step (or round) of n peers: compute, the allreduce, the fixed per-step work. */
export interface StepInput {
  n: number;
  /** Per peer: CPU ms before the collective (its batch's gradient, or H local steps). */
  computeMs: number[];
  /** Per peer: CPU ms after it (apply the update, bookkeeping). */
  afterMs: number[];
  /** Per peer: factor on its per-hop CPU work (its device's speed; 1 when absent). */
  slow?: number[];
  bytes: number;
  topology: Topology;
  wire: Wire;
  hop: HopCpu;
  /** Cores shared by all peers; Infinity (or ≥ n): one core each. */
  cores: number;
}

export interface StepOutput {
  /** When the last peer finished the step, ms from its start. */
  ms: number;
  /** When the last peer finished computing. */
  computeMs: number;
  /** CPU work of all peers together (ms of one core). */
  cpuMs: number;
  events: number;
}

export function simulateStep(s: StepInput): StepOutput {
  const sim = new Sim();
  const inner = s.cores >= s.n ? dedicatedCpu(sim) : sharedCpu(sim, s.cores);
  let cpuMs = 0;
  const cpu: Cpu = {
    run(peer, work, done) {
      cpuMs += work;
      inner.run(peer, work, done);
    },
  };
  const net: Net = {
    sim,
    cpu,
    wire: s.wire,
    hop: s.hop,
    slow: s.slow ?? new Array<number>(s.n).fill(1),
    linkFree: new Array<number>(s.n).fill(0),
  };
  let end = 0;
  let computed = 0;
  const ready = allreduce(net, s.n, s.bytes, s.topology, (p) =>
    cpu.run(p, s.afterMs[p]!, () => {
      end = Math.max(end, sim.now);
    }),
  );
  for (let p = 0; p < s.n; p++)
    cpu.run(p, s.computeMs[p]!, () => {
      computed = Math.max(computed, sim.now);
      ready(p);
    });
  sim.run();
  return { ms: end, computeMs: computed, cpuMs, events: sim.events };
}

// ---------------------------------------------------------------------------------------------
// Strategies: what one unit of work (a step or a round) is, drawn for a population of peers

export type Algorithm = 'sync' | 'diloco';

export interface Strategy {
  topology: Topology;
  algorithm: Algorithm;
}

export const STRATEGIES: readonly Strategy[] = [
  { topology: 'ring', algorithm: 'sync' },
  { topology: 'two-level', algorithm: 'sync' },
  { topology: 'ring', algorithm: 'diloco' },
  { topology: 'two-level', algorithm: 'diloco' },
];

export const strategyName = (s: Strategy): string => `${s.topology} ${s.algorithm === 'sync' ? 'sync' : 'DiLoCo'}`;

/** What a peer's device costs: compute(b) = c0 + c1·b ms for a local batch of b, and fixed work per step. */
export interface Device {
  /** ms per step independent of the batch. */
  c0Ms: number;
  /** ms per sample. */
  c1Ms: number;
  /** ms per step after the collective (update, bookkeeping). */
  afterMs: number;
}

export interface Scenario {
  n: number;
  strategy: Strategy;
  /** Samples each peer computes per step. */
  localBatch: number;
  /** Model parameters: the sync step sends params·4 + 8 bytes (f32 gradient, loss, count). */
  params: number;
  /** DiLoCo: local steps per round, and bytes per value of the delta (2: fp16, 1: int8). */
  dilocoH: number;
  dilocoBytesPerValue: number;
  device: Device;
  /** σ of the log-normal speed factor of each peer's device (0: all alike). */
  deviceSigma: number;
  /** σ of the log-normal factor on each peer's compute, drawn anew every step. */
  jitterSigma: number;
  wire: Wire;
  hop: HopCpu;
  cores: number;
}

/** Bytes of one allreduce. */
export const unitBytes = (s: Scenario): number => (s.strategy.algorithm === 'sync' ? s.params * 4 + 8 : s.params * s.dilocoBytesPerValue);

/** Samples one unit (a step, or a round of H steps) adds, over all peers. */
export const unitSamples = (s: Scenario): number => s.n * s.localBatch * (s.strategy.algorithm === 'sync' ? 1 : s.dilocoH);

export interface Unit {
  ms: number;
  computeMs: number;
  samples: number;
}

/** One unit for the peers whose device speed factors are `speed` (length n). */
export function drawUnit(s: Scenario, speed: number[], rng: Rng): Unit & { events: number } {
  const h = s.strategy.algorithm === 'sync' ? 1 : s.dilocoH;
  const perStep = s.device.c0Ms + s.device.c1Ms * s.localBatch;
  const computeMs = speed.map((f) => {
    let t = 0;
    // DiLoCo's local steps each apply their own update: the fixed work counts H times (the last one
    // is the outer step after the collective).
    for (let k = 0; k < h; k++) t += perStep * f * lognormal(rng, s.jitterSigma) + (k < h - 1 ? s.device.afterMs * f : 0);
    return t;
  });
  const out = simulateStep({
    n: s.n,
    computeMs,
    afterMs: speed.map((f) => s.device.afterMs * f),
    slow: speed,
    bytes: unitBytes(s),
    topology: s.strategy.topology,
    wire: s.wire,
    hop: s.hop,
    cores: s.cores,
  });
  return { ms: out.ms, computeMs: out.computeMs, samples: unitSamples(s), events: out.events };
}

/**
 * Up to `count` units, each for a population of peers drawn anew (device speed factors; over
 * hours of churn the population turns over) with its own per-step jitter; fewer units once the
 * simulated events pass `eventBudget` (at least two: a ring step of 1024 peers is 4 million events).
 */
export function drawUnits(s: Scenario, count: number, rng: Rng, eventBudget = Infinity): Unit[] {
  const units: Unit[] = [];
  let spent = 0;
  while (units.length < count && (units.length < 2 || spent < eventBudget)) {
    const speed = Array.from({ length: s.n }, () => lognormal(rng, s.deviceSigma));
    const { ms, computeMs, samples, events } = drawUnit(s, speed, rng);
    units.push({ ms, computeMs, samples });
    spent += events;
  }
  return units;
}

// ---------------------------------------------------------------------------------------------
// Churn

export interface Churn {
  /** Mean session of a peer, minutes (exponential); Infinity: none leaves. */
  sessionMin: number;
  /** Crashes per peer per hour, besides leaving (Poisson). */
  crashPerHour: number;
  /** From a failure to the next step starting, ms. */
  recoveryMs: number;
  /** Simulated time, ms. */
  horizonMs: number;
  /** A bound on the loop's iterations (units plus failures). */
  maxEvents: number;
}

export interface ChurnOutput {
  /** Samples computed per second, lost or kept. */
  throughput: number;
  /** Samples of committed units per second. */
  goodput: number;
  committed: number;
  aborted: number;
  failures: number;
  simulatedMs: number;
}

/**
 * Units back to back for `n` peers; each peer fails after min(session, crash) (exponential), and
 * is replaced at once by a newcomer with a fresh session. A failure during a unit aborts it (its
 * samples computed so far count for throughput only) and training resumes `recoveryMs` after
 * the failure (later, if another peer fails meanwhile); the aborted unit is redone.
 */
export function simulateChurn(n: number, units: Unit[], c: Churn, rng: Rng): ChurnOutput {
  const failures = new TimeHeap<number>();
  const rateMs = 1 / (c.sessionMin * 60_000) + c.crashPerHour / 3_600_000;
  const nextFailure = (from: number): number => (rateMs > 0 ? from + exponential(rng, 1 / rateMs) : Infinity);
  for (let p = 0; p < n; p++) failures.push(nextFailure(0), p);
  let t = 0;
  let [processed, kept, committed, aborted, failed, events] = [0, 0, 0, 0, 0, 0];
  while (t < c.horizonMs && events++ < c.maxEvents) {
    const u = units[Math.floor(rng() * units.length)]!;
    if (failures.peek() >= t + u.ms) {
      t += u.ms;
      processed += u.samples;
      kept += u.samples;
      committed++;
      continue;
    }
    processed += u.samples * Math.min(1, Math.max(0, (failures.peek() - t) / Math.max(u.computeMs, 1e-9)));
    aborted++;
    t = failures.peek();
    while (failures.peek() <= t) {
      const f = failures.pop()!;
      failed++;
      failures.push(nextFailure(f.t), f.item);
      t = Math.max(t, f.t + c.recoveryMs);
    }
  }
  const secs = t / 1000;
  return { throughput: processed / secs, goodput: kept / secs, committed, aborted, failures: failed, simulatedMs: t };
}

// ---------------------------------------------------------------------------------------------
// Links from measurements and profiles

/** A link profile as src/harness/netns.ts's WAN_PROFILES gives it. */
export interface LinkProfile {
  delayMs: number;
  rateMbit: number;
  lossPct?: number;
}

/** SCTP's payload per packet over DTLS/UDP (assumption; usrsctp's default path MTU of 1200). */
export const SCTP_MSS_BYTES = 1200;

/**
 * A profile's wire: α = its one-way delay; β = its rate, or less with packet loss: a loss-based
 * congestion control keeps at most 1.22·MSS/(RTT·√p) (Mathis et al. 1997; an assumption:
 * SCTP's congestion control is TCP-like), RTT = 2·delay.
 */
export function wireOf(p: LinkProfile): Wire {
  const rate = (p.rateMbit * 1e6) / 8 / 1000;
  const loss = (p.lossPct ?? 0) / 100;
  const rtt = 2 * p.delayMs;
  const mathis = loss > 0 && rtt > 0 ? (1.22 * SCTP_MSS_BYTES) / (rtt * Math.sqrt(loss)) : Infinity;
  return { alphaMs: p.delayMs, bytesPerMs: Math.min(rate, mathis) };
}

/** MB/s (10^6 bytes) as bytes per ms. */
export const mbPerSec = (mb: number): number => mb * 1000;
