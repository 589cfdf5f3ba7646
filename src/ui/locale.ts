/**
 * Locale-safe formatting. Browsers can report a language tag that `Intl` rejects: under
 * `LANG=C.UTF-8` the npm-bundled Chromium says `en-US@posix`, and `new Intl.NumberFormat(tag)`
 * then throws a RangeError. One such call at a module's top level (uPlot has one) kills the app,
 * so the tag is repaired here before anything formats with it.
 */

/** What the app formats with when the browser's tag cannot be repaired. */
export const FALLBACK_LOCALE = 'en-US';

/**
 * A language tag `Intl` accepts, made from `tag`: as is when valid; else POSIX spellings repaired
 * (`en_US.UTF-8@euro` → `en-US`); else {@link FALLBACK_LOCALE} (`C`, `POSIX`, empty, garbage).
 */
export function safeLocale(tag: unknown): string {
  const valid = (t: string): string | null => {
    try {
      return Intl.getCanonicalLocales(t)[0] ?? null;
    } catch {
      return null;
    }
  };
  // POSIX's own names are not languages (Intl would take "POSIX" as one).
  if (typeof tag !== 'string' || /^(C|POSIX)?([.@].*)?$/i.test(tag)) return FALLBACK_LOCALE;
  return valid(tag) ?? valid(tag.replace(/[.@].*$/, '').replace(/_/g, '-')) ?? FALLBACK_LOCALE;
}

/** A clock time (hours, minutes, seconds) in `locale`, repaired by {@link safeLocale}. */
export function clockTime(date: Date, locale: unknown = navigatorLocale()): string {
  return new Intl.DateTimeFormat(safeLocale(locale), { hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(date);
}

/** A number with `digits` decimals and grouping in `locale`, repaired by {@link safeLocale}. */
export function formatNumber(n: number, digits = 0, locale: unknown = navigatorLocale()): string {
  return new Intl.NumberFormat(safeLocale(locale), { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(n);
}

function navigatorLocale(): unknown {
  return typeof navigator === 'undefined' ? undefined : navigator.language;
}

/**
 * Makes `navigator.language(s)` report valid tags in this page when the browser's are not, so that
 * libraries that format with them (uPlot at import time) work. Returns the tag it replaced, or null
 * when the browser's was valid. Import this module before any such library.
 */
export function repairNavigatorLocale(nav: Navigator = navigator): string | null {
  const reported = nav.language;
  const fixed = safeLocale(reported);
  if (fixed === reported) return null;
  const languages = [...new Set((nav.languages ?? []).map(safeLocale).concat(fixed))];
  Object.defineProperty(nav, 'language', { value: fixed, configurable: true });
  Object.defineProperty(nav, 'languages', { value: Object.freeze([fixed, ...languages.filter((l) => l !== fixed)]), configurable: true });
  return reported;
}

/** The tag this page's browser reported, when it had to be replaced (shown in the dashboard). */
export const repairedLocale: string | null =
  typeof navigator !== 'undefined' && typeof document !== 'undefined' ? repairNavigatorLocale() : null;
