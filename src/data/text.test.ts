import { describe, expect, it } from 'vitest';
import { decodeText, encodeText, TEXT_VOCABULARY, textWindows, windowCount } from './text.ts';

describe('text as token ids', () => {
  it('has 96 characters: newline and printable ASCII; encode and decode are inverse on them', () => {
    expect(TEXT_VOCABULARY).toHaveLength(96);
    expect(TEXT_VOCABULARY[0]).toBe('\n');
    expect(TEXT_VOCABULARY[1]).toBe(' ');
    expect(TEXT_VOCABULARY[95]).toBe('~');
    const text = 'Call me Ishmael.\nSome years ago~ {x}';
    expect(decodeText(encodeText(text))).toBe(text);
  });

  it('writes typographic dashes and quotes as ASCII and leaves out what it cannot write', () => {
    expect(decodeText(encodeText('ago—never “mind” it’s\té'))).toBe('ago-never "mind" it\'s ');
  });

  it('cuts windows that overlap by one token, so every token after the first is a target once; y is the last token', () => {
    const tokens = Uint8Array.from({ length: 10 }, (_, i) => i + 1);
    const ds = textWindows(tokens, 4);
    expect(windowCount(10, 4)).toBe(3);
    expect(ds.n).toBe(3);
    expect(Array.from(ds.x)).toEqual([1, 2, 3, 4, 4, 5, 6, 7, 7, 8, 9, 10]);
    expect(Array.from(ds.y)).toEqual([4, 7, 10]);
    expect(ds.shape).toEqual([4]);
    expect(ds.numClasses).toBe(96);
    expect(textWindows(tokens, 11).n).toBe(0);
    expect(() => textWindows(tokens, 1)).toThrow(/window must be an integer >= 2/);
  });
});
