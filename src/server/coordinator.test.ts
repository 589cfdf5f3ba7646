import { afterEach, describe, expect, it, vi } from 'vitest';
import { PROTOCOL_VERSION, type ServerErrorCode, type ServerMessage, type View } from '../protocol/index.ts';
import { BAD_LINK_MS, Coordinator, EMPTY_RUN_KEEP_MS, RESYNC_EVERY_MS, type Connection, type Session } from './coordinator.ts';

type ErrorMsg = Extract<ServerMessage, { type: 'error' }>;

/** A control connection that records what the coordinator sends it. */
class FakeConn implements Connection {
  readonly sent: ServerMessage[] = [];
  closedWith: string | null = null;
  /** The challenge's nonce (the first message; kept apart from `sent`). */
  nonce = '';
  private readonly waiters = new Set<() => void>();

  send(msg: ServerMessage): void {
    if (msg.type === 'challenge') {
      this.nonce = msg.nonce;
      return;
    }
    this.sent.push(msg);
    for (const w of [...this.waiters]) w();
  }

  close(reason: string): void {
    this.closedWith = reason;
  }

  views(): View[] {
    return this.sent.flatMap((m) => (m.type === 'view' ? [m.view] : []));
  }

  lastView(): View | undefined {
    return this.views().at(-1);
  }

  errors(): ServerErrorCode[] {
    return this.sent.flatMap((m) => (m.type === 'error' ? [m.code] : []));
  }

  /** Resolves with the first recorded message (past or future) matching `pred`. */
  next<T extends ServerMessage>(pred: (m: ServerMessage) => m is T, timeoutMs: number, what: string): Promise<T>;
  next(pred: (m: ServerMessage) => boolean, timeoutMs: number, what: string): Promise<ServerMessage>;
  next(pred: (m: ServerMessage) => boolean, timeoutMs: number, what: string): Promise<ServerMessage> {
    const found = this.sent.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = this.sent.find(pred);
        if (!m) return;
        this.waiters.delete(check);
        clearTimeout(t);
        resolve(m);
      };
      const t = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`FakeConn.next: no ${what} within ${timeoutMs} ms; got ${JSON.stringify(this.sent)}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }
}

const isError =
  (code: ServerErrorCode) =>
  (m: ServerMessage): m is ErrorMsg =>
    m.type === 'error' && m.code === code;

const ids = (v: View | undefined): string[] => v?.members.map((m) => m.peerId) ?? [];

interface Peer {
  conn: FakeConn;
  session: Session;
  send(msg: unknown): void;
}

let coordinators: Coordinator[] = [];

function coordinator(opts: ConstructorParameters<typeof Coordinator>[0] = {}): Coordinator {
  const c = new Coordinator(opts);
  coordinators.push(c);
  return c;
}

afterEach(() => {
  for (const c of coordinators) c.close();
  coordinators = [];
  vi.useRealTimers();
});

/** A new connection to `c`, not yet joined. */
function connect(c: Coordinator): Peer {
  return connectFrom(c, '127.0.0.1');
}

/** A new connection to `c` from network address `address`, not yet joined. */
function connectFrom(c: Coordinator, address: string): Peer {
  const conn = new FakeConn();
  const session = c.connect(conn, address);
  return { conn, session, send: (msg) => session.message(JSON.stringify(msg)) };
}

function join(c: Coordinator, room: string, peerId: string, address = '127.0.0.1'): Peer {
  const p = connectFrom(c, address);
  p.send({ type: 'hello', version: PROTOCOL_VERSION, room, peerId });
  expect(p.conn.sent[0]).toMatchObject({ type: 'welcome', peerId });
  return p;
}

describe('Coordinator membership', () => {
  it('welcomes each joiner and pushes views with increasing epochs, ranks in join order, to all members', () => {
    const c = coordinator({ heartbeatMs: 100, deadAfterMs: 1000 });
    const a = join(c, 'r', 'A');
    expect(a.conn.sent[0]).toEqual({
      type: 'welcome',
      version: PROTOCOL_VERSION,
      peerId: 'A',
      heartbeatMs: 100,
      deadAfterMs: 1000,
      token: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
    });
    // The token proves membership of this room only, and only while it lasts.
    const token = (a.conn.sent[0] as { token: string }).token;
    expect(c.holdsMembership('r', 'A', token)).toBe(true);
    expect(c.holdsMembership('other', 'A', token)).toBe(false);
    expect(c.holdsMembership('r', 'A', 'x'.repeat(22))).toBe(false);
    const b = join(c, 'r', 'B');
    const d = join(c, 'r', 'C');

    const expected = (epoch: number, members: string[]): View => ({
      room: 'r',
      epoch,
      members: members.map((peerId, rank) => ({ peerId, rank })),
    });
    expect(a.conn.views()).toEqual([expected(1, ['A']), expected(2, ['A', 'B']), expected(3, ['A', 'B', 'C'])]);
    expect(b.conn.views()).toEqual([expected(2, ['A', 'B']), expected(3, ['A', 'B', 'C'])]);
    expect(d.conn.views()).toEqual([expected(3, ['A', 'B', 'C'])]);
    expect(c.view('r')).toEqual(expected(3, ['A', 'B', 'C']));
    // The welcome comes before the first view.
    expect(d.conn.sent.map((m) => m.type)).toEqual(['welcome', 'view', 'keys']);
  });

  it('keeps rooms apart: each room has its own epochs and members', () => {
    const c = coordinator();
    const a = join(c, 'r1', 'A');
    const b = join(c, 'r2', 'B');
    expect(a.conn.lastView()).toMatchObject({ room: 'r1', epoch: 1 });
    expect(b.conn.lastView()).toMatchObject({ room: 'r2', epoch: 1 });
    expect(ids(c.view('r1'))).toEqual(['A']);
    expect(ids(c.view('r2'))).toEqual(['B']);
    expect(a.conn.views()).toHaveLength(1);
  });

  it('leave removes the member and pushes a new view, re-ranked, to the rest only', () => {
    const c = coordinator();
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    const d = join(c, 'r', 'C');
    const bViews = b.conn.views().length;
    b.send({ type: 'leave' });

    const v = {
      room: 'r',
      epoch: 4,
      members: [
        { peerId: 'A', rank: 0 },
        { peerId: 'C', rank: 1 },
      ],
    };
    expect(a.conn.lastView()).toEqual(v);
    expect(d.conn.lastView()).toEqual(v);
    expect(b.conn.views()).toHaveLength(bViews);
    expect(b.conn.closedWith).toBeNull();
    // The connection is no longer a member.
    b.send({ type: 'heartbeat' });
    expect(b.conn.errors()).toEqual(['not-joined']);
  });

  it('a closed connection is removed and the rest get a new view', () => {
    const c = coordinator();
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    b.session.closed();
    expect(a.conn.lastView()).toEqual({ room: 'r', epoch: 3, members: [{ peerId: 'A', rank: 0 }] });
    // Closing twice, or closing a connection that never joined, changes nothing.
    b.session.closed();
    connect(c).session.closed();
    expect(c.view('r')?.epoch).toBe(3);
  });

  it('deletes a room when its last member goes', () => {
    const c = coordinator();
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    a.send({ type: 'leave' });
    expect(c.view('r')).toBeDefined();
    b.session.closed();
    expect(c.view('r')).toBeUndefined();
    // The id is free again.
    join(c, 'r', 'A');
    expect(ids(c.view('r'))).toEqual(['A']);
  });

  it('peerGone removes the member, evicts its control connection and pushes a new view', () => {
    const c = coordinator();
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    c.peerGone('B');
    expect(ids(a.conn.lastView())).toEqual(['A']);
    expect(b.conn.errors()).toEqual(['evicted']);
    expect(b.conn.closedWith).toMatch(/signaling/);
    // Unknown ids are ignored.
    c.peerGone('nobody');
    expect(c.view('r')?.epoch).toBe(3);
  });
});

describe('Coordinator validation', () => {
  it('answers a hello of another protocol version with bad-version and closes', () => {
    const c = coordinator();
    const p = connect(c);
    p.send({ type: 'hello', version: PROTOCOL_VERSION + 1, room: 'r', peerId: 'A' });
    expect(p.conn.sent).toEqual([{ type: 'error', code: 'bad-version', message: expect.stringMatching(/reload/) }]);
    expect(p.conn.closedWith).toMatch(/speaks v/);
    expect(c.rejected).toBe(1);
    expect(c.view('r')).toBeUndefined();
    // Whatever the closed connection still sends is ignored.
    p.send({ type: 'hello', version: PROTOCOL_VERSION, room: 'r', peerId: 'A' });
    expect(p.conn.sent).toHaveLength(1);
    expect(c.view('r')).toBeUndefined();
  });

  it.each<[string, unknown]>([
    ['malformed JSON', '{"type":'],
    ['an unknown type', JSON.stringify({ type: 'gradient', data: [1] })],
    ['a bad peer id in link-down', JSON.stringify({ type: 'link-down', epoch: 1, peer: 'a b' })],
    ['a negative epoch', JSON.stringify({ type: 'link-down', epoch: -1, peer: 'B' })],
    ['a hello with a bad room id', JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION, room: '../etc', peerId: 'A' })],
    ['a binary frame', null],
    ['a number', 42],
  ])('rejects %s with bad-message and leaves the member unaffected', (_name, raw) => {
    const c = coordinator();
    const a = join(c, 'r', 'A');
    const before = c.view('r');
    a.session.message(raw);
    expect(a.conn.sent.at(-1)).toEqual({ type: 'error', code: 'bad-message', message: expect.any(String) });
    expect(c.rejected).toBe(1);
    expect(a.conn.closedWith).toBeNull();
    expect(c.view('r')).toEqual(before);
    // Still a member: a link-down report is acted on.
    const b = join(c, 'r', 'B');
    a.send({ type: 'link-down', epoch: 2, peer: 'B' });
    expect(b.conn.errors()).toEqual(['evicted']);
  });

  it('rejects bad ids in a hello with bad-message without joining', () => {
    const c = coordinator();
    const p = connect(c);
    p.send({ type: 'hello', version: PROTOCOL_VERSION, room: 'r', peerId: 'x'.repeat(65) });
    p.send({ type: 'hello', version: PROTOCOL_VERSION, room: 'r r', peerId: 'A' });
    expect(p.conn.errors()).toEqual(['bad-message', 'bad-message']);
    expect(c.rejected).toBe(2);
    expect(c.view('r')).toBeUndefined();
  });

  it.each([{ type: 'heartbeat' }, { type: 'leave' }, { type: 'link-down', epoch: 1, peer: 'A' }])(
    'answers $type before hello with not-joined',
    (msg) => {
      const c = coordinator();
      const a = join(c, 'r', 'A');
      const p = connect(c);
      p.send(msg);
      expect(p.conn.sent).toEqual([{ type: 'error', code: 'not-joined', message: expect.stringContaining(msg.type) }]);
      expect(p.conn.closedWith).toBeNull();
      expect(ids(c.view('r'))).toEqual(['A']);
      expect(a.conn.views()).toHaveLength(1);
      expect(c.rejected).toBe(0);
    },
  );

  it('refuses a peer id already in use (in any room) with id-taken', () => {
    const c = coordinator();
    const a = join(c, 'r', 'A');
    const p = connect(c);
    p.send({ type: 'hello', version: PROTOCOL_VERSION, room: 'r', peerId: 'A' });
    p.send({ type: 'hello', version: PROTOCOL_VERSION, room: 'other', peerId: 'A' });
    expect(p.conn.errors()).toEqual(['id-taken', 'id-taken']);
    expect(c.view('other')).toBeUndefined();
    expect(a.conn.views()).toHaveLength(1);
    // The refused connection may still join under a free id.
    p.send({ type: 'hello', version: PROTOCOL_VERSION, room: 'r', peerId: 'B' });
    expect(ids(c.view('r'))).toEqual(['A', 'B']);
  });

  it('answers a second hello on the same connection with already-joined', () => {
    const c = coordinator();
    const a = join(c, 'r', 'A');
    a.send({ type: 'hello', version: PROTOCOL_VERSION, room: 'r2', peerId: 'A2' });
    expect(a.conn.errors()).toEqual(['already-joined']);
    expect(ids(c.view('r'))).toEqual(['A']);
    expect(c.view('r')?.epoch).toBe(1);
    expect(c.view('r2')).toBeUndefined();
  });

  it('rejects deadAfterMs below twice heartbeatMs when built', () => {
    expect(() => new Coordinator({ heartbeatMs: 100, deadAfterMs: 199 })).toThrow(RangeError);
    expect(() => new Coordinator({ heartbeatMs: 100, deadAfterMs: 199 })).toThrow(/deadAfterMs \(199\).*heartbeatMs \(100\)/);
    expect(() => new Coordinator({ heartbeatMs: 2000 })).toThrow(/deadAfterMs/);
    coordinator({ heartbeatMs: 100, deadAfterMs: 200 });
  });

  it('logs joins and removals through the given logger', () => {
    const lines: string[] = [];
    const c = coordinator({ log: (m) => lines.push(m) });
    const a = join(c, 'r', 'A');
    a.send({ type: 'leave' });
    expect(lines).toEqual(['A joined r', 'A removed from r: left']);
  });
});

describe('Coordinator heartbeats', () => {
  it('evicts a silent member after deadAfterMs and keeps one that heartbeats', async () => {
    const c = coordinator({ heartbeatMs: 20, deadAfterMs: 100 });
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    const beat = setInterval(() => a.send({ type: 'heartbeat' }), 10);
    try {
      const t0 = Date.now();
      const evicted = await b.conn.next(isError('evicted'), 2000, "B's eviction");
      expect(Date.now() - t0).toBeGreaterThanOrEqual(100 - 5);
      expect(evicted.message).toMatch(/no heartbeat for 100 ms/);
      expect(b.conn.closedWith).toMatch(/heartbeat/);
      const v = await a.conn.next((m) => m.type === 'view' && m.view.epoch === 3, 2000, 'the view without B');
      expect(v).toEqual({ type: 'view', view: { room: 'r', epoch: 3, members: [{ peerId: 'A', rank: 0 }] } });
      expect(a.conn.errors()).toEqual([]);
    } finally {
      clearInterval(beat);
    }
  });

  it('a stall of the server itself removes nobody: the heartbeats it has not read yet are judged at the next sweep', () => {
    vi.useFakeTimers({ now: 0 });
    const c = coordinator({ heartbeatMs: 100, deadAfterMs: 300 });
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    // The process stalls for 2 s: the clock moves, no timer runs, the members' heartbeats queue up.
    vi.setSystemTime(2000);
    vi.advanceTimersByTime(50);
    expect([...a.conn.errors(), ...b.conn.errors()]).toEqual([]);
    // The loop reads the queued heartbeats; the next sweeps keep both, until B falls silent for good.
    for (const p of [a, b]) p.send({ type: 'heartbeat' });
    vi.advanceTimersByTime(100);
    expect(ids(a.conn.lastView())).toEqual(['A', 'B']);
    for (let t = 0; t < 5; t++) {
      a.send({ type: 'heartbeat' });
      vi.advanceTimersByTime(100);
    }
    expect(b.conn.errors()).toEqual(['evicted']);
    expect(a.conn.errors()).toEqual([]);
  });

  it('removes exactly when the silence passes deadAfterMs (fake clock)', () => {
    vi.useFakeTimers({ now: 0 });
    const c = coordinator({ heartbeatMs: 100, deadAfterMs: 300 });
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    // A heartbeats every 100 ms and survives; B's silence reaches 300 ms at t=300 and the next
    // sweep (every 50 ms) removes it.
    for (let t = 100; t <= 300; t += 100) {
      vi.advanceTimersByTime(100);
      a.send({ type: 'heartbeat' });
    }
    expect(b.conn.errors()).toEqual([]);
    vi.advanceTimersByTime(50);
    expect(b.conn.errors()).toEqual(['evicted']);
    expect(ids(a.conn.lastView())).toEqual(['A']);
    // Any message counts as a sign of life, not only heartbeats.
    for (let t = 0; t < 10; t++) {
      vi.advanceTimersByTime(100);
      a.send({ type: 'link-down', epoch: 0, peer: 'A' });
    }
    expect(ids(c.view('r'))).toEqual(['A']);
    vi.advanceTimersByTime(400);
    expect(c.view('r')).toBeUndefined();
    expect(a.conn.errors()).toEqual(['evicted']);
  });
});

describe('Coordinator liveness from the transport', () => {
  it('a member proven reachable by pongs stays without heartbeats; alive() before hello does nothing', () => {
    vi.useFakeTimers({ now: 0 });
    const c = coordinator({ heartbeatMs: 100, deadAfterMs: 300 });
    const early = connect(c);
    early.session.alive();
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    for (let t = 0; t < 10; t++) {
      vi.advanceTimersByTime(100);
      a.session.alive();
    }
    expect(ids(c.view('r'))).toEqual(['A']);
    expect(b.conn.errors()).toEqual(['evicted']);
    expect(a.conn.errors()).toEqual([]);
    expect(early.conn.sent).toEqual([]);
  });
});

describe('Coordinator link-down reports', () => {
  function ring(c: Coordinator): { a: Peer; b: Peer; d: Peer } {
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    const d = join(c, 'r', 'C');
    expect(c.view('r')?.epoch).toBe(3);
    return { a, b, d };
  }

  it('a report for the current epoch evicts the reported peer and a new view follows', () => {
    const c = coordinator();
    const { a, b, d } = ring(c);
    a.send({ type: 'link-down', epoch: 3, peer: 'B' });
    expect(b.conn.errors()).toEqual(['evicted']);
    expect(b.conn.sent.at(-1)).toMatchObject({ message: expect.stringMatching(/link from A reported down/) });
    expect(b.conn.closedWith).not.toBeNull();
    const v = {
      room: 'r',
      epoch: 4,
      members: [
        { peerId: 'A', rank: 0 },
        { peerId: 'C', rank: 1 },
      ],
    };
    expect(a.conn.lastView()).toEqual(v);
    expect(d.conn.lastView()).toEqual(v);
    expect(b.conn.lastView()?.epoch).toBe(3);
  });

  it('keeps the two ends of a reported link apart when the evicted peer rejoins, for BAD_LINK_MS', () => {
    vi.useFakeTimers();
    // Members stay however long the clock jumps (no heartbeat deadline within the test).
    const c = coordinator({ deadAfterMs: 10 * BAD_LINK_MS });
    const { a } = ring(c);
    join(c, 'r', 'D');
    expect(ids(c.view('r'))).toEqual(['A', 'B', 'C', 'D']);
    a.send({ type: 'link-down', epoch: 4, peer: 'B' });
    expect(ids(c.view('r'))).toEqual(['A', 'C', 'D']);
    // B rejoins: in join order it would sit next to A (the ring closes D-B-A); it goes between C and D.
    join(c, 'r', 'B');
    expect(ids(c.view('r'))).toEqual(['A', 'C', 'B', 'D']);
    // Once the mark has expired the join order is back (with the next membership change).
    vi.advanceTimersByTime(BAD_LINK_MS);
    join(c, 'r', 'E');
    expect(ids(c.view('r'))).toEqual(['A', 'C', 'D', 'B', 'E']);
  });

  it('counts a report only from a ring neighbour of the reported peer', () => {
    const c = coordinator();
    const { a } = ring(c);
    const d = join(c, 'r', 'D');
    // Ring A-B-C-D: A and C are not neighbours; A's report about C changes nothing.
    a.send({ type: 'link-down', epoch: 4, peer: 'C' });
    expect(ids(c.view('r'))).toEqual(['A', 'B', 'C', 'D']);
    // D is C's neighbour: its report evicts C.
    d.send({ type: 'link-down', epoch: 4, peer: 'C' });
    expect(ids(c.view('r'))).toEqual(['A', 'B', 'D']);
  });

  it('ignores a report about a stale epoch', () => {
    const c = coordinator();
    const { a, d } = ring(c);
    a.send({ type: 'link-down', epoch: 2, peer: 'C' });
    a.send({ type: 'link-down', epoch: 4, peer: 'C' });
    expect(d.conn.errors()).toEqual([]);
    expect(ids(c.view('r'))).toEqual(['A', 'B', 'C']);
    expect(c.view('r')?.epoch).toBe(3);
  });

  it('a suspect cannot evict its accuser in the same epoch', () => {
    const c = coordinator();
    const { a, b, d } = ring(c);
    // Both ends of the A-B link see it die; A's report arrives first.
    a.send({ type: 'link-down', epoch: 3, peer: 'B' });
    b.send({ type: 'link-down', epoch: 3, peer: 'A' });
    expect(a.conn.errors()).toEqual([]);
    expect(ids(c.view('r'))).toEqual(['A', 'C']);
    expect(c.view('r')?.epoch).toBe(4);
    // Not with the new epoch either: it is no longer a member.
    b.send({ type: 'link-down', epoch: 4, peer: 'A' });
    expect(a.conn.errors()).toEqual([]);
    expect(d.conn.lastView()?.epoch).toBe(4);
  });

  it('ignores reports about oneself, strangers and members of other rooms', () => {
    const c = coordinator();
    const { a } = ring(c);
    const x = join(c, 'other', 'X');
    a.send({ type: 'link-down', epoch: 3, peer: 'A' });
    a.send({ type: 'link-down', epoch: 3, peer: 'nobody' });
    a.send({ type: 'link-down', epoch: 3, peer: 'X' });
    expect(a.conn.errors()).toEqual([]);
    expect(x.conn.errors()).toEqual([]);
    expect(c.view('r')?.epoch).toBe(3);
    expect(ids(c.view('other'))).toEqual(['X']);
  });
});

describe('Coordinator rejoin under the same id', () => {
  it('an evicted connection can no longer act for its id once the peer rejoined', () => {
    const c = coordinator();
    const a = join(c, 'r', 'A');
    const old = join(c, 'r', 'B');
    c.peerGone('B');
    expect(old.conn.errors()).toEqual(['evicted']);
    const fresh = join(c, 'r', 'B');
    expect(ids(c.view('r'))).toEqual(['A', 'B']);
    const epoch = c.view('r')?.epoch;

    // The old socket keeps talking for a moment, then its close event arrives late.
    old.send({ type: 'leave' });
    old.send({ type: 'link-down', epoch: epoch!, peer: 'A' });
    old.session.closed();

    expect(ids(c.view('r'))).toEqual(['A', 'B']);
    expect(c.view('r')?.epoch).toBe(epoch);
    expect(a.conn.errors()).toEqual([]);
    expect(fresh.conn.errors()).toEqual([]);
    // The new connection is the member.
    fresh.send({ type: 'leave' });
    expect(ids(c.view('r'))).toEqual(['A']);
  });

  it("a stale connection's heartbeats do not keep the new member alive", () => {
    vi.useFakeTimers({ now: 0 });
    const c = coordinator({ heartbeatMs: 100, deadAfterMs: 300 });
    const old = join(c, 'r', 'A');
    c.peerGone('A');
    const fresh = join(c, 'r', 'A');
    for (let t = 0; t < 4; t++) {
      vi.advanceTimersByTime(100);
      old.send({ type: 'heartbeat' });
    }
    expect(fresh.conn.errors()).toEqual(['evicted']);
    expect(c.view('r')).toBeUndefined();
  });
});

describe('Coordinator resync requests', () => {
  it('re-issues the same members under a new epoch once per epoch', () => {
    const c = coordinator();
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    a.send({ type: 'resync', epoch: 2 });
    b.send({ type: 'resync', epoch: 2 });
    const v = {
      room: 'r',
      epoch: 3,
      members: [
        { peerId: 'A', rank: 0 },
        { peerId: 'B', rank: 1 },
      ],
    };
    expect(a.conn.lastView()).toEqual(v);
    expect(b.conn.lastView()).toEqual(v);
    expect(a.conn.views().map((x) => x.epoch)).toEqual([1, 2, 3]);
    // A request naming a stale or future epoch changes nothing.
    a.send({ type: 'resync', epoch: 7 });
    expect(c.view('r')?.epoch).toBe(3);
  });

  it('a member flooding resync requests gets at most one view per RESYNC_EVERY_MS, and a request in the window is served when it ends', () => {
    vi.useFakeTimers({ now: 0 });
    const c = coordinator({ heartbeatMs: 60_000, deadAfterMs: 600_000 });
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    // 10 s of requests, 30 a second (under the message rate limit), each for the current epoch.
    for (let t = 0; t < 10_000; t += 33) {
      b.send({ type: 'resync', epoch: c.view('r')!.epoch });
      vi.advanceTimersByTime(33);
    }
    const epochs = a.conn.views().map((v) => v.epoch);
    // Epochs 1-2 from the joins, then one re-issue at 0 s and one every 2 s after: 6, not ~300.
    expect(epochs.length - 2).toBeLessThanOrEqual(6);
    expect(epochs.length - 2).toBeGreaterThanOrEqual(5);
    // An honest request right after a re-issue is not lost: it is served when the window ends.
    const now = c.view('r')!.epoch;
    a.send({ type: 'resync', epoch: now });
    vi.advanceTimersByTime(RESYNC_EVERY_MS);
    expect(c.view('r')!.epoch).toBe(now + 1);
  });
});

describe('Coordinator runs and room stats', () => {
  const JOB = {
    kind: 'train',
    config: {
      dataset: 'fashion-mnist',
      partition: { scheme: 'iid', seed: 1 },
      model: 'softmax',
      algorithm: 'sgd',
      optimizer: { kind: 'adam', lr: 0.01 },
      batch: 32,
      steps: 10,
      seed: 1,
    },
  };
  const TREES = {
    kind: 'trees',
    config: { dataset: 'fashion-mnist', partition: { scheme: 'iid', seed: 1 }, model: 'gbdt', maxDepth: 3, bins: 16, seed: 1 },
  };
  const STATS = {
    state: 'training',
    backend: 'wasm',
    step: 3,
    samplesPerSec: 900,
    computeMs: 20,
    readbackMs: 1,
    allreduceMs: 30,
    applyMs: 2,
    sendBytesPerSec: 1e6,
    shard: 12000,
  };
  const runs = (p: Peer): unknown[] => p.conn.sent.filter((m) => m.type === 'run');

  it('a start reaches every member and later joiners; a second start is refused until the run finishes', () => {
    const c = coordinator();
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    b.send({ type: 'start', job: JOB });
    const run = { type: 'run', run: 1, by: 'B', job: JOB };
    expect(runs(a)).toEqual([run]);
    expect(runs(b)).toEqual([run]);
    expect(runs(join(c, 'r', 'C'))).toEqual([run]);
    a.send({ type: 'start', job: JOB });
    expect(a.conn.errors()).toEqual(['busy']);
    // A finish for another run changes nothing; the current one's frees the room.
    a.send({ type: 'finished', run: 7 });
    expect(runs(join(c, 'r', 'D'))).toHaveLength(1);
    a.send({ type: 'finished', run: 1 });
    expect(runs(join(c, 'r', 'E'))).toHaveLength(0);
    a.send({ type: 'start', job: TREES });
    expect(runs(b).at(-1)).toMatchObject({ run: 2, by: 'A', job: { kind: 'trees' } });
  });

  it('a room whose members all drop at once keeps its run for them to rejoin, and a newcomer then joins the run', () => {
    vi.useFakeTimers({ now: 0 });
    const c = coordinator({ heartbeatMs: 100, deadAfterMs: 1000, rejoinGraceMs: 500 });
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    a.send({ type: 'start', job: JOB });
    const run = { type: 'run', run: 1, by: 'A', job: JOB };
    // The server (or the machine) stalls past the deadline: both are removed together.
    vi.advanceTimersByTime(1200);
    expect(a.conn.errors()).toEqual(['evicted']);
    expect(b.conn.errors()).toEqual(['evicted']);
    const rejoin = (id: string): Peer => {
      const p = connect(c);
      p.send({ type: 'hello', version: PROTOCOL_VERSION, room: 'r', peerId: id, epoch: 2 });
      return p;
    };
    const a2 = rejoin('A');
    const b2 = rejoin('B');
    // Gathered into one view after the grace, with epochs still growing; the run is still on.
    vi.advanceTimersByTime(500);
    expect(ids(b2.conn.lastView())).toEqual(['A', 'B']);
    expect(b2.conn.lastView()!.epoch).toBeGreaterThan(2);
    expect(runs(a2)).toEqual([run]);
    expect(runs(join(c, 'r', 'V'))).toEqual([run]);
    // Finished and left, the room goes; kept without anyone, it goes after EMPTY_RUN_KEEP_MS.
    for (const p of [a2, b2]) p.send({ type: 'finished', run: 1 });
    expect(runs(join(c, 'r', 'W'))).toEqual([]);
    const x = join(c, 'x', 'X');
    x.send({ type: 'start', job: JOB });
    x.send({ type: 'leave' });
    vi.advanceTimersByTime(EMPTY_RUN_KEEP_MS - 1);
    expect(runs(join(c, 'x', 'Y'))).toEqual([{ ...run, by: 'X' }]);
    const z = join(c, 'z', 'Z');
    z.send({ type: 'start', job: JOB });
    z.send({ type: 'leave' });
    vi.advanceTimersByTime(EMPTY_RUN_KEEP_MS);
    expect(runs(join(c, 'z', 'Z2'))).toEqual([]);
  });

  it('rejects a malformed job or stats without a crash', () => {
    const c = coordinator();
    const a = join(c, 'r', 'A');
    a.send({ type: 'start', job: { kind: 'rm -rf', config: {} } });
    a.send({ type: 'stats', stats: { ...STATS, samplesPerSec: -1 } });
    a.send({ type: 'stats', stats: { ...STATS, backend: 'x'.repeat(65) } });
    // A run config the schema refuses never reaches the room: unknown fields, conflicting options.
    a.send({ type: 'start', job: { kind: 'train', config: { ...JOB.config, evalEvry: 3 } } });
    a.send({ type: 'start', job: { kind: 'train', config: { ...JOB.config, robust: { rule: 'median' }, compression: { kind: 'fp16' } } } });
    expect(a.conn.errors()).toEqual(['bad-message', 'bad-message', 'bad-message', 'bad-message', 'bad-message']);
    expect(JSON.stringify(a.conn.sent.at(-1))).toMatch(/robust and compression/);
    expect(runs(a)).toEqual([]);
  });

  it('sends the members their latest stats together, at most once a second, without departed members', () => {
    vi.useFakeTimers({ now: 0 });
    const c = coordinator({ heartbeatMs: 10_000, deadAfterMs: 60_000 });
    const a = join(c, 'r', 'A');
    const b = join(c, 'r', 'B');
    const stats = (p: Peer): unknown[] => p.conn.sent.filter((m) => m.type === 'room-stats');
    a.send({ type: 'stats', stats: STATS });
    b.send({ type: 'stats', stats: { ...STATS, step: 4 } });
    a.send({ type: 'stats', stats: { ...STATS, step: 5 } });
    vi.advanceTimersByTime(999);
    expect(stats(a)).toEqual([]);
    vi.advanceTimersByTime(1);
    const expected = {
      type: 'room-stats',
      peers: [
        { peerId: 'A', stats: { ...STATS, step: 5 } },
        { peerId: 'B', stats: { ...STATS, step: 4 } },
      ],
    };
    expect(stats(a)).toEqual([expected]);
    expect(stats(b)).toEqual([expected]);
    b.send({ type: 'leave' });
    a.send({ type: 'stats', stats: STATS });
    vi.advanceTimersByTime(1000);
    expect(stats(a).at(-1)).toEqual({ type: 'room-stats', peers: [{ peerId: 'A', stats: STATS }] });
  });
});

describe('Coordinator limits', () => {
  it('refuses a peer beyond the room limit and a room beyond the server limit, and keeps serving the rest', () => {
    const c = coordinator({ maxPeersPerRoom: 2, maxRooms: 2 });
    join(c, 'r', 'A');
    join(c, 'r', 'B');
    const third = connect(c);
    third.send({ type: 'hello', version: PROTOCOL_VERSION, room: 'r', peerId: 'C' });
    expect(third.conn.errors()).toEqual(['room-full']);
    join(c, 's', 'D');
    const fourth = connect(c);
    fourth.send({ type: 'hello', version: PROTOCOL_VERSION, room: 't', peerId: 'E' });
    expect(fourth.conn.errors()).toEqual(['too-many-rooms']);
    expect(ids(c.view('r'))).toEqual(['A', 'B']);
    expect(c.view('t')).toBeUndefined();
  });

  it('drops a flood beyond the rate with one error, closes a connection far beyond it, and the honest peer stays', () => {
    vi.useFakeTimers({ now: 0 });
    const c = coordinator({ maxMessagesPerSec: 10, heartbeatMs: 10_000, deadAfterMs: 60_000 });
    const honest = join(c, 'r', 'A');
    const noisy = join(c, 'r', 'B');
    for (let i = 0; i < 20; i++) noisy.send({ type: 'heartbeat' });
    expect(noisy.conn.errors()).toEqual(['rate-limited']);
    expect(noisy.conn.closedWith).toBeNull();
    expect(c.throttled).toBe(11);
    // A new second: the budget is back.
    vi.advanceTimersByTime(1000);
    noisy.send({ type: 'resync', epoch: 2 });
    expect(honest.conn.lastView()?.epoch).toBe(3);
    for (let i = 0; i < 60; i++) noisy.send({ type: 'heartbeat' });
    expect(noisy.conn.closedWith).toBe('too many messages');
    expect(ids(honest.conn.lastView())).toEqual(['A']);
    honest.send({ type: 'heartbeat' });
    expect(honest.conn.errors()).toEqual([]);
  });
});

/** Small limits, so that a test can flood past them: 10 messages/s per connection, 50 per address, 8 connections per address. */
const FLOOD_LIMITS = {
  maxMessagesPerSec: 10,
  maxMessagesPerSecPerAddress: 50,
  maxConnectionsPerAddress: 8,
  heartbeatMs: 10_000,
  deadAfterMs: 60_000,
};
describe('Coordinator limits per address', () => {
  it('a flooder reconnecting from one address shares one message budget, and its connections are capped; another address is unaffected', () => {
    vi.useFakeTimers({ now: 0 });
    const c = coordinator(FLOOD_LIMITS);
    const honest = join(c, 'r', 'H', '10.0.0.2');
    // 8 connections from 10.0.0.1, each within its own per-connection rate (10/s): 80 messages.
    const flood = Array.from({ length: 8 }, () => connectFrom(c, '10.0.0.1'));
    const before = c.throttled;
    for (const f of flood) for (let i = 0; i < 10; i++) f.send({ type: 'heartbeat' });
    // Only the address's 50 got through; 30 were dropped although no connection passed 10.
    expect(c.throttled - before).toBe(30);
    // A 9th connection from that address is refused; the honest peer elsewhere goes on.
    const ninth = connectFrom(c, '10.0.0.1');
    expect(ninth.conn.errors()).toEqual(['rate-limited']);
    expect(ninth.conn.closedWith).toBe('too many connections from one address');
    honest.send({ type: 'heartbeat' });
    expect(honest.conn.errors()).toEqual([]);
    // Closed connections free their places.
    flood[0]!.session.closed();
    expect(connectFrom(c, '10.0.0.1').conn.closedWith).toBeNull();
  });

  it('a connection flooding while its address is over budget is still closed at 5 times its own rate', () => {
    vi.useFakeTimers({ now: 0 });
    const c = coordinator(FLOOD_LIMITS);
    const [first, second] = [connectFrom(c, '10.0.0.1'), connectFrom(c, '10.0.0.1')];
    // The first uses the address's whole budget for this second, within what closes it (5 x 10).
    for (let i = 0; i < 50; i++) first.send({ type: 'heartbeat' });
    expect(first.conn.closedWith).toBeNull();
    // The second floods: every message is over the address's budget, yet it counts as its own.
    for (let i = 0; i < 51; i++) second.send({ type: 'heartbeat' });
    expect(second.conn.closedWith).toBe('too many messages');
  });
});

describe('Coordinator strikes for invalid gradients', () => {
  it('counts a strike when most other members report a peer, removes it at 3 and keeps it out', () => {
    const c = coordinator();
    const [a, b, cc] = ['A', 'B', 'C'].map((id) => join(c, 'r', id));
    const d = join(c, 'r', 'D');
    const epoch = c.view('r')!.epoch;
    const report = (p: Peer, step: number, peer = 'D', e = epoch): void => p.send({ type: 'invalid', epoch: e, step, peer });
    // One accuser is not enough; a stale epoch, oneself or a stranger count for nothing.
    report(a!, 1, 'B');
    report(a!, 1, 'D', epoch - 1);
    report(d, 1, 'D');
    report(a!, 1, 'Z');
    for (const step of [1, 2]) {
      report(a!, step);
      report(b!, step);
      report(cc!, step);
    }
    expect(c.view('r')?.epoch).toBe(epoch);
    expect(ids(c.view('r'))).toEqual(['A', 'B', 'C', 'D']);
    report(b!, 3);
    report(cc!, 3);
    expect(d.conn.errors()).toEqual(['evicted']);
    expect(ids(c.view('r'))).toEqual(['A', 'B', 'C']);
    const back = connect(c);
    back.send({ type: 'hello', version: PROTOCOL_VERSION, room: 'r', peerId: 'D' });
    expect(back.conn.sent).toEqual([
      { type: 'error', code: 'unauthorized', message: 'D was removed from r for sending invalid gradients' },
    ]);
  });
});
