import { describe, expect, it } from 'vitest';
import { chooseState, digestWords, type Claim } from './consensus.ts';

/** A claim of state `name` at step held − 1 (the digest stands for the bytes). */
const c = (held: number, name: string): Claim => ({ held, digest: digestWords(new TextEncoder().encode(name)) });
const none: Claim = { held: 0, digest: [] };
const pick = (claims: Claim[][]): [number, number[]] | null => {
  const m = chooseState(claims);
  return m && [m.held, m.holders];
};

describe('chooseState', () => {
  it('a lone claim of far more steps loses to a state two peers hold', () => {
    expect(pick([[c(1_000_001, 'evil')], [c(13, 'a'), c(12, 'b')], [c(13, 'a'), c(12, 'b')], [none]])).toEqual([13, [1, 2]]);
  });

  it('a step only one peer completed is run again: every peer holds the state before it', () => {
    // p1 completed step 12 alone; p2 did not; p0 lies about a step far ahead.
    expect(pick([[c(1_000_001, 'evil'), c(12, 'b')], [c(13, 'a'), c(12, 'b')], [c(12, 'b'), c(11, 'z')], [none]])).toEqual([12, [0, 1, 2]]);
    // Two peers completed it: the others take it over, nobody goes back.
    expect(
      pick([
        [c(13, 'a'), c(12, 'b')],
        [c(13, 'a'), c(12, 'b')],
        [c(12, 'b'), c(11, 'z')],
      ]),
    ).toEqual([13, [0, 1]]);
  });

  it('peers coming back with an old state do not take the room back, however many', () => {
    const stale = [c(40, 'old'), c(39, 'older')];
    expect(pick([[c(90, 'now'), c(89, 'before')], [c(90, 'now'), c(89, 'before')], stale, stale, stale])).toEqual([90, [0, 1]]);
  });

  it('with no state held twice the most steps win (a room of 2, one holder and newcomers), then the lowest rank', () => {
    expect(pick([[c(5, 'a')], [c(7, 'b')]])).toEqual([7, [1]]);
    expect(pick([[c(7, 'a')], [c(7, 'b')]])).toEqual([7, [0]]);
    expect(pick([[none], [none]])).toBeNull();
  });

  it('counts a rank once per state, and two liars claiming the same state corroborate it (one liar is the bound)', () => {
    expect(pick([[c(9, 'x'), c(9, 'x')], [c(8, 'y')], [c(8, 'y')]])).toEqual([8, [1, 2]]);
    expect(pick([[c(99, 'evil')], [c(99, 'evil')], [c(8, 'y')], [c(8, 'y')], [c(8, 'y')]])).toEqual([99, [0, 1]]);
  });
});
