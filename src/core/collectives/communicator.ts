import { FRAME_HEADER_BYTES, MAX_FRAME_PAYLOAD } from '../../protocol/frame.ts';
import { abortReason, RingError } from '../errors.ts';
import { ringPosition, type RingPosition, type View } from '../membership/view.ts';
import type { WireSpec } from '../../protocol/wire.ts';
import type { PeerId, Transport, Unsubscribe } from '../transport.ts';
import { ringBroadcast } from './broadcast.ts';
import type { CollectiveContext, TrafficStats } from './context.ts';
import { allToAllSum, ringShift } from './direct.ts';
import type { Mailbox } from './mailbox.ts';
import { ringAllreduce } from './ring-allreduce.ts';
import { effectiveGroupSize, twoLevelAllreduce, twoLevelPeers, twoLevelWireOk } from './two-level.ts';

/**
 * Default frame payload: a whole frame fills one 64 KiB message (Chromium measured no gain from
 * larger chunks; smaller pipelines better). 64 KiB is the message size every SCTP stack takes
 * (libdatachannel's default, so a Node peer's): were a peer's links to cap its chunks lower than the
 * others', their chunk counts would differ and every collective of the view would fail.
 */
export const DEFAULT_CHUNK_BYTES = 64 * 1024 - FRAME_HEADER_BYTES;
export const DEFAULT_TIMEOUT_MS = 60_000;
/** Longest timeout a timer can hold (setTimeout fires at once beyond it), ms. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

function checkTimeout(where: string, ms: number): void {
  if (!(Number.isFinite(ms) && ms > 0 && ms <= MAX_TIMEOUT_MS)) {
    throw new RangeError(`${where}: timeoutMs must be a positive number of ms up to ${MAX_TIMEOUT_MS}, got ${ms}`);
  }
}

/**
 * Views of at least this many peers sum by the two-level allreduce under `{ kind: 'auto' }`.
 * Measured (`npm run bench -- allreduce --runtime node --peers 8,16,32`, 2 cores, median of 3;
 * README): at 32 Node peers two-level beat the ring at both sizes (1.17× at 1 MiB, 1.15× at
 * 4 MiB); at 8 and 16 it was 0.83× to 1.11×, no consistent winner. So 32, the smallest view
 * where it won throughout. In the α/β model two-level sends the same bytes in 2(g−1) + 2(G−1)
 * steps instead of 2(N−1) and should win from 4 peers; on 2 cores α is mostly waiting for the CPU,
 * which fewer steps do not save, so the model's gain appears only late.
 */
export const AUTO_TWO_LEVEL_MIN_PEERS = 32;

/**
 * How `allreduce` sums: the ring of all peers, the two-level allreduce (two-level.ts) in groups of
 * `groupSize` consecutive ranks, or `auto`: two-level from `minPeers` peers (default
 * AUTO_TWO_LEVEL_MIN_PEERS) with {@link autoGroupSize}, else the ring. Every peer of a view must
 * use the same topology; what it picks is a function of the view's size (and the wire) alone.
 */
export type Topology = { kind: 'ring' } | { kind: 'two-level'; groupSize: number } | { kind: 'auto'; minPeers?: number };

/** The algorithm an allreduce runs: the ring, or two-level with a group size in [2, N). */
export type AllreducePlan = { kind: 'ring' } | { kind: 'two-level'; groupSize: number };

/**
 * The group size `auto` takes for `n` peers: the one with fewest steps, 2(g−1) + 2(⌈n/g⌉−1); among
 * those, the most even groups (the largest last group relative to g: its peers carry g/m shards
 * across), then the nearest to √n: 8 → 2, 10 → 2, 13 → 5 (5, 5, 3), 16 → 4, 32 → 4.
 */
export function autoGroupSize(n: number): number {
  let best = 1;
  let key = [Infinity, 0, Infinity];
  for (let g = 1; g <= n; g++) {
    const groups = Math.ceil(n / g);
    const last = n - (groups - 1) * g;
    const k = [g - 1 + groups - 1, last / g, Math.abs(g - Math.sqrt(n))];
    if (k[0]! < key[0]! || (k[0] === key[0] && (k[1]! > key[1]! || (k[1] === key[1] && k[2]! < key[2]!)))) {
      best = g;
      key = k;
    }
  }
  return best;
}

/**
 * What `topology` runs on a view of `n` peers with `wire`. The quantised wires (f16, i8) always
 * take the ring (two-level.ts says why), and a group size of 1 or ≥ n is the ring itself. A
 * RangeError for a group size or minPeers that is not a positive integer.
 */
export function planAllreduce(topology: Topology, n: number, wire?: WireSpec): AllreducePlan {
  let groupSize: number;
  if (topology.kind === 'ring') return topology;
  if (topology.kind === 'auto') {
    const min = topology.minPeers ?? AUTO_TWO_LEVEL_MIN_PEERS;
    if (!(Number.isInteger(min) && min >= 1)) throw new RangeError(`topology auto: minPeers must be a positive integer, got ${min}`);
    if (n < min) return { kind: 'ring' };
    groupSize = autoGroupSize(n);
  } else groupSize = effectiveGroupSize(topology.groupSize, n);
  if (groupSize <= 1 || groupSize >= n || !twoLevelWireOk(wire)) return { kind: 'ring' };
  return { kind: 'two-level', groupSize };
}

export interface CommunicatorOptions {
  transport: Transport;
  mailbox: Mailbox;
  view: View;
  /** Payload bytes per frame; rounded down to a multiple of 4 and capped by the transport and MAX_FRAME_PAYLOAD. */
  chunkBytes?: number;
  /** Timeout of a collective when the call gives none, ms (0 < timeoutMs <= MAX_TIMEOUT_MS; else RangeError). */
  timeoutMs?: number;
  /** Counters to add this communicator's traffic to (shared across views by a session). */
  stats?: TrafficStats;
  /** How `allreduce` sums (default: the ring). The other collectives always take the ring. */
  topology?: Topology;
}

export interface CollectiveOptions {
  signal?: AbortSignal;
  /** Overrides the communicator's default timeout, ms. */
  timeoutMs?: number;
  /** Called after each frame received (progress bars, tests that act mid-collective). */
  onFrame?: () => void;
  /** allreduce: the values' type on the wire (protocol/wire.ts); default float32. */
  wire?: WireSpec;
  /** broadcast: the most bytes a receiver accepts (default: a checkpoint's cap, 64 MiB). */
  maxBytes?: number;
  /** allreduce: overrides the communicator's topology for this call (every peer must pass the same). */
  topology?: Topology;
}

/**
 * Runs collectives among the members of one view. A communicator is bound to its view's epoch:
 * when the view changes, `close()` it and build a new one. Collectives run one at a time in call
 * order (each gets the next sequence number), and each rejects with a {@link RingError} on
 * timeout, abort, a dead neighbour, a protocol violation or `close()`; a failed collective never
 * yields a partial result.
 */
export class Communicator {
  readonly view: View;
  readonly pos: RingPosition;
  readonly chunkBytes: number;
  readonly stats: TrafficStats;
  private seq = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private closed: RingError | null = null;
  private readonly active = new Set<(e: RingError) => void>();
  private readonly timeoutMs: number;
  /** Peers the transport has reported down since this communicator was built. */
  private readonly down = new Set<PeerId>();
  private readonly offDown: Unsubscribe;
  private readonly topology: Topology;

  constructor(private readonly opts: CommunicatorOptions) {
    const pos = ringPosition(opts.view, opts.transport.self);
    if (!pos) throw new RangeError(`Communicator: ${opts.transport.self} is not a member of view ${opts.view.epoch}`);
    this.view = opts.view;
    this.pos = pos;
    const cap = Math.min(opts.transport.maxMessageBytes - FRAME_HEADER_BYTES, MAX_FRAME_PAYLOAD);
    this.chunkBytes = Math.floor(Math.min(opts.chunkBytes ?? DEFAULT_CHUNK_BYTES, cap) / 4) * 4;
    if (this.chunkBytes < 4) throw new RangeError(`Communicator: chunkBytes must be at least 4, got ${this.chunkBytes}`);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    checkTimeout('Communicator', this.timeoutMs);
    // A collective that starts after a neighbour died must fail at once, not wait for its timeout.
    this.offDown = opts.transport.onPeerDown((peer) => this.down.add(peer));
    this.stats = opts.stats ?? { framesSent: 0, frameBytesSent: 0, payloadBytesSent: 0, framesReceived: 0 };
    this.topology = opts.topology ?? { kind: 'ring' };
    planAllreduce(this.topology, this.size);
  }

  get rank(): number {
    return this.pos.rank;
  }
  get size(): number {
    return this.pos.size;
  }

  /**
   * Elementwise sum over all peers, by the ring or the two-level allreduce (the topology). Returns a
   * new array; `data` is not modified. Throws a RangeError for an invalid per-call topology.
   */
  allreduce(data: Float32Array, o: CollectiveOptions = {}): Promise<Float32Array> {
    const plan = this.plan(o);
    return this.run('allreduce', this.allreducePeers(o), o, async (ctx) => {
      const buf = data.slice();
      const wire = o.wire ? { wire: o.wire } : {};
      if (plan.kind === 'two-level') await twoLevelAllreduce(ctx, buf, plan.groupSize, wire);
      else await ringAllreduce(ctx, buf, wire);
      return buf;
    });
  }

  /** What an allreduce with these options runs on this view. */
  plan(o: Pick<CollectiveOptions, 'topology' | 'wire'> = {}): AllreducePlan {
    return planAllreduce(o.topology ?? this.topology, this.size, o.wire);
  }

  /** The peers an allreduce with these options exchanges frames with: those whose links it needs. */
  allreducePeers(o: Pick<CollectiveOptions, 'topology' | 'wire'> = {}): PeerId[] {
    const plan = this.plan(o);
    if (plan.kind === 'ring') return this.neighbours();
    return twoLevelPeers(this.size, plan.groupSize, this.rank).map((r) => this.view.members[r]!.peerId);
  }

  /**
   * Every peer's `data`, by rank (the all-gather half of the ring: each peer sends (N−1)/N of the
   * result). Every peer must pass the same length.
   */
  allGather(data: Float32Array, o: CollectiveOptions = {}): Promise<Float32Array[]> {
    return this.run('allGather', this.neighbours(), o, async (ctx) => {
      const n = this.size;
      const len = data.length;
      const buf = new Float32Array(n * len);
      // The ring's all-gather starts with peer r holding segment r + 1.
      const slot = (r: number): number => ((r + 1) % n) * len;
      buf.set(data, slot(this.rank));
      await ringAllreduce(ctx, buf, { only: 'all-gather' });
      return Array.from({ length: n }, (_, r) => buf.subarray(slot(r), slot(r) + len));
    });
  }

  /**
   * Weighted mean: sums `[data | count]` in one allreduce and divides by the total count.
   * Rejects when the total count is not positive.
   */
  async allreduceMean(data: Float32Array, count: number, o: CollectiveOptions = {}): Promise<{ mean: Float32Array; count: number }> {
    const ext = new Float32Array(data.length + 1);
    ext.set(data);
    ext[data.length] = count;
    const sum = await this.allreduce(ext, o);
    const total = sum[data.length]!;
    if (!(total > 0))
      throw new RingError('protocol', `total count is ${total}; every peer must pass a non-negative count and some a positive one`);
    const mean = sum.subarray(0, data.length);
    for (let i = 0; i < mean.length; i++) mean[i]! /= total;
    return { mean, count: total };
  }

  /** Sends the root's bytes to every peer along the ring; non-roots pass null. */
  broadcast(root: number, data: Uint8Array | null, o: CollectiveOptions = {}): Promise<Uint8Array> {
    return this.run('broadcast', this.neighbours(), o, (ctx) => ringBroadcast(ctx, root, data, o.maxBytes));
  }

  /** Resolves once every peer of the view has entered the barrier. */
  async barrier(o: CollectiveOptions = {}): Promise<void> {
    const sum = await this.allreduce(new Float32Array([1]), o);
    if (sum[0] !== this.size) throw new RingError('protocol', `barrier counted ${sum[0]} peers, expected ${this.size}`);
  }

  /** Benchmark primitive: every peer sends `bytes` to its successor at once. */
  shift(bytes: number, o: CollectiveOptions = {}): Promise<void> {
    return this.run('shift', this.neighbours(), o, (ctx) => ringShift(ctx, bytes));
  }

  /** Baseline: sum by sending the whole vector to every other peer. Needs links to all members. */
  allToAllSum(data: Float32Array, o: CollectiveOptions = {}): Promise<Float32Array> {
    const all = this.view.members.map((m) => m.peerId).filter((p) => p !== this.opts.transport.self);
    return this.run('allToAllSum', all, o, (ctx) => allToAllSum(ctx, data));
  }

  /** Rejects every running and queued collective with `reason` (default 'view-changed'). Idempotent. */
  close(reason: RingError = new RingError('view-changed', `view ${this.view.epoch} was replaced`)): void {
    if (this.closed) return;
    this.closed = reason;
    this.offDown();
    for (const abort of this.active) abort(reason);
  }

  private neighbours(): PeerId[] {
    return this.size === 1 ? [] : [this.pos.prev, this.pos.next];
  }

  private run<T>(name: string, peers: PeerId[], o: CollectiveOptions, body: (ctx: CollectiveContext) => Promise<T>): Promise<T> {
    // The sequence number is the call's index, taken now: a call that fails before it starts
    // (closed, aborted) still uses one up, so every peer that makes the same calls stays in step.
    const seq = this.seq++;
    const result = this.tail.then(() => this.runNow(name, seq, peers, o, body));
    this.tail = result.catch(() => undefined);
    return result;
  }

  private async runNow<T>(
    name: string,
    seq: number,
    peers: PeerId[],
    o: CollectiveOptions,
    body: (ctx: CollectiveContext) => Promise<T>,
  ): Promise<T> {
    if (this.closed) throw this.closed;
    if (o.signal?.aborted) throw abortReason(o.signal);
    const timeoutMs = o.timeoutMs ?? this.timeoutMs;
    checkTimeout(name, timeoutMs);
    const gone = peers.find((p) => this.down.has(p));
    if (gone !== undefined)
      throw new RingError('peer-down', `${gone} is down; ${name} #${seq} cannot run in view ${this.view.epoch}`, gone);
    const ctl = new AbortController();
    const abort = (e: RingError): void => {
      if (!ctl.signal.aborted) ctl.abort(e);
    };
    const timer = setTimeout(() => abort(new RingError('timeout', `${name} #${seq} did not finish within ${timeoutMs} ms`)), timeoutMs);
    const onUserAbort = (): void => abort(abortReason(o.signal!));
    o.signal?.addEventListener('abort', onUserAbort);
    const offDown = this.opts.transport.onPeerDown((peer, reason) => {
      if (peers.includes(peer)) abort(new RingError('peer-down', `${peer} is down (${reason}) during ${name} #${seq}`, peer));
    });
    this.active.add(abort);
    try {
      const ctx: CollectiveContext = {
        transport: this.opts.transport,
        mailbox: this.opts.mailbox,
        view: this.view,
        pos: this.pos,
        epoch: this.view.epoch,
        seq,
        chunkBytes: this.chunkBytes,
        signal: ctl.signal,
        abort,
        stats: this.stats,
        ...(o.onFrame ? { onFrame: o.onFrame } : {}),
      };
      try {
        return await body(ctx);
      } catch (e) {
        if (ctl.signal.aborted) throw abortReason(ctl.signal);
        throw e;
      }
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onUserAbort);
      offDown();
      this.active.delete(abort);
    }
  }
}
