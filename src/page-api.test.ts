import { describe, expect, it, vi } from 'vitest';
import type { SessionOptions } from './net/session.ts';
import { pageApi, type FacadeRuntime } from './page-api.ts';

/** A runtime that records what the facade asks of it (no room). */
function fakeRuntime() {
  const calls: unknown[][] = [];
  const rec =
    (name: string, out?: unknown) =>
    (...args: unknown[]) => {
      calls.push([name, ...args]);
      return out;
    };
  const rt = {
    room: 'demo',
    session: null,
    need: () => {
      throw new Error('ringtrain: call join() first');
    },
    join: vi.fn(async (o: SessionOptions) => ({ peerId: `p-${o.room}`, view: null })),
    leave: rec('leave'),
    useData: rec('useData', Promise.resolve({ source: 's', train: 1, test: 1, shape: [1], classes: 2 })),
    train: rec('train', Promise.resolve('trained')),
    trainTrees: rec('trainTrees', Promise.resolve('grown')),
    pause: rec('pause'),
    resume: rec('resume'),
    stop: rec('stop'),
    start: rec('start'),
    exportFiles: rec('exportFiles', Promise.resolve([])),
    memory: () => ({ tensors: 3, tensorBytes: 12, session: null }),
    poison: rec('poison'),
    slow: rec('slow'),
  } satisfies Record<keyof FacadeRuntime, unknown>;
  return { rt: rt as unknown as FacadeRuntime, join: rt.join, calls };
}

const probes = {
  linkSecretFor: (room: string) => (room === 'linked' ? 'k1' : undefined),
  chartPoints: () => ({ loss: 4, accuracy: 2 }),
  eventLogSize: () => 7,
};

describe('window.ringtrain over the runtime', () => {
  it("joins the runtime's room by default, with the link's secret for the link's room only", async () => {
    const { rt, join } = fakeRuntime();
    const api = pageApi(rt, probes);
    expect(await api.join()).toEqual({ peerId: 'p-demo', view: null });
    expect(join).toHaveBeenLastCalledWith({ room: 'demo' });
    await api.join({ room: 'linked' });
    expect(join).toHaveBeenLastCalledWith({ room: 'linked', secret: 'k1' });
    await api.join({ room: 'linked', secret: 'mine', createRoom: true });
    expect(join).toHaveBeenLastCalledWith({ room: 'linked', secret: 'mine', createRoom: true });
  });

  it('says idle outside a room, and asks to join first for what needs one', async () => {
    const api = pageApi(fakeRuntime().rt, probes);
    expect([api.peerId(), api.status(), api.view()]).toEqual([null, 'idle', null]);
    expect(() => api.stats()).toThrow('call join() first');
    expect(() => api.debug.cutLink('x')).toThrow('call join() first');
    await expect(api.allreduce(new Float32Array(1))).rejects.toThrow('call join() first');
    // As before the facade: waitForView throws at once, the collectives reject.
    expect(() => api.waitForView(2)).toThrow('call join() first');
  });

  it('hands training, control, export and the drill to the runtime', async () => {
    const { rt, calls } = fakeRuntime();
    const api = pageApi(rt, probes);
    const onEvent = (): void => undefined;
    expect(await api.train({} as never, onEvent)).toBe('trained');
    expect(await api.trainTrees({} as never)).toBe('grown');
    api.pause();
    api.resume();
    api.stop();
    api.debug.poison('nan');
    api.debug.poison(null);
    api.start({ kind: 'train', config: {} as never });
    api.leave();
    expect(calls.map((c) => c[0])).toEqual(['train', 'trainTrees', 'pause', 'resume', 'stop', 'poison', 'poison', 'start', 'leave']);
    expect(calls[0]).toEqual(['train', {}, onEvent]);
    expect(calls[5]).toEqual(['poison', 'nan']);
    expect(calls[6]).toEqual(['poison', null]);
  });

  it("the memory probe adds the dashboard's plot points and log entries to the runtime's", () => {
    const m = pageApi(fakeRuntime().rt, probes).debug.memory();
    expect(m).toMatchObject({ tensors: 3, tensorBytes: 12, chartPoints: 6, eventLog: 7, session: null });
    expect(pageApi(fakeRuntime().rt, probes).debug.chartPoints()).toEqual({ loss: 4, accuracy: 2 });
  });
});
