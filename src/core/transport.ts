/**
 * How core reaches other peers. Implementations: an in-memory one for unit tests
 * (memory-transport.ts) and the WebRTC one in net/. Core knows nothing else about the network.
 */
export type PeerId = string;
export type Unsubscribe = () => void;

export interface Transport {
  /** This peer's id. */
  readonly self: PeerId;
  /** Largest message, in bytes, one `send` may carry (header included). */
  readonly maxMessageBytes: number;
  /**
   * Sends one message (an encoded frame) to `to`. Resolves once the message is queued on the link,
   * waiting while the link is congested (backpressure). Rejects with a RingError of code
   * 'peer-down' when there is no live link, or with the signal's reason when aborted.
   */
  send(to: PeerId, message: Uint8Array, signal?: AbortSignal): Promise<void>;
  /** Every message received from any peer, in per-link order. */
  onMessage(handler: (from: PeerId, message: Uint8Array) => void): Unsubscribe;
  /** A link to `peer` is dead (channel closed, heartbeats stopped, ICE failed). */
  onPeerDown(handler: (peer: PeerId, reason: string) => void): Unsubscribe;
}

/** A tiny typed event list: subscribe returns its own unsubscribe; emit never throws outward. */
export class Listeners<A extends unknown[]> {
  private readonly fns = new Set<(...args: A) => void>();
  on(fn: (...args: A) => void): Unsubscribe {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }
  /** Listeners subscribed now. */
  get size(): number {
    return this.fns.size;
  }
  emit(...args: A): void {
    for (const fn of [...this.fns]) {
      try {
        fn(...args);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}
