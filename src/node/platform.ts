/**
 * WebGPU and the tfjs backends for a Node peer: Dawn's Node binding (npm `webgpu`) gives
 * tfjs-backend-webgpu its `navigator.gpu` (WebRTC and WebSocket come from `globals.ts`).
 *
 * WebGPU is optional: without a Vulkan driver Dawn finds no adapter, and the backend probe falls
 * back to wasm, then cpu, and says so. `VK_ICD_FILENAMES` picks a driver, e.g. SwiftShader's (the
 * tests and the GPU kit's check on a machine with no GPU).
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend, type BackendReport, type GpuLike, type SelectBackendOptions } from '../ml/backend.ts';
import { registerWasmConvGrad } from '../ml/conv-grad.ts';

let gpu: Promise<GpuLike | null> | null = null;

/**
 * Dawn's `navigator.gpu`, installed as the global tfjs-backend-webgpu reads (Node 20 has no
 * `navigator`), or null where the binding cannot load. Once per process.
 */
export function installWebGpu(): Promise<GpuLike | null> {
  gpu ??= (async () => {
    try {
      const dawn = await import('webgpu');
      Object.assign(globalThis, dawn.globals);
      const nav = ((globalThis as { navigator?: object }).navigator ??= {}) as { gpu?: unknown };
      const made = dawn.create([]) as GpuLike;
      Object.defineProperty(nav, 'gpu', { value: made, configurable: true });
      return made;
    } catch {
      return null;
    }
  })();
  return gpu;
}

let registered: Promise<void> | null = null;

/** Registers the webgpu (where Dawn loads) and wasm backends, once per process. */
export function registerNodeBackends(): Promise<void> {
  registered ??= (async () => {
    if (await installWebGpu()) await import('@tensorflow/tfjs-backend-webgpu');
    await import('@tensorflow/tfjs-backend-wasm');
    registerWasmConvGrad();
    // Threads gave nothing on 2 cores in the browser (backends-browser.ts); Node's wasm loads SIMD.
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  })();
  return registered;
}

/** {@link selectBackend} in Node: Dawn's adapter for webgpu, no webgl, then wasm and cpu. */
export async function selectNodeBackend(options: Omit<SelectBackendOptions, 'register' | 'gpu'> = {}): Promise<BackendReport> {
  await registerNodeBackends();
  return selectBackend({
    candidates: ['webgpu', 'wasm', 'cpu'],
    ...options,
    register: registerNodeBackends,
    gpu: await installWebGpu(),
  });
}
