/**
 * Browser-only backend registration: imports the webgpu and wasm backend packages, serves wasm's
 * three binaries through Vite's `?url` imports, and sets the flags measured on this machine (see
 * shared/chromium.md). Kept apart from backend.ts so Node unit tests never load these imports; pass
 * {@link registerBrowserBackends} as `register` to `selectBackend`, or call
 * {@link selectBrowserBackend}.
 */
import * as tf from '@tensorflow/tfjs';
import wasmPlainUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { selectBackend, type BackendReport, type SelectBackendOptions } from './backend.ts';
import { registerWasmConvGrad } from './conv-grad.ts';

/**
 * WebGPU flags applied at registration. On SwiftShader they took the MLP from 78 to 57 ms/step and
 * the small CNN from 1148 to 291 ms/step (chromium.md). Not measured on a real GPU; override with
 * {@link RegisterOptions.webgpuFlags}.
 */
export const WEBGPU_FLAGS: Readonly<Record<string, number | boolean>> = {
  WEBGPU_CONV_SEPARATE_IM2COL_SHADER: true,
  WEBGPU_MATMUL_PROGRAM_TYPE: 3,
};

/** Options of {@link registerBrowserBackends}. */
export interface RegisterOptions {
  /** Replaces {@link WEBGPU_FLAGS}; `{}` keeps tfjs's defaults. */
  webgpuFlags?: Readonly<Record<string, number | boolean>>;
}

let registered: Promise<void> | null = null;

/**
 * Registers the webgpu backend (only where `navigator.gpu` exists; the package checks) and the wasm
 * backend, once per page; later calls return the first call's promise. The threaded wasm binary
 * hangs in a minified Vite build and threads gave nothing on 2 cores, so multithreading is off
 * (`WASM_HAS_MULTITHREAD_SUPPORT=false`); wasm then loads the SIMD (or plain) binary.
 */
export function registerBrowserBackends(options: RegisterOptions = {}): Promise<void> {
  registered ??= (async () => {
    await import('@tensorflow/tfjs-backend-webgpu');
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths({
      'tfjs-backend-wasm.wasm': wasmPlainUrl,
      'tfjs-backend-wasm-simd.wasm': wasmSimdUrl,
      'tfjs-backend-wasm-threaded-simd.wasm': wasmThreadedUrl,
    });
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    registerWasmConvGrad();
    // Flags are registered by the webgpu package whether or not navigator.gpu exists.
    for (const [flag, value] of Object.entries(options.webgpuFlags ?? WEBGPU_FLAGS)) tf.env().set(flag, value);
  })();
  return registered;
}

/** {@link selectBackend} with the browser backends registered first. */
export function selectBrowserBackend(options: Omit<SelectBackendOptions, 'register'> & RegisterOptions = {}): Promise<BackendReport> {
  const { webgpuFlags, ...rest } = options;
  return selectBackend({ ...rest, register: () => registerBrowserBackends(webgpuFlags ? { webgpuFlags } : {}) });
}
