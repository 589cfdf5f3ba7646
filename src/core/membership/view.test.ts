import { describe, expect, it } from 'vitest';
import { makeView, ringPosition } from './view.ts';

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
