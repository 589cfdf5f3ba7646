import { describe, expect, it } from 'vitest';
import { makeView, ringAvoiding, ringPosition } from './view.ts';

describe('makeView and ringPosition', () => {
  it('assigns ranks in ring order', () => {
    expect(makeView('r', 4, ['x', 'y'])).toEqual({
      room: 'r',
      epoch: 4,
      members: [
        { peerId: 'x', rank: 0 },
        { peerId: 'y', rank: 1 },
      ],
    });
  });

  it('gives each member its neighbours, wrapping around', () => {
    const v = makeView('r', 0, ['a', 'b', 'c', 'd']);
    expect(['a', 'b', 'c', 'd'].map((id) => ringPosition(v, id))).toEqual([
      { rank: 0, size: 4, next: 'b', prev: 'd' },
      { rank: 1, size: 4, next: 'c', prev: 'a' },
      { rank: 2, size: 4, next: 'd', prev: 'b' },
      { rank: 3, size: 4, next: 'a', prev: 'c' },
    ]);
  });

  it('is its own neighbour when alone, and both neighbours are the other peer in a pair', () => {
    expect(ringPosition(makeView('r', 0, ['a']), 'a')).toEqual({ rank: 0, size: 1, next: 'a', prev: 'a' });
    expect(ringPosition(makeView('r', 0, ['a', 'b']), 'a')).toEqual({ rank: 0, size: 2, next: 'b', prev: 'b' });
  });

  it('returns null for a non-member and for an empty view', () => {
    expect(ringPosition(makeView('r', 0, ['a']), 'z')).toBeNull();
    expect(ringPosition(makeView('r', 0, []), 'a')).toBeNull();
  });
});

describe('ringAvoiding (a ring without links that will not open)', () => {
  const pairs =
    (...ps: [string, string][]) =>
    (a: string, b: string) =>
      ps.some(([x, y]) => x === a && y === b);
  const adjacent = (ring: string[], a: string, b: string): boolean =>
    ring.some((x, i) => {
      const y = ring[(i + 1) % ring.length]!;
      return (x === a && y === b) || (x === b && y === a);
    });

  it('keeps the join order when no pair is to be avoided, or when it has none next to each other', () => {
    expect(ringAvoiding(['a', 'b', 'c', 'd'], pairs())).toEqual(['a', 'b', 'c', 'd']);
    expect(ringAvoiding(['a', 'b', 'c', 'd'], pairs(['a', 'c']))).toEqual(['a', 'b', 'c', 'd']);
  });

  it('puts the two ends of a bad link apart, in either direction of the report', () => {
    expect(ringAvoiding(['a', 'b', 'c', 'd'], pairs(['a', 'b']))).toEqual(['a', 'c', 'b', 'd']);
    expect(ringAvoiding(['a', 'b', 'c', 'd'], pairs(['b', 'a']))).toEqual(['a', 'c', 'b', 'd']);
  });

  it('finds a ring around several bad links when one exists', () => {
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    const avoid = pairs(['a', 'b'], ['b', 'c'], ['c', 'd'], ['e', 'f'], ['a', 'f']);
    const ring = ringAvoiding(ids, avoid);
    expect([...ring].sort()).toEqual(ids);
    for (const [x, y] of [
      ['a', 'b'],
      ['b', 'c'],
      ['c', 'd'],
      ['e', 'f'],
      ['a', 'f'],
    ] as const)
      expect(adjacent(ring, x, y)).toBe(false);
  });

  it('falls back to the given order when no ring avoids every bad link (3 peers, or a peer that reaches one other only)', () => {
    expect(ringAvoiding(['a', 'b', 'c'], pairs(['a', 'b']))).toEqual(['a', 'b', 'c']);
    expect(ringAvoiding(['a', 'b', 'c', 'd'], pairs(['a', 'b'], ['a', 'c']))).toEqual(['a', 'b', 'c', 'd']);
  });

  it('gives up within its budget on a large room with no solution', () => {
    const ids = Array.from({ length: 40 }, (_, i) => `p${i}`);
    // p0 reaches only p1: no ring can place it between two reachable neighbours.
    const ring = ringAvoiding(ids, (a, b) => (a === 'p0' && b !== 'p1') || (b === 'p0' && a !== 'p1'), 5000);
    expect(ring).toEqual(ids);
  });
});
