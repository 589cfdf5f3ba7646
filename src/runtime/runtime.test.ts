import { describe, expect, it } from 'vitest';
import type { RuntimeEvent } from './events.ts';
import { NO_PRIVATE_ROOMS, PeerRuntime } from './runtime.ts';

const make = (webCrypto = true): { rt: PeerRuntime; events: RuntimeEvent[] } => {
  const rt = new PeerRuntime({
    room: 'demo',
    webCrypto,
    backendSelector: () => async () => ({ name: 'cpu', reason: 'test', failures: {} }),
  });
  const events: RuntimeEvent[] = [];
  rt.subscribe((e) => events.push(e));
  return { rt, events };
};

describe('PeerRuntime without a room (in Node, no DOM)', () => {
  it('asks to join first for anything that needs the room', async () => {
    const { rt } = make();
    expect(rt.session).toBeNull();
    expect(rt.phase).toBe('not in a room');
    expect(() => rt.start({ kind: 'train', config: {} as never })).toThrow('ringtrain: call join() first');
    await expect(rt.train({} as never)).rejects.toThrow('ringtrain: call join() first');
    await expect(rt.trainTrees({} as never)).rejects.toThrow('ringtrain: call join() first');
    await expect(rt.checkpointFile()).rejects.toThrow('ringtrain: call join() first');
    await expect(rt.exportFiles()).rejects.toThrow('no model yet: train one first');
    expect(rt.memory().session).toBeNull();
  });

  it('a private room without WebCrypto fails before it starts joining', async () => {
    const { rt, events } = make(false);
    await expect(rt.join({ room: 'x', secret: 's' })).rejects.toThrow(NO_PRIVATE_ROOMS);
    expect(events).toEqual([{ type: 'join-failed', error: `Could not join: ${NO_PRIVATE_ROOMS}.` }]);
    expect(rt.room).toBe('demo');
  });

  it("loads the tab's own data, and the setup's epochs count its samples", async () => {
    const { rt } = make();
    const d = await rt.useData({ kind: 'blobs', n: 200, classes: 3, dims: 2, spread: 0.3, seed: 1 });
    expect(d).toMatchObject({ train: 160, test: 40, shape: [2], classes: 3 });
    const job = rt.jobFromFields({ dataset: 'local', model: 'softmax', epochs: '1', batch: '16' });
    expect(job.kind).toBe('train');
    expect(job.kind === 'train' && job.config.steps).toBe(10);
  });

  it('leaving tells the subscribers; an unsubscribed one hears no more', () => {
    const { rt, events } = make();
    const more: RuntimeEvent[] = [];
    const fn = (e: RuntimeEvent): void => void more.push(e);
    rt.subscribe(fn);
    rt.leave();
    rt.unsubscribe(fn);
    rt.leave();
    expect(events).toEqual([{ type: 'left' }, { type: 'left' }]);
    expect(more).toEqual([{ type: 'left' }]);
  });
});
