import { describe, expect, it } from 'vitest';
import { chunkCount, chunkRange, mod, segmentRange, type Range } from './partition.ts';

const LENGTHS = [0, 1, 2, 3, 5, 7, 8, 13, 31, 64, 97, 100, 1000, 1023, 1024, 1025, 65_537, 1_000_003];
const PARTS = [1, 2, 3, 4, 5, 7, 8, 16, 33, 1024];
const CHUNKS = [1, 2, 3, 4, 16, 1000, 16_384];

describe('segmentRange', () => {
  it.each(PARTS)('tiles [0, len) exactly with sizes differing by at most one (parts = %i)', (parts) => {
    for (const len of LENGTHS) {
      const segs: Range[] = Array.from({ length: parts }, (_, i) => segmentRange(len, parts, i));
      let at = 0;
      for (const s of segs) {
        expect(s.start).toBe(at);
        expect(s.end).toBeGreaterThanOrEqual(s.start);
        at = s.end;
      }
      expect(at).toBe(len);
      const sizes = segs.map((s) => s.end - s.start);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      // The larger segments come first.
      for (let i = 1; i < sizes.length; i++) expect(sizes[i]!).toBeLessThanOrEqual(sizes[i - 1]!);
    }
  });

  it('gives empty segments at the end when len < parts', () => {
    const segs = Array.from({ length: 5 }, (_, i) => segmentRange(3, 5, i));
    expect(segs).toEqual([
      { start: 0, end: 1 },
      { start: 1, end: 2 },
      { start: 2, end: 3 },
      { start: 3, end: 3 },
      { start: 3, end: 3 },
    ]);
  });

  it('gives only empty segments for len 0', () => {
    for (let i = 0; i < 4; i++) expect(segmentRange(0, 4, i)).toEqual({ start: 0, end: 0 });
  });

  it('gives one segment covering everything for parts = 1', () => {
    expect(segmentRange(12345, 1, 0)).toEqual({ start: 0, end: 12345 });
  });
});

describe('chunkCount and chunkRange', () => {
  it('cover every segment exactly, in order, with chunks of at most chunkElems', () => {
    const problems: string[] = [];
    let checked = 0;
    for (const len of LENGTHS) {
      for (const parts of [1, 3, 8]) {
        for (let i = 0; i < parts; i++) {
          const seg = segmentRange(len, parts, i);
          const segLen = seg.end - seg.start;
          for (const ce of CHUNKS) {
            if (segLen / ce > 20_000) continue; // keeps the test fast; small chunks are covered by the smaller lengths
            const n = chunkCount(segLen, ce);
            if (n !== Math.max(1, Math.ceil(segLen / ce))) problems.push(`chunkCount(${segLen}, ${ce}) = ${n}`);
            let at = seg.start;
            for (let c = 0; c < n; c++) {
              const r = chunkRange(seg, ce, c);
              const size = r.end - r.start;
              // Contiguous; full-size except the last chunk (or the single chunk of an empty segment).
              if (r.start !== at || size > ce || size < 0 || (c < n - 1 && size !== ce)) {
                problems.push(`len ${len} parts ${parts} seg ${i} ce ${ce} chunk ${c}: [${r.start}, ${r.end})`);
              }
              at = r.end;
              checked++;
            }
            if (at !== seg.end) problems.push(`len ${len} parts ${parts} seg ${i} ce ${ce}: chunks end at ${at}, not ${seg.end}`);
          }
        }
      }
    }
    expect(problems.slice(0, 10)).toEqual([]);
    expect(checked).toBeGreaterThan(50_000);
  });

  it('has one empty chunk for an empty segment', () => {
    expect(chunkCount(0, 16)).toBe(1);
    expect(chunkRange({ start: 5, end: 5 }, 16, 0)).toEqual({ start: 5, end: 5 });
  });

  it('clamps chunks past the end of the segment to an empty range at its end', () => {
    expect(chunkRange({ start: 10, end: 20 }, 4, 7)).toEqual({ start: 20, end: 20 });
  });

  it('counts exact multiples without an extra chunk', () => {
    expect(chunkCount(64, 16)).toBe(4);
    expect(chunkCount(65, 16)).toBe(5);
  });
});

describe('mod', () => {
  it('is non-negative for negative operands', () => {
    expect(mod(-1, 5)).toBe(4);
    expect(mod(-5, 5)).toBe(0);
    expect(mod(-11, 5)).toBe(4);
    expect(mod(7, 5)).toBe(2);
    expect(mod(0, 1)).toBe(0);
  });
});
