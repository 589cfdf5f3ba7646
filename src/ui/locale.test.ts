import { describe, expect, it } from 'vitest';
import { environmentNotes, type EnvironmentProbe } from './environment.ts';
import { clockTime, FALLBACK_LOCALE, formatNumber, repairNavigatorLocale, safeLocale } from './locale.ts';

const BAD = ['en-US@posix', 'C', 'POSIX', '', 'garbage tag!', 'en_US.UTF-8', 'de_DE@euro', undefined, 42];

describe('safeLocale', () => {
  it('keeps valid tags and repairs or replaces the rest', () => {
    expect(BAD.map(safeLocale)).toEqual(['en-US', 'en-US', 'en-US', 'en-US', 'en-US', 'en-US', 'de-DE', 'en-US', 'en-US']);
    expect(['en-US', 'fr', 'de-CH', 'zh-Hant-TW'].map(safeLocale)).toEqual(['en-US', 'fr', 'de-CH', 'zh-Hant-TW']);
  });

  it('the raw tags really are fatal to Intl, which is why the helpers exist', () => {
    for (const t of ['en-US@posix', 'C', '', 'garbage tag!']) expect(() => new Intl.NumberFormat(t)).toThrow(RangeError);
  });
});

describe('formatting with any locale', () => {
  const noon = new Date(2026, 11, 1, 12, 34, 56);
  it.each(BAD.map((b) => [String(b), b]))('formats numbers and times with %s', (_name, tag) => {
    expect(formatNumber(1234567.891, 2, tag)).toBe(tag === 'de_DE@euro' ? '1.234.567,89' : '1,234,567.89');
    expect(clockTime(noon, tag)).toMatch(/^12:34:56( PM)?$/);
  });

  it('formats in a valid locale of its own', () => {
    expect(formatNumber(0.5, 1, 'fr')).toBe('0,5');
    expect(clockTime(noon, 'de-DE')).toBe('12:34:56');
  });
});

describe('repairNavigatorLocale', () => {
  it('replaces an invalid navigator.language and languages, and says what the browser reported', () => {
    const nav = { language: 'en-US@posix', languages: ['en-US@posix', 'fr'] } as unknown as Navigator;
    expect(repairNavigatorLocale(nav)).toBe('en-US@posix');
    expect(nav.language).toBe('en-US');
    expect(nav.languages).toEqual(['en-US', 'fr']);
    // A library formatting with the repaired tag now works.
    expect(new Intl.NumberFormat(nav.language).format(1000)).toBe('1,000');
  });

  it('leaves a valid one alone', () => {
    const nav = { language: 'de-DE', languages: ['de-DE'] } as unknown as Navigator;
    expect(repairNavigatorLocale(nav)).toBeNull();
    expect(nav.language).toBe('de-DE');
  });
});

describe('environmentNotes', () => {
  const full: EnvironmentProbe = { secureContext: true, subtle: true, webgpu: true, webgl: true, repairedLocale: null };

  it('says nothing when nothing is missing', () => {
    expect(environmentNotes(full)).toEqual([]);
  });

  it('names what each missing piece disables and what to do', () => {
    const notes = environmentNotes({ secureContext: false, subtle: false, webgpu: false, webgl: false, repairedLocale: 'en-US@posix' });
    expect(notes.map((n) => n.what)).toEqual(['crypto', 'webgpu', 'webgl', 'locale']);
    expect(notes[0]!.text).toMatch(
      /not a secure context\. Private rooms and secure aggregation need it: open the app over https .* or on localhost/,
    );
    expect(notes[1]!.text).toMatch(/No WebGPU \(it needs a secure context\): training runs on WebAssembly or the CPU/);
    expect(notes[3]!.text).toContain(`"en-US@posix"`);
    expect(notes[3]!.text).toContain(FALLBACK_LOCALE);
  });

  it('without WebGPU in a secure context, WebGL takes over', () => {
    expect(environmentNotes({ ...full, webgpu: false }).map((n) => n.text)).toEqual([
      'No WebGPU in this browser: training runs on WebGL instead, more slowly.',
    ]);
  });
});
