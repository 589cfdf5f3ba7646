import * as tf from '@tensorflow/tfjs';
import { MlError } from './errors.ts';

/**
 * Backend selection. Each peer picks its tfjs backend by a short measured probe of the model's own
 * training step, or (probe off, or every probe failed) the first one that initialises in the order
 * webgpu → webgl → wasm → cpu. Every `setBackend`/`tf.ready` and every probe runs under a timeout;
 * a failure records why and moves on.
 *
 * This module has no browser-only imports, so Node unit tests can call {@link selectBackend} with
 * only the cpu backend present. The browser registers webgpu and wasm (their packages, wasm paths
 * and flags) through `registerBrowserBackends` in `backends-browser.ts`, passed in as `register`.
 */

/** The backends RingTrain knows, in fallback order. */
export const BACKEND_NAMES = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
/** A backend RingTrain can select. */
export type BackendName = (typeof BACKEND_NAMES)[number];
/** 'auto' probes (or falls back in order); a name forces that backend (falling back if it fails). */
export type BackendPreference = 'auto' | BackendName;

/** Default limit on one backend initialisation (`setBackend`, then `tf.ready`), ms. */
export const DEFAULT_INIT_TIMEOUT_MS = 10_000;
/** Default limit on one call of the probe function, ms. */
export const DEFAULT_PROBE_TIMEOUT_MS = 30_000;

/** The kernel that training a conv layer needs; tfjs 4.22's wasm backend lacks it until conv-grad.ts registers it. */
export const CONV_GRAD_KERNEL = 'Conv2DBackpropFilter';

/** What the WebGPU adapter says about itself (from `GPUAdapter.info`). */
export interface AdapterInfo {
  vendor: string;
  architecture: string;
  description: string;
  /**
   * A software/fallback adapter (SwiftShader here). Read from `adapter.info.isFallbackAdapter`,
   * because `adapter.isFallbackAdapter` is undefined in Chrome 156; the latter is used only when
   * `info` lacks the field.
   */
  isFallback: boolean;
}

/** The outcome of {@link selectBackend}: which backend is active now, and why. */
export interface BackendReport {
  /** The active tfjs backend (`tf.getBackend()` equals it when selectBackend resolves). */
  name: BackendName;
  /** Human-readable reason, e.g. 'fastest in probe: webgl 15 ms/step vs wasm 21, webgpu 78'. */
  reason: string;
  /** The WebGPU adapter, whenever one was found (also when another backend won). */
  adapter?: AdapterInfo;
  /** Probe results, ms per step, for each backend that passed its probe. */
  probeMs?: Record<string, number>;
  /**
   * Why each backend that was not chosen was skipped or failed (key: backend name, or 'register'
   * when the browser registration itself failed). Values read as '<name> <value>', e.g.
   * failures.webgpu = 'unavailable: no adapter'.
   */
  failures: Record<string, string>;
}

/** A minimal view of `navigator.gpu` (lib.dom has no WebGPU types). */
export interface GpuLike {
  requestAdapter(options?: { powerPreference?: 'high-performance' | 'low-power' }): Promise<GpuAdapterLike | null>;
}
/** A minimal view of `GPUAdapter`. */
export interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; description?: string; device?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}

/** Options of {@link selectBackend}; all optional. */
export interface SelectBackendOptions {
  /** 'auto' (default) or a backend to force. A forced backend that fails falls back as in 'auto'. */
  prefer?: BackendPreference;
  /** Where a forced preference came from, for the reason text (e.g. '?backend='); default 'prefer option'. */
  forcedBy?: string;
  /**
   * Measures the model's training step on the backend that is active when it is called; resolves to
   * ms per step (finite, >= 0). It must dispose what it creates. Called once per candidate backend
   * that initialised, in fallback order; a throw, a non-finite result or a timeout counts as a failure
   * of that backend. Omit it to skip probing and take the first backend that initialises.
   */
  probe?: (backend: BackendName) => Promise<number>;
  /** Limit on each backend's initialisation, ms (default {@link DEFAULT_INIT_TIMEOUT_MS}). */
  initTimeoutMs?: number;
  /** Limit on each probe call, ms (default {@link DEFAULT_PROBE_TIMEOUT_MS}). */
  probeTimeoutMs?: number;
  /**
   * The model trains conv layers: skip backends without the {@link CONV_GRAD_KERNEL} kernel (tfjs
   * 4.22 wasm), so conv training never lands on them.
   */
  needsConv?: boolean;
  /** Backends to consider, in fallback order (default {@link BACKEND_NAMES}; cpu should stay last). */
  candidates?: readonly BackendName[];
  /**
   * Registers extra backends before selection (in the browser: `registerBrowserBackends` from
   * `backends-browser.ts`). Runs under the init timeout; a failure is recorded under
   * failures.register and selection goes on with what is registered.
   */
  register?: () => Promise<void> | void;
  /** `navigator.gpu` (default: the global one, if any). Injectable for tests; null means none. */
  gpu?: GpuLike | null;
}

/** Parses a `?backend=` / `--backend` value; null or '' means 'auto'. Throws MlError('invalid-argument') otherwise. */
export function parseBackendPreference(value: string | null | undefined): BackendPreference {
  if (value == null || value === '' || value === 'auto') return 'auto';
  if ((BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendName;
  throw new MlError('invalid-argument', `parseBackendPreference: backend must be one of auto, ${BACKEND_NAMES.join(', ')}; got '${value}'`);
}

class Timeout extends Error {}

/** Races `p` against a timer; the timer is cleared either way. */
async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function fmtMs(ms: number): string {
  return ms < 10 ? ms.toFixed(1) : String(Math.round(ms));
}

function defaultGpu(): GpuLike | null {
  const nav = (globalThis as { navigator?: { gpu?: GpuLike } }).navigator;
  return nav?.gpu ?? null;
}

/** What an adapter says about itself, with the fallback flag read as {@link AdapterInfo} explains. */
export function readAdapterInfo(adapter: GpuAdapterLike): AdapterInfo {
  const info = adapter.info ?? {};
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    description: info.description || info.device || '',
    isFallback: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false),
  };
}

function checkTimeout(name: string, ms: number): void {
  if (!(Number.isFinite(ms) && ms > 0)) {
    throw new MlError('invalid-argument', `selectBackend: ${name} must be a positive number of ms, got ${ms}`);
  }
}

/**
 * Initialises `name` and makes it the active backend, within `timeoutMs`. Returns null on success,
 * or why it failed. A backend whose initialisation hangs is removed from tfjs's registry: otherwise
 * tfjs keeps its pending init and refuses every later op on any backend.
 */
async function initBackend(name: BackendName, timeoutMs: number): Promise<string | null> {
  try {
    const ok = await withTimeout(tf.setBackend(name), timeoutMs, `setBackend('${name}')`);
    if (!ok) return 'failed to initialise (tfjs logged the cause)';
    await withTimeout(tf.ready(), timeoutMs, `tf.ready() on ${name}`);
    if (tf.getBackend() !== name) return `initialised, but tfjs's active backend is ${tf.getBackend()}`;
    return null;
  } catch (e) {
    if (e instanceof Timeout) {
      try {
        tf.removeBackend(name);
      } catch {
        // Already gone; nothing to undo.
      }
      return `${e.message}; removed from tfjs's registry`;
    }
    return `failed to initialise: ${message(e)}`;
  }
}

/**
 * Chooses and activates a tfjs backend. Never rejects for a backend's failure: each one is recorded
 * in `failures` and the next is tried; rejects with MlError('no-backend') only when no candidate
 * initialises (cpu always does, unless excluded), and with MlError('invalid-argument') for bad options.
 *
 * - prefer = a backend name: that one if it initialises ('forced by ?backend='); else as 'auto'.
 * - prefer = 'auto' with `probe`: every eligible backend is initialised and probed; the fastest wins.
 *   If no probe succeeds, the first backend that initialised wins.
 * - prefer = 'auto' without `probe`: the first eligible backend that initialises, in order.
 *
 * Eligible: registered with tfjs; for webgpu, `navigator.gpu` gives an adapter; with `needsConv`, the
 * backend has the {@link CONV_GRAD_KERNEL} kernel. Backends probed but not chosen stay initialised
 * (tfjs has no way to release one and register it again).
 */
export async function selectBackend(options: SelectBackendOptions = {}): Promise<BackendReport> {
  const prefer = options.prefer ?? 'auto';
  parseBackendPreference(prefer);
  const initTimeoutMs = options.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS;
  const probeTimeoutMs = options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  checkTimeout('initTimeoutMs', initTimeoutMs);
  checkTimeout('probeTimeoutMs', probeTimeoutMs);
  const candidates = options.candidates ?? BACKEND_NAMES;
  for (const c of candidates) parseBackendPreference(c);
  const gpu = options.gpu === undefined ? defaultGpu() : options.gpu;

  const failures: Record<string, string> = {};
  let adapter: AdapterInfo | undefined;

  if (options.register) {
    try {
      await withTimeout(Promise.resolve().then(options.register), initTimeoutMs, 'backend registration');
    } catch (e) {
      failures['register'] = `failed: ${message(e)}`;
    }
  }

  /** Null when `name` may be tried; else why not. Reads the WebGPU adapter on the way. */
  async function ineligible(name: BackendName): Promise<string | null> {
    if (name === 'webgpu') {
      if (!gpu) return 'unavailable: navigator.gpu missing (needs a secure context and a WebGPU-enabled browser)';
      if (adapter === undefined) {
        let a: GpuAdapterLike | null;
        try {
          a = await withTimeout(gpu.requestAdapter({ powerPreference: 'high-performance' }), initTimeoutMs, 'requestAdapter');
        } catch (e) {
          return `unavailable: requestAdapter failed: ${message(e)}`;
        }
        if (!a) return 'unavailable: no adapter';
        adapter = readAdapterInfo(a);
      }
    }
    if (tf.findBackendFactory(name) == null) {
      return name === 'wasm' || name === 'webgpu'
        ? 'unavailable: not registered (pass register: registerBrowserBackends from ml/backends-browser.ts)'
        : 'unavailable: not registered in this environment';
    }
    if (options.needsConv && tf.getKernel(CONV_GRAD_KERNEL, name) == null) {
      return `skipped: lacks ${CONV_GRAD_KERNEL}, which training conv layers needs`;
    }
    return null;
  }

  function summary(exclude: string): string {
    const parts = Object.entries(failures)
      .filter(([k]) => k !== exclude)
      .map(([k, v]) => `${k} ${v}`);
    return parts.length > 0 ? `; ${parts.join('; ')}` : '';
  }

  function done(name: BackendName, reason: string, probeMs?: Record<string, number>): BackendReport {
    const report: BackendReport = { name, reason, failures };
    if (adapter) report.adapter = adapter;
    if (probeMs) report.probeMs = probeMs;
    return report;
  }

  let forcedNote = '';
  if (prefer !== 'auto') {
    const why = (await ineligible(prefer)) ?? (await initBackend(prefer, initTimeoutMs));
    const source = options.forcedBy ?? 'prefer option';
    if (why === null) return done(prefer, `forced by ${source}`);
    failures[prefer] = why;
    forcedNote = `forced ${prefer} (by ${source}) failed; `;
  }

  const order = candidates.filter((c) => !(c in failures));
  const usable: BackendName[] = [];
  for (const name of order) {
    const skip = await ineligible(name);
    if (skip !== null) {
      failures[name] = skip;
      continue;
    }
    if (!options.probe) {
      const why = await initBackend(name, initTimeoutMs);
      if (why === null) return done(name, `${forcedNote}first to initialise in order ${order.join(' → ')}${summary(name)}`);
      failures[name] = why;
      continue;
    }
    usable.push(name);
  }

  if (options.probe) {
    const probeMs: Record<string, number> = {};
    const initialised: BackendName[] = [];
    for (const name of usable) {
      const why = await initBackend(name, initTimeoutMs);
      if (why !== null) {
        failures[name] = why;
        continue;
      }
      initialised.push(name);
      try {
        const ms = await withTimeout(options.probe(name), probeTimeoutMs, `probe on ${name}`);
        if (!(Number.isFinite(ms) && ms >= 0)) throw new Error(`probe returned ${ms}, not a time in ms`);
        probeMs[name] = ms;
      } catch (e) {
        failures[name] = `probe failed: ${message(e)}`;
      }
    }
    const ranked = Object.entries(probeMs).sort((a, b) => a[1] - b[1]) as [BackendName, number][];
    const pick = ranked[0]?.[0] ?? initialised[0];
    if (pick !== undefined) {
      const why = await initBackend(pick, initTimeoutMs);
      if (why === null) {
        let reason: string;
        if (ranked.length === 0) {
          reason = `${forcedNote}probe failed on every backend; first initialised in order ${order.join(' → ')}`;
        } else {
          const [best, ...rest] = ranked;
          const others = rest.map(([n, ms]) => `${n} ${fmtMs(ms)}`).join(', ');
          reason =
            `${forcedNote}fastest in probe: ${best![0]} ${fmtMs(best![1])} ms/step` +
            (others ? ` vs ${others}` : ' (no other backend probed)');
        }
        return done(pick, reason + summary(pick), probeMs);
      }
      failures[pick] = `re-activation after probing failed: ${why}`;
    }
  }

  throw new MlError(
    'no-backend',
    `selectBackend: no backend could be initialised (${Object.entries(failures)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}); include 'cpu' in candidates`,
  );
}
