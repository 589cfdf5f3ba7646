import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../core/random.ts';
import type { TrainConfig } from '../../protocol/run-config.ts';
import { memoryRing, ringExchange } from '../../test/helpers.ts';
import { BLOBS_GD } from '../../test/room.ts';
import { maskKeyPair, pairKey, SECURE_SCALE } from '../algorithms/secure.ts';
import { buildExchange } from './builder.ts';
import type { Slot } from './codecs/codec.ts';
import { Contribution, GRADIENT_TAIL } from './contribution.ts';
import { compressorFor, ruleOf } from './registry.ts';
import { robustAggregate } from './rules/rule.ts';
import type { Exchange, Stage, StepScope } from './stage.ts';
import { ControlFlags } from './stages/control.ts';

/** A 6 x 4 matrix and a bias of 4, as a dense layer's flat gradient. */
const SLOTS: Slot[] = [
  { shape: [6, 4], offset: 0, size: 24 },
  { shape: [4], offset: 24, size: 4 },
];
const N = 28;
/** Any gradient config: the stages depend only on the options each test adds. */
const BASE: TrainConfig = BLOBS_GD;

/** Peer `rank`'s contribution: a seeded gradient sum of `count` samples, loss 0.5 per sample. */
function contribution(rank: number, count = rank + 2): Contribution {
  const r = mulberry32(rank + 1);
  return Contribution.gradient(
    Float32Array.from({ length: N }, () => (r() - 0.5) * count),
    count,
    0.5 * count,
  );
}

function scope(rank: number, size: number, broadcast: StepScope['broadcast'], keys?: (CryptoKey | null)[]): StepScope {
  return {
    step: 3,
    rank,
    size,
    broadcast,
    ...(keys ? { maskKeys: async () => keys } : {}),
    selfCheck: true,
    reject: () => {},
  };
}

/** Every peer's pair keys for a group of `n` (null at its own rank). */
async function groupKeys(n: number): Promise<(CryptoKey | null)[][]> {
  const pairs = await Promise.all(Array.from({ length: n }, () => maskKeyPair()));
  return Promise.all(pairs.map((p, i) => Promise.all(pairs.map((q, j) => (i === j ? null : pairKey(p.privateKey, q.pub, 'lab', 1))))));
}

/** One step's exchange of `cfg` on `n` peers of an in-memory ring, over the control flags; each peer's agreed sum. */
async function exchangeOnRing(cfg: TrainConfig, n: number): Promise<{ sums: Float32Array[]; flags: ControlFlags[] }> {
  const ring = memoryRing(n, { chunkBytes: 256, timeoutMs: 10_000 });
  const keys = cfg.secureAggregation ? await groupKeys(n) : null;
  const flags = ring.map((_, r) => new ControlFlags(() => ({ pause: r === 1, stop: false })));
  const sums = await Promise.all(
    ring.map(async (c, rank) => {
      const ex = buildExchange(cfg, SLOTS);
      const sum = ex.forStep(
        flags[rank]!.wrap(ringExchange(c)),
        scope(rank, n, (root, d) => c.broadcast(root, d), keys?.[rank]),
      );
      return (await sum(contribution(rank))).data.slice();
    }),
  );
  return { sums, flags };
}

/** The ring sum of every peer's contribution with the control flags only: what a plain step summed before the stages. */
async function plainRingSum(n: number): Promise<Float32Array> {
  const ring = memoryRing(n, { chunkBytes: 256, timeoutMs: 10_000 });
  const sums = await Promise.all(ring.map(async (c, r) => (await new ControlFlags().wrap(ringExchange(c)).sum(contribution(r))).data));
  return sums[0]!;
}

describe('buildExchange', () => {
  it('stacks the stages the config names, outermost first, and none for FedAvg', () => {
    const names = (cfg: TrainConfig): string[] => buildExchange(cfg, SLOTS).stages.map((s) => s.name);
    expect(names(BASE)).toEqual(['guard']);
    expect(names({ ...BASE, compression: { kind: 'powersgd', rank: 1 }, secureAggregation: {} })).toEqual(['guard', 'powersgd', 'secure']);
    expect(names({ ...BASE, compression: { kind: 'auto' } })).toEqual(['guard', 'auto']);
    expect(names({ ...BASE, robust: { rule: 'trimmed-mean', trim: 0.25 } })).toEqual(['guard', 'trimmed-mean']);
    expect(names({ ...BASE, algorithm: 'fedavg', batch: 4 })).toEqual([]);
    expect(buildExchange({ ...BASE, compression: { kind: 'auto' } }, SLOTS).auto).not.toBeNull();
  });

  it('every combination gives every peer the same bits, equal to what its algorithm computes alone, and the room its flags', async () => {
    const n = 3;
    const count = (n * (n + 3)) / 2;
    const plain = await exchangeOnRing(BASE, n);
    const ring = await plainRingSum(n);
    for (const s of plain.sums) expect(Array.from(s)).toEqual(Array.from(ring));
    expect(ring[N + 1]).toBe(count);
    for (const f of plain.flags) expect(f.room).toEqual({ pause: 1, stop: 0 });

    const masked = await exchangeOnRing({ ...BASE, secureAggregation: {} }, n);
    const fixed = Float32Array.from({ length: N + 2 }, (_, i) =>
      i === N + 1
        ? count
        : Array.from({ length: n }, (_, r) => Math.round(contribution(r).data[i]! * SECURE_SCALE)).reduce((a, b) => a + b) / SECURE_SCALE,
    );
    for (const s of masked.sums) expect(Array.from(s)).toEqual(Array.from(fixed));

    for (const robust of [{ rule: 'median' }, { rule: 'trimmed-mean', trim: 0.34 }] as const) {
      const { sums } = await exchangeOnRing({ ...BASE, robust }, n);
      const want = robustAggregate(
        Array.from({ length: n }, (_, r) => contribution(r)),
        ruleOf(robust),
      );
      for (const s of sums) expect(Array.from(s)).toEqual(Array.from(want.data));
    }

    for (const compression of [
      { kind: 'fp16' },
      { kind: 'int8' },
      { kind: 'randomk', ratio: 0.25 },
      { kind: 'powersgd', rank: 1 },
    ] as const) {
      const { sums } = await exchangeOnRing({ ...BASE, compression }, n);
      // The same codec alone over the flagged ring (how the trainer composed it before the stages).
      const ring = memoryRing(n, { chunkBytes: 256, timeoutMs: 10_000 });
      const alone = await Promise.all(
        ring.map(async (c, r) => {
          const flagged = new ControlFlags().wrap(ringExchange(c));
          return (await compressorFor(compression, SLOTS, BASE.seed).sum(flagged.sum)(contribution(r))).data;
        }),
      );
      for (const s of sums) expect(Array.from(s)).toEqual(Array.from(alone[0]!));
      expect(sums[0]![N + 1]).toBe(count);
    }

    // Masks under a codec: the sum agrees on every peer and keeps its whole count.
    for (const compression of [
      { kind: 'randomk', ratio: 0.5 },
      { kind: 'powersgd', rank: 2 },
    ] as const) {
      const { sums } = await exchangeOnRing({ ...BASE, compression, secureAggregation: {} }, n);
      for (const s of sums) expect(Array.from(s)).toEqual(Array.from(sums[0]!));
      expect(sums[0]![N + 1]).toBe(count);
    }
  });

  it('each stage sends what it declares: its tail values, its wire, its rounds, its collective', async () => {
    const stagesOf = (cfg: TrainConfig): Stage[] => buildExchange(cfg, SLOTS).stages.slice(1);
    const cases: Stage[] = [
      ...buildExchange(BASE, SLOTS).stages,
      ...stagesOf({ ...BASE, secureAggregation: {} }),
      ...stagesOf({ ...BASE, robust: { rule: 'median' } }),
      ...(['fp16', 'int8'] as const).flatMap((kind) => stagesOf({ ...BASE, compression: { kind } })),
      ...stagesOf({ ...BASE, compression: { kind: 'randomk', ratio: 0.5 } }),
      ...stagesOf({ ...BASE, compression: { kind: 'powersgd', rank: 1 } }),
      new ControlFlags(),
    ];
    for (const stage of cases) {
      const sent: { kind: 'sum' | 'allGather'; c: Contribution }[] = [];
      // A group of one that records what reaches it.
      const inner: Exchange = {
        sum: async (c) => {
          sent.push({ kind: 'sum', c });
          return c.like(c.data.slice());
        },
        allGather: async (c) => {
          sent.push({ kind: 'allGather', c });
          return [c.like(c.data.slice())];
        },
      };
      const ex = stage.wrap(
        inner,
        scope(0, 1, async (_, d) => d!, [null]),
      );
      const out = await ex.sum(contribution(0));
      expect(out.tail, stage.name).toEqual(GRADIENT_TAIL);
      expect(sent.length, stage.name).toBe(1 + stage.adds.rounds);
      for (const { kind, c } of sent) {
        expect(kind, stage.name).toBe(stage.adds.collective ?? 'sum');
        expect(c.tail.slice(c.tail.length - stage.adds.tail.length), stage.name).toEqual(stage.adds.tail);
        if (stage.adds.wire) expect(c.wire, stage.name).toBe(stage.adds.wire);
      }
    }
  });
});
