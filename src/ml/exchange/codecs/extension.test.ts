/**
 * The promise of codecs/: a codec is one file. The codec below is defined here as its own file
 * would define it (the shared error feedback of codec.ts, its declared wire), and it runs in the
 * exchange with the other stages unchanged. Naming it in a config then takes its catalog entry and
 * its registry entry (ARCHITECTURE.md, "One step's exchange"): the registry's tables are
 * exhaustive over the catalog's names, so `tsc` asks for the second once the first is there, and
 * a test cannot register a codec the catalog does not name.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../core/random.ts';
import { memoryRing, ringExchange } from '../../../test/helpers.ts';
import { GradientExchange } from '../builder.ts';
import { Contribution, GRADIENT_TAIL } from '../contribution.ts';
import type { Exchange, StepScope, SumOf, WireAdditions } from '../stage.ts';
import { ControlFlags } from '../stages/control.ts';
import { GuardStage } from '../stages/guard.ts';
import { ErrorFeedbackCodec, type Slot } from './codec.ts';

/** EF-signSGD (Karimireddy et al. 2019): the sign of gradient + residual, scaled by its mean magnitude. */
class SignCodec extends ErrorFeedbackCodec {
  readonly name = 'sign';
  readonly adds: WireAdditions = { tail: [], rounds: 0 };

  protected async compress(x: Float32Array, c: Contribution, out: Contribution, plain: SumOf): Promise<void> {
    const n = x.length;
    const scale = x.reduce((a, v) => a + Math.abs(v), 0) / (n || 1);
    const send = Contribution.zeros(n, c.tail);
    for (let i = 0; i < n; i++) send.data[i] = x[i]! >= 0 ? scale : -scale;
    this.residual.set(x);
    for (let i = 0; i < n; i++) this.residual[i]! -= send.data[i]!;
    send.tailValues.set(c.tailValues);
    out.data.set((await plain(send)).data);
    this.stats.floatsSent += send.length;
  }
}

const SLOTS: Slot[] = [
  { shape: [6, 4], offset: 0, size: 24 },
  { shape: [4], offset: 24, size: 4 },
];
const N = 28;

const gradient = (rank: number): Float32Array => {
  const r = mulberry32(rank + 11);
  return Float32Array.from({ length: N }, () => r() - 0.5);
};

const scope = (rank: number, size: number): StepScope => ({
  step: 1,
  rank,
  size,
  broadcast: async (_root, d) => d!,
  selfCheck: true,
  reject: () => {},
});

describe('a codec from one file', () => {
  it('runs in the exchange under the guard: every peer gets the same bits, the count stays exact, sent + carried = the true sum', async () => {
    const n = 3;
    const ring = memoryRing(n, { chunkBytes: 256, timeoutMs: 10_000 });
    const codecs = ring.map(() => new SignCodec(SLOTS, 7));
    const sums = await Promise.all(
      ring.map(async (c, rank) => {
        const ex = new GradientExchange([new GuardStage(Infinity, true), codecs[rank]!], codecs[rank]!);
        const sum = ex.forStep(new ControlFlags().wrap(ringExchange(c)), scope(rank, n));
        return (await sum(Contribution.gradient(gradient(rank), 2, 1))).data.slice();
      }),
    );
    for (const s of sums) expect(Array.from(s)).toEqual(Array.from(sums[0]!));
    expect(sums[0]![N + 1]).toBe(2 * n);
    for (let i = 0; i < N; i++) {
      const truth = Array.from({ length: n }, (_, r) => gradient(r)[i]!).reduce((a, b) => a + b);
      const carried = codecs.reduce((a, k) => a + k.carried()[i]!, 0);
      expect(sums[0]![i]! + carried).toBeCloseTo(truth, 5);
    }
    expect(codecs[0]!.stats).toEqual({ floatsSent: N + 2, floatsDense: N + 2 });
    // An agreement restarts it from the state every peer agrees on.
    new GradientExchange([codecs[0]!], codecs[0]!).reset(5);
    expect(codecs[0]!.carried().every((v) => v === 0)).toBe(true);
  });

  it('sends what it declares', async () => {
    const codec = new SignCodec(SLOTS, 1);
    const sent: Contribution[] = [];
    const inner: Exchange = {
      sum: async (c) => {
        sent.push(c);
        return c.like(c.data.slice());
      },
      allGather: async (c) => [c],
    };
    const out = await codec.wrap(inner).sum(Contribution.gradient(gradient(0), 2, 1));
    expect(out.tail).toEqual(GRADIENT_TAIL);
    expect(sent.length).toBe(1 + codec.adds.rounds);
    for (const c of sent) expect(c.wire).toBe(codec.adds.wire);
  });
});
