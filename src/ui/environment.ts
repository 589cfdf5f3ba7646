/**
 * What this browser lacks, and what each gap disables. The page starts whatever is missing; the
 * dashboard lists these notes so a person knows why an option is greyed out and what to do.
 */
import { FALLBACK_LOCALE } from './locale.ts';

export interface EnvironmentProbe {
  /** `window.isSecureContext`. */
  secureContext: boolean;
  /** `crypto.subtle` exists (browsers hide it outside a secure context). */
  subtle: boolean;
  /** `navigator.gpu` exists. */
  webgpu: boolean;
  /** The browser has WebGL2 or WebGL. */
  webgl: boolean;
  /** The language tag the browser reported, when it was invalid and had to be replaced. */
  repairedLocale: string | null;
}

export interface EnvironmentNote {
  /** Which piece: `crypto`, `webgpu`, `webgl` or `locale`. */
  what: 'crypto' | 'webgpu' | 'webgl' | 'locale';
  text: string;
}

const SECURE_HINT = 'open the app over https (ringtrain serve --tls-cert/--tls-key) or on localhost';

/** The notes for `p`, most important first; empty when nothing is missing. */
export function environmentNotes(p: EnvironmentProbe): EnvironmentNote[] {
  const notes: EnvironmentNote[] = [];
  if (!p.subtle) {
    notes.push({
      what: 'crypto',
      text: `No WebCrypto (crypto.subtle)${p.secureContext ? '' : ': this page is not a secure context'}. Private rooms and secure aggregation need it: ${SECURE_HINT}. Open rooms and everything else work.`,
    });
  }
  if (!p.webgpu) {
    notes.push({
      what: 'webgpu',
      text: `No WebGPU${p.secureContext ? ' in this browser' : ' (it needs a secure context)'}: training runs on ${p.webgl ? 'WebGL' : 'WebAssembly or the CPU'} instead, more slowly.`,
    });
  }
  if (!p.webgl) notes.push({ what: 'webgl', text: `No WebGL: ${p.webgpu ? 'WebGPU' : 'WebAssembly or the CPU'} computes instead.` });
  if (p.repairedLocale !== null) {
    notes.push({
      what: 'locale',
      text: `The browser reported the language "${p.repairedLocale}", which is not a valid tag; numbers and times use ${FALLBACK_LOCALE} formats instead.`,
    });
  }
  return notes;
}

/**
 * Probes this page (browser only). Cheap on purpose: no GPU or WebGL context is made here (on a
 * machine without a GPU, four tabs each making one at load stalled their renderers for seconds);
 * whether a context really works is the backend probe's job when training starts.
 */
export function probeEnvironment(repairedLocale: string | null): EnvironmentProbe {
  return {
    secureContext: window.isSecureContext,
    subtle: !!globalThis.crypto?.subtle,
    webgpu: 'gpu' in navigator,
    webgl: typeof WebGL2RenderingContext !== 'undefined' || typeof WebGLRenderingContext !== 'undefined',
    repairedLocale,
  };
}

/** Lists `notes` in `root` (hidden when there are none). DOM only. */
export function renderEnvironment(root: HTMLElement, notes: EnvironmentNote[]): void {
  root.replaceChildren(
    ...notes.map((n) => {
      const li = document.createElement('li');
      li.textContent = n.text;
      li.dataset.what = n.what;
      return li;
    }),
  );
  root.hidden = notes.length === 0;
}
