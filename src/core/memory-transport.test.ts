import { describe, expect, it } from 'vitest';
import { abortReason, RingError } from './errors.ts';
import { MemoryNetwork, type MemoryTransport } from './memory-transport.ts';

/** Collects what `ep` receives; `until(n)` resolves once n messages have arrived. */
function inbox(ep: MemoryTransport): { got: [string, number[], number][]; until: (n: number) => Promise<void> } {
  const got: [string, number[], number][] = [];
  const waiters: [number, () => void][] = [];
  const t0 = performance.now();
  ep.onMessage((from, m) => {
    got.push([from, [...m], performance.now() - t0]);
    for (const [n, resolve] of waiters) if (got.length >= n) resolve();
  });
  return {
    got,
    until: (n) => (got.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push([n, resolve]))),
  };
}

function downs(ep: MemoryTransport): [string, string][] {
  const seen: [string, string][] = [];
  ep.onPeerDown((p, reason) => seen.push([p, reason]));
  return seen;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof RingError ? e.code : (e as Error).name;
  }
}

function trio(maxMessageBytes?: number): [MemoryNetwork, MemoryTransport, MemoryTransport, MemoryTransport] {
  const net = new MemoryNetwork(maxMessageBytes === undefined ? {} : { maxMessageBytes });
  return [net, net.endpoint('a'), net.endpoint('b'), net.endpoint('c')];
}

describe('MemoryTransport', () => {
  it('delivers copies, asynchronously, in per-link order', async () => {
    const [net, a, b] = trio();
    expect(net.endpoint('a')).toBe(a);
    const box = inbox(b);
    const msg = new Uint8Array([1, 2, 3]);
    await a.send('b', msg);
    msg[0] = 99; // the sender may reuse its buffer at once
    for (let i = 0; i < 20; i++) await a.send('b', new Uint8Array([i]));
    expect(box.got).toEqual([]);
    await box.until(21);
    expect(box.got.map(([from, m]) => [from, m])).toEqual([['a', [1, 2, 3]], ...Array.from({ length: 20 }, (_, i) => ['a', [i]])]);
  });

  it("rejects with 'peer-down' for an unknown peer, RangeError for an oversized message, and the signal's reason", async () => {
    const [, a] = trio(100);
    expect(await codeOf(a.send('nobody', new Uint8Array(1)))).toBe('peer-down');
    expect(await codeOf(a.send('b', new Uint8Array(101)))).toBe('RangeError');
    const ctl = new AbortController();
    ctl.abort(new RingError('timeout', 'late'));
    expect(await codeOf(a.send('b', new Uint8Array(1), ctl.signal))).toBe('timeout');
  });

  it('drop: the first `after` messages pass, later ones vanish while send still resolves', async () => {
    const [, a, b, c] = trio();
    const box = inbox(b);
    a.inject({ kind: 'drop', after: 2 });
    for (let i = 0; i < 5; i++) expect(await codeOf(a.send('b', new Uint8Array([i])))).toBe('ok');
    // A probe from another endpoint, sent later with the same zero delay, arrives after anything a sent.
    await c.send('b', new Uint8Array([42]));
    await box.until(3);
    expect(box.got.map(([from, m]) => [from, m[0]])).toEqual([
      ['a', 0],
      ['a', 1],
      ['c', 42],
    ]);
  });

  it('delay: later messages arrive `ms` late, still in order', async () => {
    const [, a, b] = trio();
    const box = inbox(b);
    a.inject({ kind: 'delay', ms: 60, after: 1 });
    for (let i = 0; i < 4; i++) await a.send('b', new Uint8Array([i]));
    await box.until(4);
    expect(box.got.map(([, m]) => m[0])).toEqual([0, 1, 2, 3]);
    expect(box.got[0]![2]).toBeLessThan(55);
    for (const [, , ms] of box.got.slice(1)) expect(ms).toBeGreaterThanOrEqual(59);
  });

  it('close: both sides learn at once; later sends reject and nothing more is delivered', async () => {
    const [, a, b, c] = trio();
    const [da, db, dc] = [downs(a), downs(b), downs(c)];
    const box = inbox(b);
    a.inject({ kind: 'close', after: 1 });
    expect(db).toEqual([]);
    await a.send('b', new Uint8Array([1])); // the one allowed message
    expect(await codeOf(a.send('b', new Uint8Array([2])))).toBe('peer-down');
    expect(db).toEqual([['a', 'channel closed']]);
    expect(dc).toEqual([['a', 'channel closed']]);
    expect(da.map(([p]) => p).sort()).toEqual(['b', 'c']);
    expect(await codeOf(b.send('a', new Uint8Array([3])))).toBe('peer-down');
    await c.send('b', new Uint8Array([9]));
    await box.until(1);
    expect(box.got.map(([from, m]) => [from, m[0]])).toEqual([['c', 9]]);
  });

  it('crash: the peer goes silent at once, and the others hear of it after detectMs', async () => {
    const [, a, b, c] = trio();
    const box = inbox(b);
    const t0 = performance.now();
    const down = new Promise<number>((resolve) => b.onPeerDown(() => resolve(performance.now() - t0)));
    const dc = downs(c);
    a.inject({ kind: 'crash', detectMs: 40 });
    expect(await codeOf(a.send('b', new Uint8Array([1])))).toBe('ok'); // swallowed
    expect(await codeOf(b.send('a', new Uint8Array([2])))).toBe('ok'); // swallowed too
    expect(await down).toBeGreaterThanOrEqual(39);
    expect(dc).toEqual([['a', 'heartbeat timeout']]);
    await c.send('b', new Uint8Array([7]));
    await box.until(1);
    expect(box.got.map(([from]) => from)).toEqual(['c']);
  });

  it('reports a peer down once per observer', () => {
    const [, a, b] = trio();
    const db = downs(b);
    a.inject({ kind: 'close' });
    a.inject({ kind: 'close' });
    expect(db).toEqual([['a', 'channel closed']]);
  });

  it('unsubscribes handlers', async () => {
    const [, a, b] = trio();
    let n = 0;
    const off = b.onMessage(() => n++);
    const box = inbox(b);
    off();
    await a.send('b', new Uint8Array(1));
    await box.until(1);
    expect(n).toBe(0);
  });
});

describe('abortReason', () => {
  it('passes a RingError reason through and wraps anything else as aborted', () => {
    const withRing = new AbortController();
    const e = new RingError('view-changed', 'x', 'p');
    withRing.abort(e);
    expect(abortReason(withRing.signal)).toBe(e);
    const plain = new AbortController();
    plain.abort();
    expect(abortReason(plain.signal).code).toBe('aborted');
    const custom = new AbortController();
    custom.abort(new Error('user pressed stop'));
    expect(abortReason(custom.signal).message).toBe('aborted: user pressed stop');
  });

  it('RingError carries its code and peer', () => {
    const e = new RingError('peer-down', 'gone', 'p7');
    expect([e.name, e.code, e.peer, e.message]).toEqual(['RingError', 'peer-down', 'p7', 'peer-down: gone']);
    expect(e).toBeInstanceOf(Error);
  });
});
