/**
 * Text as samples for the transformer language model: characters to token ids over a fixed
 * vocabulary, and the token stream cut into windows of `window` ids that overlap by one, so every
 * token but the first is a target exactly once (the model reads a window's first `window - 1`
 * ids and predicts each next one).
 */
import { DataError, type Dataset } from './dataset.ts';

/** The characters of the built-in text datasets: newline, then printable ASCII (space to '~'); a token id is an index here. */
export const TEXT_VOCABULARY: readonly string[] = ['\n', ...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i))];

/** Characters written as a vocabulary character (typographic dashes and quotes); the others outside it are left out. */
const FOLD: Readonly<Record<string, string>> = { '—': '-', '–': '-', '‘': "'", '’': "'", '“': '"', '”': '"', '\t': ' ' };

/** Token ids of `text` over `vocabulary` (see {@link FOLD}; characters it cannot write are dropped). */
export function encodeText(text: string, vocabulary: readonly string[] = TEXT_VOCABULARY): Uint8Array {
  if (vocabulary.length > 256)
    throw new DataError('bad-argument', `encodeText: a vocabulary of ${vocabulary.length} characters does not fit one byte per token`);
  const id = new Map(vocabulary.map((c, i) => [c, i]));
  const out = new Uint8Array(text.length);
  let n = 0;
  for (const ch of text) {
    const t = id.get(FOLD[ch] ?? ch);
    if (t !== undefined) out[n++] = t;
  }
  return out.slice(0, n);
}

/** The text of token ids. */
export function decodeText(tokens: ArrayLike<number>, vocabulary: readonly string[] = TEXT_VOCABULARY): string {
  return Array.from(tokens, (t) => vocabulary[t] ?? '?').join('');
}

/** Windows of `window` tokens with stride `window - 1` that fit in `length` tokens. */
export function windowCount(length: number, window: number): number {
  return length < window ? 0 : Math.floor((length - 1) / (window - 1));
}

/**
 * The windows of `tokens` as a dataset: x holds each window's ids as floats (shape [window]), y its
 * last id (a class in the vocabulary, so partitions and histograms work as for other sets).
 */
export function textWindows(tokens: Uint8Array, window: number, vocabulary: readonly string[] = TEXT_VOCABULARY): Dataset {
  if (!(Number.isInteger(window) && window >= 2))
    throw new DataError('bad-argument', `textWindows: window must be an integer >= 2; got ${window}`);
  const n = windowCount(tokens.length, window);
  const x = new Float32Array(n * window);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const from = i * (window - 1);
    x.set(tokens.subarray(from, from + window), i * window);
    y[i] = tokens[from + window - 1]!;
  }
  return { n, shape: [window], x, y, numClasses: vocabulary.length, classNames: [...vocabulary] };
}
