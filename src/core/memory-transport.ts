import { abortReason, RingError } from './errors.ts';
import { Listeners, type PeerId, type Transport, type Unsubscribe } from './transport.ts';

/**
 * Faults the in-memory network can inject into one endpoint's outgoing traffic, after it has sent
 * `after` messages (default 0):
 * - `drop`: later messages vanish silently (only a timeout notices);
 * - `delay`: later messages arrive `ms` late (order is kept);
 * - `close`: the endpoint's links close; both sides get `onPeerDown` at once;
 * - `crash`: the endpoint goes silent; the others get `onPeerDown` after `detectMs`
 *   (what a heartbeat detector would report);
 * - `alter`: later messages arrive rewritten by `edit` (a malicious forwarder).
 */
export type Fault =
  | { kind: 'drop'; after?: number }
  | { kind: 'delay'; ms: number; after?: number }
  | { kind: 'close'; after?: number }
  | { kind: 'crash'; after?: number; detectMs?: number }
  /** A malicious endpoint: `edit` rewrites each outgoing message (a copy) in place. */
  | { kind: 'alter'; edit: (message: Uint8Array) => void; after?: number };

export interface MemoryNetworkOptions {
  /** Largest message, bytes (default 256 KiB, Chromium's SCTP limit). */
  maxMessageBytes?: number;
}

/** An in-memory network of endpoints for unit tests of collectives. Messages are copied on send. */
export class MemoryNetwork {
  private readonly endpoints = new Map<PeerId, MemoryTransport>();
  constructor(private readonly opts: MemoryNetworkOptions = {}) {}

  /** Creates (once) the endpoint for `id`. */
  endpoint(id: PeerId): MemoryTransport {
    let ep = this.endpoints.get(id);
    if (!ep) {
      ep = new MemoryTransport(id, this, this.opts.maxMessageBytes ?? 262_144);
      this.endpoints.set(id, ep);
    }
    return ep;
  }

  /** @internal */
  lookup(id: PeerId): MemoryTransport | undefined {
    return this.endpoints.get(id);
  }

  /** @internal */
  ids(): PeerId[] {
    return [...this.endpoints.keys()];
  }

  /** @internal Tells every other endpoint that `id` is down. */
  announceDown(id: PeerId, reason: string): void {
    for (const ep of this.endpoints.values()) if (ep.self !== id) ep.peerDown(id, reason);
  }
}

export class MemoryTransport implements Transport {
  private readonly messages = new Listeners<[PeerId, Uint8Array]>();
  private readonly downs = new Listeners<[PeerId, string]>();
  private fault: Fault | null = null;
  private active = false;
  private sent = 0;
  private dead = false;
  private readonly downPeers = new Set<PeerId>();

  constructor(
    readonly self: PeerId,
    private readonly net: MemoryNetwork,
    readonly maxMessageBytes: number,
  ) {}

  /** Arms a fault on this endpoint's outgoing traffic, counting messages from now. */
  inject(fault: Fault): void {
    this.fault = fault;
    this.active = false;
    this.sent = 0;
    this.arm();
  }

  private arm(): void {
    const f = this.fault;
    if (!f || this.active || this.sent < (f.after ?? 0)) return;
    this.active = true;
    if (f.kind === 'close') {
      this.dead = true;
      this.net.announceDown(this.self, 'channel closed');
      for (const p of this.net.ids()) if (p !== this.self) this.peerDown(p, 'channel closed');
    } else if (f.kind === 'crash') {
      this.dead = true;
      setTimeout(() => this.net.announceDown(this.self, 'heartbeat timeout'), f.detectMs ?? 20);
    }
  }

  send(to: PeerId, message: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (message.byteLength > this.maxMessageBytes) {
      return Promise.reject(new RangeError(`send: ${message.byteLength} B exceeds maxMessageBytes ${this.maxMessageBytes}`));
    }
    this.arm();
    this.sent++;
    const dest = this.net.lookup(to);
    if (this.downPeers.has(to) || !dest) return Promise.reject(new RingError('peer-down', `no link to ${to}`, to));
    const f = this.active ? this.fault : null;
    if (this.dead || f?.kind === 'drop') return Promise.resolve();
    const copy = message.slice();
    if (f?.kind === 'alter') f.edit(copy);
    setTimeout(() => dest.receive(this.self, copy), f?.kind === 'delay' ? f.ms : 0);
    return Promise.resolve();
  }

  /** @internal */
  receive(from: PeerId, message: Uint8Array): void {
    if (this.dead || this.downPeers.has(from)) return;
    this.messages.emit(from, message);
  }

  /** @internal */
  peerDown(peer: PeerId, reason: string): void {
    if (this.downPeers.has(peer)) return;
    this.downPeers.add(peer);
    this.downs.emit(peer, reason);
  }

  onMessage(handler: (from: PeerId, message: Uint8Array) => void): Unsubscribe {
    return this.messages.on(handler);
  }

  onPeerDown(handler: (peer: PeerId, reason: string) => void): Unsubscribe {
    return this.downs.on(handler);
  }
}
