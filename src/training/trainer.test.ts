import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { AUTO_PROBE_STEPS } from '../ml/algorithms/auto.ts';
import { dpEpsilon } from '../ml/dp.ts';
import { holdOut, type LocalData } from '../data/local.ts';
import { encodeText, textWindows } from '../data/text.ts';
import { gaussianBlobs, twoSpirals } from '../data/synthetic.ts';
import { relativeDifference } from '../ml/compare.ts';
import { BLOBS, BLOBS_GD, TestRoom } from '../test/room.ts';
import { stepProblems } from './history.ts';
import { decodeCheckpoint, encodeCheckpoint } from '../protocol/checkpoint.ts';
import { FRAME_HEADER_BYTES, Op } from '../protocol/frame.ts';
import { DIGEST_WORDS, digestWords } from './consensus.ts';
import {
  poisonDrill,
  slowDrill,
  train,
  type Drill,
  type Group,
  type TrainConfig,
  type TrainControl,
  type TrainerDeps,
  type TrainEvent,
  type TrainResult,
} from './trainer.ts';

/**
 * The whole training loop over the real ring code (Communicators on the in-memory transport) and
 * tfjs's cpu backend, on seeded Gaussian blobs held in memory.
 */
beforeAll(async () => {
  await tf.setBackend('cpu');
});

const DATA = BLOBS;
const BASE = BLOBS_GD;

/** Runs `cfg` on `n` peers of one in-memory room; `control(rank)`, `drill(rank)` and `onEvent(rank, e)` hook each peer. */
function trainRing(
  n: number,
  cfg: TrainConfig,
  hooks: {
    control?: (rank: number) => TrainControl;
    drill?: (rank: number) => Drill | null;
    onEvent?: (rank: number, e: TrainEvent) => void;
  } = {},
): Promise<TrainResult[]> {
  const room = new TestRoom(DATA);
  const ids = Array.from({ length: n }, (_, i) => `p${i}`);
  for (const id of ids) room.add(id);
  return Promise.all(
    ids.map((id, rank) =>
      train(
        cfg,
        room.deps(id, cfg, {
          onEvent: (e) => hooks.onEvent?.(rank, e),
          ...(hooks.control ? { control: () => hooks.control!(rank) } : {}),
          ...(hooks.drill ? { drill: () => hooks.drill!(rank) } : {}),
        }),
      ),
    ),
  );
}

describe('train', () => {
  it('full-batch GD on 2 and 3 peers matches 1 peer on the whole training set after 20 steps', async () => {
    const [solo] = await trainRing(1, BASE);
    expect(solo!.accuracy).toBeGreaterThan(0.9);
    for (const n of [2, 3]) {
      const rs = await trainRing(n, BASE);
      for (const r of rs) {
        expect(r.steps).toBe(20);
        expect(r.weights).toEqual(rs[0]!.weights);
        expect(relativeDifference(r.weights, solo!.weights)).toBeLessThan(1e-4);
        expect(r.accuracy).toBe(solo!.accuracy);
      }
    }
  });

  it('a lone peer lets timers run while it trains: a timer set at step 1 fires long before the last step', async () => {
    // Alone on the cpu backend every await of a step settles as a microtask; without the pacer the
    // timer (in a tab: painting, Stop; in a Node peer: its parent's disconnect) waits for the whole run.
    let stepAtTimer = -1;
    let lastStep = 0;
    const onEvent = (_: number, e: TrainEvent): void => {
      if (e.type !== 'step') return;
      lastStep = e.step;
      if (e.step === 1) setTimeout(() => (stepAtTimer = lastStep), 0);
    };
    const [solo] = await trainRing(1, { ...BASE, algorithm: 'sgd', batch: 8, steps: 1000 }, { onEvent });
    expect(solo!.steps).toBe(1000);
    expect(stepAtTimer).toBeGreaterThanOrEqual(1);
    expect(stepAtTimer).toBeLessThan(500);
  });

  it('compressed gradients (PowerSGD rank 1, random-k 25%, fp16, int8) still give 3 peers identical weights, and they learn', async () => {
    for (const compression of [
      { kind: 'powersgd', rank: 1 },
      { kind: 'randomk', ratio: 0.25 },
      { kind: 'fp16' },
      { kind: 'int8' },
    ] as const) {
      const rs = await trainRing(3, { ...BASE, steps: 30, compression });
      for (const r of rs) {
        expect(r.weights).toEqual(rs[0]!.weights);
        expect(r.accuracy).toBeGreaterThan(0.85);
      }
    }
  });

  it('DP-SGD on 2 peers: the same weights on both, ε reported and growing, and it still learns', async () => {
    const eps: number[] = [];
    const rs = await trainRing(
      2,
      { ...BASE, algorithm: 'sgd', batch: 32, steps: 40, optimizer: { kind: 'sgd', lr: 0.5 }, dp: { clip: 1, noiseMultiplier: 0.5 } },
      {
        onEvent: (rank, e) => rank === 0 && e.type === 'privacy' && eps.push(e.epsilon),
      },
    );
    expect(rs[0]!.weights).toEqual(rs[1]!.weights);
    expect(eps).toHaveLength(40);
    for (let i = 1; i < eps.length; i++) expect(eps[i]!).toBeGreaterThan(eps[i - 1]!);
    expect(rs[0]!.epsilon).toBe(eps.at(-1));
    expect(rs[0]!.accuracy).toBeGreaterThan(0.8);
  });

  it('DP-SGD reports the ε against a ring neighbour too: σ/√N of noise per step without secure aggregation, none shown with it', async () => {
    const dp = { clip: 1, noiseMultiplier: 1.5 };
    const cfg = { ...BASE, algorithm: 'sgd' as const, batch: 32, steps: 12, optimizer: { kind: 'sgd' as const, lr: 0.5 }, dp };
    const plain = await trainRing(4, cfg);
    const q = 32 / DATA.train.n;
    for (const r of plain) {
      expect(r.epsilon).toBeCloseTo(dpEpsilon(q, 1.5, 12, 1e-5), 9);
      expect(r.neighbourEpsilon).toBeCloseTo(dpEpsilon(q, 1.5 / 2, 12, 1e-5), 9);
      expect(r.neighbourEpsilon!).toBeGreaterThan(r.epsilon!);
    }
    const masked = await trainRing(4, { ...cfg, secureAggregation: {} });
    for (const r of masked) {
      expect(r.epsilon).toBeCloseTo(dpEpsilon(q, 1.5, 12, 1e-5), 9);
      expect(r.neighbourEpsilon).toBeUndefined();
    }
  });

  it('leaves a NaN contribution out of every step and the others finish with equal, finite weights', async () => {
    const rejected: number[][] = [];
    const rs = await trainRing(3, BASE, {
      drill: (rank) => (rank === 2 ? poisonDrill('nan') : null),
      onEvent: (rank, e) => rank === 0 && e.type === 'rejected' && rejected.push(e.ranks),
    });
    expect(rejected).toEqual(Array.from({ length: 20 }, () => [2]));
    for (const r of rs) {
      expect(r.weights).toEqual(rs[0]!.weights);
      expect(r.weights.every(Number.isFinite)).toBe(true);
      expect(r.accuracy).toBeGreaterThan(0.9);
    }
  });

  it('compression auto: every peer picks the same codec at the same step from the summed timings, and the weights stay identical', async () => {
    const picks: { rank: number; step: number; codec: string; reason: string }[] = [];
    const rs = await trainRing(
      3,
      { ...BASE, steps: 12, compression: { kind: 'auto' } },
      {
        onEvent: (rank, e) => e.type === 'codec' && picks.push({ rank, step: e.step, codec: e.codec, reason: e.reason }),
      },
    );
    expect(picks.map((p) => p.rank).sort()).toEqual([0, 1, 2]);
    expect(new Set(picks.map((p) => `${p.step} ${p.codec} ${p.reason}`)).size).toBe(1);
    expect(picks[0]!.step).toBe(1 + AUTO_PROBE_STEPS);
    expect(picks[0]!.reason).toMatch(/allreduce \d+ of a \d+ ms step, \d+ ms of it latency/);
    for (const r of rs) expect(r.weights).toEqual(rs[0]!.weights);
  });

  it('robust aggregation (median, trimmed mean) keeps a byzantine peer (gradient x -100) from wrecking the model; the plain sum does not', async () => {
    const poisoned = (rank: number): Drill | null => (rank === 3 ? poisonDrill('flip') : null);
    const plain = await trainRing(4, BASE, { drill: poisoned });
    expect(plain[0]!.accuracy).toBeLessThan(0.8);
    for (const robust of [{ rule: 'median' }, { rule: 'trimmed-mean', trim: 0.25 }] as const) {
      const rs = await trainRing(4, { ...BASE, robust }, { drill: poisoned });
      for (const r of rs) {
        expect(r.weights).toEqual(rs[0]!.weights);
        expect(r.accuracy).toBeGreaterThan(0.9);
      }
    }
  });

  it('robust aggregation: a forwarder that alters the all-gather cannot steer the model; every altered view fails instead', async () => {
    const room = new TestRoom(DATA);
    const ids = ['p0', 'p1', 'p2', 'p3'];
    for (const id of ids) room.add(id);
    const cfg: TrainConfig = { ...BASE, steps: 12, robust: { rule: 'median' } };
    // From step 5 on, p1 scales every float it sends in an all-gather frame (its own and what it forwards).
    const steer = (m: Uint8Array): void => {
      if (m[3] !== Op.AllGather) return;
      const f = new Float32Array(m.buffer, m.byteOffset + FRAME_HEADER_BYTES, (m.byteLength - FRAME_HEADER_BYTES) >> 2);
      for (let i = 0; i < f.length; i++) f[i]! *= -100;
    };
    const steps = new Map(ids.map((id) => [id, 0]));
    const runs = ids.map((id) =>
      train(
        cfg,
        room.deps(id, cfg, {
          onEvent: (e) => {
            if (e.type !== 'step') return;
            steps.set(id, e.step);
            if (id === 'p1' && e.step === 5) room.transport('p1').inject({ kind: 'alter', edit: steer });
          },
        }),
      ),
    );
    const results = await Promise.allSettled(runs);
    // No peer got past the step where the alteration began, and the honest ones say why.
    for (const [i, r] of results.entries()) {
      expect(r.status).toBe('rejected');
      expect(steps.get(ids[i]!)).toBeLessThanOrEqual(6);
    }
    expect(String((results[2] as PromiseRejectedResult).reason)).toMatch(/arrived altered/);
  });

  it('refuses robust aggregation with compression, secure aggregation or DP, and fp16 with secure aggregation, saying why', async () => {
    await expect(trainRing(1, { ...BASE, robust: { rule: 'median' }, compression: { kind: 'fp16' } })).rejects.toThrow(/in the clear/);
    await expect(trainRing(1, { ...BASE, robust: { rule: 'trimmed-mean', trim: 0.5 } })).rejects.toThrow(/trim must be in \[0, 0.5\)/);
    await expect(trainRing(1, { ...BASE, secureAggregation: {}, compression: { kind: 'int8' } })).rejects.toThrow(
      /too large for fp16\/int8/,
    );
    await expect(trainRing(1, { ...BASE, robust: { rule: 'median' }, dp: { clip: 1, noiseMultiplier: 1 } })).rejects.toThrow(/voids its ε/);
  });

  it('pauses the whole room at the step a peer asks, resumes when it lets go, and stops together', async () => {
    const ctl: TrainControl[] = [0, 1, 2].map(() => ({ pause: false, stop: false }));
    const control: { rank: number; e: Extract<TrainEvent, { type: 'control' }> }[] = [];
    const steps = [0, 0, 0];
    const results = await trainRing(
      3,
      { ...BASE, algorithm: 'sgd', batch: 30, steps: 1000 },
      {
        control: (rank) => ctl[rank]!,
        onEvent: (rank, e) => {
          if (e.type === 'step') {
            steps[rank] = e.step;
            if (rank === 1 && e.step === 3) ctl[1]!.pause = true;
          }
          if (e.type === 'control') {
            control.push({ rank, e });
            // Rank 1 asks after step 3, so the room pauses after step 4 (its request rides on that
            // step's sums) and no step runs until it lets go.
            if (e.state === 'paused' && rank === 0) {
              expect(steps).toEqual([4, 4, 4]);
              ctl[1]!.pause = false;
            }
          }
          if (e.type === 'step' && rank === 2 && e.step === 8) ctl[2]!.stop = true;
        },
      },
    );
    const states = (s: string): number[] => control.filter((c) => c.e.state === s).map((c) => c.e.step);
    expect(states('paused')).toEqual([4, 4, 4]);
    expect(states('resumed')).toEqual([4, 4, 4]);
    // Rank 2's request rides on the sums of step 9, so every peer stops after step 9.
    expect(states('stopping')).toEqual([9, 9, 9]);
    for (const r of results) {
      expect(r.stopped).toBe(true);
      expect(r.steps).toBe(9);
      expect(r.checksum).toBe(results[0]!.checksum);
    }
  });
});

/** Step numbers a peer reported, in order. */
const stepsOf = (events: TrainEvent[]): number[] => events.flatMap((e) => (e.type === 'step' ? [e.step] : []));
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('train through faults (in-memory room)', () => {
  const SGD: TrainConfig = { ...BASE, algorithm: 'sgd', batch: 24, steps: 30, optimizer: { kind: 'adam', lr: 0.05 } };

  // 4 peers and one chunk per segment: 6 frames per allreduce. After 5 frames, p2 has sent all but
  // its last all-gather frame: some peers complete step 8 and some do not.
  for (const at of [
    { frames: 0, what: 'before its first frame', synced: 7, faultedAt: [7, 7, 7] },
    { frames: 5, what: 'mid-allreduce', synced: 8, faultedAt: [8, 8, 7] },
  ]) {
    it(`a peer that crashes ${at.what} at step 8: the others re-form, lose no step and agree`, async () => {
      const room = new TestRoom(DATA);
      const ids = ['p0', 'p1', 'p2', 'p3'];
      for (const id of ids) room.add(id);
      const events = new Map(ids.map((id) => [id, [] as TrainEvent[]]));
      const runs = ids.map((id) =>
        train(
          SGD,
          room.deps(id, SGD, {
            onEvent: (e) => {
              events.get(id)!.push(e);
              if (id === 'p2' && e.type === 'step' && e.step === 7)
                room.transport('p2').inject({ kind: 'crash', after: at.frames, detectMs: 20 });
              // The coordinator's part: the dead peer leaves the view once a neighbour reports it.
              if (e.type === 'fault' && room.members.includes('p2')) room.remove('p2');
            },
          }),
        ),
      );
      const results = await Promise.allSettled(runs);
      expect(results[2]!.status).toBe('rejected');
      const survivors = [0, 1, 3].map((i) => (results[i] as PromiseFulfilledResult<TrainResult>).value);
      for (const [i, r] of survivors.entries()) {
        const id = ['p0', 'p1', 'p3'][i]!;
        expect(r.steps).toBe(30);
        expect(r.recoveries).toBeGreaterThanOrEqual(1);
        // Every step once, in order: nothing lost, nothing applied twice.
        expect(stepProblems(events.get(id)!)).toEqual([]);
        expect(r.checksum).toBe(survivors[0]!.checksum);
        expect(r.weights.every(Number.isFinite)).toBe(true);
        const sync = events.get(id)!.filter((e) => e.type === 'sync');
        expect(sync.at(-1)).toMatchObject({ type: 'sync', step: at.synced, size: 3 });
      }
      // A peer whose step-8 allreduce did not complete takes over the state of one whose did.
      const faulted = ['p0', 'p1', 'p3'].map((id) => events.get(id)!.find((e) => e.type === 'fault')!);
      expect(faulted.map((e) => (e.type === 'fault' ? e.step : -1))).toEqual(at.faultedAt);
      // Together the survivors ran every step number.
      expect([...new Set(['p0', 'p1', 'p3'].flatMap((id) => stepsOf(events.get(id)!)))].sort((a, b) => a - b)).toEqual(range(1, 30));
    });
  }

  it('served data: a crash mid-allreduce and a joiner leave the weights of the fault-free run and of 1 peer (1e-4)', async () => {
    // A dataset the server serves (not "local"), split IID: every step's global batch is fixed.
    const cfg: TrainConfig = { ...SGD, dataset: 'blobs', evalEvery: 10 };
    const [solo] = await trainRing(1, cfg);
    const clean = await trainRing(3, cfg);
    expect(relativeDifference(clean[0]!.weights, solo!.weights)).toBeLessThan(1e-4);
    const room = new TestRoom(DATA);
    const ids = ['p0', 'p1', 'p2'];
    for (const id of ids) room.add(id);
    let late: Promise<TrainResult> | null = null;
    const runs = ids.map((id) =>
      train(
        cfg,
        room.deps(id, cfg, {
          onEvent: (e) => {
            if (id === 'p2' && e.type === 'step' && e.step === 7) room.transport('p2').inject({ kind: 'crash', after: 5, detectMs: 20 });
            if (e.type === 'fault' && room.members.includes('p2')) room.remove('p2');
            if (id === 'p0' && e.type === 'step' && e.step === 15 && !late) {
              room.add('p3');
              late = train(cfg, room.deps('p3', cfg));
            }
          },
        }),
      ),
    );
    const results = await Promise.allSettled(runs);
    expect(results[2]!.status).toBe('rejected');
    const survivors = [...[0, 1].map((i) => (results[i] as PromiseFulfilledResult<TrainResult>).value), await late!];
    // p0 and p1 recovered from the crash and from the join; p3 took their state over.
    for (const r of survivors.slice(0, 2)) expect(r.recoveries).toBeGreaterThanOrEqual(2);
    for (const r of survivors) {
      expect(r.checksum).toBe(survivors[0]!.checksum);
      expect(relativeDifference(r.weights, solo!.weights)).toBeLessThan(1e-4);
      expect(Math.abs(r.accuracy - solo!.accuracy)).toBeLessThanOrEqual(1 / 48);
    }
  });

  const DILOCO: TrainConfig = { ...SGD, dataset: 'blobs', algorithm: 'diloco', localSteps: 4, steps: 32, evalEvery: 10 };

  it('DiLoCo on served data: rounds of 4 inner steps, identical weights on 3 peers, and it learns', async () => {
    const events: TrainEvent[][] = [[], [], []];
    const rs = await trainRing(3, DILOCO, { onEvent: (r, e) => events[r]!.push(e) });
    for (const [r, res] of rs.entries()) {
      expect(res.steps).toBe(32);
      expect(res.checksum).toBe(rs[0]!.checksum);
      expect(res.accuracy).toBeGreaterThan(0.9);
      expect(stepProblems(events[r]!)).toEqual([]);
      expect(stepsOf(events[r]!)).toEqual(range(1, 8).map((k) => 4 * k));
      // Evaluated where a round crosses a multiple of 10, and at the end.
      expect(events[r]!.filter((e) => e.type === 'eval').map((e) => e.step)).toEqual([0, 12, 20, 32]);
    }
    // H = 1, outer lr 1, no momentum, inner SGD: sync SGD, to float rounding.
    const inner = { optimizer: { kind: 'sgd', lr: 0.5 } } as const;
    const [sync] = await trainRing(3, { ...SGD, ...inner, dataset: 'blobs', steps: 12 });
    const [one] = await trainRing(3, { ...DILOCO, ...inner, steps: 12, localSteps: 1, outerLr: 1, outerMomentum: 0 });
    expect(relativeDifference(one!.weights, sync!.weights)).toBeLessThan(1e-5);
  });

  it('DiLoCo crossed with held non-IID shards and with fp16 / int8 deltas: identical weights on 3 peers, and it learns', async () => {
    // [variant, the accuracy it must pass]: non-IID shards drift apart between outer steps (3 classes: chance is 1/3).
    const variants: [Partial<TrainConfig>, number][] = [
      [{ dataset: 'local', partition: { scheme: 'dirichlet', seed: 3, alpha: 0.5 } }, 0.6],
      [{ compression: { kind: 'fp16' } }, 0.85],
      [{ compression: { kind: 'int8' } }, 0.85],
      [{ dataset: 'local', compression: { kind: 'int8' }, localSteps: 'auto' }, 0.85],
    ];
    for (const [v, floor] of variants) {
      const rs = await trainRing(3, { ...DILOCO, ...v });
      for (const r of rs) expect(r.checksum, JSON.stringify(v)).toBe(rs[0]!.checksum);
      expect(rs[0]!.steps).toBe(32);
      expect(rs[0]!.accuracy, JSON.stringify(v)).toBeGreaterThan(floor);
    }
  });

  it('DiLoCo auto: every peer picks the same H from the probe round, then runs rounds of it', async () => {
    const events: TrainEvent[][] = [[], [], []];
    const rs = await trainRing(3, { ...DILOCO, localSteps: 'auto', steps: 40 }, { onEvent: (r, e) => events[r]!.push(e) });
    const picks = events.map((ev) => ev.filter((e) => e.type === 'rounds'));
    for (const [r, p] of picks.entries()) {
      expect(p).toHaveLength(1);
      expect(p[0]).toMatchObject({ step: 1, localSteps: (picks[0]![0] as { localSteps: number }).localSteps });
      expect(rs[r]!.checksum).toBe(rs[0]!.checksum);
      expect(stepProblems(events[r]!)).toEqual([]);
    }
    const h = (picks[0]![0] as { localSteps: number }).localSteps;
    expect(h).toBeGreaterThanOrEqual(1);
    // After the probe round of 1, rounds of h (the last one cut at 40).
    const steps = stepsOf(events[0]!);
    expect(steps[0]).toBe(1);
    for (let i = 1; i < steps.length; i++) expect(steps[i]! - steps[i - 1]!).toBe(Math.min(h, 40 - steps[i - 1]!));
  });

  it('DiLoCo through faults: a crash mid-round, then a joiner; the round runs again, and the joiner takes the outer state (same weights)', async () => {
    const cfg: TrainConfig = { ...DILOCO, steps: 40 };
    const room = new TestRoom(DATA);
    const ids = ['p0', 'p1', 'p2'];
    for (const id of ids) room.add(id);
    let late: Promise<TrainResult> | null = null;
    const lateEvents: TrainEvent[] = [];
    const events = new Map(ids.map((id) => [id, [] as TrainEvent[]]));
    const runs = ids.map((id) =>
      train(
        cfg,
        room.deps(id, cfg, {
          onEvent: (e) => {
            events.get(id)!.push(e);
            if (id === 'p2' && e.type === 'step' && e.step === 8) room.transport('p2').inject({ kind: 'crash', after: 3, detectMs: 20 });
            if (e.type === 'fault' && room.members.includes('p2')) room.remove('p2');
            if (id === 'p0' && e.type === 'step' && e.step === 20 && !late) {
              room.add('p3');
              late = train(cfg, room.deps('p3', cfg, { onEvent: (x) => lateEvents.push(x) }));
            }
          },
        }),
      ),
    );
    const results = await Promise.allSettled(runs);
    expect(results[2]!.status).toBe('rejected');
    const survivors = [...[0, 1].map((i) => (results[i] as PromiseFulfilledResult<TrainResult>).value), await late!];
    for (const r of survivors) {
      expect(r.steps).toBe(40);
      expect(r.checksum).toBe(survivors[0]!.checksum);
      expect(r.accuracy).toBeGreaterThan(0.9);
    }
    for (const id of ['p0', 'p1']) {
      expect(stepProblems(events.get(id)!)).toEqual([]);
      // The round the crash cut (steps 9-12) runs again from the state at 8, whoever had completed it.
      const ev = events.get(id)!;
      const fault = ev.findIndex((e) => e.type === 'fault');
      expect(ev.slice(fault).find((e) => e.type === 'sync')).toMatchObject({ step: 8, size: 2 });
    }
    expect(stepProblems(lateEvents)).toEqual([]);
    expect(lateEvents.find((e) => e.type === 'sync')).toMatchObject({ size: 3 });
  });

  it('a straggler (one peer computing 10x slower) is shrunk, then put on standby with its state current, and steps back in; the served batch stays whole', async () => {
    const cfg: TrainConfig = { ...SGD, dataset: 'blobs', balance: true, steps: 80 };
    const [solo] = await trainRing(1, cfg);
    let slow = 10;
    const events: TrainEvent[][] = [[], [], [], []];
    const rs = await trainRing(4, cfg, {
      drill: (rank) => (rank === 3 && slow > 1 ? slowDrill(slow) : null),
      onEvent: (rank, e) => {
        events[rank]!.push(e);
        // Its device recovers once it has been on standby for 10 steps.
        const off = events[3]!.find((x) => x.type === 'straggler' && x.state === 'standby');
        if (rank === 3 && e.type === 'step' && off?.type === 'straggler' && e.step >= off.step + 10) slow = 1;
      },
    });
    const changes = events.map((ev) => ev.flatMap((e) => (e.type === 'straggler' ? [{ step: e.step, rank: e.rank, state: e.state }] : [])));
    // Every peer saw the same decisions: rank 3 on standby, then back.
    for (const c of changes) expect(c).toEqual(changes[0]);
    expect(changes[0]!.map((c) => [c.rank, c.state])).toEqual([
      [3, 'standby'],
      [3, 'active'],
    ]);
    const [off, back] = changes[0]!.map((c) => c.step);
    const steps3 = events[3]!.filter((e) => e.type === 'step');
    // Its share shrank before the standby (by speed), was 0 on standby, and came back.
    const shareAt = (s: number): number => steps3.find((e) => e.step === s)!.localSamples;
    expect(shareAt(off! - 1)).toBeLessThan(24 / 4);
    for (let s = off! + 1; s <= back!; s++) expect(shareAt(s)).toBe(0);
    expect(shareAt(cfg.steps)).toBeGreaterThan(0);
    // The global batch stayed whole at every step, and every peer (the standby too) ends with the weights of 1 peer.
    for (const ev of events) for (const e of ev) if (e.type === 'step') expect(e.samples).toBe(24);
    for (const r of rs) {
      expect(r.checksum).toBe(rs[0]!.checksum);
      expect(relativeDifference(r.weights, solo!.weights)).toBeLessThan(1e-4);
    }
  });

  it('DiLoCo with balance: the per-round deadline puts a 10x slower peer on standby; its rounds stay whole and its model current', async () => {
    const cfg: TrainConfig = { ...DILOCO, balance: true, localSteps: 2, steps: 60 };
    const events: TrainEvent[][] = [[], [], []];
    const rs = await trainRing(3, cfg, { drill: (rank) => (rank === 2 ? slowDrill(10) : null), onEvent: (r, e) => events[r]!.push(e) });
    const off = events.map((ev) => ev.find((e) => e.type === 'straggler'));
    for (const e of off) expect(e).toMatchObject({ rank: 2, state: 'standby' });
    const at = off[0]!.type === 'straggler' ? off[0]!.step : Infinity;
    for (const [r, ev] of events.entries())
      for (const e of ev)
        if (e.type === 'step') {
          expect(e.samples).toBe(24 * e.span);
          if (r === 2 && e.step > at) expect(e.localSamples).toBe(0);
        }
    for (const r of rs) expect(r.checksum).toBe(rs[0]!.checksum);
    expect(rs[0]!.accuracy).toBeGreaterThan(0.9);
  });

  /**
   * A room of p0, p1 and p2 on served data, and p3 joining after step 12 (so the group agrees on a
   * state and sends it to p3), where `p0` behaves as `lie` says. Every honest peer must end with
   * the weights of 1 peer.
   */
  async function withLiar(lie: (g: Group) => Group): Promise<{ results: TrainResult[]; solo: TrainResult; reported: number[][] }> {
    const cfg: TrainConfig = { ...SGD, dataset: 'blobs', checksumEvery: 5 };
    const [solo] = await trainRing(1, cfg);
    const room = new TestRoom(DATA);
    for (const id of ['p0', 'p1', 'p2']) room.add(id);
    const reported: number[][] = [];
    const deps = (id: string): TrainerDeps => {
      const d = room.deps(id, cfg, {
        onEvent: (e) => {
          if (id === 'p1' && e.type === 'step' && e.step === 12 && !late) {
            room.add('p3');
            late = train(cfg, deps('p3'));
          }
        },
      });
      const group = async (failed?: number): Promise<Group> => {
        const g = await d.group(failed);
        const honest = {
          ...g,
          reportInvalid: (_step: number, ranks: number[]) => reported.push(ranks.map((r) => Number(room.members[r]!.slice(1)))),
        };
        return id === 'p0' ? lie(honest) : honest;
      };
      return { ...d, group };
    };
    let late: Promise<TrainResult> | null = null;
    const first = await Promise.all(['p0', 'p1', 'p2'].map((id) => train(cfg, deps(id))));
    return { results: [...first, await late!], solo: solo!, reported };
  }

  /** Weights (raw, or inside a checkpoint) replaced by a constant: what a model takeover sends. */
  function evil(bytes: Uint8Array): Uint8Array {
    const c = decodeCheckpoint(bytes);
    if (c instanceof Error) return new Uint8Array(new Float32Array(bytes.length / 4).fill(7).buffer);
    return encodeCheckpoint({ ...c, step: 1_000_000, weights: c.weights.map(() => 7) });
  }

  it('a member that sends other bytes than the state it claims cannot take over: checked against the majority digest, reported, the next view asks another holder', async () => {
    const { results, solo, reported } = await withLiar((g) => ({ ...g, broadcast: (root, data) => g.broadcast(root, data && evil(data)) }));
    for (const r of results) {
      expect(r.checksum).toBe(results[1]!.checksum);
      expect(relativeDifference(r.weights, solo.weights)).toBeLessThan(1e-4);
    }
    // Whoever caught p0's bytes named p0, and no one else was named.
    expect(reported.flat().every((p) => p === 0)).toBe(true);
  });

  it('a member claiming far more steps, with weights of its own, is outvoted by the state the others hold', async () => {
    const { results, solo } = await withLiar((g) => ({
      ...g,
      // The claims of agree() (2 × (held step, digest), stopped, examples, 2 control flags): a step
      // far ahead, for a state of its own; were it asked to send that state, it would send its own.
      allGather: (v) => {
        if (v.length !== 2 * (1 + DIGEST_WORDS) + 4 || v[0] === 0) return g.allGather(v);
        const lie = v.slice();
        lie[0] = 1_000_001;
        lie.set(digestWords(Uint8Array.of(7)), 1);
        return g.allGather(lie);
      },
      broadcast: (root, data) => g.broadcast(root, data && evil(data)),
    }));
    for (const r of results) {
      expect(r.steps).toBe(30);
      expect(r.checksum).toBe(results[1]!.checksum);
      expect(relativeDifference(r.weights, solo.weights)).toBeLessThan(1e-4);
    }
  });

  it('a peer joining mid-run takes over the state and ends with the same weights', async () => {
    const room = new TestRoom(DATA);
    for (const id of ['p0', 'p1']) room.add(id);
    const lateEvents: TrainEvent[] = [];
    let late: Promise<TrainResult> | null = null;
    const first = ['p0', 'p1'].map((id) =>
      train(
        SGD,
        room.deps(id, SGD, {
          onEvent: (e) => {
            if (id === 'p0' && e.type === 'step' && e.step === 10 && !late) {
              room.add('p2');
              late = train(SGD, room.deps('p2', SGD, { onEvent: (x) => lateEvents.push(x) }));
            }
          },
        }),
      ),
    );
    const results = [...(await Promise.all(first)), await late!];
    for (const r of results) {
      expect(r.steps).toBe(30);
      expect(r.checksum).toBe(results[0]!.checksum);
    }
    const sync = lateEvents.find((e) => e.type === 'sync');
    // Sent by one of the two holders (which one rotates with the view).
    expect(sync).toMatchObject({ size: 3 });
    expect([0, 1]).toContain(sync?.type === 'sync' && sync.source);
    // From p0's state at step 10, or 9 when p0 alone completed step 10 (it goes back and all run it again).
    expect(stepsOf(lateEvents)[0]).toBeGreaterThanOrEqual(10);
    expect(stepProblems(lateEvents)).toEqual([]);
    expect(stepsOf(lateEvents).at(-1)).toBe(30);
  });

  it('a member forcing a new view after every step slows the run but cannot end it: 130 views, all recovered, same weights as 1 peer', async () => {
    const room = new TestRoom(DATA);
    for (const id of ['p0', 'p1']) room.add(id);
    const cfg = { ...BASE, steps: 130 };
    const results = await Promise.all(
      ['p0', 'p1'].map((id) =>
        train(
          cfg,
          room.deps(id, cfg, {
            // A resync request after every step (what a flooding member can ask for).
            onEvent: (e) => id === 'p0' && e.type === 'step' && e.step < cfg.steps && room.resync(),
          }),
        ),
      ),
    );
    const [solo] = await trainRing(1, cfg);
    for (const r of results) {
      expect(r.steps).toBe(130);
      expect(r.recoveries).toBeGreaterThan(100);
      expect(relativeDifference(r.weights, solo!.weights)).toBeLessThan(1e-4);
    }
  });

  it('a run that fails for good leaves the model of its last committed step (what the CLI writes)', async () => {
    const room = new TestRoom(DATA);
    for (const id of ['p0', 'p1']) room.add(id);
    let kept: TrainResult | null = null;
    let lastStep = 0;
    const runs = ['p0', 'p1'].map((id) =>
      train(BASE, {
        ...room.deps(id, BASE, {
          onEvent: (e) => {
            if (id !== 'p1' || e.type !== 'step') return;
            lastStep = e.step;
            // Out of the room for good after step 7: p1's run cannot go on.
            if (e.step === 7) room.remove('p1');
          },
        }),
        ...(id === 'p1' ? { keepFailed: (r: TrainResult) => (kept = r) } : {}),
      }),
    );
    await expect(runs[1]).rejects.toThrow(/not a member/);
    expect((await runs[0]!).steps).toBe(20);
    const k = kept as TrainResult | null;
    expect(k?.steps).toBe(lastStep);
    // Full-batch GD: 2 peers equal 1; the kept model is a 1-peer run of the same length.
    const [solo] = await trainRing(1, { ...BASE, steps: k!.steps });
    expect(relativeDifference(k!.weights, solo!.weights)).toBeLessThan(1e-4);
    expect(k!.checksum).toMatch(/^[0-9a-f]+$/);
  });

  it('a room that empties resumes from its checkpoint, exactly where an uninterrupted run would be', async () => {
    const cfg: TrainConfig = { ...BASE, steps: 12, checkpointEvery: 4 };
    const room = new TestRoom(DATA);
    for (const id of ['p0', 'p1']) room.add(id);
    const stored: number[] = [];
    await Promise.all(
      ['p0', 'p1'].map((id) =>
        train({ ...cfg, steps: 10 }, room.deps(id, cfg, { onEvent: (e) => e.type === 'checkpoint' && stored.push(e.step) })),
      ),
    );
    // Uploads run in the background: the last one (step 10) lands after the run resolves.
    await expect.poll(() => room.checkpoints.length).toBe(3);
    expect(stored).toEqual([4, 8, 10]);
    // A new room (all peers gone and back) with the same checkpoint store and run key.
    const again = new TestRoom(DATA);
    again.checkpoints.push(...room.checkpoints);
    for (const id of ['q0', 'q1']) again.add(id);
    const events: TrainEvent[] = [];
    const resumed = await Promise.all(
      ['q0', 'q1'].map((id) => train(cfg, again.deps(id, cfg, { onEvent: (e) => id === 'q0' && events.push(e) }))),
    );
    expect(events.find((e) => e.type === 'sync')).toMatchObject({ step: 10, source: 'checkpoint' });
    expect(stepsOf(events)).toEqual([11, 12]);
    const [straight] = await trainRing(2, cfg);
    expect(resumed[0]!.weights).toEqual(straight!.weights);
    // A checkpoint of another run is not restored.
    const other = new TestRoom(DATA);
    other.checkpoints.push(...room.checkpoints);
    other.add('x0');
    const otherEvents: TrainEvent[] = [];
    await train({ ...cfg, seed: 99 }, other.deps('x0', cfg, { onEvent: (e) => otherEvents.push(e) }));
    expect(otherEvents.find((e) => e.type === 'sync')).toMatchObject({ step: 0, source: 'seed' });
    expect(otherEvents.find((e) => e.type === 'checkpoint')).toMatchObject({ error: expect.stringMatching(/another run/) });
  });
});

describe('learning-rate schedules through the loop', () => {
  for (const schedule of [
    { kind: 'cosine', warmupSteps: 3, minFactor: 0.05 },
    { kind: 'step', warmupSteps: 2, every: 4, gamma: 0.5 },
  ] as const)
    it(`${schedule.kind}: a run stopped at step 7 and resumed from its checkpoint ends with the weights of an uninterrupted run; the schedule changes them`, async () => {
      const cfg: TrainConfig = { ...BASE, steps: 12, checkpointEvery: 3, schedule };
      const room = new TestRoom(DATA);
      for (const id of ['p0', 'p1']) room.add(id);
      let at = 0;
      const stopped = await Promise.all(
        ['p0', 'p1'].map((id) =>
          train(
            cfg,
            room.deps(id, cfg, {
              onEvent: (e) => {
                if (e.type === 'step') at = Math.max(at, e.step);
              },
              control: () => ({ pause: false, stop: at >= 6 }),
            }),
          ),
        ),
      );
      // The request rides on step 7's sums: the room stops after it, and stores its checkpoint.
      expect(stopped[0]!.steps).toBe(7);
      await expect.poll(() => room.checkpoints.length).toBe(3);
      const again = new TestRoom(DATA);
      again.checkpoints.push(...room.checkpoints);
      for (const id of ['q0', 'q1']) again.add(id);
      const resumed = await Promise.all(['q0', 'q1'].map((id) => train(cfg, again.deps(id, cfg))));
      const [straight] = await trainRing(2, cfg);
      expect(resumed[0]!.steps).toBe(12);
      expect(resumed[0]!.weights).toEqual(straight!.weights);
      const [flat] = await trainRing(2, { ...cfg, schedule: undefined });
      expect(relativeDifference(flat!.weights, straight!.weights)).toBeGreaterThan(1e-3);
    });
});

describe('seeded augmentation through the loop', () => {
  it('served images: 3 peers make the same views as 1 peer (its weights to 1e-4), the views change the model, and non-images are refused', async () => {
    const blobs = gaussianBlobs({ n: 300, classes: 3, dims: 16, spread: 0.4, seed: 8 });
    const images = holdOut({ ...blobs, shape: [4, 4, 1] }, 'images', 1);
    const cfg: TrainConfig = { ...BASE, dataset: 'images', algorithm: 'sgd', batch: 30, steps: 15, augment: { shift: 1, flip: true } };
    const run = async (c: TrainConfig, n: number): Promise<TrainResult[]> => {
      const room = new TestRoom(images);
      const ids = Array.from({ length: n }, (_, i) => `p${i}`);
      for (const id of ids) room.add(id);
      return Promise.all(ids.map((id) => train(c, room.deps(id, c))));
    };
    const [solo] = await run(cfg, 1);
    const three = await run(cfg, 3);
    for (const r of three) expect(r.checksum).toBe(three[0]!.checksum);
    expect(relativeDifference(three[0]!.weights, solo!.weights)).toBeLessThan(1e-4);
    const [plain] = await run({ ...cfg, augment: undefined }, 1);
    expect(relativeDifference(plain!.weights, solo!.weights)).toBeGreaterThan(1e-3);
    const flat = new TestRoom(DATA);
    flat.add('q');
    const onBlobs: TrainConfig = { ...BASE, dataset: 'blobs', algorithm: 'sgd', batch: 24, augment: { shift: 1, flip: false } };
    await expect(train(onBlobs, flat.deps('q', onBlobs))).rejects.toThrow(
      /augment shifts and mirrors images; blobs's samples have shape \[4\]/,
    );
  });
});

describe('kernel SVM by random Fourier features', () => {
  it('separates two spirals that the linear SVM cannot, with the same weights on 2 peers', async () => {
    const spirals = holdOut(twoSpirals({ n: 600, noise: 0.02, seed: 5 }), 'spirals', 1);
    const cfg: TrainConfig = {
      dataset: 'local',
      partition: { scheme: 'iid', seed: 2 },
      model: 'svm',
      algorithm: 'sgd',
      optimizer: { kind: 'adam', lr: 0.05 },
      batch: 64,
      steps: 150,
      seed: 4,
    };
    const run = async (c: TrainConfig): Promise<TrainResult[]> => {
      const room = new TestRoom(spirals);
      for (const id of ['a', 'b']) room.add(id);
      return Promise.all(['a', 'b'].map((id) => train(c, room.deps(id, c))));
    };
    const [linear] = await run(cfg);
    const kernel = await run({ ...cfg, rff: { features: 300, gamma: 10 } });
    expect(kernel[0]!.checksum).toBe(kernel[1]!.checksum);
    expect(kernel[0]!.params).toBe(300 * 2 + 2);
    expect(linear!.accuracy).toBeLessThan(0.75);
    expect(kernel[0]!.accuracy).toBeGreaterThan(0.9);
  });
});

describe('the transformer language model in the loop', () => {
  /** Windows of 17 characters of the start of Moby-Dick's first chapter, a fifth held out. */
  const TEXT: LocalData = (() => {
    const words =
      'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world. ';
    const all = textWindows(encodeText(words.repeat(2)), 17);
    return holdOut(all, 'text', 4);
  })();
  const LM: TrainConfig = {
    dataset: 'moby-dick',
    partition: { scheme: 'iid', seed: 1 },
    model: 'transformer',
    transformer: { layers: 1, dModel: 16, heads: 2 },
    algorithm: 'sgd',
    optimizer: { kind: 'adam', lr: 0.005, weightDecay: 0.01 },
    schedule: { kind: 'cosine', warmupSteps: 5 },
    batch: 8,
    steps: 20,
    evalEvery: 10,
    seed: 3,
  };

  async function lmRing(n: number, events: TrainEvent[] = []): Promise<TrainResult[]> {
    const room = new TestRoom(TEXT);
    const ids = Array.from({ length: n }, (_, i) => `p${i}`);
    for (const id of ids) room.add(id);
    return Promise.all(ids.map((id, rank) => train(LM, room.deps(id, LM, { onEvent: (e) => rank === 0 && events.push(e) }))));
  }

  it('2 peers end 20 steps of AdamW with a cosine schedule with the weights of 1 peer (1e-4), reporting bits per character and samples', async () => {
    const events: TrainEvent[] = [];
    const [solo] = await lmRing(1, events);
    const pair = await lmRing(2);
    expect(pair[0]!.weights).toEqual(pair[1]!.weights);
    expect(relativeDifference(pair[0]!.weights, solo!.weights)).toBeLessThan(1e-4);
    const evals = events.filter((e): e is Extract<TrainEvent, { type: 'eval' }> => e.type === 'eval');
    expect(evals.map((e) => e.step)).toEqual([0, 10, 20]);
    for (const e of evals) expect(e.bitsPerChar).toBeCloseTo(e.loss / Math.LN2, 9);
    // It learns the repeated sentence: the validation loss falls well below the untrained model's.
    expect(evals.at(-1)!.bitsPerChar!).toBeLessThan(evals[0]!.bitsPerChar! - 1);
    const samples = events.filter((e): e is Extract<TrainEvent, { type: 'sample' }> => e.type === 'sample');
    expect(samples.map((e) => e.step)).toEqual([0, 10, 20]);
    for (const s of samples) {
      expect(s.prompt).toBe('The whale ');
      expect(s.text).toHaveLength(120);
    }
    expect(samples[2]!.text).not.toBe(samples[0]!.text);
  });
});
