import { describe, expect, it } from 'vitest';
import { fromBase64, fromBase64Url, toBase64, toBase64Url } from './base64.ts';

describe('base64', () => {
  it('round-trips bytes, large ones too, and agrees with Node', () => {
    const big = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7919) & 255);
    expect(toBase64(big)).toBe(Buffer.from(big).toString('base64'));
    expect(fromBase64(toBase64(big))).toEqual(big);
    const key = Uint8Array.from({ length: 32 }, (_, i) => 250 - i);
    expect(toBase64Url(key)).toBe(Buffer.from(key).toString('base64url'));
    expect(fromBase64Url(toBase64Url(key))).toEqual(key);
    expect(toBase64(new Uint8Array())).toBe('');
  });
});
