import { describe, expect, it, vi } from 'vitest';
import { Contribution } from '../ml/exchange/contribution.ts';
import { controlDeps } from './drill.ts';
import { EventStream } from './events.ts';

describe('EventStream', () => {
  it('delivers to subscribers until they unsubscribe, either way', () => {
    const s = new EventStream<number>();
    const a: number[] = [];
    const b: number[] = [];
    const fa = (e: number): void => void a.push(e);
    const offB = s.subscribe((e) => b.push(e));
    s.subscribe(fa);
    s.subscribe(fa); // once only
    expect(s.size).toBe(2);
    s.emit(1);
    s.unsubscribe(fa);
    s.emit(2);
    offB();
    s.emit(3);
    expect(a).toEqual([1]);
    expect(b).toEqual([1, 2]);
    expect(s.size).toBe(0);
  });

  it('a subscriber that throws keeps no other from the event; its error comes later', async () => {
    const s = new EventStream<string>();
    const got: string[] = [];
    const thrown = new Promise<unknown>((resolve) => {
      vi.spyOn(globalThis, 'queueMicrotask').mockImplementationOnce((f) => {
        try {
          f();
        } catch (e) {
          resolve(e);
        }
      });
      s.subscribe(() => {
        throw new Error('boom');
      });
    });
    s.subscribe((e) => got.push(e));
    s.emit('x');
    expect(got).toEqual(['x']);
    expect(((await thrown) as Error).message).toBe('boom');
    vi.restoreAllMocks();
  });
});

describe('controlDeps (the drill wiring point)', () => {
  it("carries this peer's requests, and injects the poison and the slowdown in force at each read as a drill", () => {
    const ctl = { pause: false, stop: false };
    let kind: 'nan' | 'huge' | 'flip' | null = null;
    let slowdown = 1;
    const { control, drill } = controlDeps(ctl, () => ({ poison: kind, slowdown }));
    expect(control!()).toEqual({ pause: false, stop: false });
    expect(drill!()).toBeNull();
    ctl.pause = true;
    kind = 'flip';
    expect(control!()).toEqual({ pause: true, stop: false });
    const d = drill!()!;
    expect(d.selfCheck).toBe(false);
    const c = Contribution.gradient(new Float32Array([1, -2]), 4, 3);
    expect(Array.from(d.alter(c).body)).toEqual([-100, 200]);
    expect(d.slowdown).toBe(1);
    kind = null;
    expect(drill!()).toBeNull();
    slowdown = 10;
    const slow = drill!()!;
    expect(slow.slowdown).toBe(10);
    expect(slow.selfCheck).toBe(true);
    expect(slow.alter(c)).toBe(c);
  });
});
