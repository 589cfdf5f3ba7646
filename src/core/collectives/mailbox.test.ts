import { describe, expect, it } from 'vitest';
import { DType, encodeFrame, FrameError, Op, type Frame, type FrameHeader } from '../../protocol/frame.ts';
import { RingError, type RingErrorCode } from '../errors.ts';
import { Listeners, type PeerId, type Transport } from '../transport.ts';
import { Mailbox } from './mailbox.ts';

/** A transport whose incoming messages the test delivers by hand, synchronously. */
class FakeTransport implements Transport {
  readonly self = 'me';
  readonly maxMessageBytes = 262_144;
  private readonly messages = new Listeners<[PeerId, Uint8Array]>();
  send(): Promise<void> {
    return Promise.resolve();
  }
  onMessage(handler: (from: PeerId, message: Uint8Array) => void): () => void {
    return this.messages.on(handler);
  }
  onPeerDown(): () => void {
    return () => undefined;
  }
  deliver(from: PeerId, message: Uint8Array): void {
    this.messages.emit(from, message);
  }
}

function frame(epoch: number, seq: number, chunk = 0, payload: Uint8Array = new Uint8Array(4), h: Partial<FrameHeader> = {}): Uint8Array {
  return encodeFrame({ op: Op.ReduceScatter, dtype: DType.Bytes, epoch, seq, segment: 0, chunk, chunks: 1 << 16, ...h }, payload);
}

const never = new AbortController().signal;

async function rejection(p: Promise<unknown>): Promise<RingError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(RingError);
    return e as RingError;
  }
  throw new Error('expected a rejection');
}

async function expectCode(p: Promise<unknown>, code: RingErrorCode): Promise<RingError> {
  const e = await rejection(p);
  expect(e.code).toBe(code);
  return e;
}

function setup(maxBufferedBytes?: number, maxBufferedFrames?: number): { t: FakeTransport; mb: Mailbox } {
  const t = new FakeTransport();
  return { t, mb: new Mailbox(t, maxBufferedBytes, maxBufferedFrames) };
}

describe('Mailbox ordering', () => {
  it('hands out frames from one peer in arrival order', async () => {
    const { t, mb } = setup();
    for (let c = 0; c < 5; c++) t.deliver('a', frame(1, 0, c));
    const got: number[] = [];
    for (let c = 0; c < 5; c++) got.push((await mb.take('a', 1, 0, never)).chunk);
    expect(got).toEqual([0, 1, 2, 3, 4]);
  });

  it('keeps one queue per sender', async () => {
    const { t, mb } = setup();
    t.deliver('a', frame(1, 0, 10));
    t.deliver('b', frame(1, 0, 20));
    t.deliver('a', frame(1, 0, 11));
    expect((await mb.take('b', 1, 0, never)).chunk).toBe(20);
    expect((await mb.take('a', 1, 0, never)).chunk).toBe(10);
    expect((await mb.take('a', 1, 0, never)).chunk).toBe(11);
  });

  it('waits for a frame that has not arrived yet', async () => {
    const { t, mb } = setup();
    const p = mb.take('a', 2, 5, never);
    let settled = false;
    void p.then(() => (settled = true));
    await Promise.resolve();
    t.deliver('b', frame(2, 5, 1)); // another peer's frame does not wake it
    await Promise.resolve();
    expect(settled).toBe(false);
    t.deliver('a', frame(2, 5, 3));
    expect((await p).chunk).toBe(3);
  });

  it('stays in order across the internal compaction of a long queue', async () => {
    const { t, mb } = setup();
    const n = 5000;
    for (let c = 0; c < n; c++) t.deliver('a', frame(1, 0, c));
    for (let c = 0; c < n; c++) {
      const f = await mb.take('a', 1, 0, never);
      if (f.chunk !== c) throw new Error(`frame ${c} came out as ${f.chunk}`);
      if (c === 2000) for (let k = n; k < n + 100; k++) t.deliver('a', frame(1, 0, k));
    }
    for (let c = n; c < n + 100; c++) expect((await mb.take('a', 1, 0, never)).chunk).toBe(c);
    expect(mb.bufferedBytes('a')).toBe(0);
  });

  it('ignores heartbeats', async () => {
    const { t, mb } = setup();
    t.deliver('a', frame(0, 0, 0, new Uint8Array(0), { op: Op.Heartbeat }));
    t.deliver('a', frame(9, 9, 1));
    expect((await mb.take('a', 9, 9, never)).chunk).toBe(1);
    expect(mb.badFrameCount).toBe(0);
  });
});

describe('Mailbox discards stale frames and detects a peer that is ahead', () => {
  it('drops frames of older collectives in the same epoch', async () => {
    const { t, mb } = setup();
    t.deliver('a', frame(1, 0, 0));
    t.deliver('a', frame(1, 1, 0));
    t.deliver('a', frame(1, 2, 7));
    const f: Frame = await mb.take('a', 1, 2, never);
    expect([f.seq, f.chunk]).toEqual([2, 7]);
    expect(mb.bufferedBytes('a')).toBe(0);
  });

  it('drops frames of older epochs, whatever their seq', async () => {
    const { t, mb } = setup();
    t.deliver('a', frame(1, 50, 0));
    t.deliver('a', frame(2, 0, 4));
    expect((await mb.take('a', 2, 0, never)).chunk).toBe(4);
  });

  it("rejects with 'view-changed' when the peer is already in a later epoch, and keeps that frame", async () => {
    const { t, mb } = setup();
    t.deliver('a', frame(4, 0, 9));
    const e = await expectCode(mb.take('a', 3, 7, never), 'view-changed');
    expect(e.peer).toBe('a');
    // The frame is still there for the collective of the new epoch.
    expect((await mb.take('a', 4, 0, never)).chunk).toBe(9);
  });

  it("rejects a waiting take with 'view-changed' when a later-epoch frame arrives", async () => {
    const { t, mb } = setup();
    const p = mb.take('a', 3, 0, never);
    t.deliver('a', frame(4, 0));
    await expectCode(p, 'view-changed');
  });

  it("rejects with 'protocol' when the peer sends a later collective of this epoch (desync)", async () => {
    const { t, mb } = setup();
    t.deliver('a', frame(3, 8));
    const e = await expectCode(mb.take('a', 3, 7, never), 'protocol');
    expect(e.message).toContain('desync');
    const waiting = mb.take('b', 3, 7, never);
    t.deliver('b', frame(3, 6));
    t.deliver('b', frame(3, 9));
    await expectCode(waiting, 'protocol');
  });
});

describe('Mailbox buffer cap', () => {
  it("fails the peer's collectives of that epoch with 'protocol' when it sends more than the cap", async () => {
    const { t, mb } = setup(64);
    for (let c = 0; c < 4; c++) t.deliver('a', frame(1, 0, c, new Uint8Array(16)));
    expect(mb.bufferedBytes('a')).toBe(64);
    t.deliver('a', frame(1, 1, 0, new Uint8Array(4))); // 68 B > 64 B
    expect(mb.bufferedBytes('a')).toBe(0);
    const e = await expectCode(mb.take('a', 1, 0, never), 'protocol');
    expect(e.peer).toBe('a');
    await expectCode(mb.take('a', 1, 5, never), 'protocol');
    // Later frames of that epoch are dropped, not buffered.
    t.deliver('a', frame(1, 2, 0, new Uint8Array(16)));
    expect(mb.bufferedBytes('a')).toBe(0);
    // Other peers are unaffected, and the next epoch starts clean.
    t.deliver('b', frame(1, 0, 3));
    expect((await mb.take('b', 1, 0, never)).chunk).toBe(3);
    t.deliver('a', frame(2, 0, 5, new Uint8Array(16)));
    expect((await mb.take('a', 2, 0, never)).chunk).toBe(5);
  });

  it('counts frames as well as bytes: a flood of empty frames fails the peer at the frame cap (default 16384)', async () => {
    const { t, mb } = setup();
    const empty = new Uint8Array(0);
    for (let c = 0; c < 16_384; c++) t.deliver('a', frame(1, 0, c, empty));
    expect(mb.totals().slots).toBe(16_384);
    t.deliver('a', frame(1, 0, 16_384, empty));
    expect(mb.totals().slots).toBe(0);
    const e = await expectCode(mb.take('a', 1, 0, never), 'protocol');
    expect(e.message).toMatch(/16384 frames ahead of use/);
  });

  it('rejects a take that is already waiting when the overrun happens', async () => {
    const { t, mb } = setup(8);
    const p = mb.take('a', 1, 0, never);
    t.deliver('a', frame(1, 1, 0, new Uint8Array(12))); // a later collective's frame, over the cap
    await expectCode(p, 'protocol');
  });

  it('counts only what is buffered: consuming frames frees room', async () => {
    const { t, mb } = setup(32);
    for (let round = 0; round < 10; round++) {
      t.deliver('a', frame(1, 0, round, new Uint8Array(32)));
      expect((await mb.take('a', 1, 0, never)).chunk).toBe(round);
    }
  });
});

describe('Mailbox bad frames', () => {
  it('counts and reports undecodable frames, without throwing', () => {
    const { t, mb } = setup();
    const seen: [string, string][] = [];
    mb.badFrames.on((peer, e) => seen.push([peer, e.code]));
    expect(() => {
      t.deliver('a', new Uint8Array(3));
      const ragged = frame(1, 0, 0, new Uint8Array(4));
      t.deliver('b', ragged.subarray(0, ragged.byteLength - 1));
      const wrongMagic = frame(1, 0);
      wrongMagic[0] = 0;
      t.deliver('a', wrongMagic);
    }).not.toThrow();
    expect(mb.badFrameCount).toBe(3);
    expect(seen).toEqual([
      ['a', 'truncated'],
      ['b', 'bad-length'],
      ['a', 'bad-magic'],
    ]);
  });

  it("rejects the take that reaches a bad frame with 'protocol', after the good frames before it", async () => {
    const { t, mb } = setup();
    t.deliver('a', frame(1, 0, 0));
    t.deliver('a', new Uint8Array(5));
    t.deliver('a', frame(1, 0, 1));
    expect((await mb.take('a', 1, 0, never)).chunk).toBe(0);
    const e = await expectCode(mb.take('a', 1, 0, never), 'protocol');
    expect(e.message).toContain('truncated');
    expect(e.peer).toBe('a');
    // The bad frame is consumed: the stream goes on.
    expect((await mb.take('a', 1, 0, never)).chunk).toBe(1);
  });

  it('wakes a waiting take when a bad frame arrives', async () => {
    const { t, mb } = setup();
    const p = mb.take('a', 1, 0, never);
    t.deliver('a', new Uint8Array(100));
    await expectCode(p, 'protocol');
  });

  it('keeps one marker for a run of bad frames', async () => {
    const { t, mb } = setup();
    for (let i = 0; i < 1000; i++) t.deliver('a', new Uint8Array(i % 31));
    t.deliver('a', frame(1, 0, 2));
    expect(mb.badFrameCount).toBe(1000);
    await expectCode(mb.take('a', 1, 0, never), 'protocol');
    expect((await mb.take('a', 1, 0, never)).chunk).toBe(2);
  });

  it('FrameError values reach the listener', () => {
    const { t, mb } = setup();
    let got: unknown;
    mb.badFrames.on((_p, e) => (got = e));
    t.deliver('a', new Uint8Array(1));
    expect(got).toBeInstanceOf(FrameError);
  });
});

describe('Mailbox aborts, retain and dispose', () => {
  it('rejects at once with the reason of an aborted signal', async () => {
    const { mb } = setup();
    const ctl = new AbortController();
    ctl.abort(new RingError('timeout', 'too slow'));
    await expectCode(mb.take('a', 1, 0, ctl.signal), 'timeout');
    const plain = new AbortController();
    plain.abort();
    await expectCode(mb.take('a', 1, 0, plain.signal), 'aborted');
  });

  it('rejects a waiting take when its signal fires, and leaves later frames for the next take', async () => {
    const { t, mb } = setup();
    const ctl = new AbortController();
    const p = mb.take('a', 1, 0, ctl.signal);
    ctl.abort(new RingError('view-changed', 'replaced'));
    await expectCode(p, 'view-changed');
    t.deliver('a', frame(1, 0, 6));
    expect((await mb.take('a', 1, 0, never)).chunk).toBe(6);
  });

  it('retain drops what was buffered from peers that left', async () => {
    const { t, mb } = setup();
    t.deliver('a', frame(1, 0, 1));
    t.deliver('b', frame(1, 0, 2));
    mb.retain(new Set(['b']));
    expect(mb.bufferedBytes('a')).toBe(0);
    expect(mb.bufferedBytes('b')).toBe(4);
    t.deliver('a', frame(1, 0, 3));
    expect((await mb.take('a', 1, 0, never)).chunk).toBe(3);
  });

  it('dispose stops listening to the transport', async () => {
    const { t, mb } = setup();
    mb.dispose();
    t.deliver('a', frame(1, 0, 1));
    t.deliver('a', new Uint8Array(1));
    expect(mb.bufferedBytes('a')).toBe(0);
    expect(mb.badFrameCount).toBe(0);
  });
});
