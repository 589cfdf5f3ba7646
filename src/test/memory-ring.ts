/**
 * The collectives' unit-test harness (vitest only): N endpoints on one MemoryNetwork, a Mailbox
 * per endpoint, a Communicator per peer, and checks of their results.
 */
import { expect } from 'vitest';
import { Communicator, type CommunicatorOptions } from '../core/collectives/communicator.ts';
import { Mailbox } from '../core/collectives/mailbox.ts';
import { RingError, type RingErrorCode } from '../core/errors.ts';
import { makeView, type View } from '../core/membership/view.ts';
import { MemoryNetwork, type MemoryTransport } from '../core/memory-transport.ts';
import type { PeerId } from '../core/transport.ts';

/** Integer-valued floats in [-1000, 1000]: sums of up to 8 of them are exact in float32. */
export function randInts(rnd: () => number, len: number): Float32Array {
  const a = new Float32Array(len);
  for (let i = 0; i < len; i++) a[i] = Math.floor(rnd() * 2001) - 1000;
  return a;
}

export function randBytes(rnd: () => number, len: number): Uint8Array {
  const a = new Uint8Array(len);
  for (let i = 0; i < len; i++) a[i] = Math.floor(rnd() * 256);
  return a;
}

export function exactSum(inputs: Float32Array[]): Float32Array {
  const out = new Float64Array(inputs[0]?.length ?? 0);
  for (const v of inputs) for (let i = 0; i < v.length; i++) out[i]! += v[i]!;
  return Float32Array.from(out);
}

export function sameBits(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** First index where `got` differs from `want`, or -1 (so a failure prints one number, not 100k). */
export function firstDiff(got: Float32Array, want: Float32Array): number {
  if (got.length !== want.length) return -2;
  for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) return i;
  return -1;
}

export interface Peer {
  id: PeerId;
  ep: MemoryTransport;
  mb: Mailbox;
  comm: Communicator;
}

export interface Ring {
  net: MemoryNetwork;
  view: View;
  peers: Peer[];
}

export type CommOpts = Omit<CommunicatorOptions, 'transport' | 'mailbox' | 'view'>;

export function makeRing(n: number, o: CommOpts & { maxMessageBytes?: number; room?: string } = {}): Ring {
  const { maxMessageBytes, room = 'room', ...commOpts } = o;
  const net = new MemoryNetwork(maxMessageBytes === undefined ? {} : { maxMessageBytes });
  const ids = Array.from({ length: n }, (_, i) => `p${i}`);
  const view = makeView(room, 0, ids);
  const peers = ids.map((id) => {
    const ep = net.endpoint(id);
    const mb = new Mailbox(ep);
    return { id, ep, mb, comm: new Communicator({ transport: ep, mailbox: mb, view, ...commOpts }) };
  });
  return { net, view, peers };
}

/** The next view of `ring` with the members `ids` (in that ring order); old communicators are closed. */
export function nextView(ring: Ring, ids: string[], o: CommOpts = {}): Ring {
  const view = makeView(ring.view.room, ring.view.epoch + 1, ids);
  const keep = new Set(ids);
  for (const p of ring.peers) p.comm.close();
  const peers = ids.map((id) => {
    const old = ring.peers.find((p) => p.id === id)!;
    old.mb.retain(keep);
    return { ...old, comm: new Communicator({ transport: old.ep, mailbox: old.mb, view, ...o }) };
  });
  return { net: ring.net, view, peers };
}

export type Outcome<T> = { ok: true; value: T; ms: number } | { ok: false; error: unknown; ms: number };

/** Settles every promise, recording when each one settled relative to now. */
export function outcomes<T>(ps: Promise<T>[]): Promise<Outcome<T>[]> {
  const t0 = performance.now();
  return Promise.all(
    ps.map((p) =>
      p.then(
        (value): Outcome<T> => ({ ok: true, value, ms: performance.now() - t0 }),
        (error: unknown): Outcome<T> => ({ ok: false, error, ms: performance.now() - t0 }),
      ),
    ),
  );
}

export function codeOf(o: Outcome<unknown>): RingErrorCode | 'ok' | 'not a RingError' {
  if (o.ok) return 'ok';
  return o.error instanceof RingError ? o.error.code : 'not a RingError';
}

export async function rejectionOf(p: Promise<unknown>): Promise<RingError> {
  const [o] = await outcomes([p]);
  if (o!.ok) throw new Error('expected a rejection, got a result');
  expect(o!.error).toBeInstanceOf(RingError);
  return o!.error as RingError;
}

/** Runs `fn` on every peer at once and checks that they all return bit-identical results. */
export async function onAll<T extends ArrayBufferView>(ring: Ring, fn: (p: Peer, rank: number) => Promise<T>): Promise<T[]> {
  const got = await Promise.all(ring.peers.map((p, r) => fn(p, r)));
  for (const g of got) expect(sameBits(g, got[0]!)).toBe(true);
  return got;
}
