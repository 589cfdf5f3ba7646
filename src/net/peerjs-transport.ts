import type { DataConnection, Peer } from 'peerjs';
import { abortReason, RingError } from '../core/errors.ts';
import { Listeners, type PeerId, type Transport, type Unsubscribe } from '../core/transport.ts';
import { DType, encodeFrame, Op } from '../protocol/frame.ts';
import { DelayFifo } from './delay-fifo.ts';

export interface PeerJsTransportOptions {
  /** Heartbeat period on each data channel, ms. */
  heartbeatMs: number;
  /** Silence on a channel after which its peer is declared down, ms. */
  deadAfterMs: number;
  /** Pause sending while more than this many bytes are queued on a channel (default 256 KiB). */
  highWaterBytes?: number;
  /**
   * Emulated one-way link latency, ms (default 0: none): every received data frame, heartbeats
   * included, is held this long before it is delivered, in arrival order. For WAN benchmarks where
   * the kernel cannot delay packets (no netem); see src/harness/netns.ts.
   */
  linkDelayMs?: number;
  /** Fault drill: peers no data channel can be formed with (dials to them are neither made nor answered). */
  unreachable?: PeerId[];
}

interface Link {
  conn: DataConnection;
  dc: RTCDataChannel;
  lastHeard: number;
  /** Heartbeat ticks of ours since the neighbour was last heard. */
  ticksSilent: number;
  /** Bytes handed to the channel so far (for slow start). */
  sent: number;
}

/** What a dialer not yet in the view may send before it is refused: frames, and bytes. */
export const HOLD_MAX_FRAMES = 256;
export const HOLD_MAX_BYTES = 1024 * 1024;

/** A dial with no answer after this long is made again (then after twice as long, ...), ms. */
export const REDIAL_AFTER_MS = 2000;

/** Default backpressure high-water mark for a warmed-up channel. */
export const DEFAULT_HIGH_WATER_BYTES = 256 * 1024;
/**
 * Slow start: a fresh channel keeps at most this much queued until it has carried
 * {@link SLOW_START_BYTES}. Measured here: a fresh channel moved its first 4 MiB in 0.2 s with a
 * 64 KiB mark but 1.5–2.7 s with 1 MiB, and such stalls under load starve heartbeats for seconds.
 */
export const SLOW_START_HIGH_WATER_BYTES = 64 * 1024;
export const SLOW_START_BYTES = 4 * 1024 * 1024;

const HEARTBEAT = encodeFrame(
  { op: Op.Heartbeat, dtype: DType.Bytes, epoch: 0, seq: 0, segment: 0, chunk: 0, chunks: 1 },
  new Uint8Array(0),
);

/**
 * Transport over PeerJS data channels (raw bytes, our own frames). One reliable ordered channel per
 * pair of peers; the peer with the smaller id dials. Sends respect backpressure through
 * `bufferedAmountLowThreshold`, messages are capped by the channel's SCTP `maxMessageSize`, and a
 * neighbour is declared down by this transport's own heartbeats, a closed channel or ICE failure:
 * PeerJS alone never reports a crashed tab to its neighbours.
 */
export class PeerJsTransport implements Transport {
  readonly self: PeerId;
  maxMessageBytes = 262_144;
  private readonly links = new Map<PeerId, Link>();
  private readonly pending = new Map<PeerId, DataConnection>();
  private readonly messages = new Listeners<[PeerId, Uint8Array]>();
  private readonly downs = new Listeners<[PeerId, string]>();
  private readonly opened = new Listeners<[PeerId]>();
  private allowed = new Set<PeerId>();
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly highWater: number;
  /** Received frames held back to emulate link latency (null: delivered at once). */
  private readonly inbound: DelayFifo<() => void> | null;
  /** Connections closed because the dialer did not become a member of the view in time. */
  refused = 0;
  /** Dials made again because the first got no answer or failed (see {@link connect}). */
  redials = 0;
  /** Frames from dialers not (yet) in the view, per dialer (see {@link hold}). */
  private readonly held = new Map<PeerId, { frames: Uint8Array[]; bytes: number }>();
  /** Fault drill: peers no link can be formed with (as between two networks no packet crosses). */
  private readonly unreachable: Set<PeerId>;

  constructor(
    private peer: Peer,
    private readonly opts: PeerJsTransportOptions,
  ) {
    this.self = peer.id;
    this.highWater = opts.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES;
    this.inbound = opts.linkDelayMs ? new DelayFifo(opts.linkDelayMs, (deliver) => deliver()) : null;
    this.unreachable = new Set(opts.unreachable);
    this.accept(peer);
    this.timer = setInterval(() => this.beat(), opts.heartbeatMs);
  }

  private accept(peer: Peer): void {
    peer.on('connection', (conn) => {
      if (peer !== this.peer) return;
      if (this.unreachable.has(conn.peer)) {
        conn.close();
        return;
      }
      this.adopt(conn);
      // A dialer may see a new view before we do: give it until the dead-peer deadline to
      // appear in ours, then refuse it.
      if (!this.allowed.has(conn.peer)) {
        setTimeout(() => {
          if (!this.allowed.has(conn.peer) && this.dropIf(conn, 'not a member of the view')) this.refused++;
        }, this.opts.deadAfterMs);
      }
    });
  }

  /**
   * Carries on over a new PeerJS peer with the same id (the old one was destroyed, e.g. when the
   * server restarted): links of the old peer are dropped and are dialled again on the next view.
   */
  rebind(peer: Peer): void {
    if (peer.id !== this.self) throw new RangeError(`rebind: peer id ${peer.id} is not ${this.self}`);
    for (const id of [...this.links.keys(), ...this.pending.keys()]) this.drop(id, 'signaling replaced', false);
    this.peer = peer;
    this.accept(peer);
  }

  /**
   * Fault drill: dials `id` whether or not it is a member, outside the links, and once the channel
   * opens sends `flood` frames of `bytes` each (as a stranger filling a member's buffers would).
   * Resolves false once the other side closes the channel, true if it is still open after `holdMs`.
   */
  dial(id: PeerId, holdMs: number, flood = { frames: 0, bytes: 0 }): Promise<boolean> {
    const conn = this.peer.connect(id, { reliable: true, serialization: 'raw' });
    conn.on('open', () => {
      for (let c = 0; c < flood.frames; c++) {
        conn.dataChannel.send(
          encodeFrame(
            { op: Op.ReduceScatter, dtype: DType.Bytes, epoch: 2 ** 31, seq: 0, segment: 0, chunk: c, chunks: flood.frames },
            new Uint8Array(flood.bytes),
          ),
        );
      }
    });
    return new Promise((resolve) => {
      const done = (open: boolean): void => {
        clearTimeout(t);
        resolve(open);
      };
      const t = setTimeout(() => {
        const open = conn.open;
        conn.close();
        done(open);
      }, holdMs);
      conn.on('close', () => done(false));
      conn.on('error', () => done(false));
    });
  }

  /**
   * Keeps a frame from a dialer that is not (yet) in this peer's view, to deliver once it is: at
   * most {@link HOLD_MAX_FRAMES} frames and {@link HOLD_MAX_BYTES} per dialer; one that sends
   * more is refused at once. Nothing of a stranger's reaches the mailbox.
   */
  private hold(conn: DataConnection, frame: Uint8Array): void {
    const h = this.held.get(conn.peer) ?? { frames: [], bytes: 0 };
    this.held.set(conn.peer, h);
    h.frames.push(frame);
    h.bytes += frame.byteLength;
    if (
      (h.frames.length > HOLD_MAX_FRAMES || h.bytes > HOLD_MAX_BYTES) &&
      this.dropIf(conn, 'sent too much before it was a member of the view')
    )
      this.refused++;
  }

  /** Only members of the current view keep links; links to anyone else are closed. */
  setAllowed(ids: Iterable<PeerId>): void {
    this.allowed = new Set(ids);
    this.allowed.delete(this.self);
    // Frames held from dialers that are members now go on to the mailbox, in arrival order.
    for (const [id, h] of [...this.held]) {
      if (!this.allowed.has(id)) continue;
      this.held.delete(id);
      for (const f of h.frames) this.messages.emit(id, f);
    }
    for (const id of [...this.links.keys(), ...this.pending.keys()]) {
      if (!this.allowed.has(id)) this.drop(id, 'left the view', false);
    }
  }

  /**
   * Connection objects held: open links, links being formed, and every DataConnection PeerJS still
   * keeps for this peer (closed ones included, until PeerJS forgets them). For memory probes.
   */
  connectionCounts(): { links: number; pending: number; peerjs: number; redials: number } {
    const all = Object.values(this.peer.connections as Record<string, unknown[]>);
    return { links: this.links.size, pending: this.pending.size, peerjs: all.reduce((n, c) => n + c.length, 0), redials: this.redials };
  }

  /** True when a data channel to `id` is open. */
  isOpen(id: PeerId): boolean {
    return this.links.has(id);
  }

  /**
   * Resolves when links to all of `ids` are open; the smaller id dials, the other waits. Rejects
   * with a RingError ('timeout', naming the missing peers) after `timeoutMs`, or the signal's reason.
   */
  async connect(ids: PeerId[], timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const want = ids.filter((id) => id !== this.self);
    const mine = want.filter((id) => this.self < id && !this.unreachable.has(id));
    for (const id of mine) if (!this.links.has(id) && !this.pending.has(id)) this.dialLink(id);
    const missing = (): PeerId[] => want.filter((id) => !this.links.has(id));
    if (missing().length === 0) return;
    await new Promise<void>((resolve, reject) => {
      let wait = REDIAL_AFTER_MS;
      let r: ReturnType<typeof setTimeout>;
      const finish = (err?: RingError): void => {
        clearTimeout(t);
        clearTimeout(r);
        off();
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      // A dial of ours that failed, or got no answer (an offer lost or refused on the way), is
      // made again, after 2, 4, 8 ... s. One whose answer came is left to finish its handshakes.
      const redial = (): void => {
        for (const id of mine) {
          if (this.links.has(id)) continue;
          const pc = this.pending.get(id)?.peerConnection as RTCPeerConnection | undefined;
          // node-datachannel goes on from 'failed' to 'closed' (e.g. a DTLS handshake that raced the answer).
          if (!pc || pc.signalingState === 'have-local-offer' || pc.connectionState === 'failed' || pc.connectionState === 'closed') {
            this.redials++;
            this.dialLink(id);
          }
        }
        wait *= 2;
        r = setTimeout(redial, wait);
      };
      r = setTimeout(redial, wait);
      const onAbort = (): void => finish(abortReason(signal!));
      const t = setTimeout(() => {
        const m = missing();
        finish(
          new RingError(
            'timeout',
            `no data channel to ${m.map((id) => `${id} (${this.linkState(id)})`).join(', ')} within ${timeoutMs} ms`,
            m[0],
          ),
        );
      }, timeoutMs);
      const off = this.opened.on(() => {
        if (missing().length === 0) finish();
      });
      signal?.addEventListener('abort', onAbort);
    });
  }

  private dialLink(id: PeerId): void {
    // Nothing comes back from a peer that is disconnected or destroyed (PeerJS reports an error instead).
    const conn = this.peer.connect(id, { reliable: true, serialization: 'raw' }) as DataConnection | undefined;
    if (conn) this.adopt(conn);
  }

  /** How far a link that is not open got: who dials, and the connection's ICE, signaling and channel states. */
  private linkState(id: PeerId): string {
    const conn = this.pending.get(id);
    if (!conn) return this.self < id ? 'not dialled' : 'no dial from it arrived';
    const pc = conn.peerConnection as RTCPeerConnection | undefined;
    if (!pc) return `${this.self < id ? 'dialled' : 'dial arrived'}, no answer yet`;
    return `ICE ${pc.iceConnectionState}, signaling ${pc.signalingState}, channel ${conn.dataChannel?.readyState ?? 'none'}`;
  }

  private adopt(conn: DataConnection): void {
    const id = conn.peer;
    this.pending.get(id)?.close();
    this.pending.set(id, conn);
    conn.on('open', () => {
      if (this.pending.get(id) !== conn) return;
      this.pending.delete(id);
      const dc = conn.dataChannel;
      dc.bufferedAmountLowThreshold = Math.floor(SLOW_START_HIGH_WATER_BYTES / 2);
      const max = conn.peerConnection.sctp?.maxMessageSize;
      if (max && Number.isFinite(max)) this.maxMessageBytes = Math.min(this.maxMessageBytes, max);
      this.links.get(id)?.conn.close();
      this.links.set(id, { conn, dc, lastHeard: Date.now(), ticksSilent: 0, sent: 0 });
      // Held here: PeerJS clears conn.peerConnection on close, and node-datachannel (unlike
      // browsers) still reports the closing state afterwards.
      const pc = conn.peerConnection;
      pc.addEventListener('connectionstatechange', () => {
        const s = pc.connectionState;
        if (s === 'failed' || s === 'closed') this.dropIf(conn, `ICE ${s}`);
      });
      this.opened.emit(id);
    });
    const receive = (data: unknown): void => {
      const link = this.links.get(id);
      if (!link || link.conn !== conn) return;
      link.lastHeard = Date.now();
      link.ticksSilent = 0;
      if (!(data instanceof ArrayBuffer)) return;
      if (this.allowed.has(id)) this.messages.emit(id, new Uint8Array(data));
      else this.hold(conn, new Uint8Array(data));
    };
    conn.on('data', (data) => {
      if (this.inbound) this.inbound.push(() => receive(data));
      else receive(data);
    });
    conn.on('close', () => this.dropIf(conn, 'channel closed'));
    conn.on('error', (e) => this.dropIf(conn, `channel error: ${e.message}`));
  }

  /**
   * Closes the data channel to `id` as a network cut would: both ends see it close and report the
   * neighbour down. For fault drills (`ringtrain.debug.cutLink`) and tests.
   */
  cut(id: PeerId): boolean {
    const link = this.links.get(id);
    link?.conn.close();
    return !!link;
  }

  /** Drops `conn` if it is still this transport's link or dial to its peer; says whether it was. */
  private dropIf(conn: DataConnection, reason: string): boolean {
    const id = conn.peer;
    if (this.links.get(id)?.conn !== conn && this.pending.get(id) !== conn) return false;
    this.drop(id, reason, true);
    return true;
  }

  private drop(id: PeerId, reason: string, report: boolean): void {
    const link = this.links.get(id);
    const pend = this.pending.get(id);
    this.links.delete(id);
    this.pending.delete(id);
    this.held.delete(id);
    link?.conn.close();
    pend?.close();
    if (link && report) this.downs.emit(id, reason);
  }

  private beat(): void {
    const now = Date.now();
    const ticks = Math.ceil(this.opts.deadAfterMs / this.opts.heartbeatMs);
    for (const [id, link] of [...this.links]) {
      // Dead only after both the deadline and as many of our own ticks: when this tab's timers
      // are starved (2 cores, many tabs), late ticks must not be blamed on the neighbour.
      if (++link.ticksSilent >= ticks && now - link.lastHeard > this.opts.deadAfterMs) {
        this.drop(id, `no heartbeat for ${this.opts.deadAfterMs} ms`, true);
      } else if (link.dc.readyState === 'open' && link.dc.bufferedAmount < this.highWater) {
        // node-datachannel's channel can still read 'open' once libdatachannel has closed it, and
        // then throws: from this timer that would end a Node peer. Its close event drops the link.
        try {
          link.dc.send(HEARTBEAT);
        } catch {
          // closing: nothing to beat
        }
      }
    }
  }

  async send(to: PeerId, message: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (message.byteLength > this.maxMessageBytes) {
      throw new RangeError(`send: ${message.byteLength} B exceeds the channel's maxMessageSize ${this.maxMessageBytes}`);
    }
    for (;;) {
      if (signal?.aborted) throw abortReason(signal);
      const link = this.links.get(to);
      if (link?.dc.readyState !== 'open') throw new RingError('peer-down', `no open channel to ${to}`, to);
      const warm = link.sent >= SLOW_START_BYTES;
      if (link.dc.bufferedAmount <= (warm ? this.highWater : SLOW_START_HIGH_WATER_BYTES)) {
        link.dc.send(message as Uint8Array<ArrayBuffer>);
        link.sent += message.byteLength;
        if (!warm && link.sent >= SLOW_START_BYTES) link.dc.bufferedAmountLowThreshold = Math.floor(this.highWater / 2);
        return;
      }
      await this.drained(link, signal);
    }
  }

  /** Waits for the channel's buffer to fall below the low-water mark, or for it to close. */
  private drained(link: Link, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        link.dc.removeEventListener('bufferedamountlow', done);
        link.dc.removeEventListener('close', done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      link.dc.addEventListener('bufferedamountlow', done);
      link.dc.addEventListener('close', done);
      signal?.addEventListener('abort', done);
    });
  }

  onMessage(handler: (from: PeerId, message: Uint8Array) => void): Unsubscribe {
    return this.messages.on(handler);
  }

  onPeerDown(handler: (peer: PeerId, reason: string) => void): Unsubscribe {
    return this.downs.on(handler);
  }

  close(): void {
    clearInterval(this.timer);
    this.inbound?.clear();
    for (const id of [...this.links.keys(), ...this.pending.keys()]) this.drop(id, 'transport closed', false);
  }
}
