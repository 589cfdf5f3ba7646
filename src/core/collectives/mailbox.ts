import { decodeFrame, FrameError, Op, type Frame } from '../../protocol/frame.ts';
import { abortReason, RingError } from '../errors.ts';
import { Listeners, type PeerId, type Transport, type Unsubscribe } from '../transport.ts';

/** Default cap on frames buffered from one peer before they are consumed, in payload bytes. */
export const DEFAULT_MAX_BUFFERED_BYTES = 128 * 1024 * 1024;
/**
 * Default cap on the number of frames buffered from one peer: each costs memory whatever its
 * payload, so a flood of empty frames must not get round the byte cap. A collective's frames
 * ahead of use are a few hundred at most.
 */
export const DEFAULT_MAX_BUFFERED_FRAMES = 16_384;

/**
 * A queue entry: a decoded frame, or the place where an undecodable one arrived (taking it fails
 * the collective with this 'protocol' error).
 */
type Entry = Frame | RingError;

interface Queue {
  /** Taken entries before `head` are cleared (undefined), so that they can be collected. */
  frames: (Entry | undefined)[];
  head: number;
  bytes: number;
  /** Set when the peer overran its buffer; collectives of `epoch` from this peer fail. */
  failed?: { epoch: number; error: RingError };
  waiters: Set<() => void>;
}

/**
 * Decodes every message from a transport and queues the frames per sending peer, in arrival
 * order, until a collective takes them. Frames of finished (older) collectives are discarded on
 * the way. An undecodable frame is counted and reported, never thrown, and keeps its place in the
 * queue: the `take` that reaches it rejects with 'protocol', since a frame from that peer is
 * missing. Lives as long as the transport, across views, so frames that arrive early for the next
 * epoch are kept.
 */
export class Mailbox {
  private readonly queues = new Map<PeerId, Queue>();
  private readonly unsubscribe: Unsubscribe;
  /** Frames that failed to decode, per sender. */
  readonly badFrames = new Listeners<[PeerId, FrameError]>();
  badFrameCount = 0;

  constructor(
    transport: Transport,
    private readonly maxBufferedBytes = DEFAULT_MAX_BUFFERED_BYTES,
    private readonly maxBufferedFrames = DEFAULT_MAX_BUFFERED_FRAMES,
  ) {
    this.unsubscribe = transport.onMessage((from, msg) => this.deliver(from, msg));
  }

  private queue(peer: PeerId): Queue {
    let q = this.queues.get(peer);
    if (!q) {
      q = { frames: [], head: 0, bytes: 0, waiters: new Set() };
      this.queues.set(peer, q);
    }
    return q;
  }

  private deliver(from: PeerId, msg: Uint8Array): void {
    const f = decodeFrame(msg);
    if (f instanceof FrameError) {
      this.badFrameCount++;
      const q = this.queue(from);
      // One marker stands for a run of bad frames, so garbage cannot grow the queue without bound.
      if (!(q.frames[q.frames.length - 1] instanceof RingError)) {
        q.frames.push(new RingError('protocol', `undecodable frame: ${f.message}`, from));
        for (const w of q.waiters) w();
      }
      this.badFrames.emit(from, f);
      return;
    }
    if (f.op === Op.Heartbeat) return;
    const q = this.queue(from);
    if (q.failed && q.failed.epoch >= f.epoch) return;
    q.frames.push(f);
    q.bytes += f.payload.byteLength;
    if (q.bytes > this.maxBufferedBytes || q.frames.length - q.head > this.maxBufferedFrames) {
      q.frames = [];
      q.head = 0;
      q.bytes = 0;
      q.failed = {
        epoch: f.epoch,
        error: new RingError(
          'protocol',
          `peer sent more than ${this.maxBufferedBytes} B or ${this.maxBufferedFrames} frames ahead of use`,
          from,
        ),
      };
    }
    for (const w of q.waiters) w();
  }

  /**
   * Resolves with the next frame from `from` that belongs to collective `seq` of `epoch`,
   * discarding older frames. Rejects with a RingError: 'view-changed' when the peer is already in a
   * later epoch, 'protocol' when it is ahead in this epoch (desync), overran its buffer or sent an
   * undecodable frame (which this take consumes), or the signal's reason.
   */
  async take(from: PeerId, epoch: number, seq: number, signal: AbortSignal): Promise<Frame> {
    const q = this.queue(from);
    for (;;) {
      if (signal.aborted) throw abortReason(signal);
      if (q.failed && q.failed.epoch === epoch) throw q.failed.error;
      while (q.head < q.frames.length) {
        const f = q.frames[q.head]!;
        if (f instanceof RingError) {
          q.frames[q.head] = undefined;
          q.head++;
          throw f;
        }
        if (f.epoch > epoch) throw new RingError('view-changed', `peer is already in epoch ${f.epoch}`, from);
        if (f.epoch === epoch && f.seq > seq) {
          throw new RingError('protocol', `desync: peer sent collective ${f.seq}, expected ${seq}`, from);
        }
        q.frames[q.head] = undefined;
        q.head++;
        q.bytes -= f.payload.byteLength;
        if (q.head > 1024 && q.head * 2 > q.frames.length) {
          q.frames = q.frames.slice(q.head);
          q.head = 0;
        }
        if (f.epoch === epoch && f.seq === seq) return f;
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          q.waiters.delete(done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        q.waiters.add(done);
        signal.addEventListener('abort', done);
      });
    }
  }

  /** Frames currently buffered from `peer`, in payload bytes. */
  bufferedBytes(peer: PeerId): number {
    return this.queues.get(peer)?.bytes ?? 0;
  }

  /** Everything buffered: queue slots held (consumed ones until the next compaction) and payload bytes. */
  totals(): { slots: number; bytes: number } {
    let slots = 0;
    let bytes = 0;
    for (const q of this.queues.values()) {
      slots += q.frames.length;
      bytes += q.bytes;
    }
    return { slots, bytes };
  }

  /** Drops everything buffered from peers not in `keep` (call on a view change). */
  retain(keep: ReadonlySet<PeerId>): void {
    for (const id of this.queues.keys()) if (!keep.has(id)) this.queues.delete(id);
  }

  dispose(): void {
    this.unsubscribe();
    this.queues.clear();
  }
}
